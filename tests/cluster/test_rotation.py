"""A vault-managed rotation on the Molecule `cluster` scenario while a service uses the secret.

Runs before test_lifecycle (side_effect.yml names the files in order), on the converged
five-node swarm: the service's tasks run on the workers, the rotation runs through a manager.
"""

import json
import os
import subprocess
from pathlib import Path

import yaml
from ansible.parsing.vault import VaultLib, VaultSecret
from cluster_nodes import INVENTORY, PROBE_IMAGE, import_probe_image, needs_cluster, node_exec, wait_for
from runner import playbook

pytestmark = needs_cluster


def vault_values():
    """The scenario's vault, decrypted with the password its script gives every run."""
    password = subprocess.run([os.environ["ANSIBLE_VAULT_PASSWORD_FILE"]], capture_output=True, check=True).stdout
    vault = VaultLib([("default", VaultSecret(password.strip()))])
    return yaml.safe_load(vault.decrypt((Path(INVENTORY).parent / "group_vars/all/vault.yml").read_bytes()))


def secrets_of(logical):
    out = node_exec("manager2", "docker", "secret", "ls", "--filter", f"label=com.shopstream.object={logical}",
                    "--format", "{{.Name}}")  # fmt: skip
    return sorted(out.split())


def service(name):
    return json.loads(node_exec("manager1", "docker", "service", "inspect", name))[0]


def running_tasks(name):
    out = node_exec("manager1", "docker", "service", "ps", name, "--filter", "desired-state=running",
                    "--format", "{{.Node}} {{.CurrentState}}")  # fmt: skip
    return sorted(line.split()[0] for line in out.splitlines() if line.split()[1:2] == ["Running"])


def test_a_rotation_moves_the_running_service_to_the_new_version_and_removes_the_old(capsys):
    before = vault_values()
    old = secrets_of("shopstream_jwt_signing_key")
    assert len(old) == 1, old
    import_probe_image("worker1", "worker2")
    node_exec(
        "manager1", "docker", "service", "create", "--detach", "--no-resolve-image", "--name", "jwt-consumer",
        "--replicas", "2", "--constraint", "node.role==worker", "--update-order", "start-first",
        "--secret", f"source={old[0]},target=jwt_signing_key,uid=10001,mode=0400",
        PROBE_IMAGE, "/usr/bin/sleep", "infinity",
    )  # fmt: skip
    try:
        wait_for("jwt-consumer runs on both workers", lambda: running_tasks("jwt-consumer") == ["worker1", "worker2"])

        run = playbook("playbooks/rotate-secrets.yml", "-i", INVENTORY, "-e", "rotate=jwt_signing_key")
        assert run.rc == 0, run.out[-4000:]

        after = vault_values()
        assert after["vault_shopstream_jwt_signing_key"] != before["vault_shopstream_jwt_signing_key"]
        assert {k: v for k, v in after.items() if "jwt" not in k} == {k: v for k, v in before.items() if "jwt" not in k}
        new = secrets_of("shopstream_jwt_signing_key")
        assert len(new) == 1 and new != old, "the old version is gone, one new version exists"

        spec = service("jwt-consumer")
        ref = spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"][0]
        assert (ref["SecretName"], ref["File"]) == (
            new[0],
            {"Name": "jwt_signing_key", "UID": "10001", "GID": "0", "Mode": 0o400},
        )
        assert spec["UpdateStatus"]["State"] == "completed"
        # Both replicas run on the new version (start-first may place both on one worker).
        assert len(running_tasks("jwt-consumer")) == 2
        task_ids = node_exec("manager1", "docker", "service", "ps", "-q", "--filter", "desired-state=running",
                             "jwt-consumer").split()  # fmt: skip
        tasks = json.loads(node_exec("manager1", "docker", "inspect", *task_ids))
        assert {t["Spec"]["ContainerSpec"]["Secrets"][0]["SecretName"] for t in tasks} == {new[0]}
        report = " ".join(run.out.split())
        assert f"jwt_signing_key: new {new[0]}, was {old[0]}; rewired: jwt-consumer; pruned: {old[0]}" in report
        with capsys.disabled():
            print(f"\n  rotation of one secret with a 2-replica consumer: {run.seconds:.1f} s ", end="")
    finally:
        node_exec("manager1", "docker", "service", "rm", "jwt-consumer", check=False)
