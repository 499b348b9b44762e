# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Content-addressed, versioned Docker secrets and configs, and the services that use them.

Docker secrets and configs are immutable. A *logical* object (``shopstream_mariadb_password``)
is kept as a series of *versions*, each a real Docker object named ``<logical>_<suffix>`` where
the suffix is a short keyed hash (HMAC-SHA256) of the content, so the same content always gives
the same name, and no plain hash of a secret is ever visible. Versions carry the label
``LOGICAL_LABEL=<logical>``, which is how they are found again.

The pure functions here decide names, order, pruning and service rewiring; ``ObjectStore`` and
``Rewirer`` apply those decisions through ``_docker_api.DockerClient``.
"""

import base64
import hashlib
import hmac
import json
import re
import time
from datetime import datetime, timezone

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    SEQUENCE_CONFLICT,
    UPDATE_ATTEMPTS,
    DockerAPIError,
    filters_param,
    is_sequence_conflict,
    list_services,
    update_service,
)

LOGICAL_LABEL = "com.shopstream.object"
CREATED_LABEL = "com.shopstream.created"
SUFFIX_LENGTH = 12
NAME_MAX = 64  # Docker refuses longer secret and config names.
LOGICAL_MAX = NAME_MAX - SUFFIX_LENGTH - 1
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9_.-]*[a-zA-Z0-9])?$")


class ObjectError(Exception):
    """A request that cannot be carried out; the message names the object and the fix."""


class Kind:
    """What differs between secrets and configs in the Engine API."""

    def __init__(self, name, max_size, ref_key, id_key, name_key):
        self.name = name  # secret | config
        self.path = f"/{name}s"
        self.max_size = max_size
        self.ref_key = ref_key  # ContainerSpec key listing the references
        self.id_key = id_key
        self.name_key = name_key


# Limits of swarmkit's API validation (api/validation: MaxSecretSize, MaxConfigSize).
SECRET = Kind("secret", 500 * 1024, "Secrets", "SecretID", "SecretName")
CONFIG = Kind("config", 1000 * 1024, "Configs", "ConfigID", "ConfigName")
KINDS = {"secret": SECRET, "config": CONFIG}


def check_logical_name(logical):
    if not NAME_PATTERN.match(logical or ""):
        raise ObjectError(
            f"Name {logical!r} is not a valid Docker object name: use letters, digits, '_', '.' and '-', "
            "starting and ending with a letter or digit."
        )
    if len(logical) > LOGICAL_MAX:
        raise ObjectError(
            f"Name {logical!r} is {len(logical)} characters long; at most {LOGICAL_MAX} fit, because a version "
            f"adds '_' and a {SUFFIX_LENGTH}-character suffix within Docker's {NAME_MAX}-character limit."
        )


def content_suffix(data, hash_key=None):
    """The version suffix of ``data`` (bytes): HMAC-SHA256 with ``hash_key``, or SHA-256 without one."""
    if hash_key:
        digest = hmac.new(hash_key.encode("utf-8"), data, hashlib.sha256).hexdigest()
    else:
        digest = hashlib.sha256(data).hexdigest()
    return digest[:SUFFIX_LENGTH]


def versioned_name(logical, data, hash_key=None):
    check_logical_name(logical)
    return f"{logical}_{content_suffix(data, hash_key)}"


def check_size(kind, logical, data):
    if len(data) > kind.max_size:
        raise ObjectError(
            f"The {kind.name} {logical!r} is {len(data)} bytes; Docker accepts at most {kind.max_size // 1024} KB "
            f"for a {kind.name}. Keep large files in a volume or an image instead."
        )


def _created(obj):
    return obj.get("CreatedAt") or ""


def sort_versions(objects):
    """Newest first: by creation time, then by ID so that the order is total."""
    return sorted(objects, key=lambda o: (_created(o), o.get("ID", "")), reverse=True)


def group_versions(objects):
    """``{logical: [objects newest first]}`` for objects carrying LOGICAL_LABEL."""
    groups = {}
    for obj in objects:
        logical = ((obj.get("Spec") or {}).get("Labels") or {}).get(LOGICAL_LABEL)
        if logical:
            groups.setdefault(logical, []).append(obj)
    return {logical: sort_versions(objs) for logical, objs in groups.items()}


def references(services, kind):
    """``{object ID: sorted service names}`` for every service spec that mounts the object."""
    refs = {}
    for service in services:
        spec = service.get("Spec") or {}
        container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
        for ref in container.get(kind.ref_key) or []:
            refs.setdefault(ref.get(kind.id_key), set()).add(spec.get("Name", service.get("ID")))
    return {obj_id: sorted(names) for obj_id, names in refs.items()}


def check_keep(keep):
    """``keep`` counts the current version, so it is 1 or more; anything else is refused, not rounded up."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ObjectError(
            f"keep is {keep!r}: it counts the versions kept per object, the current one included. Fix: set keep "
            "(secrets_keep, configs_keep or rotate_keep in the roles and playbooks) to 1 or more."
        )


