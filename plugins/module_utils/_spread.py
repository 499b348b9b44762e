# Copyright (c) 2026, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which replicated services run on fewer nodes than they could: Swarm places tasks when they start
and never moves them again. After a drain, a node lost and back, or a node joined, every replica of
a service may share one node, which then takes the whole service down with it.
``StackDeployer.spread`` (``_stack``) spreads the services found here again.

Pure functions over the Engine API's node, service and task objects.
"""

import re

CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(==|!=)\s*(.*?)\s*$")
# Swarmkit compares these case-insensitively; labels are compared as written.
FOLDED = ("node.id", "node.hostname", "node.role", "node.platform.os", "node.platform.arch")


def node_value(node, key):
    """The value of a placement constraint's key on a node; None when the node has none.
    Raises KeyError for a key this module does not know (the scheduler is left to decide)."""
    spec, description = node.get("Spec") or {}, node.get("Description") or {}
    platform = description.get("Platform") or {}
    plain = {
        "node.id": node.get("ID"),
        "node.hostname": description.get("Hostname"),
        "node.role": spec.get("Role"),
        "node.platform.os": platform.get("OS"),
        "node.platform.arch": platform.get("Architecture"),
    }
    if key in plain:
        return plain[key]
    for prefix, labels in (
        ("node.labels.", spec.get("Labels")),
        ("engine.labels.", (description.get("Engine") or {}).get("Labels")),
    ):
        if key.startswith(prefix):
            return (labels or {}).get(key[len(prefix) :])
    raise KeyError(key)


def node_matches(node, constraints):
    """Whether the node satisfies every constraint (``key==value``, ``key!=value``); None when a
    constraint cannot be read here."""
    for constraint in constraints:
        found = CONSTRAINT.match(constraint)
        if not found:
            return None
        key, operator, wanted = found.groups()
        try:
            actual = node_value(node, key)
        except KeyError:
            return None
        if key in FOLDED:
            actual, wanted = (actual or "").lower(), wanted.lower()
        if (actual == wanted) != (operator == "=="):
            return False
    return True


def _reservations(spec):
    reserved = ((spec or {}).get("Resources") or {}).get("Reservations") or {}
    return reserved.get("NanoCPUs", 0), reserved.get("MemoryBytes", 0)


def crowded(services, tasks, nodes):
    """``[(service name, nodes it runs on, nodes it could run on)]`` for each replicated service of at
    least two replicas whose running tasks share fewer nodes than it could use.

    It could use each ready, active node that matches its placement constraints and either runs one
    of its tasks already or has room for its reservations (CPU and memory left by the tasks meant to
    run there); at most one node per replica. ``tasks``: every task of the swarm (a node's room
    counts other stacks' tasks too). A service with a constraint this module cannot read, or still
    starting tasks, is left out.
    """
    usable = [
        n
        for n in nodes
        if (n.get("Status") or {}).get("State") == "ready" and (n.get("Spec") or {}).get("Availability") == "active"
    ]
    meant = [t for t in tasks if t.get("DesiredState") == "running"]
    used = {}
    for task in meant:
        cpus, memory = _reservations(task.get("Spec"))
        node_cpus, node_memory = used.get(task.get("NodeID"), (0, 0))
        used[task.get("NodeID")] = (node_cpus + cpus, node_memory + memory)
    found = []
    for service in services:
        spec = service["Spec"]
        replicas = ((spec.get("Mode") or {}).get("Replicated") or {}).get("Replicas", 0)
        if replicas < 2:
            continue  # global services, jobs, one replica
        own = [t for t in meant if t.get("ServiceID") == service["ID"]]
        if any((t.get("Status") or {}).get("State") != "running" for t in own):
            continue  # an update or a restart is under way: the scheduler is still placing
        hosting = {t.get("NodeID") for t in own}
        template = spec.get("TaskTemplate") or {}
        constraints = (template.get("Placement") or {}).get("Constraints") or []
        need_cpus, need_memory = _reservations(template)
        could = 0
        for node in usable:
            matches = node_matches(node, constraints)
            if matches is None:
                break
            resources = (node.get("Description") or {}).get("Resources") or {}
            cpus, memory = used.get(node["ID"], (0, 0))
            room = (resources.get("NanoCPUs", 0) - cpus >= need_cpus) and (
                resources.get("MemoryBytes", 0) - memory >= need_memory
            )
            could += bool(matches and (node["ID"] in hosting or room))
        else:
            could = min(could, replicas)
            if len(hosting) < could:
                found.append((spec["Name"], len(hosting), could))
    return found
