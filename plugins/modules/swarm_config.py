#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: swarm_config
short_description: Content-addressed, versioned Docker configs that rotate without breaking services
version_added: 0.2.0
author: ShopStream platform team (@shopstream)
description:
  - Keeps a logical config as a series of immutable Docker configs, one per content, each named after
    a hash of its content, so a changed template always reaches the services, unlike
    C(docker stack deploy) with a fixed config name
    (L(moby#35048,https://github.com/moby/moby/issues/35048)).
  - Same behaviour and results as M(shopstream.swarm.swarm_secret); only the object kind and the size
    limit differ.
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.versioned_object
  - shopstream.swarm.engine_api
options:
  data:
    description:
      - The config's content, at most 1000 KB. Configs are not secret; credentials belong in
        M(shopstream.swarm.swarm_secret).
      - Required with O(state=present).
    type: str
seealso:
  - module: shopstream.swarm.swarm_secret
  - module: shopstream.swarm.swarm_rewire
  - module: shopstream.swarm.swarm_object_info
"""

EXAMPLES = r"""
- name: Prometheus' configuration; services using an older version move to this one
  shopstream.swarm.swarm_config:
    name: shopstream_prometheus
    data: "{{ lookup('ansible.builtin.template', 'prometheus.yml.j2') }}"
    rewire: true
  register: prometheus_config

- name: The same content again - unchanged, the same name
  shopstream.swarm.swarm_config:
    name: shopstream_prometheus
    data: "{{ lookup('ansible.builtin.template', 'prometheus.yml.j2') }}"
"""

RETURN = r"""
name:
  description: The versioned name of the config holding the content.
  returned: state is present
  type: str
  sample: shopstream_prometheus_91be2c7d40aa
id:
  description: The config's ID.
  returned: state is present
  type: str
created:
  description: Whether the version was (or would be) created.
  returned: state is present
  type: bool
previous:
  description: The newest version before this run, when it is another one.
  returned: state is present
  type: str
rewired:
  description: Services moved to this version.
  returned: always
  type: list
  elements: dict
pruned:
  description: Versions removed.
  returned: always
  type: list
  elements: dict
in_use:
  description: Old versions kept because services use them.
  returned: always
  type: list
  elements: dict
events:
  description: Progress of the service updates.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.shopstream.swarm.plugins.module_utils._object_module import main as object_main
from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import CONFIG


def main():
    object_main(CONFIG, data_no_log=False)


if __name__ == "__main__":
    main()
