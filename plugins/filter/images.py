# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""repo_digests: which digest the engine recorded when it pushed each image to a registry."""

from __future__ import annotations

DOCUMENTATION = """
name: repo_digests
short_description: The digest the engine recorded when it pushed each image to a registry
description:
  - From C(docker image inspect) results (M(community.docker.docker_image_info)'s C(images)), maps each
    component to the digest of its image's push to O(registry), read from the image's C(RepoDigests).
  - That record, not the registry's answer, is what services run, so a tag overwritten in the
    registry is never deployed. Components whose image was never pushed there are left out.
positional: refs, registry
options:
  _input:
    description: Image inspection results.
    type: list
    elements: dict
    required: true
  refs:
    description: Component to its local reference, e.g. C(shopstream/frontend:<tag>).
    type: dict
    required: true
  registry:
    description: The registry's C(host:port) as the engine pushed to it.
    type: str
    required: true
"""

EXAMPLES = """
digests: "{{ info.images | shopstream.swarm.repo_digests(kit_refs, '127.0.0.1:5000') }}"
"""

RETURN = """
_value:
  description: Component to C(sha256:...).
  type: dict
"""


def repo_digests(images, refs, registry):
    """``{component: 'sha256:...'}`` from ``docker image inspect`` results.

    ``refs`` maps components to their local references (``shopstream/frontend:<tag>``); an image
    counts when one of its RepoTags is that reference (bare, or under ``registry``) and one of its
    RepoDigests is that repository's under ``registry``, the record of a push from this engine.
    Components without such a record are left out.
    """
    by_tag = {}
    for image in images or []:
        for tag in image.get("RepoTags") or []:
            by_tag[tag] = image
    out = {}
    for component, ref in (refs or {}).items():
        image = by_tag.get(ref) or by_tag.get(f"{registry}/{ref}")
        if not image:
            continue
        repository = f"{registry}/{ref.rsplit(':', 1)[0] if ':' in ref.split('/')[-1] else ref}@"
        for digest in image.get("RepoDigests") or []:
            if digest.startswith(repository):
                out[component] = digest[len(repository) :]
                break
    return out


class FilterModule:
    def filters(self):
        return {"repo_digests": repo_digests}
