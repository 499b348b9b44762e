# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that expose the collection's cluster-wide decisions to roles."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.shopstream.swarm.plugins.module_utils._topology import (
    check_cluster,
    plan_recovery,
    plan_removal,
    plan_swarm,
)


def preflight_check(records, settings, unknown_managers=(), supported_os=None, allow_even=False, in_both=()):
    if not isinstance(records, list):
        raise AnsibleFilterError("preflight_check expects a list of host records")
    return check_cluster(records, dict(settings), list(unknown_managers), supported_os, allow_even, list(in_both))


def swarm_plan(records, unknown_managers=()):
    if not isinstance(records, list):
        raise AnsibleFilterError("swarm_plan expects a list of host records")
    return plan_swarm(records, list(unknown_managers))


def swarm_removal(nodes, target):
    return plan_removal(list(nodes), target)


def swarm_recovery(records, survivor=None):
    if not isinstance(records, list):
        raise AnsibleFilterError("swarm_recovery expects a list of manager records")
    return plan_recovery(records, survivor or None)


def labelled_host(hosts, hostvars, label):
    key, sep, value = str(label).partition("==")
    if not sep:
        raise AnsibleFilterError(f"labelled_host expects a label key==value, not {label!r}")
    hosts = list(hosts)
    for host in hosts:
        if ((hostvars[host].get("swarm_node_labels") or {}).get(key.strip())) == value.strip():
            return host
    return hosts[0] if hosts else None


class FilterModule:
    def filters(self):
        return {
            "preflight_check": preflight_check,
            "swarm_plan": swarm_plan,
            "swarm_removal": swarm_removal,
            "swarm_recovery": swarm_recovery,
            "labelled_host": labelled_host,
        }
