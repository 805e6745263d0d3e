#!/usr/bin/env bash
# The README's main job (`make demo`, after `make venv engine example-secrets`):
#   1. validate and print the secrets of the WordPress example;
#   2. build the nginx image from Debian packages (once) and the example's root CA, site key
#      and certificate (examples/nginx-tls/gen-certs.py; kept, gitignored);
#   3. deploy examples/nginx-tls with a throwaway store (COMPOSESECRETS_HOME and
#      XDG_CONFIG_HOME in a temporary directory, a random COMPOSESECRETS_KEY) on a free local
#      port (or $NGINX_PORT);
#   4. show the HTTPS answer, checked against the root CA, and that the certificate served
#      is the secret site.crt; show the mounted secrets' owners and modes;
#   5. rotate the site key and certificate in place (a new pair from the same CA) while a
#      client makes HTTPS requests: no failed request, the same container, nginx reloaded
#      by SIGHUP;
#   6. tear everything down and check that nothing is left.
# Each step is announced; the last line says whether it all worked. Everything the demo
# created is removed on failure too (trap).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cs=(.venv/bin/composesecrets)
py=.venv/bin/python
example=examples/nginx-tls
current_step="start"
step() {
    current_step="$*"
    printf '\n==> %s\n' "$*"
}
show() {  # print a command (arguments with blanks or specials in single quotes), then run it
    local arg line='$'
    for arg in "$@"; do
        if [[ "$arg" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then line+=" $arg"; else line+=" '$arg'"; fi
    done
    printf '%s\n' "$line"
    "$@"
}

work=""
stack=""
cleanup() {
    local status=$?
    if [[ -n "$stack" ]]; then
        "${cs[@]}" stack rm "$stack" >/dev/null 2>&1 || true
    fi
    [[ -n "$work" ]] && rm -rf "$work"
    if ((status != 0)); then
        printf '\ndemo: FAILED during "%s" (exit %d); the stack and the throwaway store were removed\n' \
            "$current_step" "$status" >&2
    fi
}
trap cleanup EXIT

[[ -x "${cs[0]}" ]] || { echo "demo: ${cs[0]} is missing: run \`make venv\` first" >&2; exit 1; }

step "validate examples/wordpress (strict mode)"
(cd examples/wordpress && "../../${cs[0]}" validate)
step "normalised secrets of examples/wordpress"
(cd examples/wordpress && "../../${cs[0]}" config --format json) | "$py" -c \
    'import json,sys; c=json.load(sys.stdin); [print(f"{s}: {r}") for s,v in c["services"].items() for r in v.get("secrets",[])]'

step "build the nginx image from Debian's nginx-light (only when its recipe changed)"
image="$(scripts/build-server-images.sh nginx)"
echo "image: $image"

step "root CA, site key and site certificate for $example (keys mode 0600, gitignored)"
"$py" "$example/gen-certs.py"

step "validate $example"
show "${cs[@]}" validate -c "$example/compose.yaml"

work="$(mktemp -d)"
export COMPOSESECRETS_HOME="$work/store"
# its unlock pin and high-water file go beside the store too, not in ~/.config/composesecrets
export XDG_CONFIG_HOME="$work/config"
COMPOSESECRETS_KEY="$("$py" -c 'import base64,os; print(base64.b64encode(os.urandom(32)).decode())')"
export COMPOSESECRETS_KEY
if [[ -z "${NGINX_PORT:-}" ]]; then
    NGINX_PORT="$("$py" -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])')"
fi
export NGINX_PORT NGINX_IMAGE="$image"
stack="nginxdemo$$"

step "deploy $example as stack $stack (throwaway store in $COMPOSESECRETS_HOME, port $NGINX_PORT)"
show "${cs[@]}" stack deploy -c "$example/compose.yaml" "$stack"
show "${cs[@]}" stack ps "$stack"
show "${cs[@]}" secret ls

step "the HTTPS answer, trusting only $example/root-ca.crt"
url="https://localhost:${NGINX_PORT}/"
for _ in $(seq 60); do
    "$py" - "$example/root-ca.crt" "$NGINX_PORT" >/dev/null 2>&1 <<'EOF' && break
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
with socket.create_connection(("localhost", int(sys.argv[2])), timeout=2) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost"):
        pass
EOF
    sleep 0.5
done
if command -v curl >/dev/null 2>&1; then
    printf '$ curl --cacert %s %s\n' "$example/root-ca.crt" "$url"
    curl --silent --show-error --fail --cacert "$example/root-ca.crt" "$url" | sed -n '1,/<\/h1>/p'
    echo "  [...]"
else
    printf '(curl not installed: fetching %s with python ssl, CA %s)\n' "$url" "$example/root-ca.crt"
fi
"$py" - "$example" "$NGINX_PORT" <<'EOF'
import http.client, ssl, sys
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

example, port = Path(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context(cafile=str(example / "root-ca.crt"))
conn = http.client.HTTPSConnection("localhost", port, timeout=10, context=ctx)
conn.request("GET", "/")
resp = conn.getresponse()
body = resp.read()
served = conn.sock.getpeercert(binary_form=True)
cert = x509.load_der_x509_certificate(served)
site = x509.load_pem_x509_certificate((example / "site.crt").read_bytes())
print(f"HTTP {resp.status} {resp.reason}, {len(body)} bytes, {conn.sock.version()}")
print(f"served certificate: subject {cert.subject.rfc4514_string()}")
print(f"                    issuer  {cert.issuer.rfc4514_string()}")
if resp.status != 200 or served != site.public_bytes(Encoding.DER):
    sys.exit("demo: the served certificate is not the secret site.crt")
print(f"it is {example}/site.crt, the secret site.crt mounted at /run/secrets/site.crt")
EOF

container="$("${cs[@]}" stack ps "$stack" --format json | "$py" -c 'import json,sys; print(json.load(sys.stdin)[0]["Name"])')"
step "inside $container: owners and modes of the mounted secrets"
show docker exec "$container" stat -L -c '%A %U:%G (%u:%g) %n' \
    /run/secrets/site.key /run/secrets/site.crt /etc/nginx/conf.d/site.conf
echo "each target is a symlink into one read-only directory mount from the tool's tmpfs:"
docker exec "$container" ls -l /run/secrets/site.key /etc/nginx/conf.d/site.conf
docker exec "$container" grep -E ' /run/composesecrets ' /proc/mounts

step "rotate the site key and certificate in place while a client keeps asking (new pair, same CA)"
echo "the service carries io.composesecrets.rotate: in-place and io.composesecrets.reload-signal: SIGHUP"
before_id="$(docker inspect -f '{{.Id}}' "$container")"
"$py" - "$example" "$NGINX_PORT" "$work/client.json" 8 <<'EOF' &
import hashlib, http.client, json, ssl, sys, time
example, port, out, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
ctx = ssl.create_default_context(cafile=f"{example}/root-ca.crt")
seen, failed, end = [], [], time.time() + seconds
while time.time() < end:
    try:
        conn = http.client.HTTPSConnection("localhost", port, timeout=5, context=ctx)
        conn.request("GET", "/")
        der = conn.sock.getpeercert(binary_form=True)
        status = conn.getresponse().status
        conn.close()
        (seen if status == 200 else failed).append([time.time(), hashlib.sha256(der).hexdigest()])
    except (OSError, http.client.HTTPException) as exc:
        failed.append([time.time(), repr(exc)])
    time.sleep(0.05)
with open(out, "w") as handle:
    json.dump({"seen": seen, "failed": failed}, handle)
EOF
client=$!
sleep 1.5
show "$py" "$example/gen-certs.py" --new-site
started="$(date +%s.%N)"
show "${cs[@]}" stack deploy -c "$example/compose.yaml" "$stack"
wait "$client"
"$py" - "$example" "$work/client.json" "$started" <<'EOF'
import hashlib, json, sys
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
example, started = sys.argv[1], float(sys.argv[3])
with open(sys.argv[2]) as handle:
    result = json.load(handle)
with open(f"{example}/site.crt", "rb") as handle:
    site = x509.load_pem_x509_certificate(handle.read())
new = hashlib.sha256(site.public_bytes(Encoding.DER)).hexdigest()
times = [t for t, digest in result["seen"] if digest == new]
print(f"client: {len(result['seen'])} answers, {len(result['failed'])} failed requests")
if result["failed"] or not times:
    sys.exit("demo: requests failed during the rotation, or the new certificate was never served")
print(f"the new certificate was served {min(times) - started:.2f} s after the command started")
EOF
after_id="$(docker inspect -f '{{.Id}}' "$container")"
[[ "$before_id" == "$after_id" ]] || { echo "demo: the container was recreated" >&2; exit 1; }
echo "same container ${after_id:0:12}: nothing was restarted"
show "${cs[@]}" stack ps "$stack"

step "tear down stack $stack"
show "${cs[@]}" stack rm "$stack"
left="$(docker ps -a --filter "label=io.composesecrets.stack=$stack" -q)$(docker network ls --filter "label=io.composesecrets.stack=$stack" -q)"
if [[ -n "$left" ]] || compgen -G "/run/composesecrets/${stack}*" >/dev/null; then
    echo "demo: parts of stack $stack are left behind" >&2
    exit 1
fi
stack=""
echo "no container, network or secret file of the stack is left"
show "${cs[@]}" secret ls
rm -rf "$work"
work=""
echo "throwaway store removed"

printf '\ndemo: SUCCESS: nginx served HTTPS on port %s with its key, certificate and site.conf as secrets (key 0400 root), rotated key and certificate in place without a failed request, and everything was torn down\n' "$NGINX_PORT"
