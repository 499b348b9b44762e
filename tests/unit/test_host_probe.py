# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

import gzip
import os

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    DockerAPIError,
    DockerClient,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._host_probe import (
    evaluate_features,
    find_port_holders,
    options_from_modules,
    parse_fib_trie,
    parse_if_inet6,
    parse_kernel_config,
    parse_module_list,
    parse_proc_net,
    read_kernel,
    read_overlay_sandboxes,
    read_overlay_vxlans,
    read_ports,
    summarise_nodes,
    summarise_swarm,
)
from ansible_collections.shopstream.swarm.plugins.modules.swarm_host_info import (
    probe_docker,
)

# --- kernel ---------------------------------------------------------------------

KERNEL_CONFIG = """\
#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.1.0-18-amd64 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14) 12.2.0"
CONFIG_XFRM_USER=m
CONFIG_INET_ESP=m
# CONFIG_INET_ESP_OFFLOAD is not set
CONFIG_IP_VS=m
CONFIG_IP_VS_IPV6=y
CONFIG_VXLAN=m
CONFIG_CRYPTO_GCM=y
CONFIG_NETFILTER_XT_MATCH_BPF=m
# CONFIG_NETFILTER_XT_MATCH_U32 is not set
CONFIG_HZ=250
"""

ALL_OPTIONS = [
    "CONFIG_IP_VS",
    "CONFIG_VXLAN",
    "CONFIG_XFRM_USER",
    "CONFIG_INET_ESP",
    "CONFIG_CRYPTO_GCM",
    "CONFIG_NETFILTER_XT_MATCH_BPF",
    "CONFIG_NETFILTER_XT_MATCH_U32",
]
ALL_MODULES = {"ip_vs", "vxlan", "xfrm_user", "esp4", "gcm", "xt_bpf", "xt_u32"}
BPF_U32 = ["CONFIG_NETFILTER_XT_MATCH_BPF", "CONFIG_NETFILTER_XT_MATCH_U32"]


def test_parse_kernel_config():
    options = parse_kernel_config(KERNEL_CONFIG)
    assert options["CONFIG_IP_VS"] == "m"
    assert options["CONFIG_IP_VS_IPV6"] == "y"
    assert options["CONFIG_CRYPTO_GCM"] == "y"
    assert options["CONFIG_NETFILTER_XT_MATCH_U32"] is None
    assert options["CONFIG_INET_ESP_OFFLOAD"] is None
    assert options["CONFIG_CC_VERSION_TEXT"] == "gcc-12 (Debian 12.2.0-14) 12.2.0"
    assert options["CONFIG_HZ"] == "250"
    assert "CONFIG_NF_TABLES" not in options


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "ip_vs 196608 0 - Live 0x0000000000000000\nxt_u32 16384 2 - Live 0x0000000000000000\n",
            {"ip_vs", "xt_u32"},
        ),
        (
            "kernel/net/xfrm/xfrm_user.ko\nkernel/crypto/gcm.ko\nkernel/drivers/net/dummy-thing.ko.zst\n",
            {"xfrm_user", "gcm", "dummy_thing"},
        ),
        ("", set()),
    ],
    ids=["proc-modules", "modules-builtin", "empty"],
)
def test_parse_module_list(text, expected):
    assert parse_module_list(text) == expected


def _config(**values):
    """Options with every feature option unset, except the given ones."""
    options = dict.fromkeys(ALL_OPTIONS)
    options.update(("CONFIG_" + key, value) for key, value in values.items())
    return options


ALL_Y = {option[len("CONFIG_") :]: "y" for option in ALL_OPTIONS}
ALL_M = {option[len("CONFIG_") :]: "m" for option in ALL_OPTIONS}


