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
      - Required with O(state=present) and O(name).
    type: str
  objects:
    description:
      - Several logical configs in one call, for a role that keeps many; each entry is handled as
        O(name) and O(data) would be, with the other options applying to every entry, and one
        rewire and prune over all of them. Results are in RV(objects).
      - One connection and one process instead of one per config, which counts over SSH.
      - Only with O(state=present); not with O(name) or O(data).
    type: list
    elements: dict
    suboptions:
      name:
        description: The logical name, as O(name).
        type: str
        required: true
      data:
        description: The content, at most 1000 KB.
        type: str
        required: true
      labels:
        description: Labels on a new version, over O(labels).
        type: dict
        default: {}
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

- name: Several configs in one call; their versioned names are in the result's objects
  shopstream.swarm.swarm_config:
    objects:
      - name: shopstream_prometheus
        data: "{{ lookup('ansible.builtin.template', 'prometheus.yml.j2') }}"
      - name: shopstream_alertmanager
        data: "{{ lookup('ansible.builtin.template', 'alertmanager.yml.j2') }}"
    prune: false
"""

RETURN = r"""
name:
  description: The versioned name of the config holding the content.
  returned: O(name) is given and state is present
  type: str
  sample: shopstream_prometheus_91be2c7d40aa
id:
  description: The config's ID.
  returned: O(name) is given and state is present
  type: str
created:
  description: Whether the version was (or would be) created.
  returned: O(name) is given and state is present
  type: bool
previous:
  description: The newest version before this run, when it is another one.
  returned: O(name) is given and state is present
  type: str
objects:
  description:
    - With O(objects), one entry per logical object, in the order given. Never the content.
  returned: O(objects) is given
  type: list
  elements: dict
  contains:
    object:
      description: The logical name.
      type: str
    name:
      description: The versioned name of the object holding the content.
      type: str
    id:
      description: The object's ID; C((to be created)) in check mode when it would be created.
      type: str
    created:
      description: Whether this run created (or, in check mode, would create) the version.
      type: bool
    previous:
      description: The newest version before this run, when it is another one.
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
