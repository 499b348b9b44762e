# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


class ModuleDocFragment:
    # What each attribute means, shared by every module (as community.general.attributes does). Each
    # module states its own support (and details) under attributes; a fragment's keys are merged into
    # the module's, and the module's own keys win. No support is given here, so that a module that
    # forgets one fails validate-modules instead of claiming a default.
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description:
      Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
      - This assumes that the system controlled/queried by the module has not changed in a relevant way.
"""

    # For a module whose work is done, in part or in whole, by an action plugin on the controller.
    # Use it together with the standard fragment: shopstream.swarm.attributes.action
    ACTION = r"""
options: {}
attributes:
  action:
    description:
      Indicates this has a corresponding action plugin so some parts of the options can be executed on the
      controller.
"""
