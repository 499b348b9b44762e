#!/bin/sh
# As the official image: run /docker-entrypoint.d/*.sh (in order) before nginx, then exec it
# as PID 1 so that it receives the stop signal itself.
set -eu
if [ "${1:-}" = "nginx" ] || [ "${1:-}" = "nginx-debug" ]; then
    for script in /docker-entrypoint.d/*.sh; do
        [ -e "$script" ] || continue
        if [ -x "$script" ]; then
            echo "$0: running $script"
            "$script"
        else
            echo "$0: ignoring $script, not executable"
        fi
    done
    nginx -t -q
fi
exec "$@"
