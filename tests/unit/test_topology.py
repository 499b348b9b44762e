"""Preflight rules and the swarm plan, over plain host records."""

import itertools

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils._topology import (
    check_cluster,
    plan_recovery,
    plan_removal,
    plan_swarm,
)

SUPPORTED = {"Debian": ["11", "12"], "Ubuntu": ["22.04", "24.04"]}
_ADDRESSES = (f"10.0.{n // 250}.{n % 250 + 1}" for n in itertools.count())
ALL_FEATURES = {name: {"available": True, "missing": []} for name in ("ipvs", "vxlan", "overlay_encryption")}
DEFAULTS = {
    "shopstream_endpoint_mode": "vip",
    "shopstream_publish_mode": "ingress",
    "shopstream_overlay_encrypted": True,
}


def record(host, role="manager", addr=None, swarm=None, nodes=None, features=None, ports=None, os_=("Debian", "12")):
    addr = addr or next(_ADDRESSES)
    return {
        "host": host,
        "role": role,
        "advertise_addr": addr,
        "os": {"distribution": os_[0], "version": os_[1], "major": os_[1].split(".")[0]},
        "probe": {
            "addresses": [addr, "127.0.0.1"],
            "kernel": {"features": features or ALL_FEATURES},
            "ports": ports or [],
            "docker": {"reachable": True, "swarm": swarm or {"state": "inactive"}, "nodes": nodes or []},
        },
    }


def manager_of(cluster, node_id):
    return {"state": "active", "is_manager": True, "cluster_id": cluster, "node_id": node_id, "control_available": True}


def worker_of(node_id, managers=("10.0.0.1:2377",)):
    return {"state": "active", "is_manager": False, "cluster_id": None, "node_id": node_id, "remote_managers": managers}


def check(records, settings=None, **kw):
    return check_cluster(records, dict(DEFAULTS, **(settings or {})), supported_os=SUPPORTED, **kw)


def messages(result):
    return [m for msgs in result["errors"].values() for m in msgs]


@pytest.mark.parametrize(
    ("roles", "allow_even", "expected"),
    [
        (["worker"], False, "No manager: group 'swarm_managers' is empty"),
        (["manager", "manager"], False, "2 managers in group 'swarm_managers' (h0, h1)"),
        (["manager"] * 9, False, "more than 7 slows Raft down"),
    ],
)
def test_manager_count_rules(roles, allow_even, expected):
    recs = [record(f"h{i}", role=r) for i, r in enumerate(roles)]
    result = check(recs, allow_even=allow_even)
    assert any(expected in m for m in result["errors"]["_inventory"])


@pytest.mark.parametrize("count", [1, 3, 5, 7])
def test_odd_manager_counts_pass(count):
    recs = [record(f"m{i}", addr=f"10.0.0.{i + 1}") for i in range(count)]
    assert check(recs)["errors"] == {}


def test_a_host_in_both_groups_is_refused_by_name():
    recs = [record("m1", addr="10.0.0.1"), record("w1", addr="10.0.0.2", role="worker")]
    assert check(recs, in_both=[])["errors"] == {}
    assert check(recs, in_both=["m1"])["errors"] == {
        "m1": [
            "m1: listed in both swarm_managers and swarm_workers, so its role is ambiguous. Fix: keep it in one "
            "group (a manager runs tasks too unless swarm_node_availability is drain)."
        ]
    }


def test_even_managers_allowed_explicitly():
    recs = [record("m1", addr="10.0.0.1"), record("m2", addr="10.0.0.2")]
    assert check(recs, allow_even=True)["errors"] == {}


def test_unknown_managers_count_towards_quorum_rules():
    result = check([record("m1", addr="10.0.0.1")], unknown_managers=["m2"])
    assert "2 managers" in result["errors"]["_inventory"][0]


def test_duplicate_advertise_address_names_both_hosts():
    recs = [record("m1", addr="10.0.0.5"), record("w1", role="worker", addr="10.0.0.5")]
    assert check(recs)["errors"]["w1"] == [
        "w1: advertise address 10.0.0.5 is also the one of m1. Fix: set swarm_advertise_addr on each "
        "host to an address of its own."
    ]


