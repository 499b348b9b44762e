# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether a stack's service has converged, judged from the service and its tasks (``assess``).

The update-state rules (a stale 'completed', rollbacks, paused updates) are the ones
``_swarm_objects.Rewirer.wait`` uses. Pure functions; ``_stack.StackDeployer`` polls with them.
"""

import copy
import json
import re
import time
from datetime import datetime

from ansible_collections.shopstream.swarm.plugins.module_utils._stack_spec import (
    DEFAULT_MONITOR,
    JOB_MODES,
    SECOND,
    parse_duration,
    prune,
    service_mode,
    show_duration,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import (
    task_error,
    update_failure,
    update_state,
)


def task_fingerprint(template):
    """What identifies the spec a task runs: its TaskTemplate, without what tasks do not carry."""
    template = copy.deepcopy(template or {})
    template.pop("Runtime", None)
    return json.dumps(prune(template), sort_keys=True)


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


def task_state(task):
    return (task.get("Status") or {}).get("State")


# An engine takes a task it is given within a second; one the swarm assigned this long ago that the
# node never accepted will not start there (moby/moby#34864: an engine given tasks while its swarm
# was not yet active, after a restart, may leave the next ones assigned until it restarts).
STUCK_ASSIGNED = 60


def stuck_on(tasks, now, nodes=None):
    """The nodes holding a task to run that has stayed 'assigned' for STUCK_ASSIGNED s, sorted: their
    names in ``nodes`` (node ID -> name), else their IDs."""
    found = set()
    for task in tasks:
        if task.get("DesiredState") != "running" or task_state(task) != "assigned":
            continue
        since = _parse_time((task.get("Status") or {}).get("Timestamp"))
        if since is not None and now - since >= STUCK_ASSIGNED:
            node = task.get("NodeID") or "?"
            found.add((nodes or {}).get(node) or node)
    return sorted(found)


def assess(service, tasks, previous_started=None, now=None, expect_update=False, settle=True, nodes=None):
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
    - ``settle`` false: a running task counts at once, however long it has run (what runs now).
    - ``nodes``: node ID -> name, to name a node in a reason (its ID otherwise).
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
        t for t in tasks if not current_task(t) and t.get("DesiredState") == "running" and task_state(t) == "running"
    ]
    running = [t for t in current if t.get("DesiredState") == "running" and task_state(t) == "running"]
    completed = [t for t in current if task_state(t) == "complete"]

    def slot(task):
        return task.get("Slot") or task.get("NodeID")

    def settled(task):
        if not settle:
            return True
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
        failed_slots = {slot(t) for t in current if task_state(t) in ("failed", "rejected")} - done_slots

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
            (t for t in current if task_state(t) not in ("running", "complete")), key=lambda t: t.get("UpdatedAt", "")
        )
        if pending:
            status = pending[-1].get("Status") or {}
            detail = status.get("Err") or status.get("Message") or ""
            # Swarm's message often only repeats the state ("starting"): said once.
            shown = detail and detail.lower() != (status.get("State") or "").lower()
            reasons.append(f"task {status.get('State')}" + (f": {detail}" if shown else ""))
        elif report["last_error"]:
            reasons.append(f"last task error: {report['last_error']}")
        stuck = stuck_on(current, now, nodes)
        if stuck:
            reasons.append(
                f"assigned to node {', '.join(stuck)} for {STUCK_ASSIGNED} s or more and never accepted: that"
                " node's engine takes no task (moby/moby#34864, after an engine restart); restart its engine"
                " (and unlock it, with autolock)"
            )
    if reasons:
        return dict(report, reason="; ".join(reasons))
    return dict(report, state="converged", reason="converged")


def progress_line(report):
    update = f", update {report['update_state']}" if report["update_state"] else ""
    return f"{report['name']}: {report['replicas']} {report['mode']}{update} - {report['reason']}"
