# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


class ModuleDocFragment:
    # The Engine API socket that the collection's modules talk to with the standard library.
    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker daemon's socket, on a swarm manager for the modules that change the swarm. Only
        V(unix://) sockets are supported; set it once for all modules with the C(group/shopstream.swarm.swarm)
        module defaults.
    type: str
    default: unix:///var/run/docker.sock
"""