def test_advertise_address_must_belong_to_the_host():
    rec = record("m1", addr="10.0.0.5")
    rec["probe"]["addresses"] = ["10.0.0.6"]
    assert "is not an address of this host (10.0.0.6)" in check([rec])["errors"]["m1"][0]


@pytest.mark.parametrize(
    ("listen", "data_path", "error"),
    [
        ("10.0.0.5:2377", "10.0.0.5", None),
        ("0.0.0.0:2377", "", None),  # every interface: the site's explicit choice
        ("eth1:2377", "eth1", None),  # an interface's name: the engine checks it
        ("[fd00::5]:2377", "", None),
        ("10.9.9.9:2377", "", "m1: swarm_listen_addr 10.9.9.9:2377 is not an address of this host"),
        ("", "10.9.9.9", "m1: swarm_data_path_addr 10.9.9.9 is not an address of this host"),
    ],
)
def test_the_listen_and_data_path_addresses_must_be_the_hosts(listen, data_path, error):
    rec = record("m1", addr="10.0.0.5")
    rec["probe"]["addresses"] = ["10.0.0.5", "fd00::5", "127.0.0.1"]
    rec["listen_addr"], rec["data_path_addr"] = listen, data_path
    errors = check([rec])["errors"].get("m1", [])
    if error is None:
        assert errors == []
    else:
        assert len(errors) == 1 and errors[0].startswith(error) and "Fix: set " in errors[0], errors


@pytest.mark.parametrize(
    ("os_", "ok"),
    [(("Debian", "12"), True), (("Ubuntu", "22.04"), True), (("Debian", "10"), False), (("Arch", "rolling"), False)],
)
def test_supported_os(os_, ok):
    result = check([record("m1", os_=os_)])
    assert (result["errors"] == {}) is ok
    if not ok:
        assert f"m1: {os_[0]} {os_[1]} is not supported" in result["errors"]["m1"][0]


NO_IPVS = dict(ALL_FEATURES, ipvs={"available": False, "missing": ["CONFIG_IP_VS"]})
NO_ESP = dict(ALL_FEATURES, overlay_encryption={"available": False, "missing": ["CONFIG_INET_ESP"]})


@pytest.mark.parametrize(
    ("features", "settings", "fragment"),
    [
        (
            NO_IPVS,
            {},
            "shopstream_endpoint_mode: vip needs for VIP endpoint mode. Fix: set shopstream_endpoint_mode: dnsrr",
        ),
        (NO_IPVS, {"shopstream_endpoint_mode": "dnsrr"}, "Fix: set shopstream_publish_mode: host"),
        (NO_ESP, {}, "(CONFIG_INET_ESP), which shopstream_overlay_encrypted: true needs"),
    ],
)
def test_missing_kernel_feature_names_the_setting(features, settings, fragment):
    result = check([record("m1", features=features)], settings)
    assert any(fragment in m for m in result["errors"]["m1"]), result["errors"]


def test_auto_settings_resolve_to_what_every_kernel_can_carry():
    recs = [record("m1", addr="10.0.0.1"), record("w1", role="worker", addr="10.0.0.2", features=NO_IPVS)]
    auto = {k: "auto" for k in DEFAULTS}
    result = check(recs, auto)
    assert result["errors"] == {}
    assert result["resolved"] == {
        "shopstream_endpoint_mode": "dnsrr",
        "shopstream_publish_mode": "host",
        "shopstream_overlay_encrypted": True,
    }


def test_unreadable_kernel_config_warns_and_assumes_present():
    unknown = {name: {"available": None} for name in ALL_FEATURES}
    result = check([record("m1", features=unknown)])
    assert result["errors"] == {}
    assert any("could not read the kernel configuration" in w for w in result["warnings"])


def test_missing_vxlan_has_no_setting_to_avoid_it():
    feats = dict(ALL_FEATURES, vxlan={"available": False, "missing": ["CONFIG_VXLAN"]})
    assert "no setting avoids it" in check([record("m1", features=feats)])["errors"]["m1"][0]