def prune_plan(versions, current_id, keep, refs, held=()):
    """Decide which versions go.

    ``versions`` newest first. The current version and the ``keep - 1`` newest others stay;
    of the rest, those a service references stay too and are reported, and those ``held`` (IDs)
    stay silently. Returns ``(remove, in_use)``: lists of version objects.
    """
    check_keep(keep)
    kept = [v for v in versions if v["ID"] == current_id]
    others = [v for v in versions if v["ID"] != current_id and v["ID"] not in held]
    beyond = others[max(keep - len(kept), 0) :]
    remove = [v for v in beyond if not refs.get(v["ID"])]
    in_use = [v for v in beyond if refs.get(v["ID"])]
    return remove, in_use


def rewire_spec(spec, kind, moves):
    """Return a copy of ``spec`` with references moved, or None when nothing moves.

    ``moves`` maps an old object ID to ``(new_id, new_name)``. Target file name, uid, gid
    and mode (``File``) and runtime references stay as they are.
    """
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    refs = container.get(kind.ref_key) or []
    if not any(ref.get(kind.id_key) in moves for ref in refs):
        return None
    new = json.loads(json.dumps(spec))
    new_refs = new["TaskTemplate"]["ContainerSpec"][kind.ref_key]
    for ref in new_refs:
        if ref.get(kind.id_key) in moves:
            ref[kind.id_key], ref[kind.name_key] = moves[ref[kind.id_key]]
    return new


def describe(obj):
    labels = (obj.get("Spec") or {}).get("Labels") or {}
    return {
        "id": obj["ID"],
        "name": obj["Spec"]["Name"],
        "created_at": obj.get("CreatedAt"),
        "created": labels.get(CREATED_LABEL),
    }


def inventory(objects, services, kind):
    """Per logical name: versions newest first, the current (newest) one, and who uses which."""
    refs = references(services, kind)
    result = {}
    for logical, versions in group_versions(objects).items():
        described = []
        for version in versions:
            entry = describe(version)
            entry["services"] = refs.get(version["ID"], [])
            described.append(entry)
        result[logical] = {
            "current": described[0]["name"],
            "versions": described,
            "stale_services": sorted({s for entry in described[1:] for s in entry["services"]}),
        }
    return result


class ObjectStore:
    """Reads and writes versions of one kind through the Engine API."""

    def __init__(self, client, kind):
        self.client = client
        self.kind = kind

    def versions(self, logical=None):
        label = f"{LOGICAL_LABEL}={logical}" if logical else LOGICAL_LABEL
        found = self.client.get_json(f"{self.kind.path}?{filters_param(label=[label])}") or []
        return sort_versions(found)

    def create(self, name, logical, data, labels):
        all_labels = dict(labels or {})
        all_labels[LOGICAL_LABEL] = logical
        all_labels[CREATED_LABEL] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"Name": name, "Labels": all_labels, "Data": base64.b64encode(data).decode("ascii")}
        _status, created = self.client.request("POST", f"{self.kind.path}/create", body)
        return created["ID"]

    def remove(self, obj_id):
        self.client.request("DELETE", f"{self.kind.path}/{obj_id}")


