# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A node's version moves on by itself (its status as it joins or comes back, its description), and
an update sent on the version read just before is refused with "update out of sequence". Every node
update of the collection is community.docker.docker_node, retried on that error, never a `docker
node update` command that fails at once (and would leave an engine upgrade's node drained)."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(
    [*ROOT.glob("playbooks/**/*.yml"), *ROOT.glob("roles/*/tasks/*.yml"), *ROOT.glob("roles/*/handlers/*.yml")]
)


def tasks(node):
    if isinstance(node, dict):
        if "name" in node:
            yield node
        for value in node.values():
            yield from tasks(value)
    elif isinstance(node, list):
        for value in node:
            yield from tasks(value)


def test_every_node_update_is_docker_node_retried_when_out_of_sequence():
    updates, commands = [], []
    for path in FILES:
        for task in tasks(yaml.safe_load(path.read_text())):
            where = f"{path.relative_to(ROOT)}: {task['name']}"
            if "community.docker.docker_node" in task:
                updates.append(where)
                until = str(task.get("until", ""))
                assert "update out of sequence" in until and task.get("retries", 0) >= 3, where
            for module in ("ansible.builtin.command", "ansible.builtin.shell"):
                if re.search(r"\bnode\W+update\b", str(task.get(module, ""))):
                    commands.append(where)
    assert not commands, f"docker node update as a command, not retried: {commands}"
    assert any("upgrade_engine.yml: Activate" in where for where in updates), updates