@pytest.mark.parametrize(
    ("port", "in_swarm", "problem"),
    [
        (
            {"port": 2377, "proto": "tcp", "in_use": True, "holders": [{"pid": 7, "name": "nginx"}]},
            False,
            "nginx (pid 7)",
        ),
        ({"port": 2377, "proto": "tcp", "in_use": True, "holders": [{"pid": 9, "name": "dockerd"}]}, True, None),
        ({"port": 4789, "proto": "udp", "in_use": True, "holders": [], "kernel_owned": True}, True, None),
        ({"port": 4789, "proto": "udp", "in_use": True, "holders": [], "kernel_owned": True}, False, "the kernel"),
        ({"port": 7946, "proto": "udp", "in_use": False, "holders": []}, False, None),
    ],
)
def test_swarm_ports_held_by_something_else(port, in_swarm, problem):
    swarm = manager_of("C1", "N1") if in_swarm else None
    result = check([record("m1", swarm=swarm, ports=[port])])
    errors = result["errors"].get("m1", [])
    if problem:
        assert f"port {port['port']}/{port['proto']} is held by {problem}" in errors[0]
    else:
        assert errors == []


@pytest.mark.parametrize(
    ("reachable", "sandboxes", "problem"),
    [
        (False, ["1-8ki7xr4507", "ingress_sbox"], False),  # a killed engine's own leftovers
        (False, [], True),  # no engine namespaces: someone else's VXLAN
        (True, ["1-8ki7xr4507"], False),  # engine up, left its swarm: an earlier swarm's namespaces
        (True, [], True),
    ],
)
def test_vxlan_port_left_by_a_killed_engine_is_not_another_user(reachable, sandboxes, problem):
    port = {"port": 4789, "proto": "udp", "in_use": True, "holders": [], "kernel_owned": True}
    rec = record("m1", ports=[port])
    rec["probe"]["docker"].update(reachable=reachable, overlay_sandboxes=sandboxes, swarm={"state": None})
    result = check([rec])
    assert bool(result["errors"].get("m1")) is problem
    left = "an earlier swarm of the Docker engine left behind" if reachable else "stopped Docker engine left behind"
    assert any(left in w for w in result["warnings"]) is not problem


def test_vxlan_port_held_by_vxlan_devices_an_engine_left_in_the_host_namespace_is_the_engines():
    port = {"port": 4789, "proto": "udp", "in_use": True, "holders": [], "kernel_owned": True}
    rec = record("m1", ports=[port])
    rec["probe"]["docker"].update(reachable=True, overlay_vxlans=["vx-001001-8ki7x"], swarm={"state": None})
    result = check([rec])
    assert not result["errors"].get("m1")
    assert any("an earlier swarm of the Docker engine left behind" in w for w in result["warnings"])


def test_plan_new_swarm_initialises_on_first_manager():
    recs = [record("m1"), record("m2"), record("m3"), record("w1", role="worker")]
    plan = plan_swarm(recs)
    assert plan["init"] == "m1"
    assert plan["manager"] == "m1"
    assert plan["hosts"] == {"m1": "init", "m2": "join", "m3": "join", "w1": "join"}


def test_plan_existing_swarm_works_through_any_manager_when_first_is_down():
    # m1 is unreachable (not in the records); m2 leads, m3 and w1 are members, w2 is new.
    nodes = [{"id": "N2"}, {"id": "N3"}, {"id": "W1"}, {"id": "N1"}]
    recs = [
        record("m2", swarm=manager_of("C1", "N2"), nodes=nodes),
        record("m3", swarm=manager_of("C1", "N3"), nodes=nodes),
        record("w1", role="worker", swarm=worker_of("W1")),
        record("w2", role="worker"),
    ]
    plan = plan_swarm(recs, unknown_managers=["m1"])
    assert plan["init"] is None
    assert plan["manager"] == "m2"
    assert plan["cluster_id"] == "C1"
    assert plan["hosts"] == {"m2": "member", "m3": "member", "w1": "member", "w2": "join"}
    assert plan["errors"] == {}


