#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: swarm_object_info
short_description: List the versions of ShopStream's secrets and configs and the services using each
version_added: 0.2.0
author: ShopStream platform team (@shopstream)
description:
  - Read-only. For every logical secret and config made by M(shopstream.swarm.swarm_secret) and
    M(shopstream.swarm.swarm_config), lists its versions newest first, the current (newest) one, and
    which services use which version. Never returns content.
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.engine_api
options:
  kinds:
    description: Which kinds to list.
    type: list
    elements: str
    choices: [secret, config]
    default: [secret, config]
  names:
    description: Only these logical names; all when empty.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
seealso:
  - module: shopstream.swarm.swarm_secret
  - module: shopstream.swarm.swarm_config
"""

EXAMPLES = r"""
- name: Which versions exist and who uses them
  shopstream.swarm.swarm_object_info:
  register: objects

- name: Services still on an old JWT key
  ansible.builtin.debug:
    var: objects.secrets.shopstream_jwt_signing_key.stale_services
"""

RETURN = r"""
secrets:
  description: Per logical secret name, C(current) (newest version's name), C(versions) newest first
    (C(id), C(name), C(created_at), C(services)) and C(stale_services) (services on older versions).
  returned: always
  type: dict
  sample:
    shopstream_jwt_signing_key:
      current: shopstream_jwt_signing_key_77e0a9b1c2d3
      stale_services: []
      versions:
        - id: x1q3
          name: shopstream_jwt_signing_key_77e0a9b1c2d3
          created_at: "2026-01-05T10:00:00Z"
          services: [app_auth]
configs:
  description: The same for configs.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    DockerAPIError,
    DockerClient,
    list_services,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import KINDS, ObjectStore, inventory


def main():
    module = AnsibleModule(
        argument_spec=dict(
            kinds=dict(type="list", elements="str", choices=["secret", "config"], default=["secret", "config"]),
            names=dict(type="list", elements="str", default=[]),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    client = DockerClient(module.params["docker_host"], timeout=30)
    result = {"secrets": {}, "configs": {}}
    try:
        services = list_services(client)
        for kind_name in module.params["kinds"]:
            kind = KINDS[kind_name]
            listed = inventory(ObjectStore(client, kind).versions(), services, kind)
            if module.params["names"]:
                listed = {k: v for k, v in listed.items() if k in module.params["names"]}
            result[f"{kind_name}s"] = listed
    except DockerAPIError as exc:
        module.fail_json(msg=f"Cannot list secrets and configs: {exc}")
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
