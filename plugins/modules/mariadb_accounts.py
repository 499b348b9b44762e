#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: mariadb_accounts
short_description: Keep MariaDB's root password and a user per application password, without a restart
version_added: 0.3.0
author: ShopStream platform team (@shopstream)
description:
  - Runs on the node that runs the MariaDB service's task, and changes accounts with the server's own
    client inside that task's container (C(docker exec)), so that the server never restarts.
  - Each application password is a user of its own, C(<user_prefix>-<first 8 hex digits of its SHA-256>)
    (what ShopStream's services compute from their password file) with every privilege on O(database).
    A rotation gives the new password a user before the clients move; once they moved, O(drop) removes
    the users of passwords no longer accepted.
  - Root exists only as C(root@localhost); its password becomes the first of O(root_passwords).
    Root accounts for other hosts are dropped.
  - Statements carry password hashes only; the root password that logs in is written to the client's
    standard input, never to a command line, an environment or a log.
  - When the service does not exist yet (a first deployment, before the stacks), nothing is done.
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.engine_api
requirements:
  - The C(docker) command line client on the node.
options:
  service:
    description: The MariaDB service, e.g. C(shopstream-data_mariadb).
    type: str
    required: true
  root_passwords:
    description:
      - Root's password first, then passwords root may still have (the previous one during a rotation).
        The module logs in with the first that MariaDB accepts, else with O(bootstrap_file).
    type: list
    elements: str
    required: true
  bootstrap_file:
    description: Path, inside the container, of the password root had when the data directory was initialised.
    type: str
    default: /run/secrets/mariadb_root_password
  passwords:
    description: The application passwords MariaDB accepts, each as a user of its own.
    type: list
    elements: str
    required: true
  user_prefix:
    description: Prefix of the application users' names.
    type: str
    default: shopstream
  database:
    description: The database the application users have every privilege on.
    type: str
    default: shopstream
  drop:
    description: Drop the users named after O(user_prefix) whose password is not in O(passwords).
    type: bool
    default: false
  drop_shared:
    description:
      - Drop the user named O(user_prefix) itself, the one every client of releases before 0.3.0 logged in as.
        Only once those clients were replaced (the stack role does it after the last stack converged).
    type: bool
    default: false
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
    support: full
seealso:
  - module: shopstream.swarm.swarm_rewire
"""

EXAMPLES = r"""
- name: The new password is a user before the clients move
  shopstream.swarm.mariadb_accounts:
    service: shopstream-data_mariadb
    root_passwords: ["{{ vault_shopstream_mariadb_root_password }}"]
    passwords:
      - "{{ vault_shopstream_mariadb_password }}"
      - "{{ vault_shopstream_mariadb_password_previous }}"
  delegate_to: manager-1
"""

RETURN = r"""
service_found:
  description: Whether the service exists (nothing is done when it does not).
  returned: always
  type: bool
container:
  description: The container the statements ran in.
  returned: when the service exists
  type: str
users:
  description: The application users of O(passwords).
  returned: always
  type: list
  elements: str
  sample: [shopstream-1a2b3c4d]
created:
  description: Users created.
  returned: always
  type: list
  elements: str
altered:
  description: Users whose password hash was set again.
  returned: always
  type: list
  elements: str
dropped:
  description: Accounts dropped, as C(user@host).
  returned: always
  type: list
  elements: str
stale:
  description: Accounts named after O(user_prefix) whose password is not accepted (what O(drop) removes).
  returned: always
  type: list
  elements: str
root_changed:
  description: Whether root's password was set.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    DEFAULT_DOCKER_HOST,
    DockerAPIError,
    DockerClient,
    service_container,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._mariadb import (
    LOGIN_SCRIPT,
    parse_rows,
    plan,
    probe_sql,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="str", required=True),
            root_passwords=dict(type="list", elements="str", required=True, no_log=True),
            bootstrap_file=dict(type="str", default="/run/secrets/mariadb_root_password"),
            passwords=dict(type="list", elements="str", required=True, no_log=True),
            user_prefix=dict(type="str", default="shopstream"),
            database=dict(type="str", default="shopstream"),
            drop=dict(type="bool", default=False),
            drop_shared=dict(type="bool", default=False),
            timeout=dict(type="int", default=120),
            docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST),
        ),
        supports_check_mode=True,
    )
    p = module.params
    roots = [pw for pw in p["root_passwords"] if pw]
    passwords = [pw for pw in p["passwords"] if pw]
    if not roots or not passwords:
        module.fail_json(msg="root_passwords and passwords each need at least one non-empty password")
    result = dict(
        changed=False, service_found=False, users=[], created=[], altered=[], dropped=[], stale=[], root_changed=False
    )

    client = DockerClient(p["docker_host"], timeout=30)
    try:
        client.get_json(f"/services/{p['service']}")
    except DockerAPIError as exc:
        if exc.status == 404:
            module.exit_json(msg=f"No service {p['service']} yet: its accounts are made once it runs", **result)
        module.fail_json(msg=f"Cannot read the service {p['service']}: {exc}", **result)
    result["service_found"] = True
    container, error = service_container(client, p["service"], p["timeout"])
    if error:
        module.fail_json(msg=error, **result)
    result["container"] = container[:12]

    def mariadb(sql):
        # The passwords root may have, one per line, then `--`, then the statements: standard input only.
        stdin = "\n".join(roots) + "\n--\n" + sql
        rc, out, err = module.run_command(
            ["docker", "exec", "-i", container, "sh", "-c", LOGIN_SCRIPT, "sh", p["bootstrap_file"]],
            data=stdin,
            environ_update={"DOCKER_HOST": p["docker_host"]},
        )
        if rc != 0:
            module.fail_json(
                msg=f"MariaDB ({p['service']}, container {container[:12]}) refused the account statements: "
                f"{(err or out).strip()}",
                **result,
            )
        return out

    changes = plan(
        parse_rows(mariadb(probe_sql(p["user_prefix"]))),
        p["user_prefix"],
        p["database"],
        roots[0],
        passwords,
        p["drop"],
        p["drop_shared"],
    )
    result.update({k: changes[k] for k in ("users", "created", "altered", "dropped", "stale", "root_changed")})
    if changes["sql"]:
        result["changed"] = True
        if not module.check_mode:
            mariadb("\n".join(changes["sql"]))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
