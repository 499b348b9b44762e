# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The body shared by the swarm_secret and swarm_config modules."""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    DockerAPIError,
    DockerClient,
    list_services,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import (
    ObjectError,
    ObjectStore,
    UpdateFailed,
    check_keep,
    ensure_version,
    references,
    rewire_and_prune,
)


def argument_spec(data_no_log):
    return dict(
        name=dict(type="str", required=True),
        data=dict(type="str", no_log=data_no_log),
        hash_key=dict(type="str", no_log=True),
        labels=dict(type="dict", default={}),
        keep=dict(type="int", default=3),
        prune=dict(type="bool", default=True),
        rewire=dict(type="bool", default=False),
        timeout=dict(type="int", default=300),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
    )


class VersionedObject:
    def __init__(self, module, kind):
        self.module = module
        self.kind = kind
        self.params = module.params
        self.client = DockerClient(self.params["docker_host"], timeout=30)
        self.store = ObjectStore(self.client, kind)

    def names(self):
        return [v["Spec"]["Name"] for v in self.store.versions(self.params["name"])]

    def present(self):
        p = self.params
        check_keep(p["keep"])  # before a version is created
        before = self.names()
        name, obj_id, created, previous = ensure_version(
            self.client,
            self.kind,
            p["name"],
            p["data"].encode("utf-8"),
            hash_key=p["hash_key"],
            labels=p["labels"],
            check_mode=self.module.check_mode,
        )
        outcome = rewire_and_prune(
            self.client,
            {self.kind: {p["name"]: name}},
            keep=p["keep"],
            prune=p["prune"],
            rewire=p["rewire"],
            check_mode=self.module.check_mode,
            timeout=p["timeout"],
        )
        for warning in outcome.pop("warnings"):
            self.module.warn(warning)
        outcome.pop("waves")
        after = ([name] if created else []) + [
            n for n in before if n not in {entry["name"] for entry in outcome["pruned"]}
        ]
        result = dict(name=name, id=obj_id, created=created, previous=previous or "", **outcome)
        return created or bool(outcome["rewired"] or outcome["pruned"]), before, after, result

    def absent(self):
        versions = self.store.versions(self.params["name"])
        refs = references(list_services(self.client), self.kind)
        pruned, in_use = [], []
        for version in versions:
            entry = {"kind": self.kind.name, "object": self.params["name"], "name": version["Spec"]["Name"]}
            if refs.get(version["ID"]):
                in_use.append(dict(entry, services=refs[version["ID"]]))
                continue
            if not self.module.check_mode:
                self.store.remove(version["ID"])
            pruned.append(entry)
        for entry in in_use:
            self.module.warn(f"{entry['name']} is kept: services {', '.join(entry['services'])} still use it.")
        before = [v["Spec"]["Name"] for v in versions]
        after = [entry["name"] for entry in in_use]
        result = dict(rewired=[], pruned=pruned, in_use=in_use, events=[])
        return bool(pruned), before, after, result


def main(kind, data_no_log):
    module = AnsibleModule(
        argument_spec=argument_spec(data_no_log),
        required_if=[("state", "present", ["data"])],
        supports_check_mode=True,
    )
    manager = VersionedObject(module, kind)
    try:
        if module.params["state"] == "present":
            changed, before, after, result = manager.present()
        else:
            changed, before, after, result = manager.absent()
    except (ObjectError, UpdateFailed) as exc:
        module.fail_json(msg=str(exc))
    except DockerAPIError as exc:
        module.fail_json(msg=f"The Docker daemon refused a request for {kind.name} {module.params['name']}: {exc}")
    if module._diff:
        result["diff"] = {"before": {"versions": before}, "after": {"versions": after}}
    module.exit_json(changed=changed, **result)
