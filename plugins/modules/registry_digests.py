#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: registry_digests
short_description: Read the manifest digest each tag points at in a Docker registry
version_added: 0.3.0
author: ShopStream platform team (@shopstream)
description:
  - Asks a registry (Docker Registry HTTP API V2) which manifest digest each of O(images) points
    at, with one C(HEAD /v2/<name>/manifests/<tag>) request per image, all in one module call
    (one connection to the host, not one per image).
  - An image the registry does not hold (HTTP 404) gets the digest C(null), so that the caller
    pushes it. Any other answer (a refused login, a registry that does not answer) fails, naming
    the image and the answer.
  - Reads only; changes nothing.
requirements:
  - Python 3.8 or later on the host that runs it (the standard library only).
extends_documentation_fragment:
  - shopstream.swarm.attributes
options:
  registry:
    description: The registry's base URL (C(http://) or C(https://)), as the host running the module reaches it.
    type: str
    required: true
  images:
    description: Image references C(<name>:<tag>), without the registry's address.
    type: list
    elements: str
    required: true
  username:
    description: The user to log in as (HTTP basic authentication); none when omitted.
    type: str
  password:
    description: Its password.
    type: str
  accept:
    description: The manifest media types asked for; the digest is that of the manifest the
      registry answers with.
    type: list
    elements: str
    default:
      - application/vnd.docker.distribution.manifest.v2+json
      - application/vnd.docker.distribution.manifest.list.v2+json
      - application/vnd.oci.image.manifest.v1+json
      - application/vnd.oci.image.index.v1+json
  timeout:
    description: Seconds to wait for each answer.
    type: int
    default: 10
attributes:
  check_mode:
    support: full
    details: Reads only, as in a normal run.
  diff_mode:
    support: none
  idempotent:
    support: full
seealso:
  - module: community.docker.docker_image_push
"""

EXAMPLES = r"""
- name: What the kit's registry serves under each tag
  shopstream.swarm.registry_digests:
    registry: http://127.0.0.1:5000
    images: [shopstream/redis:8c1d0e6f2a4b, shopstream/nginx:5e0a17c2d9f3]
    username: shopstream
    password: "{{ vault_shopstream_registry_password }}"
  register: served

- name: The tags the registry lacks
  ansible.builtin.debug:
    msg: "{{ served.digests | dict2items | rejectattr('value') | map(attribute='key') }}"
"""

RETURN = r"""
digests:
  description: Image reference -> the digest its tag points at in the registry, null when the registry lacks it.
  returned: always
  type: dict
  sample: {"shopstream/redis:8c1d0e6f2a4b": "sha256:3f1c...", "shopstream/nginx:5e0a17c2d9f3": null}
"""

import base64
import urllib.error

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url


class RegistryError(Exception):
    pass


def manifest_url(registry, image):
    if not registry.startswith(("http://", "https://")):
        raise RegistryError(f"The registry '{registry}' is not an http:// or https:// URL.")
    name, sep, tag = image.rpartition(":")
    if not sep or not name or "/" in tag:
        raise RegistryError(f"'{image}' is not <name>:<tag>.")
    return f"{registry.rstrip('/')}/v2/{name}/manifests/{tag}"


def read_digests(registry, images, accept, username=None, password=None, timeout=10, opener=open_url):
    """Image -> digest (None when the registry answers 404); RegistryError on any other answer.

    ``opener`` is called as ``open_url`` is (certificates verified against the system's CAs, proxies
    from the environment, redirects followed as urllib follows them).
    """
    headers = {"Accept": ", ".join(accept)}
    if username:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    digests = {}
    for image in images:
        url = manifest_url(registry, image)  # http(s) only
        try:
            with opener(url, method="HEAD", headers=headers, timeout=timeout) as answer:
                digests[image] = answer.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                answer = f"HTTP {exc.code} {exc.reason}"
                raise RegistryError(f"{image}: the registry at {registry} answered {answer}.") from exc
            digests[image] = None
        except (urllib.error.URLError, OSError, UrlsConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RegistryError(f"{image}: no answer from the registry at {registry} ({reason}).") from exc
    return digests


def main():
    module = AnsibleModule(
        argument_spec={
            "registry": {"type": "str", "required": True},
            "images": {"type": "list", "elements": "str", "required": True},
            "username": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "accept": {
                "type": "list",
                "elements": "str",
                "default": [
                    "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json",
                    "application/vnd.oci.image.manifest.v1+json",
                    "application/vnd.oci.image.index.v1+json",
                ],
            },
            "timeout": {"type": "int", "default": 10},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        digests = read_digests(
            params["registry"],
            params["images"],
            params["accept"],
            username=params["username"],
            password=params["password"],
            timeout=params["timeout"],
        )
    except RegistryError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, digests=digests)


if __name__ == "__main__":
    main()
