#!/bin/sh
# As the official image: run /docker-entrypoint.d/*.sh (in order) before nginx, then exec it
# as PID 1 so that it receives the stop signal itself.
#
# NGINX_STOP_DELAY (seconds, default 0; the official image has no such setting): on the stop
# signal, keep serving that long before nginx's graceful stop, so that a load balancer that polls
# the swarm (Traefik) stops sending requests here before the listener closes.
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
    delay="${NGINX_STOP_DELAY:-0}"
    if [ "$delay" -gt 0 ] 2>/dev/null; then
        "$@" &
        pid=$!
        # shellcheck disable=SC2317  # run by the trap below
        stop() {
            echo "$0: stop signal: serving ${delay}s more, then nginx's graceful stop"
            sleep "$delay"
            kill -QUIT "$pid" 2>/dev/null || true
        }
        trap stop QUIT TERM INT
        # wait returns on a trapped signal (after its handler): wait again for nginx itself.
        wait "$pid" || true
        wait "$pid" 2>/dev/null || true
        exit 0
    fi
fi
exec "$@"
