#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: swarm_stack
short_description: Deploy a compose stack and wait until every service has converged
version_added: 0.2.0
author: ShopStream platform team (@shopstream)
description:
  - Deploys a rendered compose file (version 3.x) as a Swarm stack with C(docker stack deploy) on a
    manager, then waits through the Engine API until the stack has converged. Parsing the compose file
    is left to the docker CLI.
  - "Secrets, configs and networks that the compose file declares C(external) must exist: one the swarm
    lacks fails the task before anything is created, naming the service and the object (the CLI would
    create the stack's own networks first and leave them behind). In check mode too. This reads the compose
    file with PyYAML on the manager; where its Python lacks PyYAML, the deploy's own error names the object."
  - "Converged means, for every service of the stack: its update (if one ran) is C(completed); a
    replicated service runs its replica count, a global service one task on every node it was scheduled
    to; each of those tasks runs the service's current spec and has been running for at least the
    service's update monitor (C(update_config.monitor), 5s by default); one-shot services (restart
    condition C(none) or C(on-failure)) and jobs (C(replicated-job), C(global-job)) count a completed
    task as done (L(docker/cli#5299,https://github.com/docker/cli/issues/5299))."
  - "Health: the task API of Docker 20.10 does not expose a container's health
    (C(Task.Status.ContainerStatus) holds only ContainerID, PID and ExitCode). The engine keeps a task
    C(starting) until its image's or service's HEALTHCHECK passes and fails the task when it turns
    unhealthy, so a task C(running) for the update monitor is taken as healthy."
  - A rollback (C(rollback_started), C(rollback_paused), C(rollback_completed)) or a paused update of a
    service fails the task, naming the service and the last task error. A failed task of a service
    whose restart condition is C(none) fails it too. A timeout fails, naming every service not
    converged and why (e.g. C(no suitable node), C(No such image)).
  - C(changed) is true only when a service spec really changes, compared before and after the deploy
    with what the daemon fills in left out (version, timestamps, previous spec, update status, empty
    fields, and the image digest with O(resolve_image=never)), or when services are created or removed.
    C(docker stack deploy) updates every service even when nothing changed, raising its version. So
    each deploy labels the services with a digest of the compose file and options
    (C(com.shopstream.swarm.compose-digest)), and the same compose file again, on services that are
    still as it left them, is not deployed, and no service's version moves. This needs PyYAML in the
    manager's Python (the engine role installs it) and O(resolve_image) other than V(always);
    otherwise every run deploys, and a no-op deploy reports no change. Networks, secrets and
    configs the CLI creates do not count by themselves.
  - "Progress: a module cannot stream output, so progress lines are collected and returned in
    RV(events). Nothing is reported through warnings unless something is off (the CLI writing to
    stderr on success, a check mode limitation)."
  - The compose file holds only the I(names) of secrets and configs, never their values. The CLI's
    stdout is never returned; its stderr is returned on failure.
extends_documentation_fragment:
  - shopstream.swarm.attributes
options:
  name:
    description: The stack's name (the C(com.docker.stack.namespace) of its services, networks and volumes).
    type: str
    required: true
  compose:
    description:
      - The compose file, as YAML text or as a dict. Required with O(state=present).
      - Relative paths in it (C(env_file), C(configs.*.file), bind mounts) resolve against the module's
        working directory on the manager; prefer absolute paths or external objects.
    type: raw
  state:
    description:
      - V(present) deploys the stack and waits until it converges.
      - V(absent) removes it (C(docker stack rm)) and waits until its tasks are gone, then removes the
        networks, secrets and configs of the stack the CLI could not remove while tasks still used them.
      - V(spread) deploys nothing, and spreads the stack's services as O(spread) does. For rolling
        updates made outside the stack's deploy (a rotation's moves, M(shopstream.swarm.swarm_rewire)),
        which start each new task beside the one it replaces and may leave the replicas side by side.
    type: str
    choices: [present, absent, spread]
    default: present
  prune:
    description: Remove services of the stack that the compose file no longer has (C(--prune)).
    type: bool
    default: false
  resolve_image:
    description:
      - C(--resolve-image) of C(docker stack deploy). The default V(never) suits hosts without a registry
        (the docker CLI's own default is V(always)).
      - With V(never) an image digest pinned by an earlier deploy is ignored when comparing specs.
    type: str
    choices: [always, changed, never]
    default: never
  with_registry_auth:
    description: Send the manager's registry credentials to the agents (C(--with-registry-auth)).
    type: bool
    default: false
  spread:
    description:
      - After the stack converged, spread each replicated service of at least two replicas whose
        running tasks share fewer nodes than it could use, then wait until the stack converges again
        and the tasks removed have stopped. Such a service is reported with the action C(spread).
      - Swarm places a task when it starts and never moves it. After a drain, a node that was down, or
        a node that joined, every replica of a service may run on one node, and that node's loss then
        takes the whole service down.
      - The service is scaled up by the nodes it lacks (the scheduler places new tasks on the nodes
        with the fewest of its tasks), and once they run, back to its replicas (Swarm removes tasks
        from the nodes with the most copies first). No task stops before its replacement runs. A
        forced rolling update would not do it, since the task it replaces still counts on its node.
        The service's previous spec (the target of C(docker service rollback)) is then the scaled-up one.
      - A node counts when it is ready and active, matches the service's placement constraints, and
        runs one of its tasks already or has room for its reservations (CPU and memory). A service
        with a constraint on a key other than C(node.id), C(node.hostname), C(node.role),
        C(node.platform.*), C(node.labels.*) or C(engine.labels.*), or with a task not yet running,
        is left as it is.
    type: bool
    default: false
    version_added: 0.3.0
  timeout:
    description: Seconds to wait for convergence (or removal) before failing.
    type: int
    default: 600
  docker_cli:
    description: Path or name of the docker CLI on the manager.
    type: path
    default: docker
  docker_host:
    description: The Engine API socket, used by the module and passed to the CLI as E(DOCKER_HOST).
    type: str
    default: unix:///var/run/docker.sock
notes:
  - "Check mode deploys nothing. It renders the compose file with C(docker stack config) (merges and
    interpolation by the CLI) and compares, per service, this subset of fields with the existing
    service specs: image (without digest), entrypoint (C(command) of the spec), command (C(args)),
    environment, user, capabilities added and dropped, read-only root filesystem, deploy labels and
    container labels, mode and replicas, networks, secrets and configs
    (name, target, uid, gid, mode), mounts (type, source, target, read-only), resources (cpus, memory,
    pids), placement (constraints, preferences, max replicas per node), update_config,
    rollback_config, restart_policy, healthcheck (its timings also where the test is the image's, e.g.
    after C(docker service update --health-interval)), endpoint mode and ports. A change to any other
    field (e.g. C(stop_grace_period), C(logging)) is seen by a real run but not by check mode."
  - Runs on a Swarm manager. Needs the docker CLI there (any version with C(docker stack deploy); CLI 26
    and later are told C(--detach=true), the module does its own waiting) and PyYAML for check mode.
  - An identical redeploy still overwrites each service's previous spec (the target of a manual
    C(docker service rollback)) with its current one, and runs every job service
    (C(replicated-job), C(global-job)) again, since a job runs once per service update; this is
    C(docker stack deploy)'s behaviour. The module still reports no change.
  - Swarm counts a one-shot task that exits within C(update_config.monitor) as a failed update
    (L(docker/cli#5299,https://github.com/docker/cli/issues/5299)). A resulting C(paused) update is
    not reported as a failure when the task completed; with C(failure_action=rollback) swarm rolls the
    service back and the task fails, saying so. Prefer jobs for one-shot work where the engine has them.
  - With O(state=absent), Docker 20.10 keeps the finished tasks of removed job services and their
    stopped containers; the module does not wait for them and warns.
seealso:
  - module: shopstream.swarm.swarm_secret
  - module: shopstream.swarm.swarm_config
  - module: community.docker.docker_stack
attributes:
  check_mode:
    support: full
    details: >-
      Reports which services would be created, updated or removed, with a diff;
      see the notes for what is compared.
  diff_mode:
    support: full
    details: Before and after of each changed service, in the subset of fields listed in the notes.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Deploy the app stack and wait until it has converged
  shopstream.swarm.swarm_stack:
    name: shop
    compose: "{{ lookup('ansible.builtin.template', 'app-stack.yml.j2') }}"
    timeout: 900
  register: app_stack

- name: Show what each service runs
  ansible.builtin.debug:
    msg: "{{ item.key }}: {{ item.value.replicas }} ({{ item.value.update_state or 'no update' }})"
  loop: "{{ app_stack.services | dict2items }}"

- name: After rolling updates made outside the stack (a rotation), spread the replicas left side by side
  shopstream.swarm.swarm_stack:
    name: shop
    state: spread

- name: Deploy the same file again - nothing changes, the task reports ok
  shopstream.swarm.swarm_stack:
    name: shop
    compose: "{{ lookup('ansible.builtin.template', 'app-stack.yml.j2') }}"

- name: A stack given as a dict, with a one-shot migration service
  shopstream.swarm.swarm_stack:
    name: data
    prune: true
    compose:
      version: "3.8"
      services:
        migrate:
          image: shopstream/app:1.4
          command: ["python3", "-m", "shop.migrate"]
          deploy:
            restart_policy:
              condition: none
        db:
          image: shopstream/mariadb:10.11
          secrets:
            - source: db_root
              target: db_root_password
              uid: "999"
              mode: 256  # 0400: compose reads YAML 1.1 octal, written in decimal here
          deploy:
            update_config:
              order: stop-first
              failure_action: rollback
      secrets:
        db_root:
          external: true
          name: "{{ db_root_secret.name }}"

- name: Which services would change? (check mode, with --diff)
  shopstream.swarm.swarm_stack:
    name: shop
    compose: "{{ lookup('ansible.builtin.template', 'app-stack.yml.j2') }}"
  check_mode: true
  diff: true

- name: Remove the stack and wait until its tasks and networks are gone
  shopstream.swarm.swarm_stack:
    name: shop
    state: absent
"""

RETURN = r"""
services:
  description:
    - Per service of the stack (full name, C(<stack>_<service>)), its state when the task ended.
    - In check mode, and with O(state=absent), only RV(services.action) is set.
  returned: always
  type: dict
  contains:
    name:
      description: The service's name.
      type: str
    action:
      description:
        - C(created), C(updated), C(removed), C(spread) (see O(spread)) or C(unchanged).
        - In check mode, what would happen.
      type: str
    mode:
      description: C(replicated), C(global), C(replicated-job) or C(global-job).
      type: str
    replicas:
      description:
        - Tasks done / tasks desired. Done is running the current spec for at least the update monitor,
          or completed (one-shot services and jobs).
      type: str
      sample: 2/2
    running:
      description: Tasks running the current spec.
      type: int
    completed:
      description: Tasks of the current spec that completed (one-shot services and jobs).
      type: int
    desired:
      description: Replicas, completions of a job, or nodes of a global service.
      type: int
    update_state:
      description:
        - The state of the update this deploy started (C(completed), C(updating), C(rollback_completed)...).
        - Null when none ran, e.g. for a new or unchanged service.
      type: str
    last_error:
      description: The most recent task error of the service (also of earlier tasks), null when none.
      type: str
    state:
      description: C(converged), C(waiting) or C(failed).
      type: str
    reason:
      description: Why it is not converged, or C(converged).
      type: str
  sample:
    shop_api: {action: updated, mode: replicated, replicas: 2/2, running: 2, completed: 0, desired: 2,
               update_state: completed, last_error: null, state: converged, reason: converged}
    shop_migrate: {action: unchanged, mode: replicated, replicas: 1/1, running: 0, completed: 1, desired: 1,
                   update_state: null, last_error: null, state: converged, reason: converged}
changed_services:
  description: Names of the services created, updated, removed or spread (that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [shop_api]
events:
  description: Progress lines collected while waiting, each with the seconds since the task started.
  returned: always
  type: list
  elements: str
  sample: ["[  1.2s] shop_api: 1/2 replicated, update updating - update in progress; 1/2 ready"]
stderr:
  description: The docker CLI's stderr, when the CLI failed.
  returned: failure of the CLI
  type: str
"""

import tempfile

from ansible.module_utils.basic import AnsibleModule

try:
    import yaml
except ImportError:  # the manager's Python may lack PyYAML (Ansible needs it on the controller only)
    yaml = None
HAS_YAML = yaml is not None

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import DockerAPIError, DockerClient
from ansible_collections.shopstream.swarm.plugins.module_utils._stack import StackDeployer
from ansible_collections.shopstream.swarm.plugins.module_utils._stack_spec import (
    StackError,
    check_stack_name,
    compare_services,
    differing,
    endpoint_changed,
    fingerprint,
    missing_externals,
    not_deployed_as,
    plan,
    spec_view,
    with_fingerprint,
)


def load_yaml(text):
    """Only where HAS_YAML."""
    return yaml.safe_load(text) or {}


def compose_text(compose):
    if isinstance(compose, dict):
        if not HAS_YAML:
            raise StackError("compose given as a dict needs PyYAML in the manager's Python; give it as YAML text.")
        return yaml.safe_dump(compose, sort_keys=False)
    if isinstance(compose, str) and compose.strip():
        return compose
    raise StackError("compose must be a compose file: YAML text or a dict.")


class StackModule:
    def __init__(self, module):
        self.module = module
        p = module.params
        self.params = p
        self.client = DockerClient(p["docker_host"], timeout=30)

        def run(args, data=None):
            # The compose file goes to the CLI as a file, not on stdin: a CLI that fails before it
            # reads stdin would leave only a broken pipe, where its own error is what to report.
            if data is not None and "-" in args:
                with tempfile.NamedTemporaryFile("w", suffix=".yml", dir=module.tmpdir, delete=False) as handle:
                    handle.write(data)
                args = [handle.name if a == "-" else a for a in args]
                data = None
            return module.run_command(args, data=data, environ_update={"DOCKER_HOST": p["docker_host"]})

        self.deployer = StackDeployer(self.client, run, p["name"], docker_cli=p["docker_cli"], timeout=p["timeout"])

    def present(self):
        p = self.params
        text = compose_text(p["compose"])
        deployer = self.deployer
        before = deployer.services()
        names = deployer.network_names()
        # Check mode needs the compose file read (PyYAML on the manager); a deploy reads it when it can.
        check = self.module.check_mode
        rendered = deployer.rendered(text, warn=check) if check or HAS_YAML else None
        missing = missing_externals(rendered, deployer.existing_names()) if rendered is not None else []
        if missing:
            raise StackError(
                f"Stack {p['name']} not deployed, nothing changed: {'; '.join(missing)}. Fix: create it first "
                "(the secrets, configs or networks role), or name one that exists."
            )
        if self.module.check_mode:
            changes, old, new = plan(rendered, p["name"], before, names, prune=p["prune"])
            if p["spread"]:
                changes.update({found[0]: "spread" for found in deployer.crowded() if found[0] not in changes})
            services = {s["Spec"]["Name"]: {"action": "unchanged"} for s in before}
            services.update({name: {"action": action} for name, action in changes.items()})
            return changes, services, old, new

        previous = {s["ID"]: (s.get("UpdateStatus") or {}).get("StartedAt") for s in before}
        if rendered is not None and p["resolve_image"] != "always":
            options = {"prune": p["prune"], "resolve_image": p["resolve_image"], "auth": p["with_registry_auth"]}
            digest = fingerprint(rendered, options)
            reasons = not_deployed_as(rendered, p["name"], before, digest)
            planned = plan(rendered, p["name"], before, names)[0]
            if not reasons and not planned:
                deployer.event(f"{p['name']}: not deployed again, its services are as this compose file left them")
                changes, reports = self.spread({}, deployer.converge(previous))
                return changes, {n: dict(r, action=changes.get(n, "unchanged")) for n, r in reports.items()}, {}, {}
            if before:
                # Why a stack that runs is deployed again, for the operator who expected nothing to change.
                why = reasons + [f"{name}: {action} (a field this module compares)" for name, action in planned.items()]
                deployer.event(f"{p['name']}: deployed again: {'; '.join(why)}")
            # The digest goes into the compose file as written: the CLI's rendering has resolved
            # its $$ escapes, and deploying that would interpolate them again.
            text = compose_text(with_fingerprint(load_yaml(text), digest))
        deployer.event(f"docker stack deploy {p['name']} ({len(before)} service(s) before)")
        try:
            deployer.deploy(
                text, prune=p["prune"], resolve_image=p["resolve_image"], with_registry_auth=p["with_registry_auth"]
            )
        finally:
            after = deployer.services()
            changes = compare_services(before, after, p["resolve_image"])
            self.partial = (changes, before, after)
        for name, action in changes.items():
            deployer.event(f"{name}: {action}")
        changes, reports = self.spread(changes, deployer.converge(previous, endpoint_changed(before, after)))
        old, new = self.views({n: a for n, a in changes.items() if a != "spread"}, before, after)
        services = {name: dict(report, action=changes.get(name, "unchanged")) for name, report in reports.items()}
        for name, action in changes.items():
            services.setdefault(name, {"action": action})
        return changes, services, old, new

    def spread(self, changes, reports):
        """With O(spread): the converged stack's services whose replicas share too few nodes are
        spread (``StackDeployer.spread``); ``(changes, reports)`` with those as C(spread)."""
        found = self.deployer.crowded() if self.params["spread"] else []
        if not found:
            return changes, reports
        changes = dict({service[0]: "spread" for service in found}, **changes)
        self.partial = (changes, *getattr(self, "partial", (None, None, None))[1:])  # a failed spread reports them
        return changes, self.deployer.spread(found)

    def spread_only(self):
        """O(state=spread): nothing deployed; the stack's services whose replicas share too few nodes
        spread (in check mode, named)."""
        found = self.deployer.crowded()
        changes = {service[0]: "spread" for service in found}
        if found and not self.module.check_mode:
            self.partial = (changes, None, None)  # a failed spread reports them
            reports = self.deployer.spread(found)
        else:
            reports = {s["Spec"]["Name"]: {} for s in self.deployer.services()}
        return changes, {name: dict(r, action=changes.get(name, "unchanged")) for name, r in reports.items()}, {}, {}

    def views(self, changes, before, after):
        names = self.deployer.network_names()
        digests = self.params["resolve_image"] != "never"
        old = {s["Spec"]["Name"]: spec_view(s["Spec"], names, digests) for s in before if s["Spec"]["Name"] in changes}
        new = {s["Spec"]["Name"]: spec_view(s["Spec"], names, digests) for s in after if s["Spec"]["Name"] in changes}
        for name in set(old) & set(new):
            old[name], new[name] = differing(old[name], new[name])
        return old, new

    def absent(self):
        deployer = self.deployer
        before = deployer.services()
        leftovers = before or any(deployer.listed(path) for path in ("/networks", "/secrets", "/configs"))
        changes = {s["Spec"]["Name"]: "removed" for s in before}
        services = {name: {"action": "removed"} for name in changes}
        old, new = self.views(changes, before, []) if self.module._diff else ({}, {})
        if leftovers and not self.module.check_mode:
            deployer.remove()
        return changes, services, old, new, bool(leftovers)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            compose=dict(type="raw"),
            state=dict(type="str", choices=["present", "absent", "spread"], default="present"),
            prune=dict(type="bool", default=False),
            resolve_image=dict(type="str", choices=["always", "changed", "never"], default="never"),
            with_registry_auth=dict(type="bool", default=False),
            spread=dict(type="bool", default=False),
            timeout=dict(type="int", default=600),
            docker_cli=dict(type="path", default="docker"),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
        ),
        required_if=[("state", "present", ["compose"])],
        supports_check_mode=True,
    )
    name = module.params["name"]
    manager = None
    try:
        check_stack_name(name)
        manager = StackModule(module)
        if module.params["state"] == "present":
            changes, services, old, new = manager.present()
            changed = bool(changes)
        elif module.params["state"] == "spread":
            changes, services, old, new = manager.spread_only()
            changed = bool(changes)
        else:
            changes, services, old, new, changed = manager.absent()
    except (StackError, DockerAPIError) as exc:
        result = {"msg": str(exc), "events": manager.deployer.events if manager else []}
        if isinstance(exc, DockerAPIError):
            result["msg"] = f"The Docker daemon refused a request for stack {name}: {exc}"
        if getattr(exc, "stderr", None):
            result["stderr"] = exc.stderr
        partial = getattr(manager, "partial", None)
        if partial:
            changes = partial[0]
            reports = getattr(exc, "reports", None) or {}
            result["services"] = {n: dict(r, action=changes.get(n, "unchanged")) for n, r in reports.items()}
            result["changed_services"] = sorted(changes)
            result["changed"] = bool(changes)
        module.fail_json(**result)
    for warning in manager.deployer.warnings:
        module.warn(warning)
    result = dict(changed=changed, services=services, changed_services=sorted(changes), events=manager.deployer.events)
    if module._diff:
        result["diff"] = {"before": old, "after": new}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
