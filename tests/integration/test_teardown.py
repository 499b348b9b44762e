"""playbooks/teardown.yml takes the platform down, and site.yml with restore.yml brings it back with its data.

Runs against the platform `make deploy` left on this host (inventories/local); skips when it is not
deployed. Unconfirmed, the teardown changes nothing; in check mode it writes nothing; confirmed, it
leaves no stack, secret, config or network and keeps the volumes (MariaDB's still holds the tables);
with teardown_swarm and teardown_volumes the node leaves the swarm and the data is gone; a second
run changes nothing. That is the disaster drill of a backup taken before: site.yml deploys
everything again (a new swarm, after removing the overlay namespace an earlier swarm left, planted
here) on empty volumes, where the shop lacks the product written before the backup; restore.yml
puts the backup back and its journey passes: the shop has every product it had.
"""

import json
import os
import subprocess
import uuid

from runner import LOCAL, docker, local_vault, playbook

from ansible_collections.shopstream.swarm.plugins.module_utils._journey import Client

WITH_VAULT = ("-i", "inventories/local", "--vault-password-file", str(LOCAL / ".vault-pass"))
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
    marker = f"teardown-{uuid.uuid4().hex[:8]}"  # our own hex: nothing to escape
    root = values["vault_shopstream_mariadb_root_password"]
    mariadb = docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name=shopstream-data_mariadb").stdout
    sql = f"INSERT INTO products (name, price_cents) VALUES ('{marker}', 1)"  # noqa: S608
    wrote = docker("exec", "-e", "MYSQL_PWD", mariadb.split()[0], "mariadb", "--protocol=socket", "-uroot",
                   "shopstream", "-e", sql, env={"MYSQL_PWD": root})  # fmt: skip
    assert wrote.returncode == 0, wrote.stderr
    catalogue = products()
    assert marker in {name for _id, name in catalogue}
    image = docker("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
                   "shopstream-data_mariadb").stdout.strip()  # fmt: skip
    backups = tmp_path / "backups"
    made = playbook("playbooks/backup.yml", *WITH_VAULT, "-e", f"backup_dir={backups}")
    assert made.rc == 0, made.out[-3000:]
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

    restored = playbook("playbooks/restore.yml", *WITH_VAULT, "-e", f"backup_dir={backups}",
                        "-e", "restore_confirm=yes")  # fmt: skip
    assert restored.rc == 0, restored.out[-5000:]
    assert set(catalogue) <= set(products()), "the backup's products, as they were"
    with capsys.disabled():
        print(f"\n  disaster drill: backup {made.seconds:.1f} s, site.yml on a new swarm and empty volumes "
              f"{back.seconds:.1f} s, restore with verify.yml {restored.seconds:.1f} s: "
              f"{len(catalogue)} products back ", end="")  # fmt: skip
