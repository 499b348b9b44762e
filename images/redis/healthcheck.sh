#!/bin/bash
# PONG from the server, authenticated with the password file when there is one (through the
# REDISCLI_AUTH variable, never the command line). With an ACL file and no password file, the
# server answering NOAUTH is enough to prove it serves.
set -o pipefail
if [ -n "${REDIS_PASSWORD_FILE:-}" ] && [ -r "$REDIS_PASSWORD_FILE" ]; then
    REDISCLI_AUTH=$(<"$REDIS_PASSWORD_FILE")
    export REDISCLI_AUTH
fi
reply=$(redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" ping 2>&1) || exit 1
case "$reply" in
    PONG|NOAUTH*) exit 0 ;;
    *) echo "$reply"; exit 1 ;;
esac
