#!/usr/bin/env bash
# The Docker secrets guide's "Example: Rotate a secret", with composesecrets on a plain
# Docker Engine and a real MariaDB server, end to end:
#
#   0. create mysql_root_password and mysql_password; deploy 1-deploy.yml (the database
#      initialises from them; a client stands in for WordPress) and write a row;
#   1. create mysql_password_v2;
#   2. redeploy with 2-both-secrets.yml: the database gets the old password at
#      /run/secrets/old_mysql_password and the new one at /run/secrets/mysql_password;
#   3. change the password inside the database from the two files (change-password.sh);
#   4. redeploy with 3-client-v2.yml: the client reads mysql_password_v2 at the same target,
#      /run/secrets/wp_db_password, mode 0400;
#   5. check that the row written in step 0 is still there;
#   6. redeploy with 4-revoke.yml (no service uses the old secret), then
#      `composesecrets secret rm mysql_password`;
#   then tear everything down (stack, its volume, the remaining secrets).
#
# It deploys with the engine backend, whose containers are named <stack>_<service>_1.
# Passwords are generated into a pipe to `composesecrets secret create NAME -` and read
# inside the containers from their secret files only: never printed, never on a command line.
#
# Environment:
#   DB_IMAGE             database and client image (default composesecrets-test/mariadb:latest,
#                        built by scripts/build-server-images.sh mariadb)
#   STACK                stack name (default rotation<pid>)
#   COMPOSESECRETS_HOME  store to use; when unset, a throwaway store in a temporary directory
#                        (unlocked by a random COMPOSESECRETS_KEY) is used and removed at the end
#   COMPOSESECRETS       the composesecrets command (default: the repository's .venv, else PATH)
#   KEEP=1               leave the stack, its volume and the secrets in place at the end
#   READY_TIMEOUT        seconds to wait for the database (default 120)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

if [[ -n "${COMPOSESECRETS:-}" ]]; then
    cs="$COMPOSESECRETS"
elif [[ -x "$repo/.venv/bin/composesecrets" ]]; then
    cs="$repo/.venv/bin/composesecrets"
else
    cs="$(command -v composesecrets)" || { echo "rotate: composesecrets not found" >&2; exit 2; }
fi
export DB_IMAGE="${DB_IMAGE:-composesecrets-test/mariadb:latest}"
stack="${STACK:-rotation$$}"
keep="${KEEP:-0}"
ready_timeout="${READY_TIMEOUT:-120}"
db="${stack}_db_1"
client="${stack}_client_1"

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'rotate: FAILED: %s\n' "$*" >&2; exit 1; }

docker image inspect "$DB_IMAGE" >/dev/null 2>&1 ||
    fail "image $DB_IMAGE not found (build it with scripts/build-server-images.sh mariadb)"

throwaway=""
if [[ -z "${COMPOSESECRETS_HOME:-}" ]]; then
    throwaway="$(mktemp -d)"
    export COMPOSESECRETS_HOME="$throwaway/store"
    COMPOSESECRETS_KEY="$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
    export COMPOSESECRETS_KEY
    echo "rotate: using a throwaway store in $COMPOSESECRETS_HOME"
fi

teardown() {
    local status=$?
    if [[ "$keep" == 1 ]]; then
        echo "rotate: KEEP=1: stack $stack, volume ${stack}_mydata and the secrets are left in place"
    else
        step "tear down: stack $stack, volume ${stack}_mydata, remaining secrets"
        "$cs" stack rm "$stack" || status=1
        docker volume rm "${stack}_mydata" >/dev/null 2>&1 || true
        local name
        for name in mysql_password mysql_password_v2 mysql_root_password; do
            "$cs" secret rm "$name" >/dev/null 2>&1 || true
        done
        [[ -n "$throwaway" ]] && rm -rf "$throwaway"
    fi
    exit "$status"
}
trap teardown EXIT

new_password() {  # the guide's generator, into a pipe
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -base64 20
    else
        head -c 20 /dev/urandom | base64
    fi
}

# SQL on standard input, run by the client as the wordpress user with the password read
# from its secret file inside the container (an option file on a pipe, never argv).
client_sql() {
    docker exec -i "$client" bash -c \
        'mariadb --defaults-extra-file=<(printf "[client]\npassword=\"%s\"\n" "$(cat /run/secrets/wp_db_password)") -h db -u wordpress --batch --skip-column-names wordpress'
}

wait_for_client() {  # until the client connects with its secret, or READY_TIMEOUT
    local deadline=$((SECONDS + ready_timeout))
    until client_sql <<<'SELECT 1' >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "the client could not connect within ${ready_timeout}s"
        sleep 1
    done
    echo "rotate: the client connects to the database with /run/secrets/wp_db_password"
}

show_secrets() {  # owners and modes of the mounted secrets in a container
    docker exec "$1" sh -c 'ls -lL /run/secrets/ | sed 1d' | sed "s/^/    $1: /"
}

step "0. create mysql_root_password and mysql_password (values from a pipe)"
new_password | "$cs" secret create mysql_root_password -
new_password | "$cs" secret create mysql_password -
"$cs" secret ls

step "0. deploy $here/1-deploy.yml as stack $stack"
"$cs" stack deploy --backend engine -c "$here/1-deploy.yml" "$stack"
wait_for_client
show_secrets "$db"
show_secrets "$client"
client_sql <<'SQL'
CREATE TABLE posts (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200) NOT NULL);
INSERT INTO posts (title) VALUES ('written before the rotation');
SQL
echo "rotate: wrote a row to wordpress.posts"

step "1. create mysql_password_v2"
new_password | "$cs" secret create mysql_password_v2 -

step "2. give the database both secrets (2-both-secrets.yml)"
"$cs" stack deploy --backend engine -c "$here/2-both-secrets.yml" "$stack"
wait_for_client
show_secrets "$db"

step "3. change the password inside the database from the two secret files"
docker exec -i "$db" bash -s <"$here/change-password.sh"
if client_sql <<<'SELECT 1' >/dev/null 2>&1; then
    fail "the client still connects with the old password"
fi
echo "rotate: as the guide warns, the client cannot connect until it gets the new secret"

step "4. switch the client to mysql_password_v2, same target, mode 0400 (3-client-v2.yml)"
"$cs" stack deploy --backend engine -c "$here/3-client-v2.yml" "$stack"
wait_for_client
show_secrets "$client"

step "5. the row written before the rotation is still there"
rows="$(client_sql <<<'SELECT title FROM posts')"
printf '    %s\n' "$rows"
[[ "$rows" == "written before the rotation" ]] || fail "unexpected rows in wordpress.posts"

step "6. revoke the old secret from the database (4-revoke.yml) and remove it"
"$cs" stack deploy --backend engine -c "$here/4-revoke.yml" "$stack"
wait_for_client
show_secrets "$db"
"$cs" secret rm mysql_password
"$cs" secret ls
"$cs" stack ps "$stack"

printf '\nrotate: success: the password was rotated, the data kept, and mysql_password is gone\n'
