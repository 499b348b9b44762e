"""MariaDB's accounts: the names and hashes the services and MariaDB agree on, and the statements
that make the vault's passwords the accepted ones (tests/images runs them against the kit's MariaDB)."""

import hashlib

import pytest

from ansible_collections.shopstream.swarm.plugins.filter.swarm_topology import labelled_host
from ansible_collections.shopstream.swarm.plugins.module_utils._mariadb import (
    native_hash,
    parse_rows,
    plan,
    probe_sql,
    user_name,
)

ROOT, OLD_ROOT, NEW, OLD = "r00tpw", "oldr00t", "newpw", "oldpw"


def test_the_hash_is_mariadbs_password_function():
    # SELECT PASSWORD('password') in MariaDB 10.11
    assert native_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"


def test_a_user_per_password_named_as_the_services_name_it():
    assert user_name("shopstream", NEW) == "shopstream-" + hashlib.sha256(NEW.encode()).hexdigest()[:8]


def rows(*accounts):
    return [(user, host, native_hash(pw)) for user, host, pw in accounts]


def test_a_fresh_server_gets_roots_password_and_the_current_users_alone():
    changes = plan(rows(("root", "localhost", "bootstrap")), "shopstream", "shopstream", ROOT, [NEW, NEW], drop=False)
    user = user_name("shopstream", NEW)
    assert changes["root_changed"] and changes["created"] == [user] and changes["users"] == [user]
    assert changes["sql"] == [
        f"ALTER USER 'root'@'localhost' IDENTIFIED BY PASSWORD '{native_hash(ROOT)}';",
        f"CREATE USER '{user}'@'%' IDENTIFIED BY PASSWORD '{native_hash(NEW)}';",
        f"GRANT ALL PRIVILEGES ON `shopstream`.* TO '{user}'@'%';",
    ]
    assert not any(pw in " ".join(changes["sql"]) for pw in (ROOT, NEW)), "hashes only, never a password"


def test_nothing_to_do_when_the_server_has_the_vaults_passwords():
    present = rows(("root", "localhost", ROOT), (user_name("shopstream", NEW), "%", NEW))
    changes = plan(present, "shopstream", "shopstream", ROOT, [NEW, ""], drop=True)
    assert changes["sql"] == [] and changes["stale"] == [] and not changes["root_changed"]


def test_a_rotation_adds_the_new_user_and_drops_the_old_only_when_asked():
    old, new = user_name("shopstream", OLD), user_name("shopstream", NEW)
    present = rows(("root", "localhost", OLD_ROOT), (old, "%", OLD))
    during = plan(present, "shopstream", "shopstream", ROOT, [NEW, OLD], drop=True)
    assert during["created"] == [new] and during["dropped"] == [] and during["root_changed"]
    retired = plan(present + rows((new, "%", NEW)), "shopstream", "shopstream", ROOT, [NEW], drop=False)
    assert retired["stale"] == [f"{old}@%"] and retired["dropped"] == []
    dropped = plan(present + rows((new, "%", NEW)), "shopstream", "shopstream", ROOT, [NEW], drop=True)
    assert dropped["dropped"] == [f"{old}@%"] and f"DROP USER '{old}'@'%';" in dropped["sql"]


def test_earlier_releases_accounts_go_root_over_the_network_at_once_the_shared_user_when_its_clients_are_gone():
    present = rows(("root", "localhost", ROOT), ("root", "%", ROOT), ("shopstream", "%", NEW))
    first = plan(present, "shopstream", "shopstream", ROOT, [NEW], drop=True)
    assert first["dropped"] == ["root@%"] and first["stale"] == ["shopstream@%"]
    assert first["created"] == [user_name("shopstream", NEW)]
    last = plan(present, "shopstream", "shopstream", ROOT, [NEW], drop=True, drop_shared=True)
    assert last["dropped"] == ["root@%", "shopstream@%"]


def test_accounts_of_others_are_never_touched():
    present = rows(("root", "localhost", ROOT), ("shopstream_reporting", "%", OLD), ("shopstream-notahash", "%", OLD))
    changes = plan(present, "shopstream", "shopstream", ROOT, [NEW], drop=True)
    assert changes["dropped"] == [] and changes["stale"] == []


def test_the_probe_escapes_the_prefix_and_rows_parse():
    assert "LIKE 'shop\\\\_x%'" in probe_sql("shop_x")
    assert parse_rows("root\tlocalhost\t*AB\nshopstream-1\t%\t\n") == [
        ("root", "localhost", "*AB"),
        ("shopstream-1", "%", ""),
    ]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [({}, "m1"), ({"m2": {"shopstream.tier": "data"}}, "m2"), ({"m3": {"shopstream.tier": "edge"}}, "m1")],
)
def test_the_data_node_is_the_first_labelled_manager_else_the_first(labels, expected):
    hostvars = {h: {"swarm_node_labels": labels[h]} if h in labels else {} for h in ("m1", "m2", "m3")}
    assert labelled_host(["m1", "m2", "m3"], hostvars, "shopstream.tier==data") == expected
