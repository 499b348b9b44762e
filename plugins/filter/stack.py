# Copyright (c) 2026, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""stack_progress: what each stack still being deployed waits for, one line per stack."""

from __future__ import annotations

DOCUMENTATION = """
name: stack_progress
short_description: What each stack still being deployed waits for, one line per stack
description:
  - For the stacks whose deploy is still running, names each of their services that has not
    converged, with its running replicas of the wanted and the reason
    (M(shopstream.swarm.swarm_platform_info)'s C(services)), so that a long wait says what it waits for.
  - A stack whose services all run healthy tasks waits until they have run for their update monitor
    (what M(shopstream.swarm.swarm_stack) counts as converged), and says so.
positional: services, prefix, elapsed
options:
  _input:
    description: The stacks still being deployed, without the prefix (C(app), C(edge)).
    type: list
    elements: str
    required: true
  services:
    description: M(shopstream.swarm.swarm_platform_info)'s C(services).
    type: list
    elements: dict
    required: true
  prefix:
    description: The stacks' prefix; stack C(app) is C(<prefix>-app).
    type: str
    required: true
  elapsed:
    description: Seconds since the wait began.
    type: float
    required: true
"""

EXAMPLES = """
msg: "{{ ['app', 'edge'] | shopstream.swarm.stack_progress(platform.services, 'shopstream', 30.2) }}"
"""

RETURN = """
_value:
  description: One line per stack that names each of its services that has not converged, or what it waits for.
  type: list
  elements: str
"""


def stack_progress(stacks, services, prefix, elapsed):
    """One line per stack: the services of ``<prefix>-<stack>`` that have not converged."""
    lines = []
    for stack in stacks or []:
        name = f"{prefix}-{stack}"
        mine = [s for s in services or [] if s.get("name", "").startswith(f"{name}_")]
        pending = [s for s in mine if s.get("state") != "converged"]
        if pending:
            what = ", ".join(f"{s.get('short')} {s.get('replicas')} ({s.get('reason')})" for s in pending)
        elif mine:
            what = f"its {len(mine)} service(s) run their tasks; waiting for them to last their update monitor"
        else:
            what = "no service yet"
        lines.append(f"{name} after {float(elapsed):.0f} s: {what}")
    return lines


class FilterModule:
    def filters(self):
        return {"stack_progress": stack_progress}
