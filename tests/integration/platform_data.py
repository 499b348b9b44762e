"""What the backup and teardown drills share: the local platform's data services, read and written
through their own containers on this host, and the archives backup.yml writes."""

import io
import json
import subprocess
import tarfile

from runner import BIN, LOCAL, docker

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
