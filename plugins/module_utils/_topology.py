# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Cluster-wide decisions taken on the controller: preflight checks and the swarm plan.

Pure functions over plain data, so that every rule is unit-tested without a cluster.
A *record* describes one reachable host of the play::

    {"host": "manager1", "role": "manager" | "worker", "advertise_addr": "10.0.0.1",
     "addresses": [...], "os": {"distribution": "Debian", "version": "12"},
     "probe": <return of shopstream.swarm.swarm_host_info>}
"""

from __future__ import annotations

import ipaddress

MAX_MANAGERS = 7
# An explicit listen address on every interface is the site's choice (not the default).
EVERY_INTERFACE = ("0.0.0.0", "::")  # noqa: S104
SWARM_PORTS_OWNER = "dockerd"

# Platform settings that depend on a kernel feature: setting -> (value that needs it,
# feature, what needs it, the value that works without it).
KERNEL_SETTINGS = (
    ("shopstream_endpoint_mode", "vip", "dnsrr", "ipvs", "IPVS", "VIP endpoint mode"),
    ("shopstream_publish_mode", "ingress", "host", "ipvs", "IPVS", "the ingress routing mesh"),
    (
        "shopstream_overlay_encrypted",
        True,
        False,
        "overlay_encryption",
        "ESP/xfrm",
        "encrypted overlay networks (they carry no traffic between nodes without it)",
    ),
)


def _is_ip(value):
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _address_part(listen):
    """The address of ``addr:port``, ``[v6]:port`` or a bare address."""
    if listen.startswith("["):
        return listen[1:].split("]")[0]
    return listen.rsplit(":", 1)[0] if listen.count(":") == 1 else listen


def _docker(record):
    return (record.get("probe") or {}).get("docker") or {}


def _swarm(record):
    return _docker(record).get("swarm") or {}


def _features(record):
    return ((record.get("probe") or {}).get("kernel") or {}).get("features") or {}


def plan_swarm(records, unknown_managers=()):
    """Decide which host initialises the swarm, which hosts join, and which are foreign.

    Returns a dict: ``cluster_id`` (of the inventory's swarm, or None), ``manager`` (a
    reachable manager of that swarm, to read tokens from and to configure nodes), ``init``
    (the host to initialise a new swarm on, or None), ``hosts`` (host -> init | member | join
    | foreign | leaderless | unknown | locked | undecided), ``errors`` (host -> [message]). A record's
    ``unlockable`` says the vault holds the autolock key: a locked node is then ``locked`` (the
    swarm role unlocks it), not an error. While a manager is so locked, the others may see no Raft
    leader (a majority locked) and a worker cannot be told from another swarm's: they are
    ``leaderless`` and ``undecided``, not errors; the swarm role reads them again once it unlocked.
    """
    managers = [r for r in records if r["role"] == "manager"]
    errors = {}
    hosts = {}

    ours = None
    for rec in managers:
        sw = _swarm(rec)
        if sw.get("state") == "active" and sw.get("is_manager") and sw.get("cluster_id"):
            ours = rec
            break
    cluster_id = _swarm(ours).get("cluster_id") if ours else None
    known_nodes = set()
    for rec in managers:
        sw = _swarm(rec)
        if sw.get("cluster_id") and sw.get("cluster_id") == cluster_id:
            known_nodes.update(n["id"] for n in _docker(rec).get("nodes") or [])

    unlocking = any(_swarm(rec).get("state") == "locked" and rec.get("unlockable") for rec in managers)
    for rec in records:
        name, sw = rec["host"], _swarm(rec)
        state = sw.get("state")
        if state == "locked" and rec.get("unlockable"):
            hosts[name] = "locked"  # autolock: the swarm role unlocks it with the vault's key
        elif state in ("locked", "error", "pending"):
            errors.setdefault(name, []).append(
                f"{name}: its swarm state is '{state}'. Fix: "
                + (
                    "its engine restarted and autolock keeps it locked, and the vault holds no unlock key "
                    "(vault_shopstream_swarm_unlock_key). Run 'docker swarm unlock' on it with the key saved "
                    "when autolock was turned on, then record it: 'docker swarm unlock-key -q' on a manager, "
                    "in the vault as vault_shopstream_swarm_unlock_key."
                    if state == "locked"
                    else "inspect 'docker info' on it; if it cannot reach its managers, run "
                    "'docker swarm leave --force' on it and run again."
                )
            )
            hosts[name] = "foreign"
        elif state is None and _docker(rec).get("reachable") and _docker(rec).get("error"):
            hosts[name] = "unknown"
            errors.setdefault(name, []).append(
                f"{name}: its swarm state could not be read ({_docker(rec)['error']}). Fix: check 'docker info' "
                f"on {name} and run again."
            )
        elif state != "active":
            hosts[name] = "join"
        elif sw.get("control_available") and not sw.get("cluster_id"):
            hosts[name] = "leaderless"
            if not unlocking:  # else quorum may come back with the locked managers, once unlocked
                errors.setdefault(name, []).append(
                    f"{name}: it is a manager but sees no Raft leader, so the swarm has lost quorum. Fix: bring "
                    "enough managers back; if they are gone for good, run playbooks/recover.yml -e "
                    f"recover_confirm=yes (it forces a new cluster on {name} or another manager left), then run again."
                )
        elif (sw.get("cluster_id") and sw.get("cluster_id") == cluster_id) or sw.get("node_id") in known_nodes:
            hosts[name] = "member"
        elif unlocking and cluster_id is None:
            hosts[name] = "undecided"  # no manager can list the swarm's nodes until one is unlocked
        else:
            hosts[name] = "foreign"
            theirs = sw.get("cluster_id") or "managed at " + ", ".join(sw.get("remote_managers") or ["?"])
            expected = cluster_id or "none yet: the inventory's managers are in no swarm"
            errors.setdefault(name, []).append(
                f"{name}: already belongs to another swarm ({theirs}), not the inventory's "
                f"({expected}). Fix: if that swarm is disposable run 'docker swarm leave --force' "
                f"on {name}, otherwise remove {name} from this inventory."
            )

    init = None
    # A locked manager may be the swarm's only way back: never initialise a new swarm beside it.
    if ours is None and managers and not {"leaderless", "unknown", "locked"} & set(hosts.values()):
        if unknown_managers:
            msg = (
                "No reachable manager is in a swarm, and manager(s) "
                + ", ".join(sorted(unknown_managers))
                + " could not be read: refusing to initialise a new swarm that may split an existing "
                "one. Fix: bring them back, or remove them from group swarm_managers."
            )
            errors.setdefault("_inventory", []).append(msg)
        else:
            init = managers[0]["host"]
            hosts[init] = "init"
    return {
        "cluster_id": cluster_id,
        "manager": ours["host"] if ours else init,
        "init": init,
        "hosts": hosts,
        "errors": errors,
    }


def _resolve(value, needed_value, fallback, feature, records):
    """Resolve 'auto' against what every host's kernel offers."""
    if value != "auto":
        return value
    has_it = all(_features(r).get(feature, {}).get("available") is not False for r in records)
    return needed_value if has_it else fallback


