"""playbooks/teardown.yml takes the platform down, and site.yml with restore.yml brings it back with its data.

Runs against the platform `make deploy` left on this host (inventories/local); skips when it is not
deployed. Unconfirmed, the teardown changes nothing; in check mode it writes nothing; confirmed, it
leaves no stack, secret, config or network and keeps the volumes (MariaDB's still holds the tables);
with teardown_swarm and teardown_volumes the node leaves the swarm and the data is gone; a second
run changes nothing. That is the disaster drill of a backup taken before: site.yml deploys
everything again (a new swarm, after removing the overlay namespace an earlier swarm left, planted
here) on empty volumes, where the shop lacks the product written before the backup. The new
platform is then used (a product, a Redis key) before the restore. restore.yml refuses a backup it
cannot open or whose parts differ from the manifest, and a restore not confirmed, changing nothing;
confirmed, it gives MariaDB the backup's rows (what was written since is gone), Redis the backup's
keys and RabbitMQ the backup's policies, and the platform serves (verify.yml's journey) with Redis'
service spec as the stack deployed it: the shop has every product it had.
"""

import json
import os
import subprocess
import tempfile
import uuid
from pathlib import Path

from platform_data import (
    RABBITMQ,
    REDIS,
    WITH_VAULT,
    container_of,
    decrypt,
    mariadb_container,
    mariadb_sql,
    policies,
    redis,
    table_checksums,
    vault_encrypt,
)
from runner import docker, local_vault, playbook

from ansible_collections.shopstream.swarm.plugins.module_utils._journey import Client

TEARDOWN = ("playbooks/teardown.yml", *WITH_VAULT)
STACKS = ("shopstream-data", "shopstream-app", "shopstream-edge", "shopstream-monitoring")
NETWORKS = ("traefik-public", "frontend", "backend", "data", "monitoring", "cache", "queue")


def products():
    """The catalogue's products (id, name), through Traefik as a shopper sees them."""
    values = local_vault()
    client = Client("https://127.0.0.1", timeout=15, ca_certificate=values["shopstream_tls_ca_certificate"])
    status, body, _headers = client.call(
        "POST", "/api/auth/login", {"username": "demo", "password": values["vault_shopstream_demo_password"]}
    )
    assert status == 200, body
    status, listing, _headers = client.call("GET", "/api/products?limit=500", token=body["token"])
    assert status == 200, listing
    return sorted((product["id"], product["name"]) for product in listing["products"])


def platform():
    """What the teardown removes or keeps, by name."""
    swarm = json.loads(docker("info", "--format", "{{json .Swarm}}").stdout)
    active = swarm.get("LocalNodeState") == "active" and swarm.get("ControlAvailable")

    def names(*args):
        return sorted(docker(*args, "--format", "{{.Name}}").stdout.split()) if active else []

    return {
        "swarm": swarm.get("LocalNodeState"),
        "stacks": sorted(set(names("stack", "ls")) & set(STACKS)),
        "secrets": [n for n in names("secret", "ls") if n.startswith("shopstream_")],
        "configs": [n for n in names("config", "ls") if n.startswith("shopstream_")],
        "networks": sorted(set(names("network", "ls", "--filter", "driver=overlay")) & set(NETWORKS)),
        "volumes": sorted(
            n for n in docker("volume", "ls", "--format", "{{.Name}}").stdout.split() if n.startswith(STACKS)
        ),
    }


LEFTOVER = "/var/run/docker/netns/1-shopstreamleft"