def test_plan_refuses_to_initialise_while_a_manager_is_unknown():
    plan = plan_swarm([record("m2"), record("m3")], unknown_managers=["m1"])
    assert plan["init"] is None
    assert "refusing to initialise a new swarm" in plan["errors"]["_inventory"][0]


@pytest.mark.parametrize(
    ("host_swarm", "expected"),
    [
        (manager_of("OTHER", "X1"), "already belongs to another swarm (OTHER), not the inventory's (C1)"),
        (worker_of("X2", managers=("192.0.2.9:2377",)), "another swarm (managed at 192.0.2.9:2377)"),
    ],
)
def test_plan_flags_a_host_of_another_swarm(host_swarm, expected):
    recs = [
        record("m1", swarm=manager_of("C1", "N1"), nodes=[{"id": "N1"}]),
        record("x", role="worker", swarm=host_swarm),
    ]
    plan = plan_swarm(recs)
    assert plan["hosts"]["x"] == "foreign"
    assert expected in plan["errors"]["x"][0]
    assert "docker swarm leave --force' on x" in plan["errors"]["x"][0]


def test_plan_flags_a_swarm_member_when_the_inventory_has_no_swarm_yet():
    recs = [record("m1"), record("w1", role="worker", swarm=manager_of("OTHER", "X"))]
    assert "none yet" in plan_swarm(recs)["errors"]["w1"][0]


@pytest.mark.parametrize("state", ["locked", "error", "pending"])
def test_plan_stops_on_broken_swarm_states(state):
    plan = plan_swarm([record("m1", swarm={"state": state})])
    assert f"its swarm state is '{state}'" in plan["errors"]["m1"][0]


def test_a_locked_node_is_unlocked_when_the_vault_holds_the_key_and_no_new_swarm_starts_beside_it():
    locked = {"state": "locked"}
    plan = plan_swarm([dict(record("m1", swarm=locked), unlockable=True), record("w1", role="worker")])
    assert plan["hosts"] == {"m1": "locked", "w1": "join"} and not plan["errors"]
    assert plan["init"] is None and plan["manager"] is None, "never a second swarm beside a locked one"
    without_key = plan_swarm([dict(record("m1", swarm=locked), unlockable=False)])
    assert "vault holds no unlock key (vault_shopstream_swarm_unlock_key)" in without_key["errors"]["m1"][0]


def test_a_majority_of_managers_locked_is_unlocked_not_recovered():
    """Two of three managers restarted with autolock on: the third sees no leader and the workers no
    manager that lists them. Neither is an error (recover.yml would be the wrong fix): the swarm role
    unlocks the two and reads every node again."""
    leaderless = {"state": "active", "is_manager": True, "control_available": True, "cluster_id": None}
    worker = worker_of("W1", managers=("192.0.2.11:2377",))
    recs = [
        record("m1", swarm=leaderless),
        dict(record("m2", swarm={"state": "locked"}), unlockable=True),
        dict(record("m3", swarm={"state": "locked"}), unlockable=True),
        record("w1", role="worker", swarm=worker),
    ]
    plan = plan_swarm(recs)
    assert plan["errors"] == {}
    assert plan["hosts"] == {"m1": "leaderless", "m2": "locked", "m3": "locked", "w1": "undecided"}
    assert plan["init"] is None and plan["manager"] is None
    without_key = plan_swarm([recs[0], dict(recs[1], unlockable=False), dict(recs[2], unlockable=False), recs[3]])
    assert without_key["errors"]["m1"][0].startswith("m1: it is a manager but sees no Raft leader")
    assert "vault holds no unlock key" in without_key["errors"]["m2"][0]
    assert "already belongs to another swarm" in without_key["errors"]["w1"][0]


def test_preflight_includes_plan_errors():
    recs = [
        record("m1", swarm=manager_of("C1", "N1"), nodes=[{"id": "N1"}]),
        record("x", role="worker", swarm=manager_of("O", "Y")),
    ]
    assert "another swarm" in check(recs)["errors"]["x"][0]


def node(name, role="worker", reachability=None):
    return {"id": f"id-{name}", "hostname": name, "addr": f"addr-{name}", "role": role, "reachability": reachability}


