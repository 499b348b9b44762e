#!/usr/bin/python
# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: swarm_host_info
short_description: Probe a host's readiness for Docker Swarm and its swarm state
version_added: 0.1.0
description:
  - Reads, without changing anything, what a host offers Docker Swarm
    (kernel features, free swarm ports, interface addresses, init system) and the
    state of its Docker daemon and swarm membership.
  - Works on a bare host with the Python standard library only; the Docker daemon is
    queried with plain HTTP over its unix socket.
  - Ports held by processes of other users are only attributed correctly when run as
    root (use O(ignore:become)); a warning is emitted otherwise.
author: ShopStream platform team (@shopstream)
extends_documentation_fragment:
  - shopstream.swarm.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - This action does not modify state.
options:
  docker_host:
    description:
      - Address of the Docker daemon. Only V(unix://) sockets are supported.
    type: str
    default: unix:///var/run/docker.sock
  ports:
    description:
      - Ports to check. TCP ports are in use when a socket listens on them, UDP ports
        when any socket is bound to them (IPv4 or IPv6).
    type: list
    elements: dict
    default:
      - {port: 2377, proto: tcp}
      - {port: 7946, proto: tcp}
      - {port: 7946, proto: udp}
      - {port: 4789, proto: udp}
    suboptions:
      port:
        description: Port number.
        type: int
        required: true
      proto:
        description: Transport protocol.
        type: str
        choices: [tcp, udp]
        required: true
  kernel_config_paths:
    description:
      - Kernel configurations to try in order; the first readable one is used.
        C({release}) is replaced by the running kernel's release.
      - When none is readable, C(/lib/modules/{release}/modules.builtin) and the module
        files are used, then the loaded modules of C(/proc/modules). Features that
        cannot be decided are reported with C(available) V(null) and a warning.
    type: list
    elements: str
    default: ['/proc/config.gz', '/boot/config-{release}']
  leader_timeout:
    description:
      - Seconds to wait for a Raft leader when this host is a manager that sees none, as
        happens for a few seconds after the leader goes down. Without a leader a manager
        reports no cluster ID and no node list.
      - When none is elected in time, C(docker.error) says so.
    type: int
    default: 60
  docker_exec_root:
    description:
      - The engine's exec root (C(exec-root) in C(daemon.json)), whose C(netns) directory
        holds the namespaces of its overlay networks.
    type: path
    default: /var/run/docker
  disk_path:
    description:
      - The engine's data root (C(data-root) in C(daemon.json)), where images, volumes and logs
        go. Its file system's free space is reported; on a new host, that of the nearest
        existing directory above it.
    type: path
    default: /var/lib/docker
notes:
  - An option built as a module (C(=m)) counts as present when the module is loaded or
    its file exists under C(/lib/modules/{release}), or when that directory does not
    exist at all (containers share the host's kernel).
seealso:
  - module: community.docker.docker_swarm_info
"""

EXAMPLES = r"""
- name: Probe the host
  shopstream.swarm.swarm_host_info:
  register: host_info

- name: Refuse hosts that cannot run the routing mesh
  ansible.builtin.assert:
    that:
      - host_info.kernel.features.ipvs.available is not false
      - host_info.kernel.features.vxlan.available is not false
    fail_msg: "Missing: {{ host_info.kernel.features.values() | map(attribute='missing') | flatten }}"

- name: Refuse swarm ports already taken on a host not yet in a swarm
  ansible.builtin.assert:
    that: host_info.ports | selectattr('in_use') | list | length == 0
    fail_msg: "Ports in use: {{ host_info.ports | selectattr('in_use') | list }}"
  when: host_info.docker.swarm.state == 'inactive'

- name: Check only the manager port, against another daemon socket
  shopstream.swarm.swarm_host_info:
    docker_host: unix:///run/user/1000/docker.sock
    ports:
      - port: 2377
        proto: tcp
  register: host_info
"""

RETURN = r"""
clock:
  description: This host's clock when the probe ended, in seconds since the epoch, to compare with the controller's.
  returned: always
  type: float
  sample: 1796255700.25
disk:
  description: The file system of O(disk_path) (C(path) is the directory read), C(free_mb) and C(size_mb).
  returned: always
  type: dict
  sample: {path: /var/lib/docker, free_mb: 68714, size_mb: 258020}
kernel:
  description: Kernel features Docker Swarm needs.
  returned: always
  type: dict
  contains:
    release:
      description: Release of the running kernel.
      type: str
      sample: 6.1.0-18-amd64
    config_source:
      description:
        - File the options were read from (a kernel config, C(modules.builtin) or
          C(/proc/modules)); V(null) when nothing could be read.
      type: str
      sample: /boot/config-6.1.0-18-amd64
    features:
      description:
        - One entry per feature, V(ipvs) (VIP endpoint mode, ingress routing mesh),
          V(vxlan) (overlay networks) and V(overlay_encryption) (encrypted overlays).
        - Each has C(available) (V(true), V(false) or V(null) when unknown), C(missing)
          (the C(CONFIG_) options lacking; for a set of alternatives all of them) and
          C(options) (each relevant option's value, V(y), V(m) or V(null)).
      type: dict
      sample:
        ipvs: {available: false, missing: [CONFIG_IP_VS], options: {CONFIG_IP_VS: null}}
        vxlan: {available: true, missing: [], options: {CONFIG_VXLAN: m}}
        overlay_encryption:
          available: false
          missing: [CONFIG_NETFILTER_XT_MATCH_BPF, CONFIG_NETFILTER_XT_MATCH_U32]
          options:
            CONFIG_XFRM_USER: y
            CONFIG_INET_ESP: m
            CONFIG_CRYPTO_GCM: y
            CONFIG_NETFILTER_XT_MATCH_BPF: null
            CONFIG_NETFILTER_XT_MATCH_U32: null
ports:
  description: Usage of each port of O(ports), in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    port:
      description: Port number.
      type: int
      sample: 4789
    proto:
      description: V(tcp) or V(udp).
      type: str
      sample: udp
    in_use:
      description: Whether a listening TCP socket or a bound UDP socket uses the port.
      type: bool
      sample: true
    holders:
      description: Processes holding those sockets, as C(pid) and C(name).
      type: list
      elements: dict
      sample: [{pid: 812, name: dockerd}]
    kernel_owned:
      description:
        - Whether a socket on the port is held by no process, that is opened by the
          kernel itself (such as the VXLAN socket of a swarm node on 4789/udp).
      type: bool
      sample: false
docker:
  description: State of the Docker daemon.
  returned: always
  type: dict
  contains:
    socket:
      description: Path of the daemon's unix socket.
      type: str
      sample: /var/run/docker.sock
    reachable:
      description: Whether the daemon answered.
      type: bool
      sample: true
    error:
      description: Why the daemon could not be reached or queried, else V(null).
      type: str
      sample: "Cannot talk to the Docker daemon at unix:///var/run/docker.sock: [Errno 2] No such file or directory"
    server_version:
      description: Version of the Docker engine.
      type: str
      sample: 24.0.7
    swarm:
      description: Swarm membership, from C(GET /info); all V(null)/V(false)/empty when unreachable.
      type: dict
      contains:
        state:
          description: V(inactive), V(pending), V(active), V(error), V(locked), or V(null) when unknown.
          type: str
          sample: active
        error:
          description: The swarm error reported by the daemon, if any.
          type: str
          sample: null
        node_id:
          description: ID of this node.
          type: str
          sample: 4ja7rjm8mmtlvinn8ffhzvrzm
        node_addr:
          description: Address this node advertises.
          type: str
          sample: 192.0.2.10
        cluster_id:
          description: ID of the swarm; only known on managers.
          type: str
          sample: yqh2a5udqbvqjl0hmf9w6ooq1
        autolock:
          description: Whether the swarm's managers lock when their engine restarts (autolock); only known on managers.
          type: bool
          version_added: 0.3.0
        is_manager:
          description: Whether this node is a manager.
          type: bool
          sample: true
        control_available:
          description: Whether this node can serve the swarm control API.
          type: bool
          sample: true
        remote_managers:
          description: Addresses (C(ip:port)) of the managers known to this node.
          type: list
          elements: str
          sample: ["192.0.2.10:2377"]
    overlay_sandboxes:
      description:
        - Namespaces of overlay networks under O(docker_exec_root), as a killed engine
          leaves them; their VXLAN devices keep 4789/udp open until the engine starts again.
      type: list
      elements: str
      sample: [1-8ki7xr4507, ingress_sbox, lb_8ki7xr450]
    overlay_vxlans:
      description:
        - Overlay VXLAN devices (C(vx-<VNI>-<network>)) in the host's own network namespace, where
          the engine makes them before moving each into its overlay's namespace; one left there
          (the engine stopped in between) makes that overlay fail on this node with "error
          creating vxlan interface - file exists".
      type: list
      elements: str
      sample: [vx-001001-8ki7x]
    nodes:
      description:
        - Nodes of the swarm, sorted by hostname; only filled in on a manager with
          control available, empty otherwise.
        - C(addr) is the advertise address of managers and the address seen by the
          managers for workers.
      type: list
      elements: dict
      sample:
        - id: 4ja7rjm8mmtlvinn8ffhzvrzm
          hostname: mgr1
          role: manager
          availability: active
          state: ready
          addr: 192.0.2.10
          leader: true
          reachability: reachable
          labels: {zone: a}
        - id: 9x2rt0wbpq3m4bdx0pddcu6n1
          hostname: wrk1
          role: worker
          availability: active
          state: ready
          addr: 192.0.2.20
          leader: false
          reachability: null
          labels: {}
init_system:
  description: Name of the process with PID 1, V(null) when unreadable.
  returned: always
  type: str
  sample: systemd
addresses:
  description: IPv4 then IPv6 addresses of the host's interfaces, loopback and link-local included.
  returned: always
  type: list
  elements: str
  sample: [127.0.0.1, 192.0.2.10, "::1", "fe80::5054:ff:fe12:3456"]
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    DEFAULT_DOCKER_HOST,
    DockerAPIError,
    DockerClient,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._host_probe import (
    read_addresses,
    read_init_system,
    read_kernel,
    read_overlay_sandboxes,
    read_overlay_vxlans,
    read_ports,
    summarise_nodes,
    summarise_swarm,
)

SWARM_PORTS = [
    {"port": 2377, "proto": "tcp"},
    {"port": 7946, "proto": "tcp"},
    {"port": 7946, "proto": "udp"},
    {"port": 4789, "proto": "udp"},
]


def probe_docker(client, leader_timeout=0, sleep=time.sleep):
    """Read the daemon and its swarm state.

    While Raft elects a leader (for a few seconds after the leader went down), a manager
    answers /info slowly or without cluster details: retry for up to leader_timeout seconds
    before reporting what it said.
    """
    result = {
        "socket": client.socket_path,
        "reachable": False,
        "error": None,
        "server_version": None,
        "swarm": summarise_swarm({}),
        "nodes": [],
    }
    try:
        result["server_version"] = client.get_json("/version").get("Version")
    except DockerAPIError as exc:
        result["error"] = str(exc)
        return result
    result["reachable"] = True
    waited = 0
    while True:
        try:
            swarm, error = summarise_swarm(client.get_json("/info")), None
        except DockerAPIError as exc:
            swarm, error = summarise_swarm({}), str(exc)
        leaderless = swarm["state"] == "active" and swarm["control_available"] and not swarm["cluster_id"]
        if not (error or leaderless) or waited >= leader_timeout:
            break
        sleep(1)
        waited += 1
    result["swarm"] = swarm
    result["error"] = error or (f"this manager sees no Raft leader after {waited} s" if leaderless else None)
    if swarm["state"] == "active" and swarm["control_available"] and not leaderless:
        try:
            result["nodes"] = summarise_nodes(client.get_json("/nodes"))
        except DockerAPIError as exc:
            result["error"] = str(exc)
    return result


def read_disk(path):
    """Free and total space of the file system holding ``path`` (or its nearest existing parent)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and path != os.path.dirname(path):
        path = os.path.dirname(path)
    stat = os.statvfs(path)
    mb = 1024 * 1024
    free, size = stat.f_bavail * stat.f_frsize // mb, stat.f_blocks * stat.f_frsize // mb
    return {"path": path, "free_mb": free, "size_mb": size}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST),
            ports=dict(
                type="list",
                elements="dict",
                default=SWARM_PORTS,
                options=dict(
                    port=dict(type="int", required=True),
                    proto=dict(type="str", required=True, choices=["tcp", "udp"]),
                ),
            ),
            kernel_config_paths=dict(
                type="list",
                elements="str",
                default=["/proc/config.gz", "/boot/config-{release}"],
            ),
            leader_timeout=dict(type="int", default=60),
            docker_exec_root=dict(type="path", default="/var/run/docker"),
            disk_path=dict(type="path", default="/var/lib/docker"),
        ),
        supports_check_mode=True,
    )

    try:
        client = DockerClient(module.params["docker_host"])
    except DockerAPIError as exc:
        module.fail_json(msg=str(exc))

    release = os.uname().release
    config_source, features = read_kernel(module.params["kernel_config_paths"], release)
    unknown = sorted(name for name, feature in features.items() if feature["available"] is None)
    if unknown:
        tried = ", ".join(module.params["kernel_config_paths"])
        module.warn(
            f"Could not tell whether the kernel supports {', '.join(unknown)}: no readable kernel "
            f"config (tried {tried}), modules.builtin or loaded module proving it"
        )

    ports, complete = read_ports(module.params["ports"])
    if not complete:
        module.warn(
            "Could not inspect the file descriptors of every process (not root?): port "
            "holders may be missing and kernel_owned may be wrong"
        )

    docker = probe_docker(client, module.params["leader_timeout"])
    docker["overlay_sandboxes"] = read_overlay_sandboxes(module.params["docker_exec_root"])
    docker["overlay_vxlans"] = read_overlay_vxlans()
    module.exit_json(
        changed=False,
        kernel={"release": release, "config_source": config_source, "features": features},
        ports=ports,
        docker=docker,
        init_system=read_init_system(),
        addresses=read_addresses(),
        disk=read_disk(module.params["disk_path"]),
        clock=time.time(),
    )


if __name__ == "__main__":
    main()