def plant_overlay_leftover():
    """What a killed engine that then left its swarm keeps: an overlay namespace whose VXLAN device
    (up, on 4789/udp) holds the first VXLAN ID a new swarm hands out (4097, ingress having 4096).
    Left there, every task on the new swarm's first overlay fails: 'error creating vxlan interface:
    file exists'."""
    link = "/run/netns/shopstream-left"
    steps = [
        ["touch", LEFTOVER],
        ["unshare", f"--net={LEFTOVER}", "true"],
        ["ip", "link", "add", "vx-shopleft", "type", "vxlan", "id", "4097", "dstport", "4789"],
        ["mkdir", "-p", "/run/netns"],
        ["touch", link],
        ["mount", "--bind", LEFTOVER, link],
        ["ip", "link", "set", "vx-shopleft", "netns", "shopstream-left"],
        ["ip", "-n", "shopstream-left", "link", "set", "vx-shopleft", "up"],
        ["umount", link],
        ["rm", link],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        assert done.returncode == 0, (step, done.stderr)


def mariadb_volume_holds_the_products_table(volume, image):
    """A container of MariaDB's image with the volume (read-only) and no network finds the table's file."""
    found = docker("run", "--rm", "--network", "none", "--user", "mysql", "-v", f"{volume}:/v:ro",
                   "--entrypoint", "test", image, "-f", "/v/shopstream/products.ibd")  # fmt: skip
    return found.returncode == 0


def test_teardown_then_site_and_restore_bring_the_platform_back_with_its_data(deployed, tmp_path, capsys):
    values = local_vault()
    root, key = values["vault_shopstream_mariadb_root_password"], values["vault_shopstream_backup_key"]
    marker = f"teardown-{uuid.uuid4().hex[:8]}"  # our own hex: nothing to escape
    mariadb_sql(f"INSERT INTO products (name, price_cents) VALUES ('{marker}', 1)", root)  # noqa: S608
    catalogue = products()
    assert marker in {name for _id, name in catalogue}
    image = docker("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                   "shopstream-data_mariadb").stdout.strip()  # fmt: skip
    # The state backed up: the tables as they are, a Redis key and a RabbitMQ policy of this test's.
    redis("SET", f"{marker}:backed-up", "1")
    assert docker("exec", container_of(RABBITMQ), "rabbitmqctl", "--quiet", "set_policy", marker, f"^{marker}$",
                  '{"max-length": 1}', "--apply-to", "queues").returncode == 0  # fmt: skip
    backed_up = table_checksums(mariadb_container(), root)
    backups = tmp_path / "backups"
    made = playbook("playbooks/backup.yml", *WITH_VAULT, "-e", f"backup_dir={backups}")
    assert made.rc == 0, made.out[-3000:]
    (archive,) = backups.glob("shopstream-*.tar.gz.vault")
    assert table_checksums(mariadb_container(), root) == backed_up, "nothing of the platform wrote meanwhile"
    before = platform()
    assert before["stacks"] == sorted(STACKS) and before["secrets"] and before["configs"] and before["volumes"]
    (volume,) = [name for name in before["volumes"] if "mariadb" in name]

    refused = playbook(*TEARDOWN, "-e", "teardown_swarm=true")
    assert refused.rc != 0 and "To go on, run again with -e teardown_confirm=yes" in refused.out, refused.out[-2000:]
    assert "and the swarm itself" in " ".join(refused.out.split()) and "Nothing was changed." in refused.out
    bad_flag = playbook(*TEARDOWN, "-e", "teardown_confirm=yes", "-e", "teardown_volumes=maybe")
    assert bad_flag.rc != 0 and "teardown_volumes and teardown_swarm are true or false" in bad_flag.out
    assert platform() == before

    checked = playbook(*TEARDOWN, "-e", "teardown_confirm=yes", "-e", "teardown_swarm=true", "--check")
    assert checked.rc == 0 and checked.changed() > 0, checked.out[-3000:]
    assert platform() == before, "check mode writes nothing"

    try:
        down = playbook(*TEARDOWN, "-e", "teardown_confirm=yes")
        assert down.rc == 0, down.out[-4000:]
        after = platform()
        assert after == dict(before, stacks=[], secrets=[], configs=[], networks=[]), after
        assert mariadb_volume_holds_the_products_table(volume, image), "the volumes kept the data"
        # The disaster: the swarm and the data gone.
        gone = ("-e", "teardown_confirm=yes", "-e", "teardown_swarm=true", "-e", "teardown_volumes=true")
        left = playbook(*TEARDOWN, *gone)
        assert left.rc == 0 and left.changed() > 0, left.out[-3000:]
        assert platform() == dict(after, swarm="inactive", volumes=[])
        again = playbook(*TEARDOWN, *gone)
        assert again.rc == 0 and again.changed() == 0, again.out[-3000:]
        plant_overlay_leftover()
    finally:
        back = playbook("site.yml", *WITH_VAULT)
    assert back.rc == 0, back.out[-4000:]
    assert "the swarm role removes them before the node creates or joins one" in back.out
    assert not os.path.exists(LEFTOVER), "the swarm role removed the earlier swarm's overlay namespace"
    assert platform()["stacks"] == sorted(STACKS)
    assert marker not in {name for _id, name in products()}, "a new platform, on empty volumes"
    assert redis("EXISTS", f"{marker}:backed-up") == "0" and marker not in policies()
    deployed_redis = redis_spec()

    # The new platform in use: what the restore replaces.
    mariadb_sql(f"INSERT INTO products (name, price_cents) VALUES ('{marker}-later', 1)", root)  # noqa: S608
    redis("SET", f"{marker}:later", "1")

    def unchanged():
        assert mariadb_sql(f"SELECT COUNT(*) FROM products WHERE name = '{marker}-later'", root) == "1"  # noqa: S608
        assert redis("EXISTS", f"{marker}:later") == "1" and marker not in policies()

    # Bad input: a clear error each, and nothing changed.
    restore = ("playbooks/restore.yml", *WITH_VAULT, "-e", f"backup_dir={backups}")
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
    restored = playbook(*restore, "-e", "restore_confirm=yes", "--skip-tags", "verify", "-vvv")
    assert restored.rc == 0, restored.out[-5000:]
    for name, value in values.items():
        if name.startswith("vault_"):
            assert value not in restored.out, f"{name} leaked into the -vvv output"
    assert table_checksums(mariadb_container(), root) == backed_up, "MariaDB has the backup's rows"
    assert redis("EXISTS", f"{marker}:backed-up") == "1" and redis("EXISTS", f"{marker}:later") == "0"
    assert marker in policies(), "RabbitMQ has the backup's policies"
    assert not list(Path(tempfile.gettempdir()).glob("shopstream-restore.*")), "no opened archive or part left behind"

    served = playbook("playbooks/verify.yml", *WITH_VAULT)
    assert served.rc == 0, served.out[-5000:]
    assert redis_spec() == deployed_redis, "Redis' service is back as the stack deployed it (what stack.yml compares)"
    assert set(catalogue) <= set(products()), "the backup's products, as they were"
    redis("DEL", f"{marker}:backed-up")
    docker("exec", container_of(RABBITMQ), "rabbitmqctl", "--quiet", "clear_policy", marker)
    with capsys.disabled():
        print(f"\n  disaster drill: backup {made.seconds:.1f} s, site.yml on a new swarm and empty volumes "
              f"{back.seconds:.1f} s, restore {restored.seconds:.1f} s (MariaDB, Redis restarted on the snapshot, "
              f"RabbitMQ), verify.yml {served.seconds:.1f} s: {len(catalogue)} products back ", end="")  # fmt: skip


def redis_spec():
    return json.loads(docker("service", "inspect", "--format", "{{json .Spec}}", REDIS).stdout)
