#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: data_restore
short_description: Put a stateful service's data (MariaDB, Redis or RabbitMQ) back from a data_dump file
version_added: 0.3.0
author: ShopStream platform team (@shopstream)
description:
  - Runs on the node that runs the service's task (the data node) and loads O(src), a file that
    M(shopstream.swarm.data_dump) wrote, with the server's own tools. What the service holds is
    replaced by what the file holds.
  - V(mariadb) runs the dump with the client as root inside the service's container (root's password
    is the first of O(root_passwords) MariaDB accepts, else O(bootstrap_file), given on standard
    input); each table of the dump is dropped and made again, and tables the dump does not name are
    left as they are. MariaDB's accounts are not in a dump; they belong to the vault.
  - V(redis) scales the service to 0 replicas, writes the RDB snapshot as the base of a new
    append-only file in the service's C(/data) volume (a container of the service's image with no
    network, no capability, as user C(redis), that checks it with C(redis-check-rdb) first), and
    scales the service back, then waits for it to be healthy. A snapshot that does not check leaves
    the volume as it was. Redis serves no request meanwhile.
  - V(rabbitmq) imports the broker's definitions (C(rabbitmqctl import_definitions)) without the
    users and their permissions, which belong to the vault; vhosts, exchanges, queues, bindings,
    policies and parameters are made again. Messages are not in a backup.
  - Every run loads the file again, so it always reports a change; check mode reports it and changes
    nothing.
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.engine_api
  - shopstream.swarm.data_service
requirements:
  - The C(docker) command line client on the node.
options:
  src:
    description: The file to load, on the node.
    type: path
    required: true
  timeout:
    description: Seconds to wait for the service's task to run healthy on this node, before and after.
    type: int
    default: 180
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Each run loads the file again.
seealso:
  - module: shopstream.swarm.data_dump
"""

EXAMPLES = r"""
- name: Put the shop's database back as it was at the backup
  shopstream.swarm.data_restore:
    service: shopstream-data_mariadb
    kind: mariadb
    src: /var/tmp/shopstream-restore/mariadb.sql
    root_passwords: ["{{ vault_shopstream_mariadb_root_password }}"]
  delegate_to: manager-1
"""

RETURN = r"""
container:
  description: The container that serves the data once it is loaded.
  returned: when not in check mode
  type: str
