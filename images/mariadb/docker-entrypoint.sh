#!/bin/bash
# MariaDB entrypoint of the ShopStream kit, after the official image's:
# - initialises an EMPTY /var/lib/mysql: root password (MARIADB_ROOT_PASSWORD[_FILE], or
#   MARIADB_ALLOW_EMPTY_ROOT_PASSWORD / MARIADB_RANDOM_ROOT_PASSWORD), MARIADB_DATABASE,
#   MARIADB_USER with MARIADB_PASSWORD[_FILE], then /docker-entrypoint-initdb.d/*.{sh,sql,sql.gz};
# - refuses to start without a root password, or when a *_FILE names a missing file;
# - leaves an initialised datadir alone, and execs mariadbd as user mysql (PID 1, so SIGTERM
#   shuts it down cleanly).
set -eo pipefail
shopt -s nullglob

log() { printf '%s [Entrypoint]: %s\n' "$(date -u '+%F %T')" "$*" >&2; }
# A first start that fails part-way removes what it created, so that the next start initialises
# again instead of serving a data directory without its users (INIT_CLEANUP: the directory).
INIT_CLEANUP=
die() {
    log "ERROR: $*"
    if [ -n "$INIT_CLEANUP" ]; then
        find "$INIT_CLEANUP" -mindepth 1 -delete
        log "removed the half-initialised $INIT_CLEANUP: the next start initialises it again"
    fi
    exit 1
}

# file_env VAR: VAR from the file named by VAR_FILE (both set is an error). MYSQL_* aliases as
# in the official image.
file_env() {
    local var=$1 file_var="${1}_FILE" alias="MYSQL_${1#MARIADB_}"
    local alias_file="${alias}_FILE"
    if [ -z "${!var:-}" ] && [ -n "${!alias:-}" ]; then export "$var=${!alias}"; fi
    if [ -z "${!file_var:-}" ] && [ -n "${!alias_file:-}" ]; then export "$file_var=${!alias_file}"; fi
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        die "both $var and $file_var are set; set only one"
    fi
    if [ -n "${!file_var:-}" ]; then
        [ -r "${!file_var}" ] || die "$file_var names ${!file_var}, which does not exist or cannot be read; refusing to start"
        local value
        value=$(<"${!file_var}")
        [ -n "$value" ] || die "$file_var names ${!file_var}, which is empty; refusing to start"
        export "$var=$value"
    fi
    unset "$file_var" "$alias" "$alias_file"
}

