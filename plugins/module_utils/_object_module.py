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
        name=dict(type="str"),
        data=dict(type="str", no_log=data_no_log),
        objects=dict(
            type="list",
            elements="dict",
            options=dict(
                name=dict(type="str", required=True),
                data=dict(type="str", required=True, no_log=data_no_log),
                labels=dict(type="dict", default={}),
            ),
        ),
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

    def ensure(self, logical, data, labels, versions):
        """The version of one logical object: ``{object, name, id, created, previous}``."""
        name, obj_id, created, previous = ensure_version(
            self.client,
            self.kind,
            logical,
            data.encode("utf-8"),
            hash_key=self.params["hash_key"],
            labels=labels,
            check_mode=self.module.check_mode,
            versions=versions,
        )
        return dict(object=logical, name=name, id=obj_id, created=created, previous=previous or "")

    def present(self, entries):
        """Each of ``entries`` (``{name, data, labels}``) in one call: one connection, one listing of
        each object's versions, then one rewire and prune for all.

        Returns ``(changed, before, after, objects, outcome)``; ``before`` and ``after`` map each
        logical name to its versions' names.
        """
        p = self.params
        check_keep(p["keep"])  # before a version is created
        logicals = [e["name"] for e in entries]
        repeated = sorted({n for n in logicals if logicals.count(n) > 1})
        if repeated:
            raise ObjectError(f"objects names {', '.join(repeated)} more than once: give each logical name once.")
        versions = {logical: self.store.versions(logical) for logical in logicals}
        before = {logical: [v["Spec"]["Name"] for v in found] for logical, found in versions.items()}
        objects = [
            self.ensure(e["name"], e["data"], dict(p["labels"], **e["labels"]), versions[e["name"]]) for e in entries
        ]
        outcome = rewire_and_prune(
            self.client,
            {self.kind: {o["object"]: o["name"] for o in objects}},
            keep=p["keep"],
            prune=p["prune"],
            rewire=p["rewire"],
            check_mode=self.module.check_mode,
            timeout=p["timeout"],
        )
        for warning in outcome.pop("warnings"):
            self.module.warn(warning)
        outcome.pop("waves")
        outcome.pop("targets")
        pruned = {entry["name"] for entry in outcome["pruned"]}
        after = {
            o["object"]: ([o["name"]] if o["created"] else []) + [n for n in before[o["object"]] if n not in pruned]
            for o in objects
        }
        changed = any(o["created"] for o in objects) or bool(outcome["rewired"] or outcome["pruned"])
        return changed, before, after, objects, outcome

    def present_many(self):
        changed, before, after, objects, outcome = self.present(self.params["objects"])
        return changed, before, after, dict(objects=objects, **outcome)

    def present_one(self):
        p = self.params
        changed, before, after, objects, outcome = self.present([dict(name=p["name"], data=p["data"], labels={})])
        one = objects[0]
        result = dict(
            name=one["name"], id=one["id"], created=one["created"], previous=one["previous"] or None, **outcome
        )
        return changed, before[p["name"]], after[p["name"]], result

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
        required_one_of=[("name", "objects")],
        mutually_exclusive=[("name", "objects"), ("data", "objects")],
        required_if=[("state", "present", ["data", "objects"], True), ("state", "absent", ["name"])],
        supports_check_mode=True,
    )
    manager = VersionedObject(module, kind)
    label = module.params["name"] or ", ".join(o["name"] for o in module.params["objects"])
    try:
        if module.params["objects"] is not None:
            changed, before, after, result = manager.present_many()
        elif module.params["state"] == "present":
            changed, before, after, result = manager.present_one()
        else:
            changed, before, after, result = manager.absent()
    except (ObjectError, UpdateFailed) as exc:
        module.fail_json(msg=str(exc))
    except DockerAPIError as exc:
        module.fail_json(msg=f"The Docker daemon refused a request for {kind.name} {label}: {exc}")
    if module._diff:
        result["diff"] = {"before": {"versions": before}, "after": {"versions": after}}
    module.exit_json(changed=changed, **result)
