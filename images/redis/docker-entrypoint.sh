#!/bin/bash
# Redis entrypoint of the ShopStream kit. Execs redis-server as user redis (PID 1: SIGTERM
# saves and stops it cleanly). Refuses to start without a password: REDIS_PASSWORD_FILE must
# name a readable, non-empty file, or the config must name an ACL file or a requirepass, or
# REDIS_ALLOW_EMPTY_PASSWORD=yes. REDIS_PASSWORD_PREVIOUS_FILE (optional) names a second
# password the default user accepts too: during a rotation, clients still on the previous one
# keep working until they move.
set -eo pipefail

die() { echo "redis entrypoint: ERROR: $*" >&2; exit 1; }

if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then set -- redis-server "$@"; fi

if [ "$1" = "redis-server" ]; then
    if [ "$(id -u)" = 0 ]; then
        find /data \! -user redis -exec chown redis:redis '{}' +
        run=(setpriv --reuid=redis --regid=redis --init-groups)
    else
        run=()
    fi
    conf_auth=
    for arg in "${@:2}"; do
        if [ -f "$arg" ] && grep -Eqi '^[[:space:]]*(aclfile|requirepass)[[:space:]]' "$arg"; then conf_auth=$arg; fi
    done
    if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
        rules=
        for var in REDIS_PASSWORD_FILE REDIS_PASSWORD_PREVIOUS_FILE; do
            file=${!var:-}
            [ -n "$file" ] || continue
            [ -r "$file" ] || die "$var names $file, which does not exist or cannot be read; refusing to start"
            password=$(<"$file")
            [ -n "$password" ] || die "$var names $file, which is empty; refusing to start"
            # The ACL holds the SHA-256 of each password (Redis compares hashes), never the value.
            hash=$(printf '%s' "$password" | sha256sum | cut -d' ' -f1)
            [[ $rules == *"#$hash"* ]] || rules+=" #$hash"
        done
        # "-" makes redis read further config from stdin: no password is an argument.
        exec "${run[@]}" "$@" - < <(printf 'user default on resetpass%s ~* &* +@all\n' "$rules")
    fi
    if [ -z "$conf_auth" ] && [ "${REDIS_ALLOW_EMPTY_PASSWORD:-no}" != "yes" ]; then
        die "no password: set REDIS_PASSWORD_FILE (e.g. /run/secrets/redis_password), or name an aclfile in the config, or set REDIS_ALLOW_EMPTY_PASSWORD=yes; refusing to start"
    fi
    exec "${run[@]}" "$@"
fi
exec "$@"
