#!/usr/bin/env bash
# Build the real server images the examples and end-to-end tests run, without any registry.
#
#   scripts/build-server-images.sh [nginx|mariadb|all]      (default: all)
#
# Each image is a Debian root filesystem made with `debootstrap --variant=minbase` from the
# Debian mirror this machine's apt is configured with (suite = the host's codename), plus
# the server package, trimmed (docs, man pages, locales, apt lists and caches, logs) and
# loaded with `docker import`. Images are tagged
#     composesecrets-test/<name>:<first 12 hex digits of the recipe hash>   and   :latest
# where the recipe hash covers this script (without its comment-only lines), the image name
# and the suite; an image is rebuilt only when its recipe tag is missing (:latest is
# re-pointed at it either way), and older recipe tags of the same image are then removed
# when no container uses them. Concurrent runs are serialised with a lock file.
# Prints one tag per built/found image on stdout; progress and timings go to stderr.
# Needs root (or passwordless sudo) for debootstrap; installs debootstrap with apt-get when
# it is missing.
#
# composesecrets-test/nginx  (package nginx-light)
#   CMD ["nginx", "-g", "daemon off;"], EXPOSE 80 443 (`docker import` cannot set STOPSIGNAL:
#   SIGTERM is nginx's fast shutdown; compose files may set `stop_signal: SIGQUIT`).
#   Debian's layout: /etc/nginx/nginx.conf includes /etc/nginx/conf.d/*.conf (where the
#   examples mount site.conf) and the default site on port 80; /usr/share/nginx/html holds
#   index.html. Access and error logs go to the container's stdout/stderr. The master
#   process runs as root (so root-owned 0400 keys are readable), workers as www-data.
#
# composesecrets-test/mariadb  (package mariadb-server, MariaDB 10.11 on bookworm)
#   ENTRYPOINT ["docker-entrypoint.sh"] (/usr/local/bin/docker-entrypoint.sh), CMD ["mariadbd"],
#   EXPOSE 3306, data directory /var/lib/mysql, listens on 0.0.0.0:3306 and on the socket
#   /run/mysqld/mysqld.sock. Unlike the official image there is no VOLUME instruction (it
#   would leave an anonymous volume behind every removed container): mount a named volume
#   at /var/lib/mysql to keep the data. Contract of the entrypoint (the official image's, reduced):
#   * Variables: MYSQL_ROOT_PASSWORD, MYSQL_PASSWORD, MYSQL_USER, MYSQL_DATABASE and
#     MYSQL_ROOT_HOST (default '%'); for each, the *_FILE form names a file whose content
#     (trailing newlines stripped) is the value. Setting both forms is an error. MARIADB_*
#     names are accepted as aliases of the MYSQL_* ones.
#   * On the first start (no /var/lib/mysql/mysql directory) it initialises the data
#     directory, sets root@localhost's password (and creates root@MYSQL_ROOT_HOST with
#     all privileges), creates MYSQL_DATABASE, and creates MYSQL_USER@'%' with
#     MYSQL_PASSWORD and all privileges on MYSQL_DATABASE. A root password is required
#     unless MYSQL_ALLOW_EMPTY_PASSWORD is set to a non-empty value. MYSQL_USER=root is
#     refused, as is a user without a password. Later starts leave the data untouched
#     (the variables are then ignored, like the official image).
#   * Passwords are read by the shell and fed as SQL through the standard input of
#     `mariadbd --bootstrap`: never echoed, logged, put on a command line, written to a
#     file or exported to mysqld's environment (the variables are unset before exec).
#   * Then it execs mariadbd in the foreground (as user mysql) with any extra arguments;
#     arguments starting with '-' are passed to mariadbd; any other command is exec'd
#     as is (e.g. `mariadb ...` for a client container built from the same image).
#   * Readiness: `mariadb-admin ping` (exit 0 once the server answers, even if access is
#     denied) - or wait for "ready for connections" in the logs.
#   The client programs (mariadb, mariadb-admin, mysql) are in the image too.
#
# Environment:
#   COMPOSESECRETS_SERVER_REPO   repository prefix (default composesecrets-test)
#   DEBOOTSTRAP_MIRROR           override the mirror read from apt's configuration
#   DEBOOTSTRAP_CACHE            where downloaded .debs are kept between builds
#                                (default /var/cache/composesecrets/debootstrap)
set -euo pipefail

