# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Overlay networks: what is wanted, what differs, and the request that creates one."""

ENCRYPTED = "encrypted"
# Networks the engine makes and owns: never to be created, changed or removed by this module.
RESERVED = ("ingress", "bridge", "host", "none", "docker_gwbridge")


def reserved_name_error(name):
    """The refusal for a network the engine owns, or None for a name this module may manage."""
    if name in RESERVED:
        return (
            f"Network {name} is made and owned by the Docker engine ({', '.join(RESERVED)} are); this module "
            "manages the platform's own overlays only. Fix: choose another name."
        )
    return None


def wanted_state(params):
    return {
        "driver": params["driver"],
        "internal": params["internal"],
        "attachable": params["attachable"],
        "encrypted": params["encrypted"],
        "subnet": params.get("subnet") or None,
        "labels": params.get("labels") or {},
    }


def actual_state(network):
    """The comparable options of an inspected network.

    An encrypted overlay shows ``"encrypted": ""`` in its options (the value the CLI sends);
    the key's presence is what counts (docker/docs#8521).
    """
    ipam = (network.get("IPAM") or {}).get("Config") or []
    return {
        "driver": network.get("Driver"),
        "internal": bool(network.get("Internal")),
        "attachable": bool(network.get("Attachable")),
        "encrypted": ENCRYPTED in (network.get("Options") or {}),
        "subnet": ipam[0].get("Subnet") if ipam else None,
        "labels": network.get("Labels") or {},
    }


def differences(wanted, actual):
    """``{option: (actual, wanted)}`` for every option that differs; an unset subnet matches any."""
    diff = {}
    for key, value in wanted.items():
        if key == "subnet" and value is None:
            continue
        if actual.get(key) != value:
            diff[key] = (actual.get(key), value)
    return diff


def create_body(name, wanted):
    body = {
        "Name": name,
        "Driver": wanted["driver"],
        "Internal": wanted["internal"],
        "Attachable": wanted["attachable"],
        "CheckDuplicate": True,
        "Labels": wanted["labels"],
        "Options": {ENCRYPTED: ""} if wanted["encrypted"] else {},
    }
    if wanted["subnet"]:
        body["IPAM"] = {"Driver": "default", "Config": [{"Subnet": wanted["subnet"]}]}
    return body


def users(network_id, name, services):
    """Names of the services attached to the network (by ID or name)."""
    found = []
    for service in services:
        spec = service.get("Spec") or {}
        attached = (spec.get("TaskTemplate") or {}).get("Networks") or spec.get("Networks") or []
        if any(n.get("Target") in (network_id, name) for n in attached):
            found.append(spec.get("Name", service.get("ID")))
    return sorted(found)


def procedure(name, diff, in_use):
    changes = ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in sorted(diff.items()))
    steps = (
        f"Networks cannot be changed in place. Remove the services using it ({', '.join(in_use)}) "
        f"or their stacks, then `docker network rm {name}` and run the play again; or set the "
        "networks role's variables back to the network's current options."
    )
    return f"Network {name} exists with other options than wanted: {changes}. {steps}"
