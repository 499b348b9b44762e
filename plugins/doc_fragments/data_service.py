# Copyright (c) 2026, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


class ModuleDocFragment:
    # The stateful service that data_dump and data_restore work on, and MariaDB's root login.
    DOCUMENTATION = r"""
options:
  service:
    description: The service, e.g. C(shopstream-data_mariadb).
    type: str
    required: true
  kind:
    description: What the service is, which decides the tools.
    type: str
    required: true
    choices: [mariadb, redis, rabbitmq]
  root_passwords:
    description: For V(mariadb), root's password first, then passwords root may still have.
    type: list
    elements: str
    default: []
  bootstrap_file:
    description: For V(mariadb), the path inside the container of the password root had at initialisation.
    type: str
    default: /run/secrets/mariadb_root_password
"""
