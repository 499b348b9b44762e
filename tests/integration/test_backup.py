"""playbooks/backup.yml backs up the running platform's data, encrypted, and restore.yml puts it back.

Runs against the platform `make deploy` left on this host (inventories/local); skips when it is not
deployed. Without the backup key, or in check mode, nothing is written. A backup is one archive,
mode 0600, in Ansible Vault format, that only the vault's backup key opens; its manifest names each
part with its checksum; its MariaDB dump loaded into a new, empty server of the same image gives
the same tables with the same rows (CHECKSUM TABLE) as the live one; its Redis part is an RDB
file and its RabbitMQ part the broker's definitions; no vault value appears in the -vvv output;
backup_keep prunes the older ones. restore.yml refuses a backup it cannot open or whose parts differ
from the manifest, and a restore not confirmed, changing nothing; confirmed, it gives MariaDB the
backup's rows, Redis the backup's keys and RabbitMQ the backup's policies, and the platform serves
(verify.yml's journey) with Redis' service spec as the stack deployed it.
"""

import hashlib
import io
import json
import stat
import subprocess
import tarfile
import tempfile
import time
import uuid
from pathlib import Path

from runner import BIN, LOCAL, docker, local_vault, playbook

WITH_VAULT = ("-i", "inventories/local", "--vault-password-file", str(LOCAL / ".vault-pass"))
MARIADB, REDIS, RABBITMQ = "shopstream-data_mariadb", "shopstream-data_redis", "shopstream-data_rabbitmq"
TABLES = ("products", "users", "orders", "order_outbox")


def container_of(service):
    found = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}").stdout.split()
    assert found, f"{service} runs no container on this host"
    return found[0]


def mariadb_container():
    return container_of(MARIADB)


def redis(*args):
    """redis-cli in the Redis container, logged in with its own secret file."""
    script = 'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" exec redis-cli --no-auth-warning "$@"'
    run = docker("exec", container_of(REDIS), "sh", "-c", script, "sh", *args)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def policies():
    run = docker("exec", container_of(RABBITMQ), "rabbitmqctl", "--quiet", "list_policies", "--formatter", "json")
    assert run.returncode == 0, run.stderr
    return {p["name"] for p in json.loads(run.stdout)}