THREE_MANAGERS = [
    node("m1", "manager", "reachable"),
    node("m2", "manager", "reachable"),
    node("m3", "manager", "reachable"),
]


@pytest.mark.parametrize("target", ["id-w1", "w1", "addr-w1"])
def test_removal_of_a_worker_is_always_allowed(target):
    result = plan_removal([*THREE_MANAGERS, node("w1")], target)
    assert result == {"node": node("w1"), "demote": False, "error": None}


def test_removal_of_a_node_already_gone_is_a_no_op():
    assert plan_removal(THREE_MANAGERS, "w9") == {"node": None, "demote": False, "error": None}


def test_removal_of_a_manager_with_quorum_kept_demotes_it():
    result = plan_removal(THREE_MANAGERS, "m3")
    assert result["demote"] is True
    assert result["error"] is None


def test_removal_refuses_to_break_quorum():
    nodes = [
        node("m1", "manager", "reachable"),
        node("m2", "manager", "reachable"),
        node("m3", "manager", "unreachable"),
    ]
    assert plan_removal(nodes, "m2")["error"] == (
        "Removing manager m2 would break quorum: 1 of the 2 remaining managers are reachable and 2 are needed "
        "(m3 unreachable). Fix: bring m3 back first."
    )


def test_removal_refuses_the_last_manager():
    result = plan_removal([node("m1", "manager", "reachable"), node("w1")], "m1")
    assert result["error"].startswith("m1 is the last manager")


def test_plan_names_a_manager_without_a_leader_instead_of_initialising():
    leaderless = {"state": "active", "is_manager": True, "control_available": True, "cluster_id": None}
    plan = plan_swarm([record("m2", swarm=leaderless), record("m3", swarm=leaderless)], unknown_managers=["m1"])
    assert plan["init"] is None
    assert "_inventory" not in plan["errors"]
    assert plan["errors"]["m2"][0].startswith("m2: it is a manager but sees no Raft leader")


def test_plan_refuses_to_guess_when_a_swarm_state_cannot_be_read():
    unreadable = record("m2")
    unreadable["probe"]["docker"] = {"reachable": True, "error": "timed out", "swarm": {"state": None}, "nodes": []}
    plan = plan_swarm([record("m1"), unreadable, record("m3")])
    assert plan["init"] is None
    assert plan["hosts"]["m2"] == "unknown"
    assert plan["errors"]["m2"] == [
        "m2: its swarm state could not be read (timed out). Fix: check 'docker info' on m2 and run again."
    ]


SKEW = {"preflight_max_clock_skew": 30, "preflight_min_disk_free_mb": 2048}


def timed(host, clock, window=(1000.0, 1010.0), free_mb=50000):
    rec = record(host)
    rec["probe"]["clock"] = clock
    rec["probe"]["disk"] = {"path": "/var/lib/docker", "free_mb": free_mb, "size_mb": 100000}
    rec["controller_time"] = list(window)
    return rec


@pytest.mark.parametrize(
    ("clock", "problem"),
    [
        (1005.0, None),  # read while the probes ran: agrees, however long they took
        (975.0, None),  # 25 s behind the start of the window
        (1039.0, None),
        (960.0, "m1: its clock is 40 s behind the controller's (preflight_max_clock_skew is 30 s)"),
        (8210.0, "m1: its clock is 7200 s ahead of the controller's (preflight_max_clock_skew is 30 s)"),
    ],
)
def test_a_clock_far_from_the_controllers_is_refused_naming_the_host_and_the_fix(clock, problem):
    found = messages(check([timed("m1", clock)], SKEW))
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith(problem), found
        assert "Fix: synchronise m1 and the controller with NTP" in found[0]


def test_too_little_room_under_the_data_root_is_refused_naming_the_host_and_the_path():
    records = [timed("m1", 1005.0), timed("m2", 1005.0, free_mb=900), timed("m3", 1005.0)]
    found = messages(check(records, SKEW))
    assert found == [
        "m2: /var/lib/docker has 900 MB free of 100000 MB, less than preflight_min_disk_free_mb (2048 MB): images, "
        "volumes and logs go there. Fix: free or grow the disk under /var/lib/docker on m2, or lower "
        "preflight_min_disk_free_mb."
    ]