@pytest.mark.parametrize(
    "options, loaded, files, expected",
    [
        pytest.param(
            _config(**ALL_Y),
            None,
            set(),
            {"ipvs": (True, []), "vxlan": (True, []), "overlay_encryption": (True, [])},
            id="all-builtin",
        ),
        pytest.param(
            _config(**ALL_M),
            set(),
            ALL_MODULES,
            {"ipvs": (True, []), "vxlan": (True, []), "overlay_encryption": (True, [])},
            id="all-modules-with-files",
        ),
        pytest.param(
            _config(**ALL_M),
            {"vxlan"},
            set(),
            {
                "ipvs": (False, ["CONFIG_IP_VS"]),
                "vxlan": (True, []),
                "overlay_encryption": (
                    False,
                    ["CONFIG_XFRM_USER", "CONFIG_INET_ESP", "CONFIG_CRYPTO_GCM"] + BPF_U32,
                ),
            },
            id="modules-without-files-only-vxlan-loaded",
        ),
        pytest.param(
            _config(IP_VS="m", VXLAN="y", XFRM_USER="y", INET_ESP="m", CRYPTO_GCM="y"),
            set(),
            ALL_MODULES,
            {
                "ipvs": (True, []),
                "vxlan": (True, []),
                "overlay_encryption": (False, BPF_U32),
            },
            id="esp-but-neither-bpf-nor-u32",
        ),
        pytest.param(
            _config(XFRM_USER="y", CRYPTO_GCM="y", NETFILTER_XT_MATCH_U32="m"),
            {"xt_u32"},
            set(),
            {
                "ipvs": (False, ["CONFIG_IP_VS"]),
                "vxlan": (False, ["CONFIG_VXLAN"]),
                "overlay_encryption": (False, ["CONFIG_INET_ESP"]),
            },
            id="u32-but-no-esp",
        ),
        pytest.param(
            # The kernel of the CI machine: no IPVS, no ESP, no GCM.
            _config(
                VXLAN="y",
                XFRM_USER="y",
                NETFILTER_XT_MATCH_BPF="y",
                NETFILTER_XT_MATCH_U32="y",
            ),
            None,
            set(),
            {
                "ipvs": (False, ["CONFIG_IP_VS"]),
                "vxlan": (True, []),
                "overlay_encryption": (False, ["CONFIG_INET_ESP", "CONFIG_CRYPTO_GCM"]),
            },
            id="no-ipvs-no-esp",
        ),
        pytest.param(
            {},
            None,
            set(),
            {
                "ipvs": (False, ["CONFIG_IP_VS"]),
                "vxlan": (False, ["CONFIG_VXLAN"]),
                "overlay_encryption": (
                    False,
                    ["CONFIG_XFRM_USER", "CONFIG_INET_ESP", "CONFIG_CRYPTO_GCM"] + BPF_U32,
                ),
            },
            id="options-absent-from-config",
        ),
        pytest.param(
            None,
            {"vxlan", "xt_u32"},
            set(),
            {"ipvs": (None, []), "vxlan": (True, []), "overlay_encryption": (None, [])},
            id="only-loaded-modules-known",
        ),
        pytest.param(
            None,
            None,
            set(),
            {"ipvs": (None, []), "vxlan": (None, []), "overlay_encryption": (None, [])},
            id="nothing-known",
        ),
    ],
)
def test_evaluate_features(options, loaded, files, expected):
    features = evaluate_features(options, loaded, files.__contains__)
    assert {name: (feature["available"], feature["missing"]) for name, feature in features.items()} == expected


def test_evaluate_features_reports_option_values():
    features = evaluate_features(parse_kernel_config(KERNEL_CONFIG), set(), ALL_MODULES.__contains__)
    assert features["ipvs"]["options"] == {"CONFIG_IP_VS": "m"}
    assert features["overlay_encryption"] == {
        "available": True,
        "missing": [],
        "options": {
            "CONFIG_XFRM_USER": "m",
            "CONFIG_INET_ESP": "m",
            "CONFIG_CRYPTO_GCM": "y",
            "CONFIG_NETFILTER_XT_MATCH_BPF": "m",
            "CONFIG_NETFILTER_XT_MATCH_U32": None,
        },
    }


def test_options_from_modules():
    builtin = {"xfrm_user", "gcm", "vxlan"}
    options = options_from_modules(builtin, {"ip_vs", "esp4"}.__contains__)
    assert options == {
        "CONFIG_IP_VS": "m",
        "CONFIG_VXLAN": "y",
        "CONFIG_XFRM_USER": "y",
        "CONFIG_INET_ESP": "m",
        "CONFIG_CRYPTO_GCM": "y",
    }


