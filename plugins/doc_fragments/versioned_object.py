# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


class ModuleDocFragment:
    # Options and notes shared by swarm_secret and swarm_config.
    DOCUMENTATION = r"""
options:
  name:
    description:
      - The logical name. Each version is a Docker object named C(<name>_<suffix>), the suffix being
        12 hex digits of a keyed hash of the content, so at most 51 characters are allowed here.
      - One of O(name) and O(objects) is required.
    type: str
  hash_key:
    description:
      - Key of the HMAC-SHA256 that makes the version suffix. Keep it in the vault, so that no plain
        hash of the content is ever visible in an object's name. Changing it gives every object a new
        version on the next run.
    type: str
  labels:
    description: Extra labels on new versions (labels of existing versions are left as they are).
    type: dict
    default: {}
  keep:
    description:
      - How many versions to keep, the current one included. Older versions are removed only when no
        service references them; one still in use is kept and reported in RV(in_use), never an error.
    type: int
    default: 3
  prune:
    description: Remove old versions beyond O(keep) that no service uses.
    type: bool
    default: true
  rewire:
    description:
      - Move every service that references an older version to this one, keeping the target file
        name, uid, gid and mode, with one service update each, and wait until each update completes.
        A rollback, a paused update or a timeout fails the task and names the service and task error.
      - Each service is read just before its update, and the move applied to what was read. When it
        changed in between (Swarm answers C(update out of sequence)), it is read again and updated
        on its new version, keeping the other change, at most 5 times.
      - To move services onto several new objects with one update per service, create them with
        O(rewire=false) and use M(shopstream.swarm.swarm_rewire).
    type: bool
    default: false
  timeout:
    description: Seconds to wait for each service update.
    type: int
    default: 300
  state:
    description:
      - V(present) makes the version of O(data) exist. V(absent) removes every version that no service
        uses (O(data) is then not needed).
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff lists version names, never content.
  idempotent:
    support: full
notes:
  - Versions are found by the label C(com.shopstream.object=<name>) and ordered by creation time;
    they also carry C(com.shopstream.created).
  - Talks to the Engine API over its unix socket with the Python standard library only; run it on a
    manager.
"""
