#!/bin/sh
# The server answers on TCP (mariadb-admin ping succeeds even when access is denied, so no
# credentials are needed here).
exec mariadb-admin --protocol=tcp --host=127.0.0.1 --port=3306 --connect-timeout=3 ping >/dev/null
