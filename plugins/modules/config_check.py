#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: config_check
short_description: Check configs with the tool inside the image of the service that reads them
version_added: 0.3.0
author: ShopStream platform team (@shopstream)
description:
  - Runs each config's checker (C(nginx -t), C(promtool check config), C(promtool check rules),
    C(amtool check-config), Traefik's own configuration loader) inside the image of the component
    that reads the config, so that the check uses that component's version and includes, and no
    tool on the controller or the host plays a part.
  - Each check is one throwaway container with no network, given every file of O(files) at its
    path, started, and removed. Nothing else is created or changed.
  - The image of a config is O(images[component]); failing that, the image of a service that
    mounts a version of the config now (a rotation checks with the image that will read it).
  - In check mode no image is pulled; a check whose image is not on the host yet is skipped, and
    says so.
  - Returns what passed and what failed; it fails itself only when the engine cannot be used.
    The configs role turns the errors into one message naming each config.
requirements:
  - The docker CLI on the target (it pulls with the logins stored by C(docker login)).
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.engine_api
options:
  configs:
    description: The configs to check.
    type: list
    elements: dict
    required: true
    suboptions:
      key:
        description: The config's short name (for the report).
        type: str
        required: true
      name:
        description: The config's logical name in the swarm (the prefix and the key), whose users give an image.
        type: str
        required: true
      check:
        description: Which checker reads it.
        type: str
        required: true
        choices: [nginx, promtool_config, promtool_rules, amtool, traefik]
      target:
        description: Its path in the container.
        type: str
        required: true
      image:
        description: The component whose image runs the check (a key of O(images)).
        type: str
        required: true
  files:
    description:
      - Every rendered config, as container path -> content. Every check's container gets all of
        them, as the services get theirs, so that references between configs resolve (Prometheus'
        C(rule_files)).
    type: dict
    required: true
  images:
    description: Component -> image reference (what the stack is about to run).
    type: dict
    default: {}
  required:
    description:
      - V(true), a config whose image is unknown is an error; V(false), it is skipped and reported.
    type: bool
    default: true
  skip_existing:
    description:
      - Leave out a config whose version (named after a keyed hash of its content, as
        M(shopstream.swarm.swarm_config) names it) exists already; nothing new is made of it, and it
        was checked when it was made. Such configs are listed in RV(unchanged).
    type: bool
    default: false
  hash_key:
    description: The key of the versions' names (as M(shopstream.swarm.swarm_config)'s O(hash_key)).
    type: str
  timeout:
    description: Seconds each checker may take.
    type: int
    default: 60
  docker_cli:
    description: The docker CLI to run.
    type: str
    default: docker
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
seealso:
  - module: shopstream.swarm.swarm_config
"""

EXAMPLES = r"""
- name: Check nginx's site in the frontend's image
  shopstream.swarm.config_check:
    configs:
      - {key: nginx, name: shopstream_nginx, check: nginx, target: /etc/nginx/conf.d/default.conf, image: frontend}
    files:
      /etc/nginx/conf.d/default.conf: "{{ lookup('ansible.builtin.template', 'nginx-default.conf.j2') }}"
    images:
      frontend: nginx:1.27
  register: checked

- name: Every config passed
  ansible.builtin.assert:
    that: checked.errors | length == 0
"""

RETURN = r"""
checked:
  description: The configs the tool accepted, with the tool and the image (without its digest).
  returned: always
  type: list
  elements: dict
  sample: [{key: nginx, tool: nginx, image: "nginx:1.27"}]
not_checked:
  description: The configs not checked, and why (no image known and O(required=false); in check mode,
    an image not on the host yet).
  returned: always
  type: list
  elements: dict
unchanged:
  description: With O(skip_existing), the configs whose version exists already, with their tool.
  returned: always
  type: list
  elements: dict
errors:
  description: The configs refused, with C(key), C(name), C(target), C(tool) and the tool's C(message).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._config_check import TOOLS, Runner, check_all
from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import DockerClient


def main():
    module = AnsibleModule(
        argument_spec=dict(
            configs=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    key=dict(type="str", required=True, no_log=False),
                    name=dict(type="str", required=True),
                    check=dict(type="str", required=True, choices=sorted(TOOLS)),
                    target=dict(type="str", required=True),
                    image=dict(type="str", required=True),
                ),
            ),
            files=dict(type="dict", required=True),
            images=dict(type="dict", default={}),
            required=dict(type="bool", default=True),
            skip_existing=dict(type="bool", default=False),
            hash_key=dict(type="str", no_log=True),
            timeout=dict(type="int", default=60),
            docker_cli=dict(type="str", default="docker"),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    docker = module.get_bin_path(params["docker_cli"], required=True)
    runner = Runner(docker, timeout=params["timeout"], pull=not module.check_mode)
    client = DockerClient(params["docker_host"], timeout=30)
    result = check_all(
        params["configs"],
        {path: str(text) for path, text in params["files"].items()},
        {k: v for k, v in params["images"].items() if v},
        runner,
        client=client,
        required=params["required"],
        hash_key=params["hash_key"],
        skip_existing=params["skip_existing"],
    )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