def _check_clocks_and_disks(records, settings, err):
    """A clock far from the controller's, and too little room under the engine's data root.

    ``controller_time`` is the controller's clock before the probes started and after they came
    back: a host whose clock agrees read a time within it, however long the probes took."""
    max_skew = settings.get("preflight_max_clock_skew")
    min_free = settings.get("preflight_min_disk_free_mb")
    for rec in records:
        probe, name = rec.get("probe") or {}, rec["host"]
        clock, window = probe.get("clock"), rec.get("controller_time")
        if max_skew is not None and clock is not None and window:
            low, high = (float(t) for t in window)
            clock = float(clock)
            skew = clock - high if clock > high else clock - low if clock < low else 0.0
            if abs(skew) > float(max_skew):
                err(
                    name,
                    f"{name}: its clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the "
                    f"controller's (preflight_max_clock_skew is {max_skew} s). Swarm's node certificates and "
                    f"the platform's tokens need clocks that agree. Fix: synchronise {name} and the controller "
                    "with NTP (chrony or systemd-timesyncd), or raise preflight_max_clock_skew.",
                )
        disk = probe.get("disk") or {}
        if min_free is not None and disk.get("free_mb") is not None and int(disk["free_mb"]) < int(min_free):
            err(
                name,
                f"{name}: {disk.get('path')} has {disk['free_mb']} MB free of {disk.get('size_mb')} MB, less than "
                f"preflight_min_disk_free_mb ({min_free} MB): images, volumes and logs go there. Fix: free or "
                f"grow the disk under {disk.get('path')} on {name}, or lower preflight_min_disk_free_mb.",
            )


