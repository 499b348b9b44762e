# Copyright (c) 2026, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""MariaDB's accounts of the platform, kept by the server's own client in its container.

Each application password is a user of its own, ``<prefix>-<first 8 hex digits of its SHA-256>``
(what the services compute from their password file), so that MariaDB accepts the previous and the
current password while a rotation moves the clients, and a user is dropped once no client has its
password. Root exists only as ``root@localhost`` (the socket inside the container); its password
is set with ``ALTER USER``, so that neither rotation restarts the server.

Only password hashes (``mysql_native_password``) appear in the SQL; the root password that logs in
travels on the client's standard input. Pure functions here; the module runs them.
"""

from __future__ import annotations

import hashlib
import re

# Runs in the MariaDB container: finds root's password, the first of the lines before `--` on
# standard input that MariaDB accepts, else the file named by $1 (the password the data directory
# was initialised with), into $pw.
_ROOT_LOGIN = r"""
set -u
pw=
while IFS= read -r line; do
    [ "$line" = "--" ] && break
    if [ -z "$pw" ] && MYSQL_PWD=$line mariadb --protocol=socket -uroot -e 'SELECT 1' </dev/null >/dev/null 2>&1; then
        pw=$line
    fi
done
if [ -z "$pw" ] && [ -r "$1" ]; then
    line=$(cat "$1")
    if MYSQL_PWD=$line mariadb --protocol=socket -uroot -e 'SELECT 1' </dev/null >/dev/null 2>&1; then
        pw=$line
    fi
fi
if [ -z "$pw" ]; then
    echo "MariaDB's root refuses the vault's current and previous passwords and the initial one ($1)" >&2
    exit 3
fi
"""
# Logs in as root (above), then runs the rest of standard input as SQL.
LOGIN_SCRIPT = (
    _ROOT_LOGIN + "MYSQL_PWD=$pw exec mariadb --protocol=socket -uroot --batch --skip-column-names --binary-mode\n"
)
# Logs in as root (above), then dumps the database $2 to standard output as one consistent snapshot
# (a single transaction: InnoDB tables are read as of its start while the platform keeps writing).
DUMP_SCRIPT = _ROOT_LOGIN + (
    "MYSQL_PWD=$pw exec mariadb-dump --protocol=socket -uroot --single-transaction --routines --triggers "
    '--events --databases "$2"\n'
)


def native_hash(password):
    """The ``mysql_native_password`` hash of a password (``PASSWORD()`` in MariaDB)."""
    # MariaDB's own format: SHA-1 is its choice, not ours (it compares these hashes at login).
    inner = hashlib.sha1(password.encode(), usedforsecurity=False).digest()
    return "*" + hashlib.sha1(inner, usedforsecurity=False).hexdigest().upper()


def user_name(prefix, password):
    """The user of a password: ``<prefix>-<first 8 hex digits of its SHA-256>``."""
    return f"{prefix}-{hashlib.sha256(password.encode()).hexdigest()[:8]}"


def literal(value):
    """A single-quoted SQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def identifier(value):
    return "`" + value.replace("`", "``") + "`"


def probe_sql(prefix):
    """The accounts this module owns: root, and the users named after the prefix."""
    pattern = re.sub(r"([%_\\])", r"\\\1", prefix) + "%"
    return (
        "SELECT User, Host, authentication_string FROM mysql.user "  # noqa: S608 (a literal() of our own prefix)
        f"WHERE User = 'root' OR User LIKE {literal(pattern)} ORDER BY User, Host;"
    )


def parse_rows(output):
    """``(user, host, hash)`` per tab-separated line of the probe's output."""
    rows = []
    for line in output.splitlines():
        if line.strip():
            parts = line.split("\t")
            rows.append((parts[0], parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else ""))
    return rows


def plan(rows, prefix, database, root_password, passwords, drop, drop_shared=False):
    """What to change so that root@localhost has root_password, each password is a user with every
    privilege on the database, and (drop) no other user of a password is left; drop_shared also drops
    the user named ``prefix`` itself, which every client of earlier releases logged in as (safe only
    once they were replaced).

    Returns ``{"sql": [...], "created": [...], "altered": [...], "dropped": [...], "stale": [...],
    "root_changed": bool, "users": [...]}``; ``stale`` lists the users both drops would remove.
    """
    owned = re.compile(r"^" + re.escape(prefix) + r"(-[0-9a-f]{8})?$")
    wanted = {}
    for password in filter(None, passwords):
        wanted.setdefault(user_name(prefix, password), native_hash(password))
    present = {(user, host): auth for user, host, auth in rows}
    sql, created, altered, dropped, stale = [], [], [], [], []
    root_changed = False

    root_hash = native_hash(root_password)
    if present.get(("root", "localhost")) != root_hash:
        # IDENTIFIED BY PASSWORD: the hash, never the password, in the statement.
        sql.append(f"ALTER USER 'root'@'localhost' IDENTIFIED BY PASSWORD {literal(root_hash)};")
        root_changed = True
    for user, host in sorted(present):
        if user == "root" and host != "localhost":
            # Root over the network (MARIADB_ROOT_HOST=% of earlier releases): no client needs it.
            sql.append(f"DROP USER {literal(user)}@{literal(host)};")
            dropped.append(f"{user}@{host}")

    grant = f"GRANT ALL PRIVILEGES ON {identifier(database)}.* TO "
    for name, password_hash in wanted.items():
        account = f"{literal(name)}@'%'"
        if (name, "%") not in present:
            sql.append(f"CREATE USER {account} IDENTIFIED BY PASSWORD {literal(password_hash)};")
            sql.append(grant + account + ";")
            created.append(name)
        elif present[(name, "%")] != password_hash:
            sql.append(f"ALTER USER {account} IDENTIFIED BY PASSWORD {literal(password_hash)};")
            sql.append(grant + account + ";")
            altered.append(name)
    for user, host in sorted(present):
        if user != "root" and owned.match(user) and not (user in wanted and host == "%"):
            stale.append(f"{user}@{host}")
            if drop_shared if user == prefix else drop:
                sql.append(f"DROP USER {literal(user)}@{literal(host)};")
                dropped.append(f"{user}@{host}")
    return {
        "sql": sql,
        "created": created,
        "altered": altered,
        "dropped": dropped,
        "stale": stale,
        "root_changed": root_changed,
        "users": list(wanted),
    }
