# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deploy a compose stack with the docker CLI, then gate on its convergence through the Engine API.

``StackDeployer``: snapshot, ``docker stack deploy``, compare, wait; spread the services whose
replicas share too few nodes (``_spread``); and ``docker stack rm``. What changes is decided by
``_stack_spec``, whether a service converged by ``_stack_assess``.
"""

import time

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    SEQUENCE_CONFLICT,
    UPDATE_ATTEMPTS,
    DockerAPIError,
    filters_param,
    update_service,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._spread import crowded
from ansible_collections.shopstream.swarm.plugins.module_utils._stack_assess import assess, progress_line, task_state
from ansible_collections.shopstream.swarm.plugins.module_utils._stack_spec import (
    NAMESPACE_LABEL,
    StackError,
)

TERMINAL_STATES = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")


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
                if task_state(task) == "running":
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
            kept = {t["ID"] for t in tasks if not services and "JobIteration" in t and task_state(t) in TERMINAL_STATES}
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
