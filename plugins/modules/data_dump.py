#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: data_dump
short_description: Dump a stateful service's data (MariaDB, Redis or RabbitMQ) to a file on its node
version_added: 0.3.0
author: ShopStream platform team (@shopstream)
description:
  - Runs on the node that runs the service's task and dumps its data with the server's own tool inside
    that task's container (C(docker exec)), while the service keeps serving. The dump streams into
    O(dest), created with mode 0600; nothing of it passes through Ansible's output.
  - V(mariadb) is one consistent snapshot of O(database) (C(mariadb-dump --single-transaction), with its
    routines, triggers and events); root logs in with the first of O(root_passwords) MariaDB accepts,
    given on standard input, else with O(bootstrap_file).
  - V(redis) is an RDB snapshot (C(redis-cli --rdb)), with the password of O(password_file) inside the
    container in the client's environment.
  - V(rabbitmq) is the broker's definitions (C(rabbitmqctl export_definitions)) as JSON, users with
    their password hashes.
  - Every run makes a new dump, so it always reports a change; check mode reports it and writes nothing.
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.engine_api
  - shopstream.swarm.data_service
requirements:
  - The C(docker) command line client on the node.
options:
  dest:
    description: The file the dump is written to, on the node; its directory must exist.
    type: path
    required: true
  database:
    description: For V(mariadb), the database to dump.
    type: str
    default: shopstream
  password_file:
    description: For V(redis), the path inside the container of the password the client logs in with.
    type: str
    default: /run/secrets/redis_password
  timeout:
    description: Seconds to wait for the service's task to run healthy on this node.
    type: int
    default: 120
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Each run writes a new dump of the data as it is then.
seealso:
  - module: shopstream.swarm.mariadb_accounts
"""

EXAMPLES = r"""
- name: A consistent dump of the shop's database, on the data node
  shopstream.swarm.data_dump:
    service: shopstream-data_mariadb
    kind: mariadb
    dest: /var/tmp/shopstream-backup/mariadb.sql
    root_passwords: ["{{ vault_shopstream_mariadb_root_password }}"]
  delegate_to: manager-1
"""

RETURN = r"""
container:
  description: The container the dump was taken in.
  returned: when not in check mode
  type: str
size:
  description: Size of the dump in bytes.
  returned: when not in check mode
  type: int
sha256:
  description: SHA-256 of the dump.
  returned: when not in check mode
  type: str
"""

import os
import subprocess

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._data_parts import (
    DATA_SERVICE_ARGS,
    REDIS_DUMP_SCRIPT,
    checksum,
    rdb_length,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    DEFAULT_DOCKER_HOST,
    DockerClient,
    service_container,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._mariadb import DUMP_SCRIPT


def dump_command(kind, container, params):
    """The argv that writes the dump to standard output, and what it reads on standard input."""
    if kind == "mariadb":
        stdin = "\n".join(pw for pw in params["root_passwords"] if pw) + "\n--\n"
        script = [DUMP_SCRIPT, "sh", params["bootstrap_file"], params["database"]]
        return ["docker", "exec", "-i", container, "sh", "-c", *script], stdin
    if kind == "redis":
        return ["docker", "exec", container, "sh", "-c", REDIS_DUMP_SCRIPT, "sh", params["password_file"]], None
    return ["docker", "exec", container, "rabbitmqctl", "--quiet", "export_definitions", "-"], None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **DATA_SERVICE_ARGS,
            dest=dict(type="path", required=True),
            database=dict(type="str", default="shopstream"),
            password_file=dict(type="str", default="/run/secrets/redis_password", no_log=False),
            timeout=dict(type="int", default=120),
            docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["kind"] == "mariadb" and not any(p["root_passwords"]):
        module.fail_json(msg="kind=mariadb needs root_passwords (root's password from the vault)")
    if module.check_mode:
        module.exit_json(changed=True, msg=f"would dump {p['service']} ({p['kind']}) to {p['dest']}")
    if not os.path.isdir(os.path.dirname(p["dest"]) or "."):
        module.fail_json(msg=f"dest {p['dest']}: its directory does not exist")

    client = DockerClient(p["docker_host"], timeout=30)
    container, error = service_container(client, p["service"], p["timeout"])
    if error:
        module.fail_json(msg=error)

    argv, stdin = dump_command(p["kind"], container, p)
    env = dict(os.environ, DOCKER_HOST=p["docker_host"])
    partial = p["dest"] + ".partial"
    # The dump goes straight to the file (mode 0600 from the start), renamed once complete.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        proc = subprocess.run(  # noqa: S603 (argv, no shell on this side)
            argv,
            input=stdin.encode() if stdin is not None else None,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
        )
    if proc.returncode != 0 or os.path.getsize(partial) == 0:
        os.unlink(partial)
        error = proc.stderr.decode(errors="replace").strip() or "an empty dump"
        module.fail_json(msg=f"{p['service']} (container {container[:12]}): the {p['kind']} dump failed: {error}")
    if p["kind"] == "redis":
        length = rdb_length(proc.stderr.decode(errors="replace"))
        if length is None or length > os.path.getsize(partial):
            os.unlink(partial)
            module.fail_json(msg=f"{p['service']}: redis-cli did not report a complete RDB transfer")
        os.truncate(partial, length)  # the end mark of a diskless transfer follows the RDB
    os.replace(partial, p["dest"])
    module.exit_json(
        changed=True, container=container[:12], size=os.path.getsize(p["dest"]), sha256=checksum(p["dest"])
    )


if __name__ == "__main__":
    main()