"""

import os
import shutil
import subprocess
import tempfile
import threading
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._data_parts import (
    DATA_SERVICE_ARGS,
    REDIS_LOAD_SCRIPT,
    rabbitmq_definitions_to_import,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    DEFAULT_DOCKER_HOST,
    DockerAPIError,
    DockerClient,
    service_container,
    service_containers,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._mariadb import LOGIN_SCRIPT


def redis_load_command(image, volume):
    """The argv of the container that writes the RDB on its standard input into the volume."""
    return [
        "docker", "run", "--rm", "-i", "--network", "none", "--user", "redis", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges", "--read-only", "-v", f"{volume}:/data",
        "--entrypoint", "sh", image, "-c", REDIS_LOAD_SCRIPT,
    ]  # fmt: skip


class Restore:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.client = DockerClient(self.p["docker_host"], timeout=30)
        self.env = dict(os.environ, DOCKER_HOST=self.p["docker_host"])

    def fail(self, msg):
        self.module.fail_json(msg=f"{self.p['service']}: {msg}")

    def container(self):
        found, error = service_container(self.client, self.p["service"], self.p["timeout"])
        if error:
            self.module.fail_json(msg=error)
        return found

    def run(self, argv, header=b"", src=None):
        """Run argv with header, then src's bytes, on its standard input; (rc, standard error).

        A thread feeds a pipe, so a dump of any size streams and is never held in memory."""
        read_fd, write_fd = os.pipe()

        def feed():
            with os.fdopen(write_fd, "wb") as pipe:
                try:
                    pipe.write(header)
                    if src is not None:
                        with open(src, "rb") as handle:
                            shutil.copyfileobj(handle, pipe)
                except BrokenPipeError:
                    pass  # the command stopped reading: its exit code and standard error say why

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        with os.fdopen(read_fd, "rb") as stdin, tempfile.TemporaryFile() as err:
            rc = subprocess.run(  # noqa: S603 (argv, no shell on this side)
                argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=err, env=self.env, check=False
            ).returncode
            err.seek(0)
            message = err.read().decode(errors="replace").strip()
        feeder.join(timeout=10)
        return rc, message

    def mariadb(self):
        container = self.container()
        header = "".join(f"{pw}\n" for pw in self.p["root_passwords"] if pw) + "--\n"
        argv = ["docker", "exec", "-i", container, "sh", "-c", LOGIN_SCRIPT, "sh", self.p["bootstrap_file"]]
        rc, err = self.run(argv, header.encode(), self.p["src"])
        if rc != 0:
            self.fail(f"loading the MariaDB dump failed: {err or f'exit code {rc}'}")
        return container

    def rabbitmq(self):
        with open(self.p["src"], "rb") as handle:
            try:
                definitions = rabbitmq_definitions_to_import(handle.read())
            except ValueError as exc:
                self.fail(str(exc))
        container = self.container()
        argv = ["docker", "exec", "-i", container, "rabbitmqctl", "--quiet", "import_definitions"]
        rc, err = self.run(argv, definitions)
        if rc != 0:
            self.fail(f"importing RabbitMQ's definitions failed: {err or f'exit code {rc}'}")
        return container

    def scale(self, replicas):
        # Detached: stopped() waits for the container to go, and container() for the new one to be healthy.
        cmd = ["docker", "service", "scale", "--detach", f"{self.p['service']}={replicas}"]
        done = subprocess.run(cmd, capture_output=True, env=self.env, check=False)  # noqa: S603
        if done.returncode != 0:
            self.fail(f"docker service scale to {replicas} failed: {done.stderr.decode(errors='replace').strip()}")

    def stopped(self):
        """Wait until no container of the service runs on this node (the volume is free)."""
        deadline = time.monotonic() + self.p["timeout"]
        while service_containers(self.client, self.p["service"]):
            if time.monotonic() >= deadline:
                self.fail(f"its container still runs {self.p['timeout']} s after scaling it to 0")
            time.sleep(1)

    def redis(self):
        container = self.container()
        details = self.client.get_json(f"/containers/{container}/json")
        volume = next((m.get("Name") for m in details.get("Mounts", []) if m.get("Destination") == "/data"), None)
        if not volume:
            self.fail("its container mounts no volume on /data, so there is nothing to put the snapshot in")
        image = details["Config"]["Image"]
        spec = self.client.get_json(f"/services/{self.p['service']}")["Spec"]
        replicas = spec.get("Mode", {}).get("Replicated", {}).get("Replicas", 1)
        self.scale(0)
        try:
            self.stopped()
            rc, err = self.run(redis_load_command(image, volume), src=self.p["src"])
        finally:
            self.scale(replicas)
        if rc != 0:
            self.fail(f"the snapshot was not loaded, the volume {volume} is as it was: {err or f'exit code {rc}'}")
        return self.container()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            **DATA_SERVICE_ARGS,
            src=dict(type="path", required=True),
            timeout=dict(type="int", default=180),
            docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["kind"] == "mariadb" and not any(p["root_passwords"]):
        module.fail_json(msg="kind=mariadb needs root_passwords (root's password from the vault)")
    if module.check_mode:
        module.exit_json(changed=True, msg=f"would load {p['src']} into {p['service']} ({p['kind']})")
    if not os.path.isfile(p["src"]):
        module.fail_json(msg=f"src {p['src']}: no such file on this node")
    try:
        container = getattr(Restore(module), p["kind"])()
    except DockerAPIError as exc:
        module.fail_json(msg=f"{p['service']}: {exc}")
    module.exit_json(changed=True, container=container[:12])


if __name__ == "__main__":
    main()
