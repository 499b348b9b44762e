#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: swarm_network
short_description: Swarm overlay networks that are never silently recreated
version_added: 0.2.0
author: ShopStream platform team (@shopstream)
description:
  - Creates a swarm-scoped network with the given driver, internal, attachable and encrypted options,
    subnet and labels.
  - Networks are immutable. When an existing network differs, it is recreated only if no service
    uses it and O(recreate=unused); a network in use is never touched, and the task fails with the
    differences, the services using it and the procedure to follow. C(community.docker.docker_network)
    removes and recreates instead.
  - The engine's own networks (C(ingress), C(bridge), C(host), C(none), C(docker_gwbridge)) are
    refused by name, in check mode too.
  - Reads the C(encrypted) option as Docker reports it (the key's presence, whatever its value,
    L(docker/docs#8521,https://github.com/docker/docs/issues/8521)), so encrypted overlays stay
    unchanged on every run.
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.engine_api
options:
  name:
    description: The network's name.
    type: str
    required: true
  driver:
    description: The network driver.
    type: str
    default: overlay
  internal:
    description: No route outside the network.
    type: bool
    default: false
  attachable:
    description: Standalone containers may attach (needed by tests and one-off jobs).
    type: bool
    default: false
  encrypted:
    description: IPsec (ESP) encryption of the overlay's data traffic between nodes.
    type: bool
    default: true
  subnet:
    description: The network's subnet in CIDR form; Docker's address pool picks one when empty.
    type: str
  labels:
    description: Labels on the network.
    type: dict
    default: {}
  recreate:
    description: Whether a network whose options differ may be recreated when no service uses it.
    type: str
    choices: [never, unused]
    default: unused
  state:
    description: Whether the network exists. V(absent) refuses to remove a network in use.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
seealso:
  - module: community.docker.docker_network
"""

EXAMPLES = r"""
- name: The internal, encrypted network of the stateful services
  shopstream.swarm.swarm_network:
    name: data
    internal: true
    subnet: 10.42.3.0/24

- name: Again - unchanged
  shopstream.swarm.swarm_network:
    name: data
    internal: true
    subnet: 10.42.3.0/24
"""

RETURN = r"""
network:
  description: The network's comparable options after the run (before it in check mode).
  returned: state is present
  type: dict
  sample: {driver: overlay, internal: true, attachable: false, encrypted: true, subnet: 10.42.3.0/24, labels: {}}
id:
  description: The network's ID; empty in check mode when it would be created.
  returned: state is present
  type: str
recreated:
  description: Whether the network was recreated because its options differed and no service used it.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    DockerAPIError,
    DockerClient,
    filters_param,
    list_services,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._networks import (
    actual_state,
    create_body,
    differences,
    procedure,
    reserved_name_error,
    users,
    wanted_state,
)


class NetworkManager:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.client = DockerClient(self.params["docker_host"], timeout=30)

    def find(self):
        name = self.params["name"]
        found = self.client.get_json(f"/networks?{filters_param(name=[name])}") or []
        exact = [n for n in found if n.get("Name") == name]
        return self.client.get_json(f"/networks/{exact[0]['Id']}") if exact else None

    def in_use(self, network):
        return users(network["Id"], network["Name"], list_services(self.client))

    def create(self, wanted):
        if self.module.check_mode:
            return ""
        _status, created = self.client.request("POST", "/networks/create", create_body(self.params["name"], wanted))
        return created["Id"]

    def present(self):
        wanted = wanted_state(self.params)
        network = self.find()
        if network is None:
            return True, None, wanted, dict(id=self.create(wanted), recreated=False)
        actual = actual_state(network)
        diff = differences(wanted, actual)
        if not diff:
            return False, actual, actual, dict(id=network["Id"], recreated=False)
        in_use = self.in_use(network)
        if in_use or self.params["recreate"] == "never":
            self.module.fail_json(msg=procedure(self.params["name"], diff, in_use or ["none"]), network=actual)
        if not self.module.check_mode:
            self.client.request("DELETE", f"/networks/{network['Id']}")
        return True, actual, wanted, dict(id=self.create(wanted), recreated=True)

    def absent(self):
        network = self.find()
        if network is None:
            return False, None, None, dict(recreated=False)
        in_use = self.in_use(network)
        if in_use:
            self.module.fail_json(
                msg=f"Network {network['Name']} is used by services {', '.join(in_use)}; remove them first."
            )
        if not self.module.check_mode:
            self.client.request("DELETE", f"/networks/{network['Id']}")
        return True, actual_state(network), None, dict(recreated=False)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            driver=dict(type="str", default="overlay"),
            internal=dict(type="bool", default=False),
            attachable=dict(type="bool", default=False),
            encrypted=dict(type="bool", default=True, no_log=False),
            subnet=dict(type="str"),
            labels=dict(type="dict", default={}),
            recreate=dict(type="str", choices=["never", "unused"], default="unused"),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    reserved = reserved_name_error(module.params["name"])
    if reserved:
        module.fail_json(msg=reserved)
    manager = NetworkManager(module)
    try:
        if module.params["state"] == "present":
            changed, before, after, result = manager.present()
        else:
            changed, before, after, result = manager.absent()
    except DockerAPIError as exc:
        module.fail_json(msg=f"Network {module.params['name']}: the Docker daemon refused the request: {exc}")
    if module.params["state"] == "present":
        result["network"] = after if not module.check_mode or before is None else before
    if module._diff:
        result["diff"] = {"before": before or {}, "after": after or {}}
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
