# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deploy a compose stack with the docker CLI, then gate on its convergence through the Engine API.

Three concerns, each with pure functions first and one class applying them:

- *What changes*: ``normalize_spec`` strips what the daemon or the CLI fill in, so that a no-op
  redeploy compares equal (``docker stack deploy`` updates every service, bumping its Version and
  overwriting its PreviousSpec, even when nothing changed). ``spec_view`` and ``compose_view`` project
  a service spec and a compose service onto the same documented subset of fields, for diffs and for
  check mode, where nothing is deployed and the target specs exist only in the compose file.
- *Is it converged*: ``assess`` judges one service from its tasks. The update-state rules (a stale
  'completed', rollbacks, paused updates) are the ones ``_swarm_objects.Rewirer.wait`` uses.
- ``StackDeployer``: snapshot, ``docker stack deploy``, compare, wait; spread the services whose
  replicas share too few nodes (``_spread``); and ``docker stack rm``.
"""

import copy
import hashlib
import json
import re
import shlex
import time
from datetime import datetime

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    SEQUENCE_CONFLICT,
    UPDATE_ATTEMPTS,
    DockerAPIError,
    filters_param,
    update_service,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._spread import crowded
from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import (
    task_error,
    update_failure,
    update_state,
)

NAMESPACE_LABEL = "com.docker.stack.namespace"
STACK_LABEL_PREFIX = "com.docker.stack."
# A service label holding a digest of the compose file and options that deployed it: the same
# compose again, on services still as that deploy left them, is not deployed again.
FINGERPRINT_LABEL = "com.shopstream.swarm.compose-digest"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
SECOND = 1_000_000_000
DEFAULT_MONITOR = 5 * SECOND  # swarmkit's default update monitor
DEFAULT_RESTART_DELAY = 5 * SECOND
JOB_MODES = ("replicated-job", "global-job")
TERMINAL_STATES = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")


class StackError(Exception):
    """A failure to report as is: the message names the stack or service and what went wrong."""

    def __init__(self, message, stderr=None, reports=None):
        super().__init__(message)
        self.stderr = stderr
        self.reports = reports or {}


def check_stack_name(name):
    if not NAME_PATTERN.match(name or ""):
        raise StackError(f"Stack name {name!r} is invalid: use letters, digits, '_', '.' and '-'.")


# --- Values ---------------------------------------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": SECOND,
    "m": 60 * SECOND,
    "h": 3600 * SECOND,
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(value):
    """Nanoseconds of a Go duration string (``1m30s``, ``500ms``) or of a number of nanoseconds."""
    if value is None or value == "":
        return 0
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise StackError(f"Cannot read the duration {value!r}: write it like 30s, 1m30s or 500ms.")
    return int(sum(float(n) * _DURATION_UNITS[u] for n, u in parts))


_BYTE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_BYTES = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$", re.I)


def parse_bytes(value):
    """Bytes of ``64M``, ``1g``, ``512kb`` (binary units, as the docker CLI reads them) or a number."""
    if value is None or value == "":
        return 0
    if isinstance(value, (int, float)):
        return int(value)
    match = _BYTES.match(str(value).strip())
    if not match:
        raise StackError(f"Cannot read the size {value!r}: write it like 64M or 1G.")
    return int(float(match[1]) * _BYTE_UNITS[match[2].lower()])


def parse_cpus(value):
    """NanoCPUs of ``"0.5"``."""
    return int(round(float(value) * SECOND)) if value not in (None, "") else 0


def show_duration(ns):
    return f"{ns / SECOND:g}s"


def strip_digest(image):
    return DIGEST.sub("", image or "")


def _prune(value):
    """Drop None, empty and zero/False members recursively: the API omits them inconsistently."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [], "", False, 0)}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


# --- What changes ---------------------------------------------------------------------------------


def normalize_spec(spec, resolve_image="never"):
    """A service Spec reduced to what the user controls, for comparing before and after a deploy.

    Drops empty values, sorts lists whose order means nothing (networks, secrets, configs, mounts,
    env), and with ``resolve_image=never`` ignores an image digest pinned by an earlier deploy.
    Version, UpdatedAt, PreviousSpec and UpdateStatus live outside the Spec and never count.
    """
    spec = copy.deepcopy(spec or {})
    if spec.get("Labels"):
        spec["Labels"].pop(FINGERPRINT_LABEL, None)
    template = spec.get("TaskTemplate") or {}
    container = template.get("ContainerSpec") or {}
    if resolve_image == "never" and container.get("Image"):
        container["Image"] = strip_digest(container["Image"])
    for key, sort_key in (("Secrets", "SecretName"), ("Configs", "ConfigName"), ("Mounts", "Target")):
        if container.get(key):
            container[key] = sorted(container[key], key=lambda r, k=sort_key: (str(r.get(k)), json.dumps(r)))
    if container.get("Env"):
        container["Env"] = sorted(container["Env"])
    if template.get("Networks"):
        template["Networks"] = sorted(
            (dict(n, Aliases=sorted(n.get("Aliases") or [])) for n in template["Networks"]),
            key=lambda n: n.get("Target", ""),
        )
    template.pop("Runtime", None)
    return _prune(spec)