def check_cluster(records, settings, unknown_managers=(), supported_os=None, allow_even=False, in_both=()):
    """Every preflight rule. Returns ``errors`` (host or "_inventory" -> [message]),
    ``warnings``, ``resolved`` platform settings, and the swarm ``plan``.

    ``in_both``: hosts the inventory lists in both swarm_managers and swarm_workers."""
    errors = {}
    warnings = []

    def err(key, msg):
        errors.setdefault(key, []).append(msg)

    for name in sorted(in_both):
        err(
            name,
            f"{name}: listed in both swarm_managers and swarm_workers, so its role is ambiguous. Fix: keep "
            "it in one group (a manager runs tasks too unless swarm_node_availability is drain).",
        )

    managers = [r["host"] for r in records if r["role"] == "manager"] + list(unknown_managers)
    count = len(managers)
    if count == 0:
        err(
            "_inventory",
            "No manager: group 'swarm_managers' is empty. Fix: put 1, 3, 5 or 7 hosts in swarm_managers.",
        )
    elif count % 2 == 0 and not allow_even:
        err(
            "_inventory",
            f"{count} managers in group 'swarm_managers' ({', '.join(managers)}): an even number adds "
            "no fault tolerance to Raft. Fix: use an odd number (1, 3, 5 or 7), or set "
            "preflight_allow_even_managers: true.",
        )
    if count > MAX_MANAGERS:
        err(
            "_inventory",
            f"{count} managers in group 'swarm_managers': more than {MAX_MANAGERS} slows Raft down "
            "without adding useful fault tolerance. Fix: move the extra hosts to swarm_workers.",
        )

    seen = {}
    for rec in records:
        addr, name = rec.get("advertise_addr"), rec["host"]
        if not addr:
            err(name, f"{name}: no advertise address. Fix: set swarm_advertise_addr for {name}.")
            continue
        if addr in seen:
            err(
                name,
                f"{name}: advertise address {addr} is also the one of {seen[addr]}. Fix: set "
                f"swarm_advertise_addr on each host to an address of its own.",
            )
        else:
            seen[addr] = name
        own = (rec.get("probe") or {}).get("addresses") or []
        if own and addr not in own:
            err(
                name,
                f"{name}: advertise address {addr} (swarm_advertise_addr) is not an address of this "
                f"host ({', '.join(own)}). Fix: set swarm_advertise_addr to one of them.",
            )
        bindings = (("swarm_listen_addr", rec.get("listen_addr")), ("swarm_data_path_addr", rec.get("data_path_addr")))
        for var, value in bindings:
            bound = _address_part(value or "") if var == "swarm_listen_addr" else (value or "")
            # (An interface's name, which Docker takes too, is the engine's to check.)
            if own and _is_ip(bound) and bound not in own and bound not in EVERY_INTERFACE:
                err(
                    name,
                    f"{name}: {var} {value} is not an address of this host ({', '.join(own)}). Fix: set {var} "
                    f"for {name} to one of them (e.g. a private interface's), or leave it unset.",
                )

    if supported_os is not None:
        for rec in records:
            osi = rec.get("os") or {}
            dist, ver = osi.get("distribution"), str(osi.get("version"))
            allowed = [str(v) for v in supported_os.get(dist, [])]
            if ver not in allowed and str(osi.get("major")) not in allowed:
                listing = "; ".join(f"{d} {', '.join(map(str, v))}" for d, v in supported_os.items())
                err(
                    rec["host"],
                    f"{rec['host']}: {dist} {ver} is not supported (supported: {listing}). Fix: use "
                    "a supported OS, or extend preflight_supported_os at your own risk.",
                )

    _check_clocks_and_disks(records, settings, err)

    resolved = {}
    for setting, needed, fallback, feature, label, purpose in KERNEL_SETTINGS:
        value = settings.get(setting, needed)
        resolved[setting] = _resolve(value, needed, fallback, feature, records)
        for rec in records:
            feat = _features(rec).get(feature) or {}
            if feat.get("available") is None:
                warnings.append(f"{rec['host']}: could not read the kernel configuration; {label} assumed present.")
            elif resolved[setting] == needed and not feat["available"]:
                missing = ", ".join(feat.get("missing") or []) or label
                err(
                    rec["host"],
                    f"{rec['host']}: the kernel lacks {label} ({missing}), which {setting}: "
                    f"{str(needed).lower()} needs for {purpose}. Fix: set {setting}: "
                    f"{str(fallback).lower()} (or auto), or give the host a kernel with {label}.",
                )
    for rec in records:
        vx = _features(rec).get("vxlan") or {}
        if vx.get("available") is False:
            err(
                rec["host"],
                f"{rec['host']}: the kernel lacks VXLAN (CONFIG_VXLAN): overlay networks cannot work and "
                "no setting avoids it. Fix: give the host a kernel with VXLAN (module vxlan).",
            )

    for rec in records:
        in_swarm = _swarm(rec).get("state") == "active"
        # A killed engine leaves its overlay namespaces, and with them the kernel's VXLAN
        # socket: it takes them back when it starts. A started engine that then left its swarm
        # may keep the ones an earlier life of it made (the swarm role removes them). Either way
        # they are Docker's, not another VXLAN user's.
        left_by_engine = bool(_docker(rec).get("overlay_sandboxes") or _docker(rec).get("overlay_vxlans"))
        engine_up = bool(_docker(rec).get("reachable"))
        for port in (rec.get("probe") or {}).get("ports") or []:
            if not port.get("in_use"):
                continue
            holders = [h for h in port.get("holders") or [] if h.get("name") != SWARM_PORTS_OWNER]
            if holders:
                who = ", ".join(f"{h.get('name')} (pid {h.get('pid')})" for h in holders)
            elif port.get("kernel_owned") and left_by_engine:
                warnings.append(
                    f"{rec['host']}: port {port['port']}/{port['proto']} is held by the overlay "
                    + (
                        "namespaces an earlier swarm of the Docker engine left behind; their VXLAN devices "
                        "would collide with the new swarm's, so the swarm role removes them before the node "
                        "creates or joins one."
                        if engine_up
                        else "namespaces the stopped Docker engine left behind; it takes them back when it starts."
                    )
                )
                continue
            elif port.get("kernel_owned") and not in_swarm:
                who = "the kernel (another overlay or VXLAN user)"
            else:
                continue
            err(
                rec["host"],
                f"{rec['host']}: port {port['port']}/{port['proto']} is held by {who}; Swarm needs it. "
                "Fix: stop that program or move it to another port.",
            )

    plan = plan_swarm(records, unknown_managers)
    for key, msgs in plan["errors"].items():
        errors.setdefault(key, []).extend(msgs)
    return {"errors": errors, "warnings": warnings, "resolved": resolved, "plan": plan}


