#!/usr/bin/env bash
# Build the local test image used by the integration tests, without any registry.
#
# The image is a tiny root filesystem made from Debian's statically linked busybox
# (package busybox-static): /bin/busybox plus one symlink per applet, a minimal
# /etc/passwd and /etc/group (root, nobody and two test users), /tmp and /run.
# It is imported with `docker import` and tagged with a hash of this script and of
# the busybox binary, so it is rebuilt only when the recipe changes.
#
# Prints the content-addressed tag on stdout (progress goes to stderr).
# Environment:
#   COMPOSESECRETS_TEST_REPO   image repository (default composesecrets-test/busybox)
#   BUSYBOX                    busybox binary to use (default /bin/busybox)
set -euo pipefail

repo="${COMPOSESECRETS_TEST_REPO:-composesecrets-test/busybox}"
busybox="${BUSYBOX:-/bin/busybox}"

log() { printf 'build-test-images: %s\n' "$*" >&2; }

need_busybox() {
    # A static binary is required: the image has no libc.
    [[ -x "$busybox" ]] && file_is_static "$busybox"
}

file_is_static() {
    # busybox from the `busybox` package is dynamic; only busybox-static is usable.
    ! LC_ALL=C ldd "$1" >/dev/null 2>&1
}

if ! need_busybox; then
    if [[ "$busybox" != /bin/busybox ]]; then
        log "BUSYBOX=$busybox is not an executable static binary"
        exit 1
    fi
    log "installing busybox-static (static /bin/busybox not found)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq busybox-static >&2
    need_busybox || { log "/bin/busybox is still not a static binary"; exit 1; }
fi

if ! command -v docker >/dev/null 2>&1; then
    log "docker CLI not found"
    exit 1
fi

script_path="${BASH_SOURCE[0]}"
recipe_hash="$(cat "$script_path" "$busybox" | sha256sum | cut -c1-12)"
tag="${repo}:${recipe_hash}"
alias_tag="${repo}:latest"

if docker image inspect "$tag" >/dev/null 2>&1; then
    # Keep the stable alias pointing at the current recipe.
    docker tag "$tag" "$alias_tag"
    log "found $tag"
    printf '%s\n' "$tag"
    exit 0
fi

log "building $tag from $busybox"
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
root="$workdir/rootfs"

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home/app,home/other,run,var/tmp,tmp,proc,sys,dev}
install -m 0755 "$busybox" "$root/bin/busybox"
while IFS= read -r applet; do
    [[ -z "$applet" || "$applet" == bin/busybox ]] && continue
    [[ -e "$root/$applet" || -L "$root/$applet" ]] && continue
    mkdir -p "$root/$(dirname "$applet")"
    ln -s /bin/busybox "$root/$applet"
done < <("$busybox" --list-full)
[[ -L "$root/bin/sh" ]] || { log "busybox has no sh applet"; exit 1; }

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app test user:/home/app:/bin/sh
other:x:1001:1001:second test user:/home/other:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
app:x:1000:
other:x:1001:
nogroup:x:65534:
EOF
chmod 0644 "$root/etc/passwd" "$root/etc/group"
chmod 0700 "$root/root"
chmod 1777 "$root/tmp" "$root/var/tmp"
chown 1000:1000 "$root/home/app"
chown 1001:1001 "$root/home/other"

# Deterministic archive: sorted names, fixed mtime, numeric root ownership by default.
tar --sort=name --mtime=@0 --numeric-owner -C "$root" -cf "$workdir/rootfs.tar" .

docker import \
    --change 'CMD ["sh"]' \
    --change 'WORKDIR /' \
    --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "LABEL org.composesecrets.test.recipe=${recipe_hash}" \
    "$workdir/rootfs.tar" "$tag" >/dev/null
docker tag "$tag" "$alias_tag"
log "built $tag"
printf '%s\n' "$tag"