def compare_services(before, after, resolve_image="never"):
    """``{service name: created|updated|removed}`` between two lists of services."""
    old = {s["Spec"]["Name"]: s["Spec"] for s in before}
    new = {s["Spec"]["Name"]: s["Spec"] for s in after}
    changes = {}
    for name in sorted(set(old) | set(new)):
        if name not in old:
            changes[name] = "created"
        elif name not in new:
            changes[name] = "removed"
        elif normalize_spec(old[name], resolve_image) != normalize_spec(new[name], resolve_image):
            changes[name] = "updated"
    return changes


def endpoint_changed(before, after):
    """IDs of services whose published ports or endpoint mode changed: swarm replaces their tasks,
    but the tasks' spec does not show it."""
    old = {s["ID"]: normalize_spec(s["Spec"]).get("EndpointSpec") for s in before}
    return {s["ID"] for s in after if s["ID"] in old and old[s["ID"]] != normalize_spec(s["Spec"]).get("EndpointSpec")}


def service_mode(spec):
    mode = spec.get("Mode") or {}
    for key, name in (("ReplicatedJob", "replicated-job"), ("GlobalJob", "global-job"), ("Global", "global")):
        if key in mode:
            return name
    return "replicated"


def _update_view(config):
    config = config or {}
    parallelism = config.get("Parallelism", config.get("parallelism", 1))
    return {
        "parallelism": 1 if parallelism is None else int(parallelism),
        "delay": show_duration(parse_duration(config.get("Delay", config.get("delay")))),
        "failure_action": config.get("FailureAction") or config.get("failure_action") or "pause",
        "monitor": show_duration(parse_duration(config.get("Monitor", config.get("monitor"))) or DEFAULT_MONITOR),
        "max_failure_ratio": float(config.get("MaxFailureRatio", config.get("max_failure_ratio")) or 0),
        "order": config.get("Order") or config.get("order") or "stop-first",
    }


def _restart_view(policy):
    policy = policy or {}
    delay = parse_duration(policy.get("Delay", policy.get("delay")))
    return {
        "condition": policy.get("Condition") or policy.get("condition") or "any",
        "delay": show_duration(delay or DEFAULT_RESTART_DELAY),
        "max_attempts": int(policy.get("MaxAttempts", policy.get("max_attempts")) or 0),
        "window": show_duration(parse_duration(policy.get("Window", policy.get("window")))),
    }


def _user_labels(labels):
    return {
        k: str(v) for k, v in (labels or {}).items() if not k.startswith(STACK_LABEL_PREFIX) and k != FINGERPRINT_LABEL
    }