repo_prefix="${COMPOSESECRETS_SERVER_REPO:-composesecrets-test}"
script_path="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

log() { printf 'build-server-images: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root (or passwordless sudo) to run: $*"
    fi
}

host_suite() {
    local codename=""
    if [[ -r /etc/os-release ]]; then
        codename="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")"
    fi
    [[ -n "$codename" ]] || die "cannot read the host's Debian codename from /etc/os-release"
    printf '%s\n' "$codename"
}

# The first apt source (deb822 or one-line format) of type deb that serves the suite.
host_mirror() {
    local suite="$1" uri=""
    if [[ -n "${DEBOOTSTRAP_MIRROR:-}" ]]; then
        printf '%s\n' "$DEBOOTSTRAP_MIRROR"
        return
    fi
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r "$f" ]] || continue
        uri="$(awk -v suite="$suite" '
            function flush() {
                if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris != "")
                    { split(uris, u, " "); print u[1]; found = 1; exit }
                types = ""; suites = ""; uris = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            tolower($1) == "types:"  { $1 = ""; types = $0 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            tolower($1) == "uris:"   { $1 = ""; uris = $0 }
            END { if (!found) flush() }
        ' "$f")"
        [[ -n "$uri" ]] && break
    done
    if [[ -z "$uri" ]]; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [[ -r "$f" ]] || continue
            uri="$(awk -v suite="$suite" '
                $1 != "deb" { next }
                { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } }
                $(i + 1) == suite { print $i; exit }
            ' "$f")"
            [[ -n "$uri" ]] && break
        done
    fi
    [[ -n "$uri" ]] || die "no apt source of type deb for suite $suite found; set DEBOOTSTRAP_MIRROR"
    printf '%s\n' "${uri%/}"
}

ensure_debootstrap() {
    command -v debootstrap >/dev/null 2>&1 && return 0
    [[ -x /usr/sbin/debootstrap ]] && return 0
    log "installing debootstrap with apt-get"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
}

# ---------------------------------------------------------------------------------------
# Recipes: packages, files added to the root filesystem, and `docker import` changes.

packages_for() {
    case "$1" in
        nginx) printf '%s\n' nginx-light,ca-certificates ;;
        mariadb) printf '%s\n' mariadb-server ;;
    esac
}

changes_for() {
    case "$1" in
        nginx)
            printf '%s\n' \
                'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                'EXPOSE 80 443' \
                'WORKDIR /' \
                'CMD ["nginx", "-g", "daemon off;"]'
            ;;
        mariadb)
            printf '%s\n' \
                'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                'EXPOSE 3306' \
                'WORKDIR /' \
                'ENTRYPOINT ["docker-entrypoint.sh"]' \
                'CMD ["mariadbd"]'
            ;;
    esac
}

customise_nginx() {
    local root="$1"
    ln -sf /dev/stdout "$root/var/log/nginx/access.log"
    ln -sf /dev/stderr "$root/var/log/nginx/error.log"
    [[ -f "$root/usr/share/nginx/html/index.html" ]] || {
        mkdir -p "$root/usr/share/nginx/html"
        printf '<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1></body></html>\n' \
            >"$root/usr/share/nginx/html/index.html"
    }
}

