"""Bad inventories, hosts and settings fail before anything changes, with the expected message.

Every inventory case runs the whole site.yml against this host through local-connection inventory
entries: a failure anywhere but in preflight would change the host, and the test checks it
did not. The stack settings' cases run playbooks/stack.yml, and check that no service's version
moved.
"""

import os
import re
import socket
import sys
from pathlib import Path

import pytest
from runner import docker, host_state, playbook

from ansible_collections.shopstream.swarm.plugins.module_utils._host_probe import read_kernel

CASES = {
    "no manager": (
        {"workers": ["w1"]},
        "No manager: group 'swarm_managers' is empty. Fix: put 1, 3, 5 or 7 hosts in swarm_managers.",
    ),
    "two managers": (
        {"managers": ["m1", "m2"]},
        "2 managers in group 'swarm_managers' (m1, m2): an even number adds no fault tolerance to Raft.",
    ),
    "duplicate advertise addresses": (
        {"managers": ["m1"], "workers": ["w1"]},
        "w1: advertise address {addr} is also the one of m1. Fix: set swarm_advertise_addr on each host",
    ),
    "advertise address of another host": (
        {"managers": ["m1"], "host_vars": {"m1": {"swarm_advertise_addr": "198.51.100.77"}}},
        "m1: advertise address 198.51.100.77 (swarm_advertise_addr) is not an address of this host",
    ),
    "unsupported OS": (
        {"managers": ["m1"], "group_vars": {"preflight_supported_os": {"Plan9": ["4"]}}},
        "is not supported (supported: Plan9 4). Fix: use a supported OS",
    ),
    "a host in both groups": (
        {"managers": ["m1"], "workers": ["m1"]},
        "m1: listed in both swarm_managers and swarm_workers, so its role is ambiguous. Fix: keep it in one",
    ),
    "too little room for images and volumes": (
        {"managers": ["m1"], "group_vars": {"preflight_min_disk_free_mb": 1_000_000_000}},
        "less than preflight_min_disk_free_mb (1000000000 MB): images, volumes and logs go there. Fix: free or "
        "grow the disk under /var/lib/docker on m1, or lower preflight_min_disk_free_mb.",
    ),
    "invalid setting": (
        {"managers": ["m1"], "group_vars": {"shopstream_overlay_encrypted": "sometimes"}},
        "shopstream_overlay_encrypted is 'sometimes'. Fix: set it to true, false or auto.",
    ),
}


def default_ipv4():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only asks the routing table
        return s.getsockname()[0]


def assert_failed_in_preflight(run, expected, before):
    assert run.rc != 0, run.out
    assert expected in run.out, run.out
    assert "PLAY [Engine" not in run.out, "a play after preflight started"
    assert run.changed() == 0, run.recap
    assert host_state() == before


@pytest.mark.parametrize("case", list(CASES))
def test_bad_inventory_fails_in_preflight(case, inventory):
    spec, expected = CASES[case]
    before = host_state()
    run = playbook("site.yml", "-i", inventory(**spec))
    assert_failed_in_preflight(run, expected.format(addr=default_ipv4()), before)


KERNEL_CASES = [
    ("ipvs", "shopstream_endpoint_mode", "vip", "Fix: set shopstream_endpoint_mode: dnsrr (or auto)"),
    ("ipvs", "shopstream_publish_mode", "ingress", "Fix: set shopstream_publish_mode: host (or auto)"),
    ("overlay_encryption", "shopstream_overlay_encrypted", True, "Fix: set shopstream_overlay_encrypted: false"),
]


@pytest.mark.parametrize(("feature", "setting", "value", "fix"), KERNEL_CASES)
def test_missing_kernel_feature_with_its_setting_left_on(feature, setting, value, fix, inventory):
    if (
        read_kernel(["/proc/config.gz", "/boot/config-{release}"], os.uname().release)[1][feature]["available"]
        is not False
    ):
        pytest.skip(f"this kernel has {feature}: the refusal can only be shown on a kernel without it")
    before = host_state()
    run = playbook("site.yml", "-i", inventory(managers=["m1"], group_vars={setting: value}))
    assert_failed_in_preflight(run, fix, before)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ((), "Say which inventory host to remove: -e remove_node=<host>, one of m1. Nothing was changed."),
        (("-e", "remove_node=m7"), "remove_node=m7 is not a host of this inventory: -e remove_node=<host>, one of m1."),
    ],
)
def test_remove_node_names_the_host_it_was_asked_for(extra, expected, inventory):
    before = host_state()
    run = playbook("playbooks/remove_node.yml", "-i", inventory(managers=["m1"]), *extra)
    assert run.rc != 0 and expected in " ".join(run.out.split()), run.out[-2000:]
    assert run.changed() == 0 and host_state() == before


