#!/usr/bin/env bash
# The README's main job: validate and print the WordPress example, then deploy the guide's
# simple example on the local test image with a throwaway store, show the mounted secrets'
# owners and modes, show that removing a secret in use is refused, and tear everything down.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cs=(.venv/bin/composesecrets)
step() { printf '\n==> %s\n' "$*"; }

step "validate examples/wordpress (strict mode)"
(cd examples/wordpress && "../../${cs[0]}" validate)
step "normalised secrets of examples/wordpress"
(cd examples/wordpress && "../../${cs[0]}" config --format json) | python3 -c \
    'import json,sys; c=json.load(sys.stdin); [print(f"{s}: {r}") for s,v in c["services"].items() for r in v.get("secrets",[])]'

work=$(mktemp -d)
export COMPOSESECRETS_HOME="$work/store"
COMPOSESECRETS_KEY=$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')
export COMPOSESECRETS_KEY
stack=demo$$
cleanup() {
    "${cs[@]}" stack rm --quiet "$stack" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

step "store the secret my_secret_data (value from standard input, never the command line)"
printf 'This is a secret' | "${cs[@]}" secret create my_secret_data -
step "deploy examples/simple as stack $stack"
"${cs[@]}" stack deploy -c examples/simple/compose.yaml "$stack"
"${cs[@]}" stack ps "$stack"
container="${stack}_app_1"
step "inside $container: owners and modes of the mounted secrets"
docker exec "$container" sh -c 'stat -c "%A %u:%g %n" /run/secrets/my_secret_data /run/secrets/app/secret.txt; grep /run/secrets /proc/mounts'
step "removing a secret in use is refused"
if "${cs[@]}" secret rm my_secret_data; then
    echo "demo: expected the removal to be refused" >&2
    exit 1
fi
step "tear down"
"${cs[@]}" stack rm "$stack"
"${cs[@]}" secret rm my_secret_data
if docker ps -a --filter "label=io.composesecrets.stack=$stack" -q | grep -q .; then
    echo "demo: containers of $stack are left behind" >&2
    exit 1
fi
printf '\ndemo: success: deployed with secrets at their uid/gid/mode, and torn down\n'
