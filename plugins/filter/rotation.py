# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The per-object rotation report of the secrets and configs roles, one line per logical object,
and the version names a vault would give (to compare a vault with the swarm)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import ObjectError, versioned_name


def rotation_entries(results, rewire, prefix="", kind="secret"):
    """What happened to each object: ``[{key, name, followed, created, previous, rewired, pruned, in_use}]``.

    ``results`` are the ``objects`` of a swarm_secret or swarm_config call (each with ``object``,
    the logical name, ``name``, ``created`` and ``previous``) or the results of a loop over one of
    them (with ``item.key`` instead of ``object``), ``rewire`` the result of the swarm_rewire run
    that followed them, ``prefix`` what joins a key to its logical name. A service counts as
    rewired for an object when one of its moves of ``kind`` ends on that object's version.
    """
    if kind not in FORMATS:
        raise AnsibleFilterError(f"rotation_report: kind must be one of {', '.join(FORMATS)}, not {kind!r}")
    rewire = rewire or {}
    entries = []
    for result in results or []:
        if "object" in result:
            logical = result["object"]
            key = logical[len(prefix) :] if logical.startswith(prefix) else logical
        else:
            key = (result.get("item") or {}).get("key", "?")
            logical = f"{prefix}{key}"
        if "name" not in result:
            raise AnsibleFilterError(
                f"rotation_report: the {kind} result for {key} has no version name (skipped or failed); "
                "report only on a run where every object was created."
            )
        # A follow_signers previous value: the version the rewire chose for it, not this run's.
        name = ((rewire.get("targets") or {}).get(kind) or {}).get(logical, result["name"])
        entries.append(
            {
                "key": key,
                "name": name,
                "followed": name != result["name"],
                "created": bool(result.get("created")) and name == result["name"],
                "previous": result.get("previous") or "",
                "rewired": [
                    entry["service"]
                    for entry in rewire.get("rewired") or []
                    if any(move[-1] == name for move in (entry.get("moved") or {}).get(kind) or [])
                ],
                "pruned": [p["name"] for p in rewire.get("pruned") or [] if p.get("object") == logical],
                "in_use": [u["name"] for u in rewire.get("in_use") or [] if u.get("object") == logical],
            }
        )
    return entries


def _secret_line(e):
    version = f"new {e['name']}, was {e['previous'] or 'none'}" if e["created"] else f"current {e['name']}"
    if e.get("followed"):
        version += " (the value its signers ran, not the vault's)"
    kept = f"; kept in use: {', '.join(e['in_use'])}" if e["in_use"] else ""
    return (
        f"{e['key']}: {version}; rewired: {', '.join(e['rewired']) or 'none'}"
        f"; pruned: {', '.join(e['pruned']) or 'none'}{kept}"
    )


def _config_line(e):
    if e["created"]:
        version = f"(new version, was {e['previous']})" if e["previous"] else "(new version)"
    else:
        version = "(unchanged)"
    return (
        f"{e['key']}: {e['name']} {version}; services rewired: {', '.join(e['rewired']) or 'none'}"
        f"; versions pruned: {', '.join(e['pruned']) or 'none'}"
        f"; old versions still in use: {', '.join(e['in_use']) or 'none'}"
    )


# The two roles word their lines differently, and tests and operators grep for those words
# (tests/integration/test_secrets.py, tests/cluster/test_platform.py): one line shape per kind.
FORMATS = {"secret": _secret_line, "config": _config_line}


def rotation_report(results, rewire, prefix="", kind="secret"):
    """One line per object: its version (new or current, and the one before), services rewired,
    versions pruned and old versions kept because services still use them.

    ``{{ __secrets_published.objects | shopstream.swarm.rotation_report(__secrets_rewire, prefix=secrets_prefix) }}``
    """
    return [FORMATS[kind](entry) for entry in rotation_entries(results, rewire, prefix, kind)]


def versioned_names(values, names, hash_key=None):
    """The version name each value gets (swarm_secret's and swarm_config's naming: the logical name
    and a keyed hash of the value), so that a vault can be compared with the swarm and nothing is
    created. Returns names only, never a value."""
    values, names = list(values or []), list(names or [])
    if len(values) != len(names):
        raise AnsibleFilterError(f"versioned_names: {len(values)} values for {len(names)} names")
    try:
        return [versioned_name(n, str(v).encode("utf-8"), hash_key or None) for v, n in zip(values, names)]
    except ObjectError as exc:
        raise AnsibleFilterError(f"versioned_names: {exc}") from exc


class FilterModule:
    def filters(self):
        return {"rotation_report": rotation_report, "versioned_names": versioned_names}
