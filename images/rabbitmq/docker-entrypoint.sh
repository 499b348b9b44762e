#!/bin/bash
# RabbitMQ entrypoint of the ShopStream kit: checks that the definitions file (the users and
# their password hashes) exists, then execs the server as user rabbitmq; SIGTERM stops the
# node cleanly.
set -eo pipefail

die() { echo "rabbitmq entrypoint: ERROR: $*" >&2; exit 1; }

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
    if [ "$(id -u)" = 0 ]; then
        find /var/lib/rabbitmq \! -user rabbitmq -exec chown rabbitmq:rabbitmq '{}' +
        exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups "$@"
    fi
fi
exec "$@"
