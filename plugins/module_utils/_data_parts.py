# Copyright (c) 2026, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The parts of a backup: how each data service's state is dumped (data_dump) and put back (data_restore).

Pure functions and the shell scripts that run inside the services' containers; the modules run them.
"""

from __future__ import annotations

import hashlib
import json
import re

DATA_KINDS = ("mariadb", "redis", "rabbitmq")

# The options data_dump and data_restore share (doc fragment shopstream.swarm.data_service).
DATA_SERVICE_ARGS = dict(
    service=dict(type="str", required=True),
    kind=dict(type="str", required=True, choices=list(DATA_KINDS)),
    root_passwords=dict(type="list", elements="str", default=[], no_log=True),
    bootstrap_file=dict(type="str", default="/run/secrets/mariadb_root_password"),
)

# Redis' client takes the password from its environment, read from the file inside the container.
REDIS_DUMP_SCRIPT = 'REDISCLI_AUTH="$(cat "$1")" exec redis-cli --no-auth-warning --rdb -'

# redis-cli --rdb to standard output cannot truncate what it wrote: when the server streams the
# snapshot without a length (diskless), the 40-byte end mark follows the RDB. The client reports
# the RDB's own length on standard error; the dump is cut there.
_TRANSFER = re.compile(r"Transfer finished with success after (\d+) bytes")

# Runs in a container of the Redis image with the service's volume on /data, the RDB on standard
# input: the RDB becomes the base of a new append-only file (the image's redis.conf has appendonly
# yes, and Redis then loads the AOF, never dump.rdb), which replaces the old one whole.
REDIS_LOAD_SCRIPT = r"""
set -eu
cd /data
rm -rf appendonlydir.restore
mkdir appendonlydir.restore
cat > appendonlydir.restore/appendonly.aof.1.base.rdb
redis-check-rdb appendonlydir.restore/appendonly.aof.1.base.rdb >/dev/null || {
    echo "the Redis part is not a valid RDB snapshot (redis-check-rdb refused it)" >&2
    rm -rf appendonlydir.restore
    exit 4
}
printf 'file appendonly.aof.1.base.rdb seq 1 type b\n' > appendonlydir.restore/appendonly.aof.manifest
rm -rf appendonlydir dump.rdb
mv appendonlydir.restore appendonlydir
"""

# What of RabbitMQ's definitions a restore imports: the accounts (users, their password hashes and
# permissions) belong to the vault, which site.yml applies; a backup from before a rotation must
# not bring back the replaced password.
RABBITMQ_ACCOUNT_KEYS = ("users", "permissions", "topic_permissions")


def rdb_length(stderr):
    """The RDB's length as redis-cli reported it, or None."""
    found = _TRANSFER.search(stderr)
    return int(found[1]) if found else None


def rabbitmq_definitions_to_import(raw):
    """The definitions (JSON bytes) without the accounts; raises ValueError when it is not definitions."""
    definitions = json.loads(raw)
    if not isinstance(definitions, dict) or "vhosts" not in definitions:
        raise ValueError("the RabbitMQ part is not the broker's definitions (no vhosts)")
    return json.dumps({k: v for k, v in definitions.items() if k not in RABBITMQ_ACCOUNT_KEYS}).encode()


def checksum(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