def task_error(tasks):
    """The most recent task error or non-running state message, for failure reports."""
    for task in sorted(tasks, key=lambda t: t.get("UpdatedAt", ""), reverse=True):
        status = task.get("Status") or {}
        if status.get("Err"):
            return status["Err"]
        if status.get("State") in ("failed", "rejected"):
            return f"task {status.get('State')}: {status.get('Message', '')}"
    return "no task error reported"


# Update states that end a wait with a failure: the new spec did not roll out.
FAILED_UPDATE_STATES = ("paused", "rollback_started", "rollback_paused", "rollback_completed")


def update_state(service, previous_started=None):
    """The state of the service's update that replaced ``previous_started``, or None.

    ``previous_started`` is ``UpdateStatus.StartedAt`` read before the change. An UpdateStatus
    with that same start time describes the previous update (e.g. its stale 'completed'), not
    the one just asked for, so it counts as no update yet.
    """
    status = service.get("UpdateStatus") or {}
    return status.get("State") if status.get("StartedAt") != previous_started else None


def update_failure(name, state, service, tasks):
    """The failure message when ``state`` is a failed update state, else None."""
    if state not in FAILED_UPDATE_STATES:
        return None
    message = (service.get("UpdateStatus") or {}).get("Message", "")
    return f"The update of service {name} did not complete: {state} ({message}); task error: {task_error(tasks)}."


class UpdateFailed(Exception):
    pass