customise_mariadb() {
    local root="$1"
    cat >"$root/etc/mysql/mariadb.conf.d/90-container.cnf" <<'EOF'
# composesecrets-test/mariadb: reachable from other containers, no DNS look-ups.
[mariadbd]
bind-address = 0.0.0.0
skip-name-resolve
EOF
    chmod 0644 "$root/etc/mysql/mariadb.conf.d/90-container.cnf"
    install -d -m 0755 "$root/run/mysqld"
    chroot "$root" chown mysql:mysql /run/mysqld
    rm -rf "${root:?}/var/lib/mysql"
    install -d -m 0750 "$root/var/lib/mysql"
    chroot "$root" chown mysql:mysql /var/lib/mysql
    install -d -m 0755 "$root/usr/local/bin"
    write_mariadb_entrypoint >"$root/usr/local/bin/docker-entrypoint.sh"
    chmod 0755 "$root/usr/local/bin/docker-entrypoint.sh"
}

write_mariadb_entrypoint() {
    cat <<'ENTRYPOINT'
#!/bin/bash
# composesecrets-test/mariadb entrypoint: see scripts/build-server-images.sh for the contract.
# No password is ever echoed, logged, exported or put on a command line: values are read
# into shell variables (bash builtins only) and fed as SQL on mariadbd --bootstrap's stdin.
set -euo pipefail

say() { printf 'docker-entrypoint: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# file_env NAME [DEFAULT]: NAME from $NAME, $NAME_FILE, $MARIADB_x or $MARIADB_x_FILE.
file_env() {
    local name="$1" default="${2:-}" alias="MARIADB_${1#MYSQL_}"
    local value="" from="" candidate
    for candidate in "$name" "$alias"; do
        local file_var="${candidate}_FILE"
        if [[ -n "${!candidate:-}" && -n "${!file_var:-}" ]]; then
            die "both $candidate and $file_var are set (but they are exclusive)"
        fi
        if [[ -z "$from" && -n "${!candidate:-}" ]]; then
            value="${!candidate}"
            from="$candidate"
        elif [[ -z "$from" && -n "${!file_var:-}" ]]; then
            [[ -r "${!file_var}" ]] || die "$file_var: cannot read ${!file_var}"
            value="$(<"${!file_var}")"
            from="$file_var"
        fi
    done
    [[ -n "$from" ]] || value="$default"
    printf -v "$name" '%s' "$value"
    unset "${name}_FILE" "$alias" "${alias}_FILE"
    export -n "$name"
}

sql_string() {  # $1 -> a single-quoted SQL string literal
    local s="${1//\\/\\\\}"
    s="${s//\'/\\\'}"
    printf "'%s'" "$s"
}

sql_ident() {  # $1 -> a backquoted SQL identifier
    printf '`%s`' "${1//\`/\`\`}"
}

if [[ "${1:-}" == -* ]]; then
    set -- mariadbd "$@"
fi
if [[ "${1:-}" != mariadbd && "${1:-}" != mysqld ]]; then
    exec "$@"
fi

datadir=/var/lib/mysql
run_as=()
if [[ "$(id -u)" -eq 0 ]]; then
    mkdir -p /run/mysqld
    chown mysql:mysql /run/mysqld "$datadir"
    run_as=(--user=mysql)
fi

if [[ ! -d "$datadir/mysql" ]]; then
    file_env MYSQL_ROOT_PASSWORD
    file_env MYSQL_ROOT_HOST '%'
    file_env MYSQL_DATABASE
    file_env MYSQL_USER
    file_env MYSQL_PASSWORD
    file_env MYSQL_ALLOW_EMPTY_PASSWORD
    if [[ -z "$MYSQL_ROOT_PASSWORD" && -z "$MYSQL_ALLOW_EMPTY_PASSWORD" ]]; then
        die "database is uninitialised and no root password is given (MYSQL_ROOT_PASSWORD[_FILE] or MYSQL_ALLOW_EMPTY_PASSWORD)"
    fi
    if [[ "$MYSQL_USER" == root ]]; then
        die "MYSQL_USER=root is refused: root is configured by MYSQL_ROOT_PASSWORD"
    fi
    if [[ -n "$MYSQL_USER" && -z "$MYSQL_PASSWORD" ]]; then
        die "MYSQL_USER is set but MYSQL_PASSWORD[_FILE] is not"
    fi

    say "initialising the data directory $datadir"
    mariadb-install-db "${run_as[@]}" --datadir="$datadir" --rpm \
        --auth-root-authentication-method=normal --skip-test-db \
        --skip-name-resolve --skip-log-bin --cross-bootstrap >/dev/null

    sql="FLUSH PRIVILEGES;
DELETE FROM mysql.global_priv WHERE User='';
DELETE FROM mysql.global_priv WHERE User='root' AND Host NOT IN ('localhost');
FLUSH PRIVILEGES;
"
    if [[ -n "$MYSQL_ROOT_PASSWORD" ]]; then
        sql+="ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "$MYSQL_ROOT_PASSWORD");
"
    fi
    if [[ -n "$MYSQL_ROOT_HOST" && "$MYSQL_ROOT_HOST" != localhost ]]; then
        sql+="CREATE USER 'root'@$(sql_string "$MYSQL_ROOT_HOST") IDENTIFIED BY $(sql_string "$MYSQL_ROOT_PASSWORD");
GRANT ALL ON *.* TO 'root'@$(sql_string "$MYSQL_ROOT_HOST") WITH GRANT OPTION;
"
    fi
    if [[ -n "$MYSQL_DATABASE" ]]; then
        say "creating database $MYSQL_DATABASE"
        sql+="CREATE DATABASE IF NOT EXISTS $(sql_ident "$MYSQL_DATABASE");
"
    fi
    if [[ -n "$MYSQL_USER" ]]; then
        say "creating user $MYSQL_USER"
        sql+="CREATE USER $(sql_string "$MYSQL_USER")@'%' IDENTIFIED BY $(sql_string "$MYSQL_PASSWORD");
"
        if [[ -n "$MYSQL_DATABASE" ]]; then
            sql+="GRANT ALL ON $(sql_ident "$MYSQL_DATABASE").* TO $(sql_string "$MYSQL_USER")@'%';
"
        fi
    fi
    # printf is a bash builtin: the SQL goes through a pipe, never through argv.
    if ! printf '%s' "$sql" | mariadbd --bootstrap "${run_as[@]}" --datadir="$datadir" \
        --skip-networking --log-warnings=0 >/dev/null 2>&1; then
        unset sql MYSQL_ROOT_PASSWORD MYSQL_PASSWORD
        die "setting up users and databases failed"
    fi
    unset sql MYSQL_ROOT_PASSWORD MYSQL_PASSWORD
    say "initialisation done"
fi

# Nothing secret reaches the server's environment.
unset MYSQL_ROOT_PASSWORD MYSQL_ROOT_PASSWORD_FILE MYSQL_PASSWORD MYSQL_PASSWORD_FILE \
    MARIADB_ROOT_PASSWORD MARIADB_ROOT_PASSWORD_FILE MARIADB_PASSWORD MARIADB_PASSWORD_FILE
shift
exec mariadbd "${run_as[@]}" "$@"
ENTRYPOINT
}

# ---------------------------------------------------------------------------------------

trim_rootfs() {
    local root="$1"
    rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/usr/share/lintian "$root"/usr/share/linda \
        "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/debconf/*-old \
        "$root"/var/lib/dpkg/*-old "$root"/tmp/* "$root"/var/tmp/*
    find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias \
        -exec rm -rf {} + 2>/dev/null || true
    find "$root/var/log" -type f -delete
    # Keep dpkg from reinstalling the trimmed files if someone runs apt in the container.
    mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' \
        'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
        'path-include /usr/share/locale/locale.alias' \
        >"$root/etc/dpkg/dpkg.cfg.d/01-composesecrets-trim"
    # Docker provides these at run time.
    : >"$root/etc/hostname"
    rm -f "$root/etc/resolv.conf"
}

recipe_tag() {  # name suite -> repository:hash
    local hash
    # Comment-only lines are left out: documentation edits do not force a rebuild.
    hash="$({ grep -v '^[[:space:]]*#' "$script_path"; printf '\n%s\n%s\n' "$1" "$2"; } \
        | sha256sum | cut -c1-12)"
    printf '%s/%s:%s\n' "$repo_prefix" "$1" "$hash"
}

remove_old_recipes() {  # name current-hash: drop other recipe tags (not in use) of the image
    local old
    docker image ls --format '{{.Repository}}:{{.Tag}}' "${repo_prefix}/$1" \
        | { grep -E ":[0-9a-f]{12}\$" || true; } | { grep -v ":$2\$" || true; } \
        | while IFS= read -r old; do
            if docker image rm "$old" >/dev/null 2>&1; then
                log "removed the old recipe $old"
            fi
        done
}

build_one() {
    local name="$1" suite="$2" mirror="$3"
    local hash tag alias_tag
    tag="$(recipe_tag "$name" "$suite")"
    hash="${tag##*:}"
    alias_tag="${repo_prefix}/${name}:latest"
    if docker image inspect "$tag" >/dev/null 2>&1; then
        docker tag "$tag" "$alias_tag"
        log "found $tag"
        printf '%s\n' "$tag"
        return 0
    fi

    local started workdir root
    started=$SECONDS
    workdir="$(mktemp -d)"
    # shellcheck disable=SC2064  # expand now: the trap must remove this build's directory
    trap "as_root rm -rf '$workdir'" EXIT
    root="$workdir/rootfs"
    log "building $tag: debootstrap --variant=minbase $suite from $mirror with $(packages_for "$name")"
    local cache="${DEBOOTSTRAP_CACHE:-/var/cache/composesecrets/debootstrap}"
    as_root mkdir -p "$cache"
    if ! as_root debootstrap --variant=minbase --include="$(packages_for "$name")" \
        --cache-dir="$cache" \
        "$suite" "$root" "$mirror" >"$workdir/debootstrap.log" 2>&1; then
        tail -n 20 "$workdir/debootstrap.log" >&2
        die "debootstrap failed for $name"
    fi
    as_root bash -c "$(declare -f customise_"$name" write_mariadb_entrypoint trim_rootfs); \
        customise_$name '$root' && trim_rootfs '$root'"

    local -a change_args=()
    local change
    while IFS= read -r change; do
        change_args+=(--change "$change")
    done < <(changes_for "$name"; printf '%s\n' "LABEL org.composesecrets.test.recipe=${hash}")
    # Deterministic archive; /proc, /sys and /dev contents are supplied by the runtime.
    as_root tar --sort=name --mtime=@0 --numeric-owner -C "$root" \
        --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -cf - . \
        | docker import "${change_args[@]}" - "$tag" >/dev/null
    docker tag "$tag" "$alias_tag"
    remove_old_recipes "$name" "$hash"
    as_root rm -rf "$workdir"
    trap - EXIT
    log "built $tag in $((SECONDS - started))s ($(docker image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
    printf '%s\n' "$tag"
}

main() {
    local what="${1:-all}"
    local -a names
    case "$what" in
        nginx | mariadb) names=("$what") ;;
        all) names=(nginx mariadb) ;;
        -h | --help) sed -n '2,/^set -euo/p' "$script_path" | sed '$d; s/^# \{0,1\}//'; return 0 ;;
        *) die "usage: $0 [nginx|mariadb|all]" ;;
    esac
    command -v docker >/dev/null 2>&1 || die "docker CLI not found"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"${TMPDIR:-/tmp}/composesecrets-build-server-images.lock"
        flock 9
    fi
    local suite mirror
    suite="$(host_suite)"
    mirror=""
    local name
    for name in "${names[@]}"; do
        if [[ -z "$mirror" ]]; then
            # Only needed for a build: keep the fast path (image present) free of it.
            if ! docker image inspect "$(recipe_tag "$name" "$suite")" >/dev/null 2>&1; then
                ensure_debootstrap
                mirror="$(host_mirror "$suite")"
            fi
        fi
        build_one "$name" "$suite" "${mirror:-unused}"
    done
}

main "$@"
