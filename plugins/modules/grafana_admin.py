#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: grafana_admin
short_description: Give Grafana's admin user the password its secret file holds, in the running server
version_added: 0.3.0
author: ShopStream platform team (@shopstream)
description:
  - Grafana reads its admin password from C(GF_SECURITY_ADMIN_PASSWORD__FILE) only when it creates its
    database, on its first start. A rotation mounts a new version of the secret, which Grafana ignores,
    so the vault and Grafana would disagree from then on.
  - Runs on the node that runs Grafana's task, and sets the admin password to the content of the mounted
    secret file with Grafana's own command line inside that task's container
    (C(grafana cli admin reset-admin-password --password-from-stdin)). The value never leaves the
    container; it goes from the secret file to the command's standard input, never to a command line,
    an environment or a log.
  - Records the secret version it applied in a file of Grafana's data volume (O(marker)). A run whose
    task mounts that version already changes nothing.
  - When the service does not exist (Grafana left out, or before the stacks), nothing is done.
  - This collection's tests check the commands (unit tests); they do not run Grafana, whose image the
    build machine cannot reach.
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.engine_api
requirements:
  - The C(docker) command line client on the node.
options:
  service:
    description: The Grafana service, e.g. C(shopstream-monitoring_grafana).
    type: str
    required: true
  secret:
    description:
      - The target of the admin password's secret in the container, a name under C(/run/secrets) or an
        absolute path.
    type: str
    default: grafana_admin_password
  marker:
    description: The file, in a volume Grafana writes, that holds the name of the secret version last applied.
    type: path
    default: /var/lib/grafana/.shopstream-admin-password-version
  timeout:
    description: Seconds to wait for a healthy container of the service's current spec on this node.
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
- name: Grafana's admin password is the one the vault holds
  shopstream.swarm.grafana_admin:
    service: shopstream-monitoring_grafana
  delegate_to: manager-1
"""

RETURN = r"""
service_found:
  description: Whether the service exists (nothing is done when it does not).
  returned: always
  type: bool
version:
  description: The secret version the service mounts as O(secret).
  returned: when the service exists
  type: str
  sample: shopstream_grafana_admin_password_3f2a9c81d0e4
container:
  description: The container the password was checked or set in.
  returned: when the service exists
  type: str
applied:
  description: Whether the password was set (in check mode, whether it would be).
  returned: always
  type: bool
"""

import posixpath
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    DEFAULT_DOCKER_HOST,
    DockerAPIError,
    DockerClient,
    is_healthy,
    service_containers,
)

# Run by sh inside the container: $1 the secret file, $2 the version, $3 the marker. The official
# image sets GF_PATHS_HOME and GF_PATHS_CONFIG; the defaults are the image's own paths.
RESET_SCRIPT = (
    'grafana cli --homepath "${GF_PATHS_HOME:-/usr/share/grafana}" '
    '--config "${GF_PATHS_CONFIG:-/etc/grafana/grafana.ini}" '
    'admin reset-admin-password --password-from-stdin < "$1" && printf "%s\\n" "$2" > "$3"'
)


def secret_path(target):
    return target if posixpath.isabs(target) else posixpath.join("/run/secrets", target)


def mounted_version(container_spec, target):
    """The name of the secret version a ContainerSpec mounts at ``target``, or None."""
    path = secret_path(target)
    for ref in (container_spec or {}).get("Secrets") or []:
        if secret_path((ref.get("File") or {}).get("Name") or "") == path:
            return ref.get("SecretName")
    return None


def current_container(client, service, target, version, timeout):
    """The ID of a healthy container on this node whose task mounts ``version``; None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        for container in service_containers(client, service):
            task_id = (container.get("Labels") or {}).get("com.docker.swarm.task.id")
            if not task_id or not is_healthy(container):
                continue
            task = client.get_json(f"/tasks/{task_id}") or {}
            if mounted_version((task.get("Spec") or {}).get("ContainerSpec"), target) == version:
                return container["Id"]
        if time.monotonic() >= deadline:
            return None
        time.sleep(2)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="str", required=True),
            secret=dict(type="str", default="grafana_admin_password", no_log=False),
            marker=dict(type="path", default="/var/lib/grafana/.shopstream-admin-password-version"),
            timeout=dict(type="int", default=120),
            docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST),
        ),
        supports_check_mode=True,
    )
    p = module.params
    result = dict(changed=False, service_found=False, applied=False)
    client = DockerClient(p["docker_host"], timeout=30)
    try:
        service = client.get_json(f"/services/{p['service']}")
    except DockerAPIError as exc:
        if exc.status == 404:
            module.exit_json(msg=f"No service {p['service']}: nothing to do", **result)
        module.fail_json(msg=f"Cannot read the service {p['service']}: {exc}", **result)
    result["service_found"] = True
    spec = ((service.get("Spec") or {}).get("TaskTemplate") or {}).get("ContainerSpec")
    version = mounted_version(spec, p["secret"])
    if not version:
        module.fail_json(
            msg=f"{p['service']} mounts no secret at {secret_path(p['secret'])}: set secret to the target of the "
            "admin password's secret in its definition",
            **result,
        )
    result["version"] = version
    try:
        container = current_container(client, p["service"], p["secret"], version, p["timeout"])
    except DockerAPIError as exc:
        module.fail_json(msg=f"Cannot list the containers of {p['service']}: {exc}", **result)
    if container is None:
        module.fail_json(
            msg=f"No healthy container of {p['service']} with {version} runs on this node after {p['timeout']} s: "
            "run this on the node that runs it (the data node), once its task is healthy",
            **result,
        )
    result["container"] = container[:12]
    env = {"DOCKER_HOST": p["docker_host"]}
    rc, out, _err = module.run_command(["docker", "exec", container, "cat", p["marker"]], environ_update=env)
    if rc == 0 and out.strip() == version:
        module.exit_json(**result)
    result.update(changed=True, applied=True)
    if not module.check_mode:
        argv = ["sh", "-c", RESET_SCRIPT, "sh", secret_path(p["secret"]), version, p["marker"]]
        rc, out, err = module.run_command(["docker", "exec", container, *argv], environ_update=env)
        if rc != 0:
            module.fail_json(
                msg=f"Grafana ({p['service']}, container {container[:12]}) did not take the password of {version}: "
                f"{(err or out).strip()}",
                **result,
            )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
