#!/bin/bash
# RabbitMQ entrypoint of the ShopStream kit: checks that the definitions file (the users and
# their password hashes) exists, then execs the server as user rabbitmq; SIGTERM stops the
# node cleanly. The definitions are the only users: RabbitMQ imports them at boot but never
# deletes a user, so a job started beside the node deletes, once it has booted, every user the
# file does not list (a rotated-away password's user, the default guest).
set -eo pipefail

die() { echo "rabbitmq entrypoint: ERROR: $*" >&2; exit 1; }

prune_users() {
    local defs=$1 deadline user name
    # A set, not `printf "$keep" | grep -q`: grep -q exits at its first match, and under pipefail
    # the SIGPIPE that printf may then get made a listed user look unlisted, and deleted.
    local -A keep=()
    while read -r name; do
        [ -z "$name" ] || keep[$name]=1
    done < <(grep -o '"name": *"[^"]*"' "$defs" | sed 's/.*"\([^"]*\)"$/\1/')
    # The node makes the Erlang cookie on its first boot; rabbitmqctl must not make one first.
    deadline=$((SECONDS + ${RABBITMQ_PRUNE_USERS_WAIT:-600}))
    until [ -s "$HOME/.erlang.cookie" ] && rabbitmqctl -q await_startup --timeout 30 >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "rabbitmq entrypoint: the node did not boot; no user deleted" >&2; return 0; }
        sleep 2
    done
    rabbitmqctl -q list_users --no-table-headers | while read -r user _tags; do
        if [ -n "$user" ] && [ -z "${keep[$user]:-}" ]; then
            rabbitmqctl -q delete_user "$user" </dev/null >/dev/null \
                && echo "rabbitmq entrypoint: deleted user $user, which $defs does not list" >&2
        fi
    done
}

if [ "$1" = "prune-users" ]; then
    prune_users "$2"
    exit 0
fi

if [ "$1" = "rabbitmq-server" ]; then
    # The definitions file in effect: the last definitions.local.path (or load_definitions)
    # of rabbitmq.conf and conf.d/*.conf, in the order RabbitMQ reads them.
    defs=
    for conf in /etc/rabbitmq/rabbitmq.conf /etc/rabbitmq/conf.d/*.conf; do
        [ -f "$conf" ] || continue
        value=$(sed -n -E 's/^[[:space:]]*(definitions\.local\.path|load_definitions)[[:space:]]*=[[:space:]]*(.*[^[:space:]])[[:space:]]*$/\2/p' "$conf" | tail -n1)
        [ -z "$value" ] || defs=$value
    done
    if [ -z "$defs" ] && [ "${RABBITMQ_ALLOW_NO_DEFINITIONS:-no}" != "yes" ]; then
        die "no definitions file is configured (definitions.local.path): users would be the default guest only; refusing to start"
    fi
    if [ -n "$defs" ] && [ ! -r "$defs" ]; then
        die "the definitions file $defs (users and their password hashes) does not exist or cannot be read; mount it (e.g. as a secret) or refusing to start"
    fi
    # The job in the background is one command, not a list (`[ ] || cmd &`): bash runs a list in
    # the background in a subshell of its own, which here would stay root for as long as the job.
    if [ "$(id -u)" = 0 ]; then
        find /var/lib/rabbitmq \! -user rabbitmq -exec chown rabbitmq:rabbitmq '{}' +
        if [ -n "$defs" ]; then
            setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$0" prune-users "$defs" &
        fi
        exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$@"
    fi
    if [ -n "$defs" ]; then
        "$0" prune-users "$defs" &
    fi
fi
exec "$@"