def fingerprint(compose, options):
    """A digest of the compose file as the CLI reads it and the deploy's options."""
    blob = json.dumps([compose, options], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def with_fingerprint(compose, digest):
    """The compose file with FINGERPRINT_LABEL = ``digest`` among each service's deploy labels."""
    compose = copy.deepcopy(compose)
    for svc in (compose.get("services") or {}).values():
        deploy = svc.setdefault("deploy", {})
        labels = deploy.get("labels") or {}
        if isinstance(labels, list):  # the list form, "key=value"
            labels = dict(item.split("=", 1) if "=" in item else (item, "") for item in labels)
        deploy["labels"] = dict(labels, **{FINGERPRINT_LABEL: digest})
    return compose


def deployed_as(compose, stack, services, digest):
    """Whether the stack's services are exactly the compose file's, each labelled with ``digest``."""
    wanted = {f"{stack}_{key}" for key in (compose.get("services") or {})}
    labels = {s["Spec"]["Name"]: (s["Spec"].get("Labels") or {}).get(FINGERPRINT_LABEL) for s in services}
    return bool(wanted) and set(labels) == wanted and all(value == digest for value in labels.values())


def _caps_view(caps):
    """Capability names as the CLI and the API may spell them (NET_RAW, CAP_NET_RAW), sorted."""
    return sorted({c[4:] if c.startswith("CAP_") else c for c in (str(c).upper() for c in caps or [])})


def _resources_view(limits, reservations):
    return _prune({"limits": limits, "reservations": reservations})


def _healthcheck_view(test, interval, timeout, retries, start_period):
    if not test:
        return None
    return {
        "test": list(test),
        "interval": show_duration(interval),
        "timeout": show_duration(timeout),
        "retries": int(retries or 0),
        "start_period": show_duration(start_period),
    }


def _ref_sort(refs):
    return sorted(refs, key=lambda r: (r["target"], r["source"]))


def spec_view(spec, network_names=None, digests=False):
    """The documented subset of a service Spec (see the module's check mode notes), readable."""
    network_names = network_names or {}
    template = spec.get("TaskTemplate") or {}
    container = template.get("ContainerSpec") or {}
    mode = service_mode(spec)
    mode_spec = spec.get("Mode") or {}
    replicas = None
    if mode == "replicated":
        replicas = int((mode_spec.get("Replicated") or {}).get("Replicas", 1) or 0)
    elif mode == "replicated-job":
        replicas = int((mode_spec.get("ReplicatedJob") or {}).get("TotalCompletions", 1) or 0)

    def refs(key, name_key):
        return _ref_sort(
            {
                "source": ref.get(name_key),
                "target": (ref.get("File") or {}).get("Name", ""),
                "uid": str((ref.get("File") or {}).get("UID") or "0"),
                "gid": str((ref.get("File") or {}).get("GID") or "0"),
                "mode": int((ref.get("File") or {}).get("Mode", 0o444)),
            }
            for ref in container.get(key) or []
        )

    resources = template.get("Resources") or {}

    def amounts(block):
        block = block or {}
        return {
            "cpus": f"{block['NanoCPUs'] / SECOND:g}" if block.get("NanoCPUs") else None,
            "memory": block.get("MemoryBytes"),
            "pids": block.get("Pids"),
        }

    placement = template.get("Placement") or {}
    health = container.get("Healthcheck") or {}
    endpoint = spec.get("EndpointSpec") or {}
    image = container.get("Image", "")
    return {
        "image": image if digests else strip_digest(image),
        "command": list(container.get("Command") or []) or None,
        "args": list(container.get("Args") or []) or None,
        "env": sorted(container.get("Env") or []),
        "user": container.get("User") or None,
        "cap_add": _caps_view(container.get("CapabilityAdd")),
        "cap_drop": _caps_view(container.get("CapabilityDrop")),
        "read_only": bool(container.get("ReadOnly")),
        "labels": _user_labels(spec.get("Labels")),
        "container_labels": _user_labels(container.get("Labels")),
        "mode": mode,
        "replicas": replicas,
        "networks": sorted(
            network_names.get(n.get("Target"), n.get("Target"))
            for n in (template.get("Networks") or spec.get("Networks") or [])
        ),
        "secrets": refs("Secrets", "SecretName"),
        "configs": refs("Configs", "ConfigName"),
        "mounts": sorted(
            (
                {
                    "type": m.get("Type", "volume"),
                    "source": m.get("Source", ""),
                    "target": m.get("Target", ""),
                    "read_only": bool(m.get("ReadOnly")),
                }
                for m in container.get("Mounts") or []
            ),
            key=lambda m: m["target"],
        ),
        "resources": _resources_view(amounts(resources.get("Limits")), amounts(resources.get("Reservations"))),
        "placement": {
            "constraints": sorted(placement.get("Constraints") or []),
            "preferences": [
                (p.get("Spread") or {}).get("SpreadDescriptor") for p in placement.get("Preferences") or []
            ],
            "max_replicas_per_node": int(placement.get("MaxReplicas") or 0),
        },
        "update_config": _update_view(spec.get("UpdateConfig")),
        "rollback_config": _update_view(spec.get("RollbackConfig")),
        "restart_policy": _restart_view(template.get("RestartPolicy")),
        "healthcheck": _healthcheck_view(
            health.get("Test"),
            health.get("Interval", 0),
            health.get("Timeout", 0),
            health.get("Retries", 0),
            health.get("StartPeriod", 0),
        ),
        "endpoint_mode": endpoint.get("Mode") or "vip",
        "ports": sorted(
            (
                {
                    "target": int(p.get("TargetPort") or 0),
                    "published": int(p.get("PublishedPort") or 0),
                    "protocol": p.get("Protocol") or "tcp",
                    "mode": p.get("PublishMode") or "ingress",
                }
                for p in endpoint.get("Ports") or []
            ),
            key=lambda p: (p["target"], p["published"], p["protocol"]),
        ),
    }


def _scoped(stack, key, top):
    """The Docker name of a network, volume, secret or config that the compose file calls ``key``."""
    config = (top or {}).get(key) or {}
    if not isinstance(config, dict):
        config = {}
    external = config.get("external")
    if isinstance(external, dict) and external.get("name"):
        return external["name"]
    if config.get("name"):
        return config["name"]
    if external:
        return key
    return f"{stack}_{key}"


def _as_list(value):
    if value is None:
        return None
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def _pairs(value):
    """Compose ``environment``/``labels``: a mapping or a list of ``KEY=VALUE``."""
    if isinstance(value, dict):
        out = {}
        for key, val in value.items():
            if isinstance(val, bool):
                val = "true" if val else "false"
            out[str(key)] = None if val is None else str(val)
        return out
    out = {}
    for item in value or []:
        key, sep, val = str(item).partition("=")
        out[key] = val if sep else None
    return out


def _compose_refs(stack, refs, top):
    out = []
    for ref in refs or []:
        if isinstance(ref, str):
            ref = {"source": ref}
        source = ref["source"]
        mode = ref.get("mode")
        if isinstance(mode, str):
            mode = int(mode, 8)
        out.append(
            {
                "source": _scoped(stack, source, top),
                "target": str(ref.get("target") or source),
                "uid": str(ref.get("uid") or "0"),
                "gid": str(ref.get("gid") or "0"),
                "mode": 0o444 if mode is None else int(mode),
            }
        )
    return _ref_sort(out)


def _compose_mount(stack, volume, top):
    if isinstance(volume, str):
        parts = volume.split(":")
        if len(parts) == 1:
            return {"type": "volume", "source": "", "target": parts[0], "read_only": False}
        source, target = parts[0], parts[1]
        read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
        volume = {"type": kind, "source": source, "target": target, "read_only": read_only}
    kind = volume.get("type", "volume")
    source = volume.get("source") or ""
    if kind == "volume" and source:
        source = _scoped(stack, source, top)
    return {
        "type": kind,
        "source": source,
        "target": volume.get("target", ""),
        "read_only": bool(volume.get("read_only")),
    }


_PORT = re.compile(
    r"^(?:(?:\d+\.\d+\.\d+\.\d+|\[[0-9a-fA-F:]+\]):)?(?:(\d+)(?:-(\d+))?:)?(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$"
)


def _compose_ports(ports):
    out = []
    for port in ports or []:
        if isinstance(port, dict):
            out.append(
                {
                    "target": int(port.get("target") or 0),
                    "published": int(port.get("published") or 0),
                    "protocol": port.get("protocol") or "tcp",
                    "mode": port.get("mode") or "ingress",
                }
            )
            continue
        match = _PORT.match(str(port))
        if not match:
            raise StackError(f"Cannot read the port {port!r}.")
        pub_start, pub_end, tgt_start, tgt_end, proto = match.groups()
        targets = range(int(tgt_start), int(tgt_end or tgt_start) + 1)
        for offset, target in enumerate(targets):
            published = int(pub_start) + offset if pub_start else 0
            out.append({"target": target, "published": published, "protocol": proto or "tcp", "mode": "ingress"})
    return sorted(out, key=lambda p: (p["target"], p["published"], p["protocol"]))


def compose_view(compose, stack):
    """``{service name: view}`` from a compose dict, in the shape of ``spec_view``.

    Only the fields listed in the module's documentation are derived; variable interpolation,
    ``extends`` and the like are resolved before, by ``docker stack config``.
    """
    top = {key: compose.get(key) or {} for key in ("networks", "volumes", "secrets", "configs")}
    views = {}
    for key, svc in (compose.get("services") or {}).items():
        svc = svc or {}
        deploy = svc.get("deploy") or {}
        mode = deploy.get("mode") or "replicated"
        replicas = None
        if mode in ("replicated", "replicated-job"):
            replicas = int(1 if deploy.get("replicas") is None else deploy["replicas"])
        networks = svc.get("networks")
        names = list(networks) if networks else ["default"]
        resources = deploy.get("resources") or {}

        def amounts(block):
            block = block or {}
            cpus = parse_cpus(block.get("cpus"))
            return {
                "cpus": f"{cpus / SECOND:g}" if cpus else None,
                "memory": parse_bytes(block.get("memory")) or None,
                "pids": block.get("pids"),
            }

        placement = deploy.get("placement") or {}
        health = svc.get("healthcheck") or {}
        test = health.get("test")
        if health.get("disable"):
            test = ["NONE"]
        elif isinstance(test, str):
            test = ["CMD-SHELL", test]
        env = _pairs(svc.get("environment"))
        views[f"{stack}_{key}"] = {
            "image": strip_digest(svc.get("image", "")),
            "command": _as_list(svc.get("entrypoint")) or None,
            "args": _as_list(svc.get("command")) or None,
            "env": sorted(k if v is None else f"{k}={v}" for k, v in env.items()),
            "user": str(svc["user"]) if svc.get("user") not in (None, "") else None,
            "cap_add": _caps_view(svc.get("cap_add")),
            "cap_drop": _caps_view(svc.get("cap_drop")),
            "read_only": bool(svc.get("read_only")),
            "labels": _user_labels(_pairs(deploy.get("labels"))),
            "container_labels": _user_labels(_pairs(svc.get("labels"))),
            "mode": mode,
            "replicas": replicas,
            "networks": sorted(_scoped(stack, n, top["networks"]) for n in names),
            "secrets": _compose_refs(stack, svc.get("secrets"), top["secrets"]),
            "configs": _compose_refs(stack, svc.get("configs"), top["configs"]),
            "mounts": sorted(
                (_compose_mount(stack, v, top["volumes"]) for v in svc.get("volumes") or []),
                key=lambda m: m["target"],
            ),
            "resources": _resources_view(amounts(resources.get("limits")), amounts(resources.get("reservations"))),
            "placement": {
                "constraints": sorted(placement.get("constraints") or []),
                "preferences": [p.get("spread") for p in placement.get("preferences") or []],
                "max_replicas_per_node": int(placement.get("max_replicas_per_node") or 0),
            },
            "update_config": _update_view(deploy.get("update_config")),
            "rollback_config": _update_view(deploy.get("rollback_config")),
            "restart_policy": _restart_view(deploy.get("restart_policy")),
            "healthcheck": _healthcheck_view(
                test,
                parse_duration(health.get("interval")),
                parse_duration(health.get("timeout")),
                health.get("retries"),
                parse_duration(health.get("start_period")),
            ),
            "endpoint_mode": deploy.get("endpoint_mode") or "vip",
            "ports": _compose_ports(svc.get("ports")),
        }
    return views


def plan(compose, stack, services, network_names, prune=False):
    """Check mode: ``(changes, before views, after views)`` of the services that would change."""
    wanted = compose_view(compose, stack)
    current = {s["Spec"]["Name"]: spec_view(s["Spec"], network_names) for s in services}
    changes, before, after = {}, {}, {}
    for name in sorted(set(wanted) | set(current)):
        if name not in current:
            changes[name], after[name] = "created", wanted[name]
        elif name not in wanted:
            if prune:
                changes[name], before[name] = "removed", current[name]
        elif wanted[name] != current[name]:
            changes[name] = "updated"
            before[name], after[name] = differing(current[name], wanted[name])
    return changes, before, after


def missing_externals(compose, existing):
    """What the compose file uses but leaves to the swarm (``external``) and the swarm lacks.

    ``existing`` maps ``secrets``, ``configs`` and ``networks`` to the names the swarm has. The CLI
    would create the stack's own networks before it found out, and leave them behind.
    """
    problems = []
    for kind, one in (("secrets", "secret"), ("configs", "config"), ("networks", "network")):
        top = compose.get(kind) or {}
        for key, svc in sorted((compose.get("services") or {}).items()):
            refs = (svc or {}).get(kind) or []
            for ref in refs if isinstance(refs, (list, dict)) else []:
                logical = ref.get("source") if isinstance(ref, dict) else ref
                entry = top.get(logical) or {}
                if not entry.get("external"):
                    continue
                name = entry.get("name") or logical
                if name not in existing.get(kind, ()):
                    problems.append(f"service {key} uses the {one} {name}, which is external and not in the swarm")
    return problems


def differing(old, new):
    """Only the fields that differ, to keep a diff readable."""
    keys = [k for k in new if old.get(k) != new.get(k)]
    return {k: old.get(k) for k in keys}, {k: new.get(k) for k in keys}


# --- Is it converged ------------------------------------------------------------------------------


def task_fingerprint(template):
    """What identifies the spec a task runs: its TaskTemplate, without what tasks do not carry."""
    template = copy.deepcopy(template or {})
    template.pop("Runtime", None)
    return json.dumps(_prune(template), sort_keys=True)


def _parse_time(stamp):
    """Seconds since the epoch of the API's RFC 3339 timestamps (nanoseconds cut to microseconds)."""
    if not stamp:
        return None
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", stamp)
    if not match:
        return None
    fraction = (match[2] or "0")[:6].ljust(6, "0")
    zone = "+00:00" if match[3] == "Z" else match[3]
    return datetime.fromisoformat(f"{match[1]}.{fraction}{zone}").timestamp()


def _state(task):
    return (task.get("Status") or {}).get("State")


def assess(service, tasks, previous_started=None, now=None, expect_update=False):
    """Judge one service: a report dict whose ``state`` is converged, waiting or failed, with ``reason``.

    - An update in a failed state (paused, rollback_*) that started after ``previous_started`` fails.
    - Tasks count only when they run the service's current TaskTemplate (and, for jobs, its current
      iteration); tasks still running an older spec keep the service waiting.
    - Running tasks count once they have run for the update monitor: the task API of Docker 20.10
      exposes no health (ContainerStatus holds ContainerID, PID and ExitCode), but the engine keeps a
      task 'starting' until its HEALTHCHECK passes and fails it when it turns unhealthy.
    - Completed tasks count for jobs and for services whose restart condition is none or on-failure
      (one-shot services); a failed one fails the service when its restart condition is none.
    - ``expect_update``: the change does not show in the tasks' spec (published ports), so only an
      UpdateStatus newer than ``previous_started`` tells that the tasks were replaced.
    """
    now = time.time() if now is None else now
    spec = service["Spec"]
    name = spec["Name"]
    mode = service_mode(spec)
    job = mode in JOB_MODES
    template = spec.get("TaskTemplate") or {}
    condition = (template.get("RestartPolicy") or {}).get("Condition") or ("on-failure" if job else "any")
    monitor = parse_duration((spec.get("UpdateConfig") or {}).get("Monitor")) or DEFAULT_MONITOR
    state = update_state(service, previous_started)
    fingerprint = task_fingerprint(template)
    iteration = ((service.get("JobStatus") or {}).get("JobIteration") or {}).get("Index", 0)

    def current_task(task):
        if task_fingerprint(task.get("Spec")) != fingerprint:
            return False
        return not job or (task.get("JobIteration") or {}).get("Index", 0) == iteration

    current = [t for t in tasks if current_task(t)]
    outdated = [
        t for t in tasks if not current_task(t) and t.get("DesiredState") == "running" and _state(t) == "running"
    ]
    running = [t for t in current if t.get("DesiredState") == "running" and _state(t) == "running"]
    completed = [t for t in current if _state(t) == "complete"]

    def slot(task):
        return task.get("Slot") or task.get("NodeID")

    def settled(task):
        since = _parse_time((task.get("Status") or {}).get("Timestamp"))
        return since is None or now - since >= monitor / SECOND

    mode_spec = spec.get("Mode") or {}
    if mode == "replicated":
        desired = int((mode_spec.get("Replicated") or {}).get("Replicas", 1) or 0)
    elif mode == "replicated-job":
        desired = int((mode_spec.get("ReplicatedJob") or {}).get("TotalCompletions", 1) or 0)
    elif mode == "global":
        desired = len(
            {t.get("NodeID") for t in current if t.get("DesiredState") == "running"} | {slot(t) for t in completed}
        )
    else:
        desired = len({t.get("NodeID") for t in current})

    if job:
        done_slots = {t.get("ID") for t in completed} if mode == "replicated-job" else {slot(t) for t in completed}
    else:
        done_slots = {slot(t) for t in running if settled(t)}
        if condition in ("none", "on-failure"):
            done_slots |= {slot(t) for t in completed}
    failed_slots = set()
    if condition == "none":
        failed_slots = {slot(t) for t in current if _state(t) in ("failed", "rejected")} - done_slots

    errors = task_error(tasks)
    report = {
        "name": name,
        "mode": mode,
        "desired": desired,
        "running": len(running),
        "completed": len(completed),
        "replicas": f"{len(done_slots)}/{desired}",
        "update_state": state,
        "last_error": None if errors == "no task error reported" else errors,
        "state": "waiting",
        "reason": "",
    }
    oneshot = job or condition in ("none", "on-failure")
    early = "early termination" in ((service.get("UpdateStatus") or {}).get("Message") or "")
    if state == "paused" and oneshot and early and not failed_slots and desired and len(done_slots) >= desired:
        # The updater counts a task that exits within the monitor as failed, even with exit code 0
        # (docker/cli#5299): the one-shot task did its job, the pause is no failure.
        return dict(report, state="converged", reason="converged (one-shot task completed; update paused by swarm)")
    failure = update_failure(name, state, service, tasks)
    if failure and oneshot and early:
        failure += (
            " Swarm counts a one-shot task that completes within update_config.monitor as a failure"
            " (docker/cli#5299); use failure_action pause or continue for one-shot services."
        )
    if failure:
        return dict(report, state="failed", reason=failure)
    if failed_slots:
        return dict(
            report,
            state="failed",
            reason=f"A task of service {name} failed and its restart condition is none: {task_error(current)}.",
        )
    reasons = []
    if state == "updating":
        reasons.append("update in progress")
    if expect_update and state is None and desired:
        reasons.append("waiting for the update to start")
    if outdated:
        reasons.append(f"{len(outdated)} task(s) still run the previous spec")
    if desired == 0 and mode in ("global", "global-job"):
        reasons.append("no task scheduled yet (no eligible node?)")
    if len(done_slots) < desired:
        unsettled = [t for t in running if not settled(t)]
        reasons.append(f"{len(done_slots)}/{desired} {'completed' if job else 'ready'}")
        if unsettled:
            reasons.append(f"{len(unsettled)} running for less than the update monitor ({show_duration(monitor)})")
        pending = sorted(
            (t for t in current if _state(t) not in ("running", "complete")), key=lambda t: t.get("UpdatedAt", "")
        )
        if pending:
            status = pending[-1].get("Status") or {}
            detail = status.get("Err") or status.get("Message") or ""
            reasons.append(f"task {status.get('State')}" + (f": {detail}" if detail else ""))
        elif report["last_error"]:
            reasons.append(f"last task error: {report['last_error']}")
    if reasons:
        return dict(report, reason="; ".join(reasons))
    return dict(report, state="converged", reason="converged")


def progress_line(report):
    update = f", update {report['update_state']}" if report["update_state"] else ""
    return f"{report['name']}: {report['replicas']} {report['mode']}{update} - {report['reason']}"


# --- Deploy and remove ----------------------------------------------------------------------------


class StackDeployer:
    """Applies the decisions above through the docker CLI (``run``) and the Engine API (``client``).

    ``run(args, data=None)`` returns ``(rc, stdout, stderr)``, like AnsibleModule.run_command.
    """

    def __init__(self, client, run, name, docker_cli="docker", timeout=600, poll=1.0, clock=time.monotonic):
        self.client = client
        self.run = run
        self.name = name
        self.docker_cli = docker_cli
        self.timeout = timeout
        self.poll = poll
        self.clock = clock
        self.events = []
        self.warnings = []
        self._start = clock()

    def event(self, line):
        self.events.append(f"[{self.clock() - self._start:5.1f}s] {line}")

    # Reading
    def listed(self, path):
        return self.client.get_json(f"{path}?{filters_param(label=[f'{NAMESPACE_LABEL}={self.name}'])}") or []

    def services(self):
        return sorted(self.listed("/services"), key=lambda s: s["Spec"]["Name"])

    def tasks(self):
        return self.listed("/tasks")

    def network_names(self):
        return {n["Id"]: n["Name"] for n in self.client.get_json("/networks") or []}

    def existing_names(self):
        """The names of the swarm's secrets, configs and networks."""
        return {
            kind: {o["Spec"]["Name"] if "Spec" in o else o["Name"] for o in self.client.get_json(f"/{kind}") or []}
            for kind in ("secrets", "configs", "networks")
        }

    # The CLI
    def _cli(self, args, data=None, what="docker"):
        rc, out, err = self.run([self.docker_cli, *args], data=data)
        if rc != 0 and "unknown flag: --detach" in (err or "") and "--detach=true" in args:
            args = [a for a in args if a != "--detach=true"]  # a CLI older than 26 never waits anyway
            rc, out, err = self.run([self.docker_cli, *args], data=data)
        if rc != 0:
            lines = [line for line in (err or "").strip().splitlines() if line.strip()]
            raise StackError(f"{what} failed for stack {self.name}: {lines[-1] if lines else f'exit code {rc}'}", err)
        for line in (err or "").splitlines():
            line = line.strip()
            if line and "--detach" not in line and "In a future release" not in line:
                self.warnings.append(f"{what}: {line}")
        return out

    def rendered(self, compose_text, warn=True):
        """The compose file as the CLI reads it (merged, interpolated, long syntax), for check mode and
        the deploy's digest; ``warn``: say so when this CLI cannot render it (check mode)."""
        import yaml  # noqa: PLC0415 - only check mode needs it, and Ansible always ships it

        rc, out, err = self.run([self.docker_cli, "stack", "config", "--compose-file", "-"], data=compose_text)
        if rc == 0:
            return yaml.safe_load(out) or {}
        # A CLI before `stack config` (20.10) says one of these, depending on how it parsed the line.
        if any(sign in (err or "") for sign in ("unknown command", "is not a docker command", "unknown flag")):
            if warn:
                self.warnings.append("This docker CLI has no 'stack config'; check mode reads the compose file as is.")
            return yaml.safe_load(compose_text) or {}
        lines = [line for line in (err or "").strip().splitlines() if line.strip()]
        raise StackError(f"docker stack config failed for stack {self.name}: {lines[-1] if lines else rc}", err)

    # Present
    def deploy(self, compose_text, prune=False, resolve_image="never", with_registry_auth=False):
        args = ["stack", "deploy", "--compose-file", "-", "--resolve-image", resolve_image, "--detach=true"]
        if prune:
            args.append("--prune")
        if with_registry_auth:
            args.append("--with-registry-auth")
        # The CLI reads each service and updates it at once; when Swarm changed the service in
        # between (an update or rollback moving on), the deploy is run again, since it is declarative.
        for attempt in range(1, UPDATE_ATTEMPTS + 1):
            try:
                self._cli([*args, self.name], data=compose_text, what="docker stack deploy")
                return
            except StackError as exc:
                if SEQUENCE_CONFLICT not in (exc.stderr or "") or attempt == UPDATE_ATTEMPTS:
                    raise
                self.event(f"a service changed while the stack was deployed ({SEQUENCE_CONFLICT}); deploying again")
                time.sleep(self.poll * attempt)

    def converge(self, previous, expect_update=()):
        """Wait until every service of the stack converges; ``{name: report}``. Raises StackError.

        ``previous``: ``{service ID: UpdateStatus.StartedAt before the deploy}``; ``expect_update``:
        IDs of services whose change only an update shows (see ``endpoint_changed``).
        """
        deadline = self.clock() + self.timeout
        lines = {}
        while True:
            services = self.services()
            tasks = self.tasks()
            by_service = {}
            for task in tasks:
                by_service.setdefault(task.get("ServiceID"), []).append(task)
            reports = {}
            for service in services:
                report = assess(
                    service,
                    by_service.get(service["ID"], []),
                    previous.get(service["ID"]),
                    expect_update=service["ID"] in expect_update,
                )
                reports[report["name"]] = report
                line = progress_line(report)
                if lines.get(report["name"]) != line:
                    lines[report["name"]] = line
                    self.event(line)
            failed = [r for r in reports.values() if r["state"] == "failed"]
            if failed:
                raise StackError(" ".join(r["reason"] for r in failed), reports=reports)
            waiting = [r for r in reports.values() if r["state"] != "converged"]
            if not waiting:
                return reports
            if self.clock() >= deadline:
                detail = "; ".join(f"{r['name']} ({r['reason']})" for r in waiting)
                raise StackError(
                    f"Stack {self.name} did not converge within {self.timeout}s: {detail}.", reports=reports
                )
            time.sleep(self.poll)

    def crowded(self):
        """The stack's services whose replicas share fewer nodes than they could (``_spread.crowded``)."""
        tasks = self.client.get_json("/tasks?" + filters_param(**{"desired-state": ["running"]})) or []
        return crowded(self.services(), tasks, self.client.get_json("/nodes") or [])

    def spread(self, found):
        """Spread each service in ``found`` (from ``crowded``): scale it up by the nodes it lacks
        (the scheduler puts new tasks on the nodes with the fewest of the service), wait until they
        run, then back to its replicas (swarm removes tasks from the nodes with the most copies
        first), and wait until the stack converges. No task stops before its replacement runs; a
        rolling update would not do (start-first, the replaced task still counts on its node)."""
        ids = {s["Spec"]["Name"]: s["ID"] for s in self.services()}
        replicas = {}
        for name, hosting, could in found:
            self.event(f"{name}: its replicas run on {hosting} node(s) of the {could} that could take them; spreading")
            replicas[name] = self._scale(ids[name], lambda count, extra=could - hosting: count + extra)
        self.converge(self._started())
        for name, count in replicas.items():
            self._scale(ids[name], lambda _count, count=count: count)
        reports = self.converge(self._started())
        # The tasks removed drain their requests before they stop: wait for that too, so that the
        # stack is as `docker service ls` will say (its replicas, no more).
        deadline = self.clock() + self.timeout
        while True:
            running = {}
            for task in self.tasks():
                if _state(task) == "running":
                    running[task.get("ServiceID")] = running.get(task.get("ServiceID"), 0) + 1
            extra = sorted(name for name, count in replicas.items() if running.get(ids[name], 0) > count)
            if not extra:
                return reports
            if self.clock() >= deadline:
                raise StackError(f"Stack {self.name}: the tasks removed from {', '.join(extra)} did not stop "
                                 f"within {self.timeout}s.", reports=reports)  # fmt: skip
            time.sleep(self.poll)

    def _started(self):
        return {s["ID"]: (s.get("UpdateStatus") or {}).get("StartedAt") for s in self.services()}

    def _scale(self, service_id, replicas):
        """Set the service's replica count to ``replicas(current)``, re-reading it on a conflict; the
        count it had."""
        counts = []

        def change(service):
            spec = service["Spec"]
            counts.append(spec["Mode"]["Replicated"]["Replicas"])
            spec["Mode"]["Replicated"]["Replicas"] = replicas(counts[-1])
            return spec

        update_service(self.client, service_id, change, UPDATE_ATTEMPTS, self.poll)
        return counts[-1]

    # Absent
    def remove(self):
        """``docker stack rm``, then wait until its tasks and this node's containers are gone, and
        remove the networks, secrets and configs the CLI could not remove while tasks still used them."""
        self._cli(["stack", "rm", "--detach=true", self.name], what="docker stack rm")
        label = filters_param(label=[f"{NAMESPACE_LABEL}={self.name}"])
        deadline = self.clock() + self.timeout
        last = None
        while True:
            services, tasks = self.services(), self.tasks()
            # Docker 20.10 keeps the completed tasks of a removed job service, and their containers:
            # they are reported, not waited for.
            kept = {t["ID"] for t in tasks if not services and "JobIteration" in t and _state(t) in TERMINAL_STATES}
            tasks = [t for t in tasks if t["ID"] not in kept]
            containers = [
                c
                for c in self.client.get_json(f"/containers/json?all=1&{label}") or []
                if (c.get("Labels") or {}).get("com.docker.swarm.task.id") not in kept
            ]
            leftovers = {}
            if not services and not tasks and not containers:
                for path, key in (("/networks", "Id"), ("/secrets", "ID"), ("/configs", "ID")):
                    for obj in self.listed(path):
                        leftovers.setdefault(path[1:], []).append(obj)
                        try:
                            self.client.request("DELETE", f"{path}/{obj[key]}")
                        except DockerAPIError as exc:  # retried until the deadline
                            self.event(f"removing {path[1:-1]} {obj.get('Name') or obj['Spec'].get('Name')}: {exc}")
                if not leftovers:
                    self.event(f"stack {self.name} removed")
                    if kept:
                        self.warnings.append(
                            f"Swarm keeps {len(kept)} finished task(s) of removed job services of stack {self.name} "
                            "and their stopped containers (Docker 20.10); remove the containers with "
                            "'docker container prune' on the nodes if needed."
                        )
                    return
            counts = [(len(services), "service(s)"), (len(tasks), "task(s)"), (len(containers), "container(s)")]
            counts += [(len(v), k) for k, v in leftovers.items()]
            line = "waiting for " + ", ".join(f"{n} {what}" for n, what in counts if n)
            if line != last:
                self.event(line)
                last = line
            if self.clock() >= deadline:
                raise StackError(f"Stack {self.name} was not removed within {self.timeout}s: {line}.")
            time.sleep(self.poll)
