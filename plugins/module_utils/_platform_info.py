# Copyright (c) 2026, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What runs of the stacks, as data the verify role checks: services, tasks, containers.

Pure functions over the Engine API's answers; ``swarm_platform_info`` reads them. Whether a
service converged is ``_stack_assess.assess``, the rule ``swarm_stack`` waits for.
"""

from ansible_collections.shopstream.swarm.plugins.module_utils._stack_assess import assess

NAMESPACE_LABEL = "com.docker.stack.namespace"

# Capability numbers of linux/capability.h, to name the bits of /proc/PID/status's CapEff.
CAPABILITIES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER",
    "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE",
    "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
    "CHECKPOINT_RESTORE",
]  # fmt: skip

# Values shorter than this are not looked for in environments: they would match by chance.
MIN_SECRET_LENGTH = 8


def short_name(name):
    """A stack service's name without its stack: ``shopstream-app_auth`` -> ``auth``."""
    return name.split("_", 1)[-1]


def stack_services(services, prefix):
    """The services of the stacks named ``<prefix>-*``, by name."""

    def stack(service):
        return (service["Spec"].get("Labels") or {}).get(NAMESPACE_LABEL) or ""

    return sorted((s for s in services if stack(s).startswith(f"{prefix}-")), key=lambda s: s["Spec"]["Name"])


def found_in(text, values):
    """The names of ``values`` (name -> value) whose value, of MIN_SECRET_LENGTH or more, is in ``text``."""
    return sorted(
        name
        for name, value in values.items()
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH and value in text
    )


def converged(service, tasks, node_hosts=None):
    """``assess`` for what runs now: a running task counts at once (verify checks what runs, its health
    check whether it works; the update monitor is swarm_stack's wait), and a completed rollback runs
    the previous spec, which is what is checked: only an update in flight or failed counts against it."""
    status = service.get("UpdateStatus") or {}
    previous = status.get("StartedAt") if status.get("State") in ("completed", "rollback_completed") else None
    return assess(service, tasks, previous_started=previous, settle=False, nodes=node_hosts)


def service_view(service, tasks, network_names, node_hosts=None):
    """One service as verify reads it: its overlays (short names), published ports, secret files, update
    state, and whether it converged (``state``, ``reason``, ``replicas`` as ``assess`` reports)."""
    spec = service["Spec"]
    template = spec.get("TaskTemplate") or {}
    namespace = (spec.get("Labels") or {}).get(NAMESPACE_LABEL) or ""
    networks = []
    for attachment in template.get("Networks") or []:
        name = network_names.get(attachment.get("Target"), attachment.get("Target") or "")
        networks.append(name[len(namespace) + 1 :] if namespace and name.startswith(f"{namespace}_") else name)
    ports = ((spec.get("EndpointSpec") or {}).get("Ports") or []) + ((service.get("Endpoint") or {}).get("Ports") or [])
    report = converged(service, tasks, node_hosts)
    return {
        "name": spec["Name"],
        "short": short_name(spec["Name"]),
        "id": service["ID"],
        "update": (service.get("UpdateStatus") or {}).get("State") or "none",
        "networks": sorted(networks),
        "ports": list(dict.fromkeys(p.get("PublishedPort", 0) for p in ports)),
        "secrets": [
            {"name": s.get("SecretName"), "file": (s.get("File") or {}).get("Name")}
            for s in (template.get("ContainerSpec") or {}).get("Secrets") or []
        ],
        "state": report["state"],
        "reason": report["reason"],
        "replicas": report["replicas"],
    }


def task_view(task, service_names, node_hosts):
    """A task whose desired state is running: its service (short name), node, the inventory host of that
    node ('' when none is), state, container and addresses per network."""
    node = task.get("NodeID") or ""
    status = task.get("Status") or {}
    addresses = {}
    for attachment in task.get("NetworksAttachments") or []:
        name = ((attachment.get("Network") or {}).get("Spec") or {}).get("Name", "")
        addresses[name] = [a.split("/")[0] for a in attachment.get("Addresses") or []]
    return {
        "service": short_name(service_names.get(task.get("ServiceID"), "")),
        "id": task["ID"],
        "node": node,
        "host": node_hosts.get(node, ""),
        "state": status.get("State"),
        "container": (status.get("ContainerStatus") or {}).get("ContainerID") or "",
        "addresses": addresses,
    }


def platform(services, tasks, networks, prefix, node_hosts, values):
    """(services, running tasks, secret values found in the services' environments) of the stacks."""
    mine = stack_services(services, prefix)
    by_service = {}
    for task in tasks:
        by_service.setdefault(task.get("ServiceID"), []).append(task)
    network_names = {n.get("Id"): n.get("Name") for n in networks}
    names = {s["ID"]: s["Spec"]["Name"] for s in mine}
    views = [service_view(s, by_service.get(s["ID"], []), network_names, node_hosts) for s in mine]
    running = sorted(
        (
            task_view(t, names, node_hosts)
            for s in mine
            for t in by_service.get(s["ID"], [])
            if t.get("DesiredState") == "running"
        ),
        key=lambda t: (t["service"], t["id"]),
    )
    leaks = []
    for s in mine:
        env = "\n".join(((s["Spec"].get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Env") or [])
        leaks.extend(f"{s['Spec']['Name']} (service spec): {name}" for name in found_in(env, values))
    return views, running, leaks


def process_status(text):
    """(effective uid as a string, capability names) from /proc/PID/status, or None when unreadable."""
    fields = dict(line.split(":", 1) for line in (text or "").splitlines() if ":" in line)
    uid = (fields.get("Uid") or "").split()
    cap = (fields.get("CapEff") or "").strip()
    try:
        bits = int(cap, 16)
    except ValueError:
        return None
    if len(uid) < 2:
        return None
    return uid[1], [name for number, name in enumerate(CAPABILITIES) if bits >> number & 1]


def container_view(container, status_text, values):
    """A container as verify reads it: state, health, the user and effective capabilities of its first
    process (``read`` false when its /proc status could not be read), read-only root, pids limit, and
    the names of the values found in its environment (never the values)."""
    state = container.get("State") or {}
    host = container.get("HostConfig") or {}
    process = process_status(status_text)
    return {
        "id": container["Id"],
        "state": state.get("Status"),
        "health": (state.get("Health") or {}).get("Status") or "none",
        "read": process is not None,
        "uid": process[0] if process else "",
        "caps": process[1] if process else [],
        "read_only": bool(host.get("ReadonlyRootfs")),
        "pids": host.get("PidsLimit") or 0,
        "leaks": found_in("\n".join((container.get("Config") or {}).get("Env") or []), values),
    }