def mariadb_sql(sql, password):
    run = docker("exec", "-e", "MYSQL_PWD", mariadb_container(), "mariadb", "--protocol=socket", "-uroot", "-N",
                 "shopstream", "-e", sql, env={"MYSQL_PWD": password})  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def vault_encrypt(members, key, dest):
    """A tar.gz of members (name -> bytes), encrypted with key, as backup.yml writes one."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    key_file = dest.with_suffix(".key")
    key_file.write_text(key)
    key_file.chmod(0o600)
    subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt", "--vault-password-file", str(key_file), "--output", str(dest), "-"],
        input=buffer.getvalue(), capture_output=True, check=True,
    )  # fmt: skip
    key_file.unlink()
    return dest


def table_checksums(container, password):
    """Table -> (rows, CHECKSUM TABLE) in the database shopstream, as root over the socket."""
    queries = [f"SELECT '{t}', COUNT(*) FROM {t}" for t in TABLES]  # noqa: S608 (the tables above)
    sql = "; ".join([*queries, f"CHECKSUM TABLE {', '.join(TABLES)}"])
    run = docker("exec", "-i", "-e", "MYSQL_PWD", container, "mariadb", "--protocol=socket", "-uroot", "-N",
                 "shopstream", "-e", sql, env={"MYSQL_PWD": password})  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = [line.split("\t") for line in run.stdout.splitlines() if line]
    counts = {name: int(n) for name, n in rows[: len(TABLES)]}
    sums = {name.split(".")[-1]: value for name, value in rows[len(TABLES) :]}
    return {t: (counts[t], sums[t]) for t in TABLES}


def decrypt(archive, key):
    """The archive's members (name -> bytes), opened with the backup key."""
    plain = subprocess.run(
        [str(BIN / "ansible-vault"), "decrypt", "--vault-password-file", "/dev/stdin", "--output", "-", str(archive)],
        input=key.encode(), capture_output=True, check=True,
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:gz") as tar:
        return {m.name.removeprefix("./"): tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


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


def test_a_restore_puts_back_the_backups_data_and_the_platform_serves(deployed, tmp_path, capsys):
    values = local_vault()
    root, key = values["vault_shopstream_mariadb_root_password"], values["vault_shopstream_backup_key"]
    backups, probe = tmp_path / "backups", f"restore-probe-{uuid.uuid4().hex[:8]}"
    restore = ("playbooks/restore.yml", *WITH_VAULT, "-e", f"backup_dir={backups}")

    def redis_spec():
        return json.loads(docker("service", "inspect", "--format", "{{json .Spec}}", REDIS).stdout)

    spec_before = redis_spec()

    # The state backed up: a Redis key and a RabbitMQ policy of this test's, and the tables as they are.
    redis("SET", f"{probe}:backed-up", "1")
    assert docker("exec", container_of(RABBITMQ), "rabbitmqctl", "--quiet", "set_policy", probe, f"^{probe}$",
                  '{"max-length": 1}', "--apply-to", "queues").returncode == 0  # fmt: skip
    backed_up = table_checksums(mariadb_container(), root)
    made = playbook("playbooks/backup.yml", *WITH_VAULT, "-e", f"backup_dir={backups}")
    assert made.rc == 0, made.out[-3000:]
    (archive,) = backups.glob("shopstream-*.tar.gz.vault")
    assert table_checksums(mariadb_container(), root) == backed_up, "nothing of the platform wrote meanwhile"

    # What the shop does after the backup, which the restore undoes.
    mariadb_sql(f"INSERT INTO products (name, price_cents) VALUES ('{probe}', 1)", root)  # noqa: S608 (hex)
    redis("SET", f"{probe}:later", "1")
    assert docker("exec", container_of(RABBITMQ), "rabbitmqctl", "--quiet", "clear_policy", probe).returncode == 0

    def unchanged():
        assert mariadb_sql(f"SELECT COUNT(*) FROM products WHERE name = '{probe}'", root) == "1"  # noqa: S608
        assert redis("EXISTS", f"{probe}:later") == "1" and probe not in policies()

    # Bad input: a clear error each, and nothing changed.
    members = decrypt(archive, key)
    other_key = vault_encrypt(members, "another vault's key", tmp_path / "other-key.tar.gz.vault")
    tampered = vault_encrypt(
        {**members, "mariadb.sql": members["mariadb.sql"] + b"DROP TABLE users;\n"}, key, tmp_path / "tampered.vault"
    )
    truncated = tmp_path / "truncated.vault"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    cases = {
        (): "A restore replaces the platform's data (MariaDB's tables, Redis, RabbitMQ's definitions) with the "
        "backup's: what was written since is lost. Fix: add -e restore_confirm=yes",
        ("-e", "restore_confirm=yes", "-e", f"backup_file={other_key}"): f"{other_key} does not open with this "
        "vault's vault_shopstream_backup_key into a backup with a manifest",
        ("-e", "restore_confirm=yes", "-e", f"backup_file={truncated}"): f"{truncated} does not open",
        ("-e", "restore_confirm=yes", "-e", f"backup_file={tampered}"): "mariadb.sql differ from the manifest's "
        "SHA-256): it is corrupt.",
        ("-e", "restore_confirm=yes", "-e", f"backup_file={tmp_path}/none"): f"backup_file {tmp_path}/none is not "
        "a file.",
    }
    for extra, expected in cases.items():
        refused = playbook(*restore, *extra)
        flat = " ".join(refused.out.split())
        assert refused.rc != 0 and expected in flat and "Nothing was changed." in flat, (extra, refused.out[-3000:])
        assert refused.changed() == 0, refused.recap
    checked = playbook(*restore, "-e", "restore_confirm=yes", "--check")
    assert checked.rc == 0 and f"Check mode: {archive} opens and matches its manifest" in " ".join(
        checked.out.split()
    ), checked.out[-3000:]
    unchanged()

    # The restore (the newest backup in backup_dir), verify.yml apart to compare the rows first.
    done = playbook(*restore, "-e", "restore_confirm=yes", "--skip-tags", "verify", "-vvv")
    assert done.rc == 0, done.out[-5000:]
    for name, value in values.items():
        if name.startswith("vault_"):
            assert value not in done.out, f"{name} leaked into the -vvv output"
    assert table_checksums(mariadb_container(), root) == backed_up, "MariaDB has the backup's rows"
    assert redis("EXISTS", f"{probe}:backed-up") == "1" and redis("EXISTS", f"{probe}:later") == "0"
    assert probe in policies(), "RabbitMQ has the backup's policies"
    assert not list(Path(tempfile.gettempdir()).glob("shopstream-restore.*")), "no opened archive or part left behind"

    served = playbook("playbooks/verify.yml", *WITH_VAULT)
    assert served.rc == 0, served.out[-5000:]
    assert redis_spec() == spec_before, "Redis' service is back as the stack deployed it (what stack.yml compares)"
    redis("DEL", f"{probe}:backed-up")
    docker("exec", container_of(RABBITMQ), "rabbitmqctl", "--quiet", "clear_policy", probe)
    with capsys.disabled():
        print(f"\n  restore: {done.seconds:.1f} s (MariaDB, Redis restarted on the snapshot, RabbitMQ), "
              f"then verify.yml {served.seconds:.1f} s ", end="")  # fmt: skip