sql_escape() { local s=${1//\\/\\\\}; printf '%s' "${s//\'/\\\'}"; }

init_datadir() {
    file_env MARIADB_ROOT_PASSWORD
    file_env MARIADB_PASSWORD
    : "${MARIADB_DATABASE:=${MYSQL_DATABASE:-}}" "${MARIADB_USER:=${MYSQL_USER:-}}"
    : "${MARIADB_ROOT_HOST:=%}"
    if [ -z "${MARIADB_ROOT_PASSWORD:-}" ] && [ -z "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-}" ] \
        && [ -z "${MARIADB_RANDOM_ROOT_PASSWORD:-}" ]; then
        die "the database is uninitialised and no root password is given: set MARIADB_ROOT_PASSWORD_FILE (or MARIADB_RANDOM_ROOT_PASSWORD, or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD)"
    fi
    if [ -n "${MARIADB_USER:-}" ] && [ -z "${MARIADB_PASSWORD:-}" ]; then
        die "MARIADB_USER is set but no password: set MARIADB_PASSWORD_FILE"
    fi
    if [ -n "${MARIADB_RANDOM_ROOT_PASSWORD:-}" ]; then
        MARIADB_ROOT_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
        log "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
    fi

    log "Initialising the database in $DATADIR"
    # Only an empty directory is ours to clean up after a failure.
    [ -n "$(ls -A "$DATADIR")" ] || INIT_CLEANUP=$DATADIR
    mariadb-install-db --user=mysql --datadir="$DATADIR" --auth-root-authentication-method=normal \
        --skip-test-db --skip-name-resolve --rpm >/dev/null || die "mariadb-install-db failed (see above)"

    log "Starting a temporary server (no network)"
    setpriv --reuid=mysql --regid=mysql --init-groups mariadbd --skip-networking \
        --socket="$SOCKET" --datadir="$DATADIR" --wsrep_on=OFF &
    local pid=$!
    local i
    for i in $(seq 60); do
        mariadb --protocol=socket --socket="$SOCKET" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
        # /proc, not kill -0: without CAP_KILL (cap_drop ALL), root may not signal the server's user.
        [ -d "/proc/$pid" ] || die "the temporary server did not start"
        sleep 1
    done
    [ "$i" -lt 60 ] || die "the temporary server did not answer within 60 s"

    local root_pw user_pw
    root_pw=$(sql_escape "${MARIADB_ROOT_PASSWORD:-}")
    user_pw=$(sql_escape "${MARIADB_PASSWORD:-}")
    {
        echo "SET @@SESSION.SQL_LOG_BIN=0;"
        echo "DELETE FROM mysql.global_priv WHERE user='' OR (user='root' AND host NOT IN ('localhost'));"
        echo "FLUSH PRIVILEGES;"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$root_pw';"
        if [ "$MARIADB_ROOT_HOST" != "localhost" ]; then
            echo "CREATE USER 'root'@'$(sql_escape "$MARIADB_ROOT_HOST")' IDENTIFIED BY '$root_pw';"
            echo "GRANT ALL ON *.* TO 'root'@'$(sql_escape "$MARIADB_ROOT_HOST")' WITH GRANT OPTION;"
        fi
        if [ -n "${MARIADB_DATABASE:-}" ]; then
            echo "CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE//\`/\`\`}\`;"
        fi
        if [ -n "${MARIADB_USER:-}" ]; then
            echo "CREATE USER '$(sql_escape "$MARIADB_USER")'@'%' IDENTIFIED BY '$user_pw';"
            if [ -n "${MARIADB_DATABASE:-}" ]; then
                echo "GRANT ALL ON \`${MARIADB_DATABASE//\`/\`\`}\`.* TO '$(sql_escape "$MARIADB_USER")'@'%';"
            fi
        fi
        echo "FLUSH PRIVILEGES;"
    } | mariadb --protocol=socket --socket="$SOCKET" -uroot --binary-mode

    # The root password goes to the client in a file only root can read, never on a command line.
    local cnf
    cnf=$(mktemp /run/mysqld/.init-XXXXXX.cnf)
    chmod 0600 "$cnf"
    printf '[client]\nuser=root\npassword="%s"\nsocket=%s\n' \
        "$(printf '%s' "${MARIADB_ROOT_PASSWORD:-}" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')" "$SOCKET" >"$cnf"
    local db_args=()
    [ -z "${MARIADB_DATABASE:-}" ] || db_args=(--database="$MARIADB_DATABASE")
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        case "$f" in
            *.sh) log "running $f"; MARIADB_CNF="$cnf" . "$f" ;;
            *.sql) log "running $f"; mariadb --defaults-extra-file="$cnf" "${db_args[@]}" <"$f" ;;
            *.sql.gz) log "running $f"; gunzip -c "$f" | mariadb --defaults-extra-file="$cnf" "${db_args[@]}" ;;
            *) log "ignoring $f" ;;
        esac
    done

    mariadb-admin --defaults-extra-file="$cnf" shutdown
    rm -f "$cnf"
    wait "$pid" || true
    INIT_CLEANUP=
    log "Initialisation done"
}

if [ "${1:0:1}" = "-" ]; then set -- mariadbd "$@"; fi

if [ "$1" = "mariadbd" ] || [ "$1" = "mysqld" ]; then
    DATADIR=/var/lib/mysql
    SOCKET=/run/mysqld/mysqld.sock
    if [ "$(id -u)" = 0 ]; then
        mkdir -p /run/mysqld
        chown mysql:mysql /run/mysqld
        find "$DATADIR" \! -user mysql -exec chown mysql:mysql '{}' +
    fi
    # A *_FILE that is set must exist at every start, not only the first (a secret that
    # disappeared is a deployment error worth stopping for).
    for v in MARIADB_ROOT_PASSWORD_FILE MARIADB_PASSWORD_FILE MYSQL_ROOT_PASSWORD_FILE MYSQL_PASSWORD_FILE; do
        if [ -n "${!v:-}" ] && [ ! -r "${!v}" ]; then
            die "$v names ${!v}, which does not exist or cannot be read; refusing to start"
        fi
    done
    if [ ! -d "$DATADIR/mysql" ]; then
        init_datadir
    fi
    unset MARIADB_ROOT_PASSWORD MARIADB_PASSWORD MYSQL_ROOT_PASSWORD MYSQL_PASSWORD
    if [ "$(id -u)" = 0 ]; then
        exec setpriv --reuid=mysql --regid=mysql --init-groups "$@"
    fi
fi
exec "$@"
