#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: kit_image
short_description: Build images of the offline image kit unless they exist already
version_added: 0.2.0
author: ShopStream platform team (@shopstream)
description:
  - Builds the images O(names) of the kit in O(images_dir), with their kit ancestors, parents
    first, in one call, and tags each C(<repository>/<name>:<hash>), where the hash covers
    every file of the image's directory and its parent image's tag (for C(base), its files,
    the Debian mirror and the suite).
    When that tag exists the image is left alone; the task reports a change when it built any
    image, so a second build with unchanged inputs builds nothing, and a change to a parent
    rebuilds its children.
  - Images are the directories of O(images_dir) that hold a C(Dockerfile). A Dockerfile names its
    kit parent with C(ARG BASE=shopstream/<parent>) and C(FROM ${BASE}); the module passes the
    parent's exact reference as the build argument C(BASE). The parents are built first (the order
    RV(order) gives).
  - C(base) is a Debian rootfs made by C(debootstrap --variant=minbase) from the build host's own
    apt mirror (read from C(/etc/apt/sources.list.d/*.sources) or C(/etc/apt/sources.list),
    never hard-coded) and imported with C(docker import). It needs C(debootstrap) on the build
    host and root.
  - A C(wheels.txt) in an image directory lists pinned wheels that are downloaded with pip on
    the build host (following its pip configuration) into the build context.
  - MinIO, Elasticsearch, Grafana, Loki and Promtail cannot be built (no reachable mirror
    carries them); asking for them fails with a message naming their official image.
  - Runs the C(docker) CLI (builds use the classic builder, C(DOCKER_BUILDKIT=0), which every
    engine from 20.10 on has).
extends_documentation_fragment:
  - shopstream.swarm.attributes
options:
  names:
    description:
      - The images to build, directories of O(images_dir) (or C(base)). Their kit ancestors are
        built too.
      - One call for the whole kit costs one connection to the build host, not one per image.
    type: list
    elements: str
    required: true
    aliases: [name]
  images_dir:
    description: The kit's image directories, on the build host.
    type: path
    required: true
  repository:
    description: Repository prefix of the local tags.
    type: str
    default: shopstream
  mirror:
    description: Debian mirror for the base image; by default the build host's apt mirror.
    type: str
  suite:
    description: Debian suite of the base image.
    type: str
    default: bookworm
  docker_cli:
    description: The docker CLI on the build host.
    type: path
    default: docker
attributes:
  check_mode:
    support: full
    details: Computes the tags and reports which images would be built; builds nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
notes:
  - Tags are local. Pushing them to a registry is for M(community.docker.docker_image_push)
    (the role C(shopstream.swarm.images) does it).
  - The same build runs from a shell, printing each image's build time and size
    (C(python3 plugins/module_utils/_image_kit.py [NAME ...])).
seealso:
  - module: community.docker.docker_image_push
"""

EXAMPLES = r"""
- name: Build redis and nginx, and base under them (debootstrap from this host's mirror)
  shopstream.swarm.kit_image:
    names: [redis, nginx]
    images_dir: /var/lib/shopstream-kit/images
  register: built

- name: The reference of each image built
  ansible.builtin.debug:
    msg: "{{ built.images | items2dict(key_name='name', value_name='image') }}"

- name: Build redis again with unchanged inputs - reports no change, builds nothing
  shopstream.swarm.kit_image:
    names: redis
    images_dir: /var/lib/shopstream-kit/images

- name: Check mode tells whether a build is due
  shopstream.swarm.kit_image:
    names: python
    images_dir: /var/lib/shopstream-kit/images
  check_mode: true
"""

RETURN = r"""
images:
  description: Each image of RV(order), parents first.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The image's name in the kit.
      type: str
      sample: redis
    image:
      description: The image's local reference.
      type: str
      sample: shopstream/redis:8c1d0e6f2a4b
    tag:
      description: The content hash the image is tagged with.
      type: str
      sample: 8c1d0e6f2a4b
    parent:
      description: The parent kit image's reference; null for C(base) and for images on no kit image.
      type: str
      sample: shopstream/base:3cffc1a3e419
    changed:
      description: Whether it was built (in check mode, whether it would be).
      type: bool
      sample: false
    build_seconds:
      description: Seconds the build took; 0 when nothing was built.
      type: float
      sample: 41.3
    size:
      description: The image's size in bytes; null in check mode when it would be built.
      type: int
      sample: 98123456
    size_human:
      description: The same, for people.
      type: str
      sample: 98.1 MB
order:
  description: The images and their kit ancestors, parents first.
  returned: always
  type: list
  elements: str
  sample: [base, redis]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._image_kit import Kit, KitError, human_size


class KitImageBuilder:
    def __init__(self, module):
        self.module = module
        params = module.params
        self.kit = Kit(
            params["images_dir"],
            repository=params["repository"],
            mirror=params["mirror"],
            suite=params["suite"],
            docker=params["docker_cli"],
            run=self.run,
        )

    def run(self, argv, stdin=None, env=None):
        # The kit passes a full environment only to set DOCKER_BUILDKIT; keep the module's own.
        environ = {k: v for k, v in (env or {}).items() if k == "DOCKER_BUILDKIT"}
        return self.module.run_command(argv, environ_update=environ)

    def build(self):
        images = []
        for result in self.kit.build_all(self.module.params["names"], check_mode=self.module.check_mode):
            size = result.get("size")
            images.append(
                {
                    "name": result["name"],
                    "image": result["image"],
                    "tag": result["tag"],
                    "parent": result["parent"],
                    "changed": result["changed"],
                    "build_seconds": result["seconds"],
                    "size": size,
                    "size_human": human_size(size) if size is not None else None,
                }
            )
        return {
            "changed": any(image["changed"] for image in images),
            "images": images,
            "order": [image["name"] for image in images],
        }


def main():
    module = AnsibleModule(
        argument_spec={
            "names": {"type": "list", "elements": "str", "required": True, "aliases": ["name"]},
            "images_dir": {"type": "path", "required": True},
            "repository": {"type": "str", "default": "shopstream"},
            "mirror": {"type": "str"},
            "suite": {"type": "str", "default": "bookworm"},
            "docker_cli": {"type": "path", "default": "docker"},
        },
        supports_check_mode=True,
    )
    try:
        module.exit_json(**KitImageBuilder(module).build())
    except KitError as exc:
        module.fail_json(msg=str(exc))


if __name__ == "__main__":
    main()