RELEASE = "6.1.0-18-amd64"


def _write(path, text, compress=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with (gzip.open if compress else open)(path, "wt") as handle:
        handle.write(text)


def test_read_kernel_uses_first_readable_config(tmp_path):
    proc, modules_root = str(tmp_path / "proc"), str(tmp_path / "lib-modules")
    _write(os.path.join(str(tmp_path), "boot", "config-" + RELEASE), KERNEL_CONFIG)
    paths = [str(tmp_path / "proc" / "config.gz"), str(tmp_path / "boot" / "config-{release}")]
    source, features = read_kernel(paths, RELEASE, proc, modules_root)
    assert source == str(tmp_path / "boot" / ("config-" + RELEASE))
    # No /lib/modules/<release> (a container): =m options are trusted.
    assert features["ipvs"]["available"] is True

    _write(paths[0], "# CONFIG_IP_VS is not set\n", compress=True)
    source, features = read_kernel(paths, RELEASE, proc, modules_root)
    assert source == paths[0]
    assert features["ipvs"] == {
        "available": False,
        "missing": ["CONFIG_IP_VS"],
        "options": {"CONFIG_IP_VS": None},
    }


def test_read_kernel_checks_module_files(tmp_path):
    modules_root = str(tmp_path / "lib-modules")
    config = str(tmp_path / "config")
    _write(config, KERNEL_CONFIG)
    _write(os.path.join(modules_root, RELEASE, "kernel", "net", "vxlan", "vxlan.ko.xz"), "")
    _write(os.path.join(str(tmp_path), "proc", "modules"), "ip_vs 196608 0 - Live 0x0\n")
    source, features = read_kernel([config], RELEASE, str(tmp_path / "proc"), modules_root)
    assert source == config
    assert features["ipvs"]["available"] is True  # loaded
    assert features["vxlan"]["available"] is True  # file present
    assert features["overlay_encryption"]["missing"] == [
        "CONFIG_XFRM_USER",
        "CONFIG_INET_ESP",
        "CONFIG_NETFILTER_XT_MATCH_BPF",
        "CONFIG_NETFILTER_XT_MATCH_U32",
    ]


def test_read_kernel_falls_back_to_modules_builtin(tmp_path):
    modules_root = str(tmp_path / "lib-modules")
    builtin = os.path.join(modules_root, RELEASE, "modules.builtin")
    _write(builtin, "kernel/net/xfrm/xfrm_user.ko\nkernel/crypto/gcm.ko\n")
    _write(os.path.join(modules_root, RELEASE, "kernel", "net", "ipv4", "esp4.ko.zst"), "")
    _write(os.path.join(modules_root, RELEASE, "kernel", "net", "xt_u32.ko"), "")
    source, features = read_kernel([], RELEASE, str(tmp_path / "proc"), modules_root)
    assert source == builtin
    assert features["overlay_encryption"]["available"] is True
    assert features["ipvs"]["available"] is False


def test_read_kernel_with_nothing_readable(tmp_path):
    source, features = read_kernel([str(tmp_path / "nope")], RELEASE, str(tmp_path / "proc"), str(tmp_path / "lib"))
    assert source is None
    assert {feature["available"] for feature in features.values()} == {None}


# --- ports ----------------------------------------------------------------------

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0949 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 20001 1 0000000000000000 100 0 0 10 0
   2: 0A00000A:0949 1400000A:C350 01 00000000:00000000 02:000A3E4B 00000000     0        0 31400 2 0000000000000000 20 4 30 10 -1
"""  # noqa: E501
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F0A 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 31338 1 0000000000000000 100 0 0 10 0
"""  # noqa: E501
PROC_NET_UDP = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  123: 00000000:12B5 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 0 2 0000000000000000 0
  456: 00000000:1F0A 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 31339 2 0000000000000000 0
"""


@pytest.mark.parametrize(
    "text, listen_only, expected",
    [
        (PROC_NET_TCP, True, [(2377, 31337), (3306, 20001)]),
        (PROC_NET_TCP, False, [(2377, 31337), (3306, 20001), (2377, 31400)]),
        (PROC_NET_TCP6, True, [(7946, 31338)]),
        (PROC_NET_UDP, False, [(4789, 0), (7946, 31339)]),
        (PROC_NET_UDP.splitlines()[0], False, []),
    ],
    ids=["tcp-listen", "tcp-all", "tcp6", "udp", "header-only"],
)
def test_parse_proc_net(text, listen_only, expected):
    assert parse_proc_net(text, listen_only) == expected


SWARM_PORTS = [
    {"port": 2377, "proto": "tcp"},
    {"port": 7946, "proto": "tcp"},
    {"port": 7946, "proto": "udp"},
    {"port": 4789, "proto": "udp"},
]


def test_find_port_holders():
    sockets = {
        "tcp": [(2377, 31337), (3306, 20001), (7946, 31338)],
        "udp": [(4789, 0), (4789, 40000), (7946, 31339)],
    }
    processes = [
        (1, "systemd", ["/dev/null", "socket:[5118]"]),
        (812, "dockerd", ["socket:[31337]", "socket:[31338]", "socket:[31337]", "pipe:[9]"]),
        (813, "dockerd-helper", ["anon_inode:[eventpoll]"]),
    ]
    ports = SWARM_PORTS + [{"port": 8080, "proto": "tcp"}]
    dockerd = [{"pid": 812, "name": "dockerd"}]
    assert find_port_holders(ports, sockets, processes) == [
        {"port": 2377, "proto": "tcp", "in_use": True, "holders": dockerd, "kernel_owned": False},
        {"port": 7946, "proto": "tcp", "in_use": True, "holders": dockerd, "kernel_owned": False},
        # Bound but held by no process that could be seen.
        {"port": 7946, "proto": "udp", "in_use": True, "holders": [], "kernel_owned": True},
        # The kernel's VXLAN socket (inode 0 and an unheld inode).
        {"port": 4789, "proto": "udp", "in_use": True, "holders": [], "kernel_owned": True},
        {"port": 8080, "proto": "tcp", "in_use": False, "holders": [], "kernel_owned": False},
    ]


def test_read_ports_from_a_proc_tree(tmp_path):
    proc = str(tmp_path)
    _write(os.path.join(proc, "net", "tcp"), PROC_NET_TCP)
    _write(os.path.join(proc, "net", "udp"), PROC_NET_UDP)
    # No tcp6/udp6: IPv6 disabled.
    _write(os.path.join(proc, "812", "comm"), "dockerd\n")
    os.makedirs(os.path.join(proc, "812", "fd"))
    os.symlink("socket:[31337]", os.path.join(proc, "812", "fd", "7"))
    os.symlink("/var/lib/docker/x", os.path.join(proc, "812", "fd", "8"))
    os.makedirs(os.path.join(proc, "sys"))

    ports, complete = read_ports(SWARM_PORTS, proc)
    assert complete is True
    assert [(p["port"], p["proto"], p["in_use"], p["kernel_owned"]) for p in ports] == [
        (2377, "tcp", True, False),
        (7946, "tcp", False, False),
        (7946, "udp", True, True),
        (4789, "udp", True, True),
    ]
    assert ports[0]["holders"] == [{"pid": 812, "name": "dockerd"}]


# --- addresses ------------------------------------------------------------------

FIB_TRIE_SMALL = """\
Main:
  +-- 0.0.0.0/0 3 0 4
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
        +-- 192.0.2.0/30 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 4
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 192.0.2.0/24 2 0 2
           |-- 192.0.2.2
              /32 host LOCAL
"""
FIB_TRIE_TWO_NICS = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 10.0.0.0/8 2 0 2
        +-- 10.0.0.0/28 2 0 2
           |-- 10.0.0.0
              /24 link UNICAST
           |-- 10.0.0.5
              /32 host LOCAL
        |-- 10.20.0.7
           /32 host LOCAL
        |-- 10.20.0.0
           /16 link UNICAST
"""


@pytest.mark.parametrize(
    "text, expected",
    [
        (FIB_TRIE_SMALL, ["127.0.0.1", "192.0.2.2"]),
        (FIB_TRIE_TWO_NICS, ["10.0.0.5", "10.20.0.7"]),
        ("", []),
    ],
    ids=["loopback-and-nic-deduplicated", "two-nics", "empty"],
)
def test_parse_fib_trie(text, expected):
    assert parse_fib_trie(text) == expected


def test_parse_if_inet6():
    text = (
        "fd000000000000000000000000000002 04 40 00 82     eth0\n"
        "00000000000000000000000000000001 01 80 10 80       lo\n"
        "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n"
    )
    assert parse_if_inet6(text) == ["fd00::2", "::1", "fe80::fc:ff:fe00:1"]


# --- swarm ----------------------------------------------------------------------

MANAGER_ID = "qo2dfdig9mmxqkawulggepdih"
INFO_MANAGER = {
    "ID": "7TRN:IPZB:QYBB:VPBQ:UWYJ:KDVL:X6RF:3Q2L:ZAUE:YP2D:FSLD:BK5G",
    "ServerVersion": "24.0.7",
    "Swarm": {
        "NodeID": MANAGER_ID,
        "NodeAddr": "192.0.2.10",
        "LocalNodeState": "active",
        "ControlAvailable": True,
        "Error": "",
        "RemoteManagers": [{"NodeID": MANAGER_ID, "Addr": "192.0.2.10:2377"}],
        "Nodes": 2,
        "Managers": 1,
        "Cluster": {
            "ID": "8gz6bn1ebvlrx3a0x3jdelgpm",
            "Version": {"Index": 10},
            "Spec": {"Name": "default", "EncryptionConfig": {"AutoLockManagers": True}},
            "DefaultAddrPool": ["10.0.0.0/8"],
            "SubnetSize": 24,
            "DataPathPort": 4789,
        },
    },
}
INFO_WORKER = {
    "Swarm": {
        "NodeID": "9x2rt0wbpq3m4bdx0pddcu6n1",
        "NodeAddr": "192.0.2.20",
        "LocalNodeState": "active",
        "ControlAvailable": False,
        "Error": "",
        "RemoteManagers": [{"NodeID": MANAGER_ID, "Addr": "192.0.2.10:2377"}],
        "Cluster": None,
    }
}
INFO_INACTIVE = {
    "Swarm": {
        "NodeID": "",
        "NodeAddr": "",
        "LocalNodeState": "inactive",
        "ControlAvailable": False,
        "Error": "",
        "RemoteManagers": None,
    }
}
INFO_LOCKED = {
    "Swarm": {
        "NodeID": "",
        "NodeAddr": "",
        "LocalNodeState": "locked",
        "ControlAvailable": False,
        "Error": "",
        "RemoteManagers": None,
    }
}
NO_SWARM = {
    "state": None,
    "error": None,
    "node_id": None,
    "node_addr": None,
    "cluster_id": None,
    "autolock": None,
    "is_manager": False,
    "control_available": False,
    "remote_managers": [],
}


@pytest.mark.parametrize(
    "info, expected",
    [
        (
            INFO_MANAGER,
            {
                "state": "active",
                "error": None,
                "node_id": MANAGER_ID,
                "node_addr": "192.0.2.10",
                "cluster_id": "8gz6bn1ebvlrx3a0x3jdelgpm",
                "autolock": True,
                "is_manager": True,
                "control_available": True,
                "remote_managers": ["192.0.2.10:2377"],
            },
        ),
        (
            INFO_WORKER,
            {
                "state": "active",
                "error": None,
                "node_id": "9x2rt0wbpq3m4bdx0pddcu6n1",
                "node_addr": "192.0.2.20",
                "cluster_id": None,
                "autolock": None,
                "is_manager": False,
                "control_available": False,
                "remote_managers": ["192.0.2.10:2377"],
            },
        ),
        (INFO_INACTIVE, dict(NO_SWARM, state="inactive")),
        (INFO_LOCKED, dict(NO_SWARM, state="locked")),
        ({}, NO_SWARM),
    ],
    ids=["active-manager", "worker", "inactive", "locked", "unreachable"],
)
def test_summarise_swarm(info, expected):
    assert summarise_swarm(info) == expected


NODES = [
    {
        "ID": "9x2rt0wbpq3m4bdx0pddcu6n1",
        "Version": {"Index": 21},
        "Spec": {"Labels": {}, "Role": "worker", "Availability": "drain"},
        "Description": {"Hostname": "wrk1", "Platform": {"OS": "linux"}},
        "Status": {"State": "down", "Addr": "192.0.2.20"},
    },
    {
        "ID": MANAGER_ID,
        "Version": {"Index": 9},
        "Spec": {"Labels": {"zone": "a"}, "Role": "manager", "Availability": "active"},
        "Description": {"Hostname": "mgr1"},
        "Status": {"State": "ready", "Addr": "0.0.0.0"},  # noqa: S104
        "ManagerStatus": {"Leader": True, "Reachability": "reachable", "Addr": "192.0.2.10:2377"},
    },
    {
        "ID": "b3lbxqzyw8ir2lo1wz5ksd5fa",
        "Spec": {"Role": "manager", "Availability": "active"},
        "Description": {"Hostname": "mgr2"},
        "Status": {"State": "ready", "Addr": "127.0.0.1"},
        "ManagerStatus": {"Reachability": "unreachable", "Addr": "[2001:db8::11]:2377"},
    },
]


def test_summarise_nodes():
    assert summarise_nodes(NODES) == [
        {
            "id": MANAGER_ID,
            "hostname": "mgr1",
            "role": "manager",
            "availability": "active",
            "state": "ready",
            "addr": "192.0.2.10",
            "leader": True,
            "reachability": "reachable",
            "labels": {"zone": "a"},
        },
        {
            "id": "b3lbxqzyw8ir2lo1wz5ksd5fa",
            "hostname": "mgr2",
            "role": "manager",
            "availability": "active",
            "state": "ready",
            "addr": "2001:db8::11",
            "leader": False,
            "reachability": "unreachable",
            "labels": {},
        },
        {
            "id": "9x2rt0wbpq3m4bdx0pddcu6n1",
            "hostname": "wrk1",
            "role": "worker",
            "availability": "drain",
            "state": "down",
            "addr": "192.0.2.20",
            "leader": False,
            "reachability": None,
            "labels": {},
        },
    ]


# --- Docker API over a real unix socket -----------------------------------------


def test_client_get_json_and_post(engine):
    engine.routes[("GET", "/version")] = (200, {"Version": "24.0.7"})
    engine.routes[("POST", "/swarm/init")] = (200, "8gz6bn1ebvlrx3a0x3jdelgpm")
    client = DockerClient("unix://" + engine.server_address)
    assert client.get_json("/version") == {"Version": "24.0.7"}
    status, answer = client.request("POST", "/swarm/init", {"ListenAddr": "0.0.0.0:2377"})
    assert (status, answer) == (200, "8gz6bn1ebvlrx3a0x3jdelgpm")
    assert engine.requests[-1] == ("POST", "/swarm/init", b'{"ListenAddr": "0.0.0.0:2377"}')


def test_client_raises_on_http_error(engine):
    engine.routes[("GET", "/nodes")] = (
        503,
        {"message": "This node is not a swarm manager."},
    )
    client = DockerClient("unix://" + engine.server_address)
    with pytest.raises(DockerAPIError, match="HTTP 503: This node is not a swarm manager") as info:
        client.get_json("/nodes")
    assert info.value.status == 503


def test_client_without_daemon(tmp_path):
    client = DockerClient("unix://" + str(tmp_path / "docker.sock"))
    with pytest.raises(DockerAPIError, match="No such file or directory") as info:
        client.get_json("/version")
    assert info.value.status is None


def test_client_rejects_tcp_hosts():
    with pytest.raises(DockerAPIError, match="only unix://"):
        DockerClient("tcp://192.0.2.10:2375")


@pytest.mark.parametrize(
    "info, expected_nodes",
    [(INFO_MANAGER, 3), (INFO_WORKER, 0), (INFO_INACTIVE, 0)],
    ids=["manager", "worker", "inactive"],
)
def test_probe_docker_lists_nodes_on_managers_only(engine, info, expected_nodes):
    engine.routes[("GET", "/version")] = (200, {"Version": "24.0.7"})
    engine.routes[("GET", "/info")] = (200, info)
    engine.routes[("GET", "/nodes")] = (200, NODES)
    result = probe_docker(DockerClient("unix://" + engine.server_address))
    assert result["reachable"] is True
    assert result["error"] is None
    assert result["server_version"] == "24.0.7"
    assert result["swarm"] == summarise_swarm(info)
    assert len(result["nodes"]) == expected_nodes
    assert (("GET", "/nodes", b"") in engine.requests) == bool(expected_nodes)


def test_probe_docker_unreachable(tmp_path):
    result = probe_docker(DockerClient("unix://" + str(tmp_path / "docker.sock")))
    assert result["reachable"] is False
    assert "No such file or directory" in result["error"]
    assert result["swarm"] == NO_SWARM
    assert result["nodes"] == []


LEADERLESS = {"Swarm": {**INFO_MANAGER["Swarm"], "Cluster": None}}


def test_probe_docker_waits_for_a_raft_leader(engine):
    answers = iter([LEADERLESS, LEADERLESS, INFO_MANAGER])
    engine.routes[("GET", "/version")] = (200, {"Version": "24.0.7"})
    engine.routes[("GET", "/info")] = lambda: (200, next(answers))
    engine.routes[("GET", "/nodes")] = (200, NODES)
    slept = []
    result = probe_docker(DockerClient("unix://" + engine.server_address), leader_timeout=60, sleep=slept.append)
    assert slept == [1, 1]
    assert result["swarm"]["cluster_id"] == "8gz6bn1ebvlrx3a0x3jdelgpm"
    assert len(result["nodes"]) == 3
    assert result["error"] is None


def test_probe_docker_reports_a_manager_that_never_sees_a_leader(engine):
    engine.routes[("GET", "/version")] = (200, {"Version": "24.0.7"})
    engine.routes[("GET", "/info")] = (200, LEADERLESS)
    slept = []
    result = probe_docker(DockerClient("unix://" + engine.server_address), leader_timeout=3, sleep=slept.append)
    assert slept == [1, 1, 1]
    assert result["error"] == "this manager sees no Raft leader after 3 s"
    assert result["swarm"]["cluster_id"] is None
    assert result["nodes"] == []
    assert ("GET", "/nodes", b"") not in engine.requests


def test_probe_docker_retries_an_info_that_fails_during_an_election(engine):
    answers = iter([(500, {"message": "context deadline exceeded"}), (200, INFO_MANAGER)])
    engine.routes[("GET", "/version")] = (200, {"Version": "24.0.7"})
    engine.routes[("GET", "/info")] = lambda: next(answers)
    engine.routes[("GET", "/nodes")] = (200, NODES)
    slept = []
    result = probe_docker(DockerClient("unix://" + engine.server_address), leader_timeout=60, sleep=slept.append)
    assert slept == [1]
    assert result["error"] is None
    assert result["swarm"]["cluster_id"] == "8gz6bn1ebvlrx3a0x3jdelgpm"


def test_read_overlay_sandboxes_keeps_only_overlay_namespaces(tmp_path):
    assert read_overlay_sandboxes(str(tmp_path / "missing")) == []
    netns = tmp_path / "netns"
    netns.mkdir()
    for name in ("09e2dbbd46ec", "1-8ki7xr4507", "lb_8ki7xr450", "ingress_sbox", "default"):
        (netns / name).touch()
    assert read_overlay_sandboxes(str(tmp_path)) == ["1-8ki7xr4507", "ingress_sbox", "lb_8ki7xr450"]


def test_read_overlay_vxlans_keeps_only_the_engines_vxlan_devices(tmp_path):
    assert read_overlay_vxlans(str(tmp_path / "missing")) == []
    devices = ("lo", "eth0", "docker0", "docker_gwbridge", "vx-001001-8ki7x", "vx-00100a-u1lxz", "vxlan0", "veth1")
    for name in devices:
        (tmp_path / name).touch()
    assert read_overlay_vxlans(str(tmp_path)) == ["vx-001001-8ki7x", "vx-00100a-u1lxz"]