# --- recover.yml: a swarm that lost quorum -------------------------------------------------------

LEADERLESS = {"state": "active", "is_manager": True, "control_available": True, "cluster_id": None}


def manager(host, swarm=None, unreachable=False, engine=True):
    rec = record(host, swarm=swarm)
    rec["unreachable"] = unreachable
    if not engine:
        rec["probe"]["docker"] = {"reachable": False, "error": "connection refused", "swarm": {"state": None}}
    return rec


def test_recovery_is_refused_while_a_manager_sees_the_leader():
    plan = plan_recovery(
        [manager("m1", LEADERLESS), manager("m2", manager_of("c1", "n2")), manager("m3", engine=False)]
    )
    assert plan["survivor"] is None
    assert plan["error"].startswith(
        "The swarm has quorum: its Raft leader is seen by m2 (m1: leaderless, m2: has a leader, "
    )
    assert "remove_node.yml" in plan["error"]


def test_recovery_forces_the_first_leaderless_manager_and_sorts_the_others():
    plan = plan_recovery(
        [
            manager("m1", unreachable=True),
            manager("m2", LEADERLESS),
            manager("m3", engine=False),
            manager("m4", LEADERLESS),
            manager("m5", {"state": "inactive"}),
        ]
    )
    assert plan["error"] is None
    assert (plan["survivor"], plan["leave"], plan["set_aside"], plan["unreachable"]) == ("m2", ["m4"], ["m3"], ["m1"])


def test_recovery_takes_the_chosen_manager_only_when_it_can_lead():
    records = [manager("m1", LEADERLESS), manager("m2", {"state": "locked"}), manager("m3", LEADERLESS)]
    assert plan_recovery(records, "m3")["survivor"] == "m3"
    assert plan_recovery(records, "m3")["leave"] == ["m1", "m2"]
    locked = plan_recovery(records, "m2")["error"]
    assert locked.startswith("recover_from=m2: it cannot lead the swarm again: locked.")
    assert locked.endswith("Fix: choose one of m1, m3, or unlock it first with playbooks/unlock.yml.")
    assert "not one of the inventory's managers (m1, m2, m3)" in plan_recovery(records, "w1")["error"]


@pytest.mark.parametrize(
    ("others", "fix"),
    [
        ({"state": "locked"}, "Fix: unlock m2 with playbooks/unlock.yml, then run again."),
        ({"state": "inactive"}, "if none is left, make a new swarm with site.yml and put the data back with restore"),
    ],
)
def test_recovery_needs_a_manager_that_runs_in_the_swarm(others, fix):
    plan = plan_recovery([manager("m1", unreachable=True), manager("m2", others), manager("m3", engine=False)])
    assert plan["survivor"] is None
    assert plan["error"].startswith("No manager can lead the swarm again: none runs in it and sees no leader (m1: ")
    assert fix in plan["error"]


def test_recovery_refuses_keys_that_autolock_encrypted_as_docker_cannot_force_from_them():
    records = [manager("m1", LEADERLESS), manager("m2", LEADERLESS), manager("m3", unreachable=True)]
    records[0]["autolocked"] = records[1]["autolocked"] = True
    plan = plan_recovery(records)
    assert plan["survivor"] is None
    assert plan["error"].startswith("m1, m2: sees no leader, but autolock encrypted its swarm keys")
    assert "moby/moby#36852" in plan["error"] and "swarm_autolock: false" in plan["error"]
    assert (
        "(m1: leaderless (keys locked by autolock), m2: leaderless (keys locked by autolock), m3: unreachable)"
        in (plan["error"])
    )
    records[1]["autolocked"] = False
    assert plan_recovery(records)["survivor"] == "m2"
    assert plan_recovery(records)["leave"] == ["m1"]
    assert plan_recovery(records, "m1")["error"].startswith("m1: sees no leader, but autolock encrypted")
