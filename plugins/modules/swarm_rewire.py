#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: swarm_rewire
short_description: Move services onto the current versions of secrets and configs, then prune the old ones
version_added: 0.2.0
author: ShopStream platform team (@shopstream)
description:
  - For every service that references an older version of one of the given logical secrets or
    configs (versions made by M(shopstream.swarm.swarm_secret) and M(shopstream.swarm.swarm_config)),
    moves the references to the given version with B(one service update per service), however many
    of its objects changed, keeping each reference's target file name, uid, gid and mode.
  - The services update in waves ordered by O(first); within a wave every service's update starts
    at once (each still replaces one task at a time, as its update config says), so a wave takes as
    long as its slowest update.
  - Waits until each update completes. A rollback, a paused update or a timeout fails the task and
    names each failed service and its task error, once the other updates of its wave have ended;
    services updated before it stay updated, and no later wave starts.
  - Each service is read just before its update, and the move applied to what was read. When it
    changed in between (Swarm answers C(update out of sequence)), it is read again and updated on
    its new version, keeping the other change, at most 5 times.
  - Then removes versions beyond O(keep) that no service references any more.
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.engine_api
options:
  secrets:
    description: Logical secret name to the versioned name services must use.
    type: dict
    default: {}
  configs:
    description: Logical config name to the versioned name services must use.
    type: dict
    default: {}
  first:
    description:
      - Logical names (of O(secrets) or O(configs)) of previous values, each named after the object
        it holds the previous value of with the suffix V(_previous), e.g. V(shop_jwt_key_previous)
        for V(shop_jwt_key). A service that mounts such an object accepts both values.
      - Such a service moves before every service that mounts only the object itself (a JWT verifier
        before the signer; Redis, given its previous password too, before its clients). A service
        that is both moves once, after the servers it is a client of. Services that take part in no
        such order move in the last wave.
    type: list
    elements: str
    default: []
  accepts:
    description:
      - Logical name of an object that accepts the previous value of another object besides its
        current one, to the logical name of that other object; for a file made from both values
        (RabbitMQ's definitions, with a user per password, accept the previous V(rabbitmq_password)).
      - A service that mounts such an object moves before every service that mounts only the other
        object, as for O(first).
    type: dict
    default: {}
    version_added: 0.3.0
  follow:
    description:
      - Logical names of O(first) whose value follows the services that use the object alone (the
        signers), not the given version. While the signers run one version of the object other
        than the given one, the services that mount the V(_previous) object get the version of it
        that holds the signers' value (named with the same suffix, when it exists); once every
        signer runs the given version, they keep the version they mount. Either way, forward in a
        rotation or back to an older vault, the old value stays accepted until no signer uses it.
      - The version of each V(_previous) object holding the object's given value is never pruned,
        being the previous value of the next change.
      - RV(targets) returns the versions chosen.
    type: list
    elements: str
    default: []
    version_added: 0.3.0
  keep:
    description: Versions kept per object, the current one included (1 or more); versions in use are always kept.
    type: int
    default: 3
  prune:
    description: Remove unused versions beyond O(keep) after rewiring.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each service update.
    type: int
    default: 300
attributes:
  check_mode:
    support: full
    details: Reports the services that would be updated and the versions that would be pruned.
  diff_mode:
    support: none
  idempotent:
    support: full
notes:
  - Docker lets a service's previous spec refer to a removed object; a later manual
    C(docker service rollback) to a pruned version fails. Use O(keep) to keep versions for that.
seealso:
  - module: shopstream.swarm.swarm_secret
  - module: shopstream.swarm.swarm_config
  - module: shopstream.swarm.swarm_object_info
"""

EXAMPLES = r"""
- name: Create the new versions without touching services
  shopstream.swarm.swarm_secret:
    name: "{{ item.key }}"
    data: "{{ item.value }}"
    hash_key: "{{ vault_shopstream_object_hash_key }}"
    prune: false
  loop: "{{ platform_secrets | dict2items }}"
  loop_control:
    label: "{{ item.key }}"
  no_log: true
  register: versions

- name: One update per service, whatever number of its secrets changed; then prune
  shopstream.swarm.swarm_rewire:
    secrets: "{{ dict(versions.results | map(attribute='item.key') | zip(versions.results | map(attribute='name'))) }}"
    keep: 1

- name: Again - every service is already current, nothing changes
  shopstream.swarm.swarm_rewire:
    secrets: "{{ dict(versions.results | map(attribute='item.key') | zip(versions.results | map(attribute='name'))) }}"
    keep: 1
"""

RETURN = r"""
rewired:
  description:
    - One entry per service updated, with the names moved from and to, per kind, and the stack the
      service belongs to (its C(com.docker.stack.namespace) label; null for a service of no stack).
  returned: always
  type: list
  elements: dict
  sample:
    - service: shop_gateway
      stack: shop
      moved: {secret: [[shopstream_jwt_key_5d0c8e1f2a3b, shopstream_jwt_key_77e0a9b1c2d3]]}
waves:
  description: The services updated, wave by wave, in the order the waves ran (would run, in check mode).
  returned: always
  type: list
  elements: list
  sample: [[shop_redis, shop_product], [shop_gateway], [shop_auth]]
  version_added: 0.3.0
pruned:
  description: Versions removed, as C(kind), C(object) and C(name).
  returned: always
  type: list
  elements: dict
in_use:
  description: Old versions kept because services still use them, with those C(services).
  returned: always
  type: list
  elements: dict
targets:
  description:
    - Per kind (V(secret), V(config)), logical name to the version services were moved onto (would
      be, in check mode); the given one, but for O(follow).
  returned: always
  type: dict
  sample:
    secret:
      shopstream_jwt_key: shopstream_jwt_key_77e0a9b1c2d3
      shopstream_jwt_key_previous: shopstream_jwt_key_previous_5d0c8e1f2a3b
  version_added: 0.3.0
events:
  description: Progress of each service update.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import DockerAPIError, DockerClient
from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import (
    CONFIG,
    SECRET,
    ObjectError,
    UpdateFailed,
    rewire_and_prune,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            secrets=dict(type="dict", default={}, no_log=False),  # names of versions, never content
            configs=dict(type="dict", default={}),
            first=dict(type="list", elements="str", default=[]),
            accepts=dict(type="dict", default={}),
            follow=dict(type="list", elements="str", default=[]),
            keep=dict(type="int", default=3),
            prune=dict(type="bool", default=True),
            timeout=dict(type="int", default=300),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    targets = {kind: names for kind, names in ((SECRET, p["secrets"]), (CONFIG, p["configs"])) if names}
    try:
        result = rewire_and_prune(
            DockerClient(p["docker_host"], timeout=30),
            targets,
            keep=p["keep"],
            prune=p["prune"],
            check_mode=module.check_mode,
            timeout=p["timeout"],
            first=p["first"],
            accepts=p["accepts"],
            follow=p["follow"],
        )
    except (ObjectError, UpdateFailed) as exc:
        module.fail_json(msg=str(exc))
    except DockerAPIError as exc:
        module.fail_json(msg=f"The Docker daemon refused a request while rewiring services: {exc}")
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(changed=bool(result["rewired"] or result["pruned"]), **result)


if __name__ == "__main__":
    main()