class Rewirer:
    """Moves services from older versions to the current ones, one update per service."""

    def __init__(self, client, timeout=300, poll=1.0, progress=None):
        self.client = client
        self.timeout = timeout
        self.poll = poll
        self.progress = progress or (lambda message: None)

    def plan(self, services, moves_by_kind):
        """``[(service, new spec, {kind name: [(old name, new name)]})]`` for services that must move."""
        planned = []
        for service in services:
            spec = service["Spec"]
            moved = {}
            for kind, moves in moves_by_kind.items():
                new = rewire_spec(spec, kind, moves)
                if new is not None:
                    container = spec["TaskTemplate"]["ContainerSpec"]
                    moved[kind.name] = [
                        (ref[kind.name_key], moves[ref[kind.id_key]][1])
                        for ref in container[kind.ref_key]
                        if ref.get(kind.id_key) in moves
                    ]
                    spec = new
            if moved:
                planned.append((service, spec, moved))
        return planned

    def read(self, service_id):
        return self.client.get_json(f"/services/{service_id}")

    def apply(self, service_id, moves_by_kind, attempts=UPDATE_ATTEMPTS):
        """Move one service and wait until its update completes; returns ``(spec, moved)`` as ``plan``
        gives them, or ``(spec, None)`` when the service is already on the wanted versions."""
        spec, moved, previous_started = self.start(service_id, moves_by_kind, attempts)
        if moved:
            self.wait(service_id, spec, previous_started)
        return spec, moved

    def start(self, service_id, moves_by_kind, attempts=UPDATE_ATTEMPTS):
        """Move one service, reading it just before the update; returns once Swarm accepted it,
        as ``(spec, moved, StartedAt of the update it replaces)``, or ``(spec, None, None)`` when
        the service is already on the wanted versions.

        The moves are applied to the spec as read, so whatever else changed in it since the plan
        (someone's update, a rollback) is kept. When the service changes between that read and
        the update (Swarm answers "update out of sequence"), it is read again and the moves
        applied again, up to ``attempts`` times. A service already on the wanted versions is left.
        """
        seen = {}

        def change(service):
            seen["name"] = service["Spec"]["Name"]
            planned = self.plan([service], moves_by_kind)
            if not planned:
                return None
            _service, spec, seen["moves"] = planned[0]
            return spec

        def conflict(service, _attempt):
            self.progress(f"{service['Spec']['Name']}: version {service['Version']['Index']} changed before our "
                          "update; reading it again")  # fmt: skip

        try:
            service, spec = update_service(self.client, service_id, change, attempts, self.poll, conflict, self.read)
        except DockerAPIError as exc:
            if not is_sequence_conflict(exc):
                raise
            raise UpdateFailed(
                f"Service {seen['name']} changed between each of {attempts} reads and the "
                f"update that followed it ({SEQUENCE_CONFLICT}): another client or an update in progress keeps "
                "changing it. Wait until 'docker service inspect' shows it settled, then run again."
            ) from exc
        if spec is None:
            self.progress(f"{service['Spec']['Name']}: already on the current versions")
            return service["Spec"], None, None
        return spec, seen["moves"], (service.get("UpdateStatus") or {}).get("StartedAt")

    def apply_together(self, service_ids, moves_by_kind):
        """Start the update of every service in ``service_ids`` (each read just before, as ``start`` does),
        then wait for them all: a wave takes as long as its slowest update, not their sum.

        Returns ``[(spec, moved)]`` in the order given. When some fail, every other one is still
        waited for, and one UpdateFailed names each failed service.
        """
        started = [(service_id, *self.start(service_id, moves_by_kind)) for service_id in service_ids]
        failures = []
        for service_id, spec, moved, previous_started in started:
            if moved:
                try:
                    self.wait(service_id, spec, previous_started)
                except UpdateFailed as exc:
                    failures.append(str(exc))
        if failures:
            raise UpdateFailed(" ".join(failures))
        return [(spec, moved) for _service_id, spec, moved, _previous_started in started]

    def wait(self, service_id, spec, previous_started=None):
        """Until the update that replaced ``previous_started`` completes; a rollback or pause fails."""
        name = spec["Name"]
        wanted = _refs(spec.get("TaskTemplate"))
        deadline = time.monotonic() + self.timeout
        last = None
        while True:
            service = self.client.get_json(f"/services/{service_id}")
            state = update_state(service, previous_started)
            if state != last:
                self.progress(f"{name}: update {state or 'started'}")
                last = state
            if state in FAILED_UPDATE_STATES:
                raise UpdateFailed(update_failure(name, state, service, self._tasks(service_id)))
            if _refs(service["Spec"].get("TaskTemplate")) != wanted:
                raise UpdateFailed(
                    f"Service {name} no longer has the new references (rolled back or changed by someone else); "
                    f"task error: {task_error(self._tasks(service_id))}."
                )
            if state == "completed" or (state is None and self._tasks_current(service, wanted)):
                return
            if time.monotonic() > deadline:
                raise UpdateFailed(
                    f"The update of service {name} did not complete within {self.timeout}s "
                    f"(state {state or 'unknown'}); task error: {task_error(self._tasks(service_id))}."
                )
            time.sleep(self.poll)

    def _tasks(self, service_id):
        return self.client.get_json(f"/tasks?{filters_param(service=[service_id])}") or []

    def _tasks_current(self, service, wanted):
        """Without a new UpdateStatus (e.g. no task to replace): every task meant to run, runs the new refs."""
        replicas = ((service["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas")
        tasks = [t for t in self._tasks(service["ID"]) if t.get("DesiredState") == "running"]
        if replicas is not None and len(tasks) < replicas:
            return False
        return all((t.get("Status") or {}).get("State") == "running" and _refs(t.get("Spec")) == wanted for t in tasks)


def _refs(task_template):
    """The secret and config IDs a task template mounts, for comparing specs with tasks."""
    container = (task_template or {}).get("ContainerSpec") or {}
    return (
        sorted(ref.get("SecretID", "") for ref in container.get("Secrets") or []),
        sorted(ref.get("ConfigID", "") for ref in container.get("Configs") or []),
    )


PLACEHOLDER_ID = "(to be created)"


def mounts_any(service, object_ids):
    """Whether ``service`` mounts any of ``object_ids``."""
    template = (service.get("Spec") or {}).get("TaskTemplate")
    return any(ref in object_ids for refs in _refs(template) for ref in refs)


PREVIOUS_SUFFIX = "_previous"


def primary_of(logical):
    """The object whose previous value ``logical`` holds (its name without ``_previous``), or None."""
    return logical[: -len(PREVIOUS_SUFFIX)] if logical.endswith(PREVIOUS_SUFFIX) else None


def accepted_by(targets, versions, current, first, accepts=None):
    """``[(acceptor IDs, replaced IDs)]`` per logical object in ``first`` and ``accepts``: the IDs of
    its versions, and the IDs of the versions being replaced of the object it accepts the previous
    value of (for ``first``, its name without ``_previous``; for ``accepts``, the name it maps to;
    none when that object is not among the targets)."""
    accepting = [(logical, primary_of(logical)) for logical in first if primary_of(logical)]
    accepting += list((accepts or {}).items())
    pairs = []
    for kind, names in targets.items():
        for logical, primary in accepting:
            if logical not in names:
                continue
            replaced = set()
            for primary_kind in targets:
                replaced |= {
                    v["ID"]
                    for v in versions[primary_kind].get(primary, [])
                    if v["ID"] != current.get((primary_kind, primary))
                }
            pairs.append(({v["ID"] for v in versions[kind][logical]}, replaced))
    return pairs


def twin(versions, previous, primary_name, primary):
    """The version of ``previous`` (``<primary>_previous``) holding the value of ``primary``'s version
    ``primary_name``: the same content, so the same suffix. None when it does not exist."""
    name = f"{previous}_{primary_name[len(primary) + 1 :]}"
    return next((v for v in versions if v["Spec"]["Name"] == name), None)


def followed(services, versions, current, follow):
    """``{previous logical name: version}`` for each ``<name>_previous`` of ``follow`` whose services
    (the acceptors, which mount it) must not get the given version: the version to give them instead.

    - While the services that mount ``<name>`` alone (the signers) run one version of it other than
      the current, the acceptors' previous value is that version's value (its twin of
      ``<name>_previous``, when it exists): whichever way the value changes, forward in a rotation or
      back to an older vault, the acceptors accept the old value until no signer uses it.
    - Once every signer runs the current version, acceptors that all mount one version of
      ``<name>_previous`` keep it: the value before the last change, not whatever the vault holds.
    """
    chosen = {}
    for previous in follow:
        primary = primary_of(previous)
        if not primary or previous not in versions or primary not in versions:
            continue
        primary_ids = {v["ID"]: v for v in versions[primary]}
        previous_ids = {v["ID"]: v for v in versions[previous]}
        signers_on, acceptors_on = set(), set()
        for service in services:
            mounted = {ref for refs in _refs((service.get("Spec") or {}).get("TaskTemplate")) for ref in refs}
            if mounted & previous_ids.keys():
                acceptors_on |= mounted & previous_ids.keys()
            else:
                signers_on |= mounted & primary_ids.keys()
        running = signers_on - {current[primary]}
        if len(running) == 1:
            found = twin(versions[previous], previous, primary_ids[running.pop()]["Spec"]["Name"], primary)
            if found:
                chosen[previous] = found
        elif not running and len(acceptors_on) == 1:
            chosen[previous] = previous_ids[acceptors_on.pop()]
    return chosen


def waves(planned, accepted):
    """The planned moves in waves: every service that accepts the previous value of an object
    (it mounts a version of an object in ``first``) moves before each service that uses only that
    object's current value (a JWT verifier before the signer; Redis, which accepts the previous
    password too, before its clients); a service both (the gateway verifies JWTs and is a client of
    Redis) moves once, after the servers it is a client of. The services that take part in no such
    order move in the last wave."""
    level, deps, related = [0] * len(planned), [set() for _service in planned], set()
    for acceptor_ids, replaced_ids in accepted:
        acceptors = {i for i, (service, _spec, _moved) in enumerate(planned) if mounts_any(service, acceptor_ids)}
        related |= acceptors
        for i, (service, _spec, _moved) in enumerate(planned):
            if i not in acceptors and mounts_any(service, replaced_ids):
                deps[i] |= acceptors
                related.add(i)
    for _round in planned:  # longest chain of dependencies; a cycle stops growing at the number of services
        level = [max((level[j] + 1 for j in deps[i]), default=0) for i in range(len(planned))]
    last = max([level[i] for i in related] + [1 if related else 0])
    order = [level[i] if i in related else last for i in range(len(planned))]
    return [[planned[i] for i in range(len(planned)) if order[i] == wave] for wave in sorted(set(order))]


def refusing_moves(planned):
    """Warnings for the planned moves that refuse connections: a service publishing ports in host
    mode from a single task (one replica, or global) can only stop that task before it starts the
    new one, so its ports refuse connections while it restarts (an edge on one node)."""
    warnings = []
    for service, spec, moved in planned:
        if not moved:
            continue
        ports = ((spec.get("EndpointSpec") or service.get("Endpoint", {}).get("Spec") or {}).get("Ports")) or []
        host = sorted(
            {p.get("PublishedPort") for p in ports if p.get("PublishMode") == "host" and p.get("PublishedPort")}
        )
        mode = spec.get("Mode") or {}
        single = "Global" in mode or int((mode.get("Replicated") or {}).get("Replicas", 1) or 0) <= 1
        if host and single:
            warnings.append(
                f"{spec['Name']} publishes port(s) {', '.join(map(str, host))} in host mode from one task per node: "
                "moving it stops that task before its new one starts, so those ports refuse connections for the "
                "seconds it takes to restart. An edge on one node cannot avoid it; clients retry or reconnect."
            )
    return warnings


def rewire_and_prune(
    client,
    targets,
    keep=3,
    prune=True,
    rewire=True,
    check_mode=False,
    timeout=300,
    first=(),
    poll=1.0,
    accepts=None,
    follow=(),
):
    """Move services onto the target versions, one update per service, then prune unused versions.

    ``targets`` is ``{Kind: {logical: versioned name}}``. The services move in the waves that
    ``waves`` orders by ``first``; the services of a wave update together. The previous values in
    ``follow`` get the version ``followed`` chooses, where it chooses one, and the twin of each
    current value is never pruned (the previous value of the next change). In check mode nothing
    is written and the result says what would happen. Returns a dict with ``rewired``,
    ``pruned``, ``in_use``, ``events`` and ``targets`` (per kind name, the versions services
    were moved onto); raises UpdateFailed or DockerAPIError.
    """
    check_keep(keep)
    targets = {kind: dict(names) for kind, names in targets.items()}  # followed previous values change it
    events = []
    rewirer = Rewirer(client, timeout=timeout, poll=poll, progress=events.append)
    stores = {kind: ObjectStore(client, kind) for kind in targets}
    versions = {kind: {logical: stores[kind].versions(logical) for logical in names} for kind, names in targets.items()}
    current = {}
    for kind, names in targets.items():
        for logical, name in names.items():
            match = [v for v in versions[kind][logical] if v["Spec"]["Name"] == name]
            if not match and not check_mode:
                raise ObjectError(f"The {kind.name} version {name} of {logical} does not exist; create it first.")
            if not match:  # check mode: the version this run would create is the newest
                versions[kind][logical].insert(0, {"ID": PLACEHOLDER_ID, "Spec": {"Name": name}})
            current[(kind, logical)] = match[0]["ID"] if match else PLACEHOLDER_ID

    services = list_services(client) if targets else []
    held = {}
    for kind, names in targets.items():
        logical_current = {logical: current[(kind, logical)] for logical in names}
        for previous, version in followed(services, versions[kind], logical_current, follow).items():
            names[previous] = version["Spec"]["Name"]
            current[(kind, previous)] = version["ID"]
        for previous in follow:
            primary = primary_of(previous)
            if primary and previous in names and primary in names:
                found = twin(versions[kind][previous], previous, names[primary], primary)
                held[(kind, previous)] = {found["ID"]} if found else set()
    rewired, warnings, moved_in_waves = [], [], []
    if rewire:
        moves = {
            kind: {
                v["ID"]: (current[(kind, logical)], names[logical])
                for logical in names
                for v in versions[kind][logical]
                if v["ID"] != current[(kind, logical)]
            }
            for kind, names in targets.items()
        }
        planned = rewirer.plan(services, moves)
        warnings = refusing_moves(planned)
        # Within a wave every service updates at once (each still rolls one task at a time, as its
        # update config says).
        for wave in waves(planned, accepted_by(targets, versions, current, first, accepts)):
            if not check_mode and wave:
                applied = rewirer.apply_together([service["ID"] for service, _spec, _moved in wave], moves)
                wave = [(service, spec, moved) for (service, _spec, _moved), (spec, moved) in zip(wave, applied)]
            for service, spec, moved in wave:
                service["Spec"] = spec  # what the references will be, for the prune decision below
                if moved:
                    rewired.append(
                        {
                            "service": spec["Name"],
                            "stack": (spec.get("Labels") or {}).get("com.docker.stack.namespace"),
                            "moved": {k: [list(m) for m in v] for k, v in moved.items()},
                        }
                    )
            names = [spec["Name"] for _service, spec, moved in wave if moved]
            if names:
                moved_in_waves.append(names)
        if rewired and not check_mode:
            services = list_services(client)

    pruned, in_use = [], []
    if prune:
        for kind, names in targets.items():
            refs = references(services, kind)
            for logical in names:
                remove, busy = prune_plan(
                    versions[kind][logical], current[(kind, logical)], keep, refs, held.get((kind, logical), ())
                )
                for version in remove:
                    if not check_mode:
                        stores[kind].remove(version["ID"])
                    pruned.append({"kind": kind.name, "object": logical, "name": version["Spec"]["Name"]})
                for version in busy:
                    in_use.append(
                        {
                            "kind": kind.name,
                            "object": logical,
                            "name": version["Spec"]["Name"],
                            "services": refs[version["ID"]],
                        }
                    )
    return {
        "rewired": rewired,
        "waves": moved_in_waves,
        "pruned": pruned,
        "in_use": in_use,
        "events": events,
        "warnings": warnings,
        "targets": {kind.name: dict(names) for kind, names in targets.items()},
    }


def ensure_version(client, kind, logical, data, hash_key=None, labels=None, check_mode=False, versions=None):
    """Create the version of ``logical`` holding ``data`` unless it exists.

    ``versions``: the object's versions when the caller has listed them already.
    Returns ``(name, id, created, previous)``: ``previous`` is the newest version's name before
    this call, when it is a different one.
    """
    check_size(kind, logical, data)
    name = versioned_name(logical, data, hash_key)
    store = ObjectStore(client, kind)
    if versions is None:
        versions = store.versions(logical)
    newest = versions[0]["Spec"]["Name"] if versions else None
    previous = newest if newest != name else None
    match = [v for v in versions if v["Spec"]["Name"] == name]
    if match:
        return name, match[0]["ID"], False, previous
    taken = store.client.get_json(f"{kind.path}?{filters_param(name=[name])}") or []
    if any(obj["Spec"]["Name"] == name for obj in taken):
        raise ObjectError(
            f"A {kind.name} named {name} exists without the label {LOGICAL_LABEL}={logical}; it was not made "
            f"by this collection. Remove or rename it (docker {kind.name} rm {name})."
        )
    if check_mode:
        return name, PLACEHOLDER_ID, True, previous
    return name, store.create(name, logical, data, labels), True, previous
