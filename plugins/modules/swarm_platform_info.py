#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: swarm_platform_info
short_description: Read what runs of the ShopStream stacks - services, tasks, containers - as data
version_added: 0.3.0
author: ShopStream platform team (@shopstream)
description:
  - Read-only; what the role C(shopstream.swarm.verify) checks.
  - With O(services), on a manager, reads the services of the stacks C(<stack_prefix>-*) - their overlays,
    published ports, secret files and update state - and judges whether each converged with the rule
    M(shopstream.swarm.swarm_stack) waits for (its tasks run the current spec, all its replicas run, no
    update in flight or failed), except that a running task counts at once; and the tasks whose desired
    state is running, with their node, container and addresses.
  - With O(containers), on any node, reads those containers - state, health, the user and effective
    capabilities of the first process (from C(/proc/PID/status), so run it as root), read-only root
    filesystem and pids limit.
  - Reports which of O(secret_values) appear in the services' and containers' environments, by name;
    never a value.
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.engine_api
options:
  services:
    description: Read the services and tasks of the stacks (needs a manager).
    type: bool
    default: false
  stack_prefix:
    description: The stacks read are those named C(<stack_prefix>-*).
    type: str
    default: shopstream
  node_hosts:
    description: Node ID to inventory host name, to name each task's host (empty when not listed).
    type: dict
    default: {}
  containers:
    description: IDs of containers on this node to read; one that does not exist is left out of RV(containers).
    type: list
    elements: str
    default: []
  secret_values:
    description:
      - Name to secret value; the names of those found in an environment are returned. Values shorter
        than 8 characters are not looked for (they would match by chance).
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
requirements:
  - A Docker Engine whose API socket is reachable (O(docker_host)); Linux C(/proc) for O(containers).
seealso:
  - module: shopstream.swarm.swarm_stack
"""

EXAMPLES = r"""
- name: What runs of the stacks, on a manager
  shopstream.swarm.swarm_platform_info:
    services: true
    secret_values: "{{ {'vault_shopstream_redis_password': vault_shopstream_redis_password} }}"
  register: platform
  no_log: true  # secret_values

- name: Every service converged
  ansible.builtin.assert:
    that: platform.services | rejectattr('state', 'eq', 'converged') | list | length == 0
"""

RETURN = r"""
services:
  description:
    - With O(services), each service of the stacks - C(name), C(short) (without its stack), C(id), C(update)
      (the update state, C(none) without one), C(networks) (short names), C(ports) (published), C(secrets)
      (C(name), C(file)), C(state) (C(converged), C(waiting) or C(failed)), C(reason), C(replicas).
  returned: always
  type: list
  elements: dict
  sample:
    - name: shopstream-app_auth
      short: auth
      id: 3x1y
      update: completed
      networks: [backend, data, monitoring]
      ports: []
      secrets: [{name: shopstream_jwt_signing_key_77e0a9b1c2d3, file: jwt_signing_key}]
      state: converged
      reason: converged
      replicas: 2/2
tasks:
  description:
    - With O(services), each task whose desired state is running - C(service) (short name), C(id), C(node),
      C(host) (from O(node_hosts)), C(state), C(container), C(addresses) (network name to addresses).
  returned: always
  type: list
  elements: dict
spec_leaks:
  description: "For each of O(secret_values) found in a service's environment, C(<service> (service spec): <name>)."
  returned: always
  type: list
  elements: str
containers:
  description:
    - Each container of O(containers) found - C(id), C(state), C(health) (C(none) without a health check),
      C(read) (whether its first process could be read), C(uid), C(caps) (effective capability names),
      C(read_only), C(pids) (the pids limit, 0 for none), C(leaks) (names of O(secret_values) in its environment).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    DockerAPIError,
    DockerClient,
    list_services,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._platform_info import container_view, platform


def read_status(pid):
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            services=dict(type="bool", default=False),
            stack_prefix=dict(type="str", default="shopstream"),
            node_hosts=dict(type="dict", default={}),
            containers=dict(type="list", elements="str", default=[]),
            secret_values=dict(type="dict", default={}, no_log=True),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    values = params["secret_values"]
    client = DockerClient(params["docker_host"], timeout=30)
    result = {"services": [], "tasks": [], "spec_leaks": [], "containers": []}
    try:
        if params["services"]:
            result["services"], result["tasks"], result["spec_leaks"] = platform(
                list_services(client),
                client.get_json("/tasks") or [],
                client.get_json("/networks") or [],
                params["stack_prefix"],
                params["node_hosts"],
                values,
            )
        for container_id in params["containers"]:
            try:
                container = client.get_json(f"/containers/{container_id}/json")
            except DockerAPIError as exc:
                if exc.status == 404:
                    continue
                raise
            status = read_status((container.get("State") or {}).get("Pid"))
            result["containers"].append(container_view(container, status, values))
    except DockerAPIError as exc:
        module.fail_json(msg=f"Cannot read the platform from the Docker engine ({params['docker_host']}): {exc}")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
