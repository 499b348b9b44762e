"""playbooks/backup.yml backs up the running platform's data, encrypted.

Runs against the platform `make deploy` left on this host (inventories/local); skips when it is not
deployed. Without the backup key, or in check mode, nothing is written. A backup is one archive,
mode 0600, in Ansible Vault format, that only the vault's backup key opens; its manifest names each
part with its checksum; its MariaDB dump loaded into a new, empty server of the same image gives
the same tables with the same rows (CHECKSUM TABLE) as the live one; its Redis part is an RDB
file and its RabbitMQ part the broker's definitions; no vault value appears in the -vvv output;
backup_keep prunes the older ones. restore.yml is drilled in test_teardown.py: a backup put back
on the platform site.yml makes again after a teardown.
"""

import hashlib
import json
import stat
import subprocess
import time
import uuid

from platform_data import MARIADB, WITH_VAULT, decrypt, mariadb_container, table_checksums
from runner import BIN, LOCAL, docker, local_vault, playbook


def restored_checksums(image, dump):
    """Load the dump into a new, empty MariaDB of the same image; its tables' rows and checksums."""
    name, password = f"shopstream-restore-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    started = docker(
        "run", "-d", "--name", name, "-e", "MARIADB_ROOT_PASSWORD", image, env={"MARIADB_ROOT_PASSWORD": password}
    )
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 120
        while docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip() != "healthy":
            assert time.monotonic() < deadline, docker("logs", name).stderr[-2000:]
            time.sleep(2)
        load = docker("exec", "-i", "-e", "MYSQL_PWD", name, "mariadb", "--protocol=socket", "-uroot",
                      env={"MYSQL_PWD": password}, stdin=dump.decode())  # fmt: skip
        assert load.returncode == 0, load.stderr
        return table_checksums(name, password)
    finally:
        docker("rm", "-f", "-v", name)


def test_a_backup_is_encrypted_complete_and_restores_the_same_rows(deployed, tmp_path, capsys):
    values = local_vault()
    backups = tmp_path / "backups"
    backup = ("playbooks/backup.yml", *WITH_VAULT, "-e", f"backup_dir={backups}", "-e", "backup_keep=1")

    # Bad input and check mode: a clear error, or a report, and nothing written.
    keyless = playbook(*backup, "-e", "vault_shopstream_backup_key=")
    flat = " ".join(keyless.out.split())
    assert keyless.rc != 0 and "holds no vault_shopstream_backup_key" in flat, keyless.out[-2000:]
    assert "run playbooks/vault_init.yml" in flat and "Nothing was changed." in flat
    bad_keep = playbook(*backup, "-e", "backup_keep=0")
    assert bad_keep.rc != 0 and "backup_keep is '0'" in bad_keep.out, bad_keep.out[-2000:]
    checked = playbook(*backup, "--check")
    assert checked.rc == 0 and "would dump shopstream-data_mariadb, shopstream-data_redis" in " ".join(
        checked.out.split()
    )
    assert not backups.exists(), "check mode writes nothing"

    container, root = mariadb_container(), values["vault_shopstream_mariadb_root_password"]
    before = table_checksums(container, root)
    assert before["products"][0] > 0, before
    first = playbook(*backup, "-vvv")
    assert first.rc == 0, first.out[-5000:]
    after = table_checksums(container, root)
    for name, value in values.items():
        if name.startswith("vault_"):
            assert value not in first.out, f"{name} leaked into the -vvv output"

    archives = sorted(backups.glob("shopstream-*.tar.gz.vault"))
    assert len(archives) == 1 and sorted(p.name for p in backups.iterdir()) == [archives[0].name], "no staging left"
    archive = archives[0]
    size = archive.stat().st_size
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert archive.read_bytes().startswith(b"$ANSIBLE_VAULT;1.2;AES256;shopstream-backup\n")
    wrong = subprocess.run(
        [str(BIN / "ansible-vault"), "decrypt", "--vault-password-file", "/dev/stdin", "--output", "-", str(archive)],
        input=b"not-the-key", capture_output=True, check=False,
    )  # fmt: skip
    assert wrong.returncode != 0, "only the backup key opens it"

    members = decrypt(archive, values["vault_shopstream_backup_key"])
    assert sorted(members) == ["manifest.json", "mariadb.sql", "rabbitmq-definitions.json", "redis.rdb", "vault.yml"]
    manifest = json.loads(members["manifest.json"])
    swarm = json.loads(docker("info", "--format", "{{json .Swarm}}").stdout)
    assert manifest["cluster_id"] == swarm["Cluster"]["ID"] and manifest["data_node"] == "localhost"
    for part in manifest["parts"]:
        data = members[part["file"]]
        assert part["size"] == len(data) and part["sha256"] == hashlib.sha256(data).hexdigest(), part
    assert {p["kind"] for p in manifest["parts"]} == {"mariadb", "redis", "rabbitmq"}
    assert members["vault.yml"] == (LOCAL / "group_vars/all/vault.yml").read_bytes(), "the vault, as it is (encrypted)"
    assert members["redis.rdb"].startswith(b"REDIS")
    definitions = json.loads(members["rabbitmq-definitions.json"])
    assert definitions["users"] and definitions["vhosts"], definitions.keys()

    # The dump restores: a new server loaded with it has every table with the rows the live one had
    # (as read before or after the backup: nothing of this test writes meanwhile).
    image = docker(
        "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", MARIADB
    ).stdout.strip()
    restored = restored_checksums(image, members["mariadb.sql"])
    assert restored in (before, after), (restored, before, after)

    # backup_keep=1: a second backup replaces the first. This one takes the vault password from the
    # environment, as Molecule and CI pipelines give it: ansible-vault then holds two vault IDs.
    time.sleep(1)
    second = playbook(*backup[:3], *backup[5:], env={"ANSIBLE_VAULT_PASSWORD_FILE": str(LOCAL / ".vault-pass")})
    assert second.rc == 0, second.out[-3000:]
    kept = sorted(backups.glob("shopstream-*.tar.gz.vault"))
    assert len(kept) == 1 and kept[0].name > archive.name, kept
    with capsys.disabled():
        print(f"\n  backup: {first.seconds:.1f} s, archive {size} bytes, "
              f"{sum(rows for rows, _sum in restored.values())} rows restored identical ", end="")  # fmt: skip