def plan_removal(nodes, target):
    """Decide whether a node can leave the swarm without breaking it.

    ``nodes`` is the node list of a manager (as returned by swarm_host_info), ``target`` the
    node's ID, hostname or address. Returns ``node`` (the matched node, or None when it is
    already gone), ``demote`` (whether it is a manager) and ``error`` (a refusal, or None).
    """
    node = next((n for n in nodes if target in (n.get("id"), n.get("hostname"), n.get("addr"))), None)
    result = {"node": node, "demote": False, "error": None}
    if node is None or node.get("role") != "manager":
        return result
    managers = [n for n in nodes if n.get("role") == "manager"]
    remaining = [n for n in managers if n is not node]
    reachable = [n for n in remaining if n.get("reachability") == "reachable"]
    quorum = len(remaining) // 2 + 1
    result["demote"] = True
    if not remaining:
        result["error"] = (
            f"{node['hostname']} is the last manager: removing it would destroy the swarm. Fix: promote or "
            "join another manager first (put it in swarm_managers and run scale.yml)."
        )
    elif len(reachable) < quorum:
        down = ", ".join(n["hostname"] for n in remaining if n not in reachable)
        result["error"] = (
            f"Removing manager {node['hostname']} would break quorum: {len(reachable)} of the {len(remaining)} "
            f"remaining managers are reachable and {quorum} are needed ({down} unreachable). Fix: bring "
            f"{down} back first."
        )
    return result