def test_a_host_whose_clock_is_two_hours_ahead_fails_in_preflight_naming_it(inventory, tmp_path):
    """m1's Python runs under libfaketime (the host's clock as its programs read it is 2 h ahead)."""
    library = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if not library:
        pytest.fail("libfaketime is needed to give a host a clock of its own: apt-get install libfaketime")
    python = tmp_path / "python-2h-ahead"
    python.write_text(f'#!/bin/sh\nLD_PRELOAD={library[0]} FAKETIME=+2h exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    before = host_state()
    run = playbook(
        "site.yml", "-i", inventory(managers=["m1"], host_vars={"m1": {"ansible_python_interpreter": str(python)}})
    )
    assert_failed_in_preflight(run, "m1: its clock is ", before)
    # The skew reported is the least the probe proves: the host's clock minus the controller's
    # after the probe came back, so a slow probe on a loaded host shows 7199 s (seen in CI).
    skew = re.search(r"m1: its clock is (\d+) s ahead of the controller's", run.out)
    assert skew and 7200 - 60 <= int(skew[1]) <= 7200, run.out[-2000:]
    assert "Fix: synchronise m1 and the controller with NTP (chrony or systemd-timesyncd)" in run.out


def test_a_plaintext_vault_file_fails_in_preflight_naming_it(inventory, tmp_path):
    hosts = inventory(managers=["m1"])
    plain = tmp_path / "group_vars" / "all" / "vault.yml"
    plain.parent.mkdir(parents=True)
    plain.write_text("vault_shopstream_redis_password: in-the-clear\n")
    before = host_state()
    # (The encrypted vaults of inventories/local and the cluster pass preflight in their own tests.)
    run = playbook("site.yml", "-i", hosts)
    assert_failed_in_preflight(
        run, f"{plain}: not encrypted, so every value in it is in the clear. Fix: ansible-vault encrypt {plain}", before
    )


REPLICAS = {"frontend": 2, "gateway": 2, "auth": 2, "product": 2, "order": 2, "notification": 1}
STACK_SETTINGS = {
    "a port out of range": (
        {"stack_http_port": 70000},
        "stack_http_port is 70000: a TCP port is a number from 1 to 65535",
    ),
    "one port for both": (
        {"stack_https_port": "80"},
        "stack_http_port and stack_https_port are both 80: Traefik needs two ports",
    ),
    "replicas below one and not a number": (
        {"stack_replicas": dict(REPLICAS, frontend=-1, gateway="two")},
        "stack_replicas.frontend is -1: a count of at least 1; stack_replicas.gateway is two: a count of at least 1",
    ),
    "replicas of one service only": (
        {"stack_replicas": {"frontend": 3}},
        "stack_replicas has no count for gateway (a dict given with -e replaces the whole default",
    ),
    "replicas of a service with a typo": (
        {"stack_replicas": dict(REPLICAS, fronted=3)},
        "stack_replicas names fronted, which the platform does not have",
    ),
    "no time between progress reports": (
        {"stack_progress_interval": 0},
        "stack_progress_interval is 0: a number of seconds, at least 1",
    ),
    "a placement label on no manager": (
        {"swarm_node_labels": {"shopstream.tier": "db"}},
        "stack_data_label is shopstream.tier==data, but no manager carries that label (m1 shopstream.tier=db), so the "
        "stateful services would go to the first manager instead. Fix: give the manager that should run them "
        "swarm_node_labels {shopstream.tier: data}, or correct stack_data_label",
    ),
    "a stack with a typo": (
        {"stack_stacks": ["data", "ap"]},
        "value of stack_stacks must be one or more of: data, app, edge, monitoring. Got no match for: ap",
    ),
}


def service_versions():
    """Each service's ID and version index: a deploy, even of an unchanged spec, raises the index."""
    ids = docker("service", "ls", "-q").stdout.split()
    return docker("service", "inspect", "--format", "{{.ID}} {{.Version.Index}}", *ids).stdout if ids else ""


@pytest.mark.parametrize("case", list(STACK_SETTINGS))
def test_bad_stack_settings_are_refused_before_any_stack_is_deployed(case, inventory):
    settings, expected = STACK_SETTINGS[case]
    before, versions = host_state(), service_versions()
    run = playbook("playbooks/stack.yml", "-i", inventory(managers=["m1"], group_vars=settings))
    assert run.rc != 0
    assert expected in " ".join(run.out.split()), run.out[-3000:]
    assert run.changed() == 0, run.recap
    assert host_state() == before
    assert service_versions() == versions
