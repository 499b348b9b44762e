#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: swarm_secret
short_description: Content-addressed, versioned Docker secrets that rotate without breaking services
version_added: 0.2.0
author: ShopStream platform team (@shopstream)
description:
  - Keeps a logical secret as a series of immutable Docker secrets, one per content, each named after
    a keyed hash of its content. The same content gives the same, unchanged version; new content gives
    a new version, and its name is returned for the services to use.
  - Old versions are pruned only when no service references them, unlike
    C(community.docker.docker_secret), which fails when a service still uses a version
    (L(community.docker#246,https://github.com/ansible-collections/community.docker/issues/246)).
  - With O(rewire=true), services still on an older version are moved to the new one and the task
    waits until their updates complete.
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.versioned_object
  - shopstream.swarm.engine_api
options:
  data:
    description:
      - The secret's content, at most 500 KB. Never logged, never returned, never part of a diff.
      - Required with O(state=present) and O(name).
    type: str
  objects:
    description:
      - Several logical secrets in one call, for a role that keeps many; each entry is handled as
        O(name) and O(data) would be, with the other options applying to every entry, and one
        rewire and prune over all of them. Results are in RV(objects).
      - One connection and one process instead of one per secret, which counts over SSH.
      - Only with O(state=present); not with O(name) or O(data).
    type: list
    elements: dict
    suboptions:
      name:
        description: The logical name, as O(name).
        type: str
        required: true
      data:
        description: The content, at most 500 KB. Never logged, never returned, never part of a diff.
        type: str
        required: true
      labels:
        description: Labels on a new version, over O(labels).
        type: dict
        default: {}
seealso:
  - module: shopstream.swarm.swarm_config
  - module: shopstream.swarm.swarm_rewire
  - module: shopstream.swarm.swarm_object_info
"""

EXAMPLES = r"""
- name: The MariaDB application password, from the vault
  shopstream.swarm.swarm_secret:
    name: shopstream_mariadb_password
    data: "{{ vault_shopstream_mariadb_password }}"
    hash_key: "{{ vault_shopstream_object_hash_key }}"
  register: db_password

- name: Use the versioned name in a service
  community.docker.docker_swarm_service:
    name: product
    image: shopstream/app:1.0
    secrets:
      - secret_name: "{{ db_password.name }}"
        filename: db_password

- name: Rotate - a new value makes a new version; services move to it, the old version goes
  shopstream.swarm.swarm_secret:
    name: shopstream_mariadb_password
    data: "{{ new_password }}"
    hash_key: "{{ vault_shopstream_object_hash_key }}"
    rewire: true
    keep: 1

- name: Run again with the same value - nothing changes
  shopstream.swarm.swarm_secret:
    name: shopstream_mariadb_password
    data: "{{ new_password }}"
    hash_key: "{{ vault_shopstream_object_hash_key }}"
    keep: 1

- name: Every secret of a role in one call (one connection, not one per secret)
  shopstream.swarm.swarm_secret:
    objects:
      - name: shopstream_redis_password
        data: "{{ vault_shopstream_redis_password }}"
      - name: shopstream_jwt_signing_key
        data: "{{ vault_shopstream_jwt_signing_key }}"
    hash_key: "{{ vault_shopstream_object_hash_key }}"
    prune: false
  register: platform_secrets
"""

RETURN = r"""
name:
  description: The versioned name of the object holding the content; use it in service definitions.
  returned: O(name) is given and state is present
  type: str
  sample: shopstream_mariadb_password_3f9a1c0b77e2
id:
  description: The object's ID; C((to be created)) in check mode when it would be created.
  returned: O(name) is given and state is present
  type: str
created:
  description: Whether this run created (or, in check mode, would create) the version.
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
  description: Services moved to this version, with the names moved from and to.
  returned: always
  type: list
  elements: dict
  sample: [{service: shop_order, moved: {secret: [[shopstream_jwt_key_aaaaaaaaaaaa, shopstream_jwt_key_bbbbbbbbbbbb]]}}]
pruned:
  description: Versions removed (or that would be removed in check mode).
  returned: always
  type: list
  elements: dict
in_use:
  description: Old versions kept because services still use them, with those services.
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
from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import SECRET


def main():
    object_main(SECRET, data_no_log=True)


if __name__ == "__main__":
    main()