def plan_recovery(records, survivor=None):
    """Decide how a swarm that lost quorum comes back (playbooks/recover.yml), or refuse.

    ``records`` are the inventory's managers: ``{"host": ..., "unreachable": bool, "autolocked": bool
    (autolock encrypted its swarm keys), "probe": <return of swarm_host_info>}``, in inventory order;
    ``survivor`` the manager the operator chose, if any.
    Returns ``survivor`` (the manager that forces a new cluster), ``leave`` (other managers whose
    engine runs with the old swarm's state: they leave it, then join again), ``set_aside`` (managers
    reached over SSH whose engine is down: their old swarm state is moved aside before it can start
    with it), ``unreachable`` and ``error`` (a refusal naming the hosts, or None).
    """
    states = {}
    for record in records:
        host, swarm, docker = record["host"], _swarm(record), _docker(record)
        if record.get("unreachable"):
            states[host] = "unreachable"
        elif not docker.get("reachable"):
            states[host] = "engine down"
        elif swarm.get("state") == "active" and swarm.get("control_available"):
            states[host] = "leaderless" if not swarm.get("cluster_id") else "has a leader"
        else:
            states[host] = swarm.get("state") or "unknown"
    # moby/moby#36852: Docker forces a new cluster only from keys autolock did not encrypt (its init
    # takes no unlock key: the engine drops out of every swarm instead).
    in_swarm = ("leaderless", "has a leader")
    locked_keys = {r["host"] for r in records if r.get("autolocked") and states[r["host"]] in in_swarm}
    shown = {
        host: f"{state} (keys locked by autolock)" if host in locked_keys else state for host, state in states.items()
    }
    result = {"survivor": None, "leave": [], "set_aside": [], "unreachable": [], "states": shown, "error": None}
    seen = ", ".join(f"{host}: {state}" for host, state in shown.items())
    with_leader = [host for host, state in states.items() if state == "has a leader"]
    leaderless = [host for host, state in states.items() if state == "leaderless" and host not in locked_keys]
    autolocked = [host for host, state in states.items() if state == "leaderless" and host in locked_keys]
    if with_leader:
        result["error"] = (
            f"The swarm has quorum: its Raft leader is seen by {', '.join(with_leader)} ({seen}). Forcing a new "
            "cluster would throw the other managers out. Fix: bring a manager that is down back with site.yml, or "
            "remove one that is gone for good with remove_node.yml."
        )
    elif survivor is not None and survivor not in autolocked + leaderless:
        result["error"] = f"recover_from={survivor}: " + (
            f"it is not one of the inventory's managers ({', '.join(states)})."
            if survivor not in states
            else f"it cannot lead the swarm again: {shown[survivor]}. A manager whose engine runs in the "
            f"swarm and sees no leader can ({seen}). Fix: choose one of {', '.join(leaderless) or 'none'}"
            + (", or unlock it first with playbooks/unlock.yml." if states[survivor] == "locked" else ".")
        )
    elif autolocked and (survivor in autolocked or not leaderless):
        result["error"] = (
            f"{', '.join(autolocked)}: sees no leader, but autolock encrypted its swarm keys, and Docker cannot force "
            f"a new cluster from such keys (moby/moby#36852: the engine would drop out of every swarm) ({seen}). Fix: "
            "bring enough managers back (site.yml or unlock.yml unlocks them). If they are gone for good, run "
            "'docker swarm leave --force' on every node, then site.yml (a new swarm) and restore.yml (the data of "
            "the last backup.yml). A site that sets swarm_autolock: false can recover with this playbook."
        )
    elif not leaderless:
        locked = [host for host, state in states.items() if state == "locked"]
        result["error"] = f"No manager can lead the swarm again: none runs in it and sees no leader ({seen}). Fix: " + (
            f"unlock {', '.join(locked)} with playbooks/unlock.yml, then run again."
            if locked
            else "start the engine of a manager that was in the swarm (its state is there), then run again; if "
            "none is left, make a new swarm with site.yml and put the data back with restore.yml."
        )
    if result["error"]:
        return result
    result["survivor"] = survivor or leaderless[0]
    for host, state in states.items():
        if host == result["survivor"] or state == "inactive":
            continue
        if state == "unreachable":
            result["unreachable"].append(host)
        elif state == "engine down":
            result["set_aside"].append(host)
        else:
            result["leave"].append(host)
    return result
