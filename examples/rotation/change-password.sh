# Rotation, step 3: change the database user's password from the two secret files.
#
# This runs INSIDE the database container, fed on standard input:
#     docker exec -i <stack>_db_1 bash -s < examples/rotation/change-password.sh
# so that neither password is ever on a command line, on the host or in the container:
# the old one reaches the client through an option file on a pipe (bash process
# substitution), the new one through the SQL on the client's standard input; both are
# produced by printf, a bash builtin. (The guide's one-liner passes them as mysqladmin
# arguments instead.)
#
# Old password: /run/secrets/old_mysql_password; new one: /run/secrets/mysql_password (as
# in 2-both-secrets.yml). The user is $MYSQL_USER from the container's environment.
set -euo pipefail

old_file=/run/secrets/old_mysql_password
new_file=/run/secrets/mysql_password
user="${MYSQL_USER:?MYSQL_USER is not set in the database container}"

for file in "$old_file" "$new_file"; do
    [[ -r "$file" ]] || { echo "change-password: cannot read $file" >&2; exit 1; }
done

# Trailing newlines are stripped, as the image's entrypoint does when it initialises.
old="$(<"$old_file")"
new="$(<"$new_file")"
if [[ "$old" == "$new" ]]; then
    echo "change-password: the old and new secrets hold the same password" >&2
    exit 1
fi

option_value() {  # a double-quoted value for a [client] option file
    local s="${1//\\/\\\\}"
    printf '"%s"' "${s//\"/\\\"}"
}
sql_string() {  # a single-quoted SQL string literal
    local s="${1//\\/\\\\}"
    printf "'%s'" "${s//\'/\\\'}"
}
client_options() {  # $1 = password
    printf '[client]\nuser=%s\npassword=%s\n' "$user" "$(option_value "$1")"
}

# SET PASSWORD without FOR changes the password of the connected user (what
# `mysqladmin password` does); it needs no privilege beyond knowing the old password.
printf 'SET PASSWORD = PASSWORD(%s);\n' "$(sql_string "$new")" |
    mariadb --defaults-extra-file=<(client_options "$old") --protocol=socket

# The new password works (and the old one no longer does).
mariadb --defaults-extra-file=<(client_options "$new") --protocol=socket \
    --batch --skip-column-names -e 'SELECT CURRENT_USER()' >/dev/null
if mariadb --defaults-extra-file=<(client_options "$old") --protocol=socket \
    -e 'SELECT 1' >/dev/null 2>&1; then
    echo "change-password: the old password still works" >&2
    exit 1
fi
unset old new
echo "change-password: password of '$user' changed; the old one is refused"
