# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a compose stack changes in the swarm: values parsed, service specs and compose services
projected onto one documented view, and the plan of a deploy.

``normalize_spec`` strips what the daemon or the CLI fill in, so that a no-op redeploy compares
equal (``docker stack deploy`` updates every service, bumping its Version and overwriting its
PreviousSpec, even when nothing changed). ``spec_view`` and ``compose_view`` project a service spec
and a compose service onto the same subset of fields, for diffs and for check mode, where nothing
is deployed and the target specs exist only in the compose file. Pure functions: ``_stack_assess``
judges convergence, ``_stack.StackDeployer`` applies them.
"""

import copy
import hashlib
import json
import re
import shlex

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


def prune(value):
    """Drop None, empty and zero/False members recursively: the API omits them inconsistently."""
    if isinstance(value, dict):
        pruned = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [], "", False, 0)}
    if isinstance(value, list):
        return [prune(v) for v in value]
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
    return prune(spec)


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


def not_deployed_as(compose, stack, services, digest):
    """Why the stack's services are not exactly the compose file's, each labelled with ``digest``:
    one reason per service (missing, not in the file, another digest); empty when they are."""
    wanted = {f"{stack}_{key}" for key in (compose.get("services") or {})}
    labels = {s["Spec"]["Name"]: (s["Spec"].get("Labels") or {}).get(FINGERPRINT_LABEL) for s in services}
    if not wanted:
        return ["the compose file has no service"]
    reasons = [f"{name}: not in the swarm" for name in sorted(wanted - set(labels))]
    reasons += [f"{name}: not in the compose file" for name in sorted(set(labels) - wanted)]
    reasons += [
        f"{name}: deployed from another compose file ({value or 'no digest'}, this one {digest})"
        for name, value in sorted(labels.items())
        if name in wanted and value != digest
    ]
    return reasons


def _caps_view(caps):
    """Capability names as the CLI and the API may spell them (NET_RAW, CAP_NET_RAW), sorted."""
    return sorted({c[4:] if c.startswith("CAP_") else c for c in (str(c).upper() for c in caps or [])})


def _resources_view(limits, reservations):
    return prune({"limits": limits, "reservations": reservations})


def _healthcheck_view(test, interval, timeout, retries, start_period):
    # Without a test the image's check runs; timings set without one still override the image's
    # (`docker service update --health-interval`), and a deploy resets them: they are in the view.
    if not test and not (interval or timeout or retries or start_period):
        return None
    return {
        "test": list(test) if test else None,
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
