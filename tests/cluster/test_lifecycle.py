"""The node lifecycle on the Molecule `cluster` scenario's five-node swarm.

Molecule's side_effect step runs this module after converge, idempotence and verify; it needs
the scenario's inventory (MOLECULE_INVENTORY_FILE) and its node containers. The tests run in
order and each leaves the cluster as the next expects: preflight refuses hosts it cannot use
(a wrong sudo password, a user without sudo, no Python), a host of a foreign swarm is refused,
rotate_swarm.yml gives every node a certificate of a new root CA and the swarm new join tokens and
unlock key, scale.yml joins it with them once it has left, site.yml stops while the first manager is
unreachable and changes nothing once it is declared down (back up, it stays locked until
unlock.yml), a removal that would break quorum is refused, then a worker and a manager are removed
and the swarm stays writable.
"""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from cluster_nodes import INVENTORY, PROBE_IMAGE, import_probe_image, needs_cluster, node_exec, wait_for
from runner import docker, playbook

pytestmark = needs_cluster
MANAGERS = ["manager1", "manager2", "manager3"]
EXISTING = [*MANAGERS, "worker1", "worker2"]
# What molecule's inventory says of a node: how to reach it (create.yml's instance config).
CONNECTION = ("ansible_host", "ansible_port", "ansible_user", "ansible_private_key_file", "ansible_ssh_common_args")


def nodes(via="manager1"):
    """The swarm's nodes as a manager sees them: hostname -> (status, availability, manager status, labels)."""
    out = node_exec(via, "sh", "-c", "docker node inspect $(docker node ls -q)")
    return {
        n["Description"]["Hostname"]: (
            n["Status"]["State"],
            n["Spec"]["Availability"],
            (n.get("ManagerStatus") or {}).get("Reachability", ""),
            n["Spec"].get("Labels") or {},
        )
        for n in json.loads(out)
    }


def swarm_of(node):
    return json.loads(node_exec(node, "docker", "info", "--format", "{{json .Swarm}}"))


def join_tokens(manager):
    return [node_exec(manager, "docker", "swarm", "join-token", "-q", role).strip() for role in ("worker", "manager")]


@pytest.fixture(scope="module")
def inventories(tmp_path_factory):
    """The scenario's inventory plus node6 as a worker; and node6 alone, as a swarm of its own."""
    tmp = tmp_path_factory.mktemp("inventories")
    node6 = json.loads(
        subprocess.run(
            ["ansible-inventory", "-i", INVENTORY, "--host", "node6"], capture_output=True, text=True, check=True
        ).stdout
    )
    auto = {k: "auto" for k in ("shopstream_endpoint_mode", "shopstream_publish_mode", "shopstream_overlay_encrypted")}
    scaled = tmp / "scaled.yml"
    scaled.write_text(
        yaml.safe_dump(
            {
                "swarm": {
                    "children": {
                        "swarm_workers": {"hosts": {"node6": {"swarm_node_labels": {"shopstream.tier": "app"}}}}
                    }
                }
            }
        )
    )
    # node6's own swarm gets the scenario's group_vars (its vaults), and molecule's connection
    # settings for node6 (nothing that came out of a vault is written here).
    (tmp / "foreign").mkdir()
    (tmp / "foreign" / "group_vars").symlink_to(Path(INVENTORY).parent / "group_vars")
    foreign = tmp / "foreign" / "hosts.yml"
    alone = {k: v for k, v in node6.items() if k in CONNECTION}
    foreign.write_text(
        yaml.safe_dump({"swarm": {"vars": auto, "children": {"swarm_managers": {"hosts": {"node6": alone}}}}})
    )
    return {
        "cluster": ["-i", INVENTORY, "-i", scaled],
        "foreign": ["-i", foreign],
        "become_password": node6["ansible_become_password"],
    }


def test_preflight_names_each_host_that_cannot_become_root_or_run_modules(tmp_path):
    # As an operator would get them wrong, host by host: a wrong sudo password, a user without
    # sudo, no Python where the inventory says it is.
    bad = tmp_path / "bad.yml"
    bad.write_text(
        yaml.safe_dump(
            {
                "swarm": {
                    "hosts": {
                        "worker1": {"ansible_become_password": "not-the-password"},
                        "worker2": {"ansible_user": "nosudo"},
                        "manager3": {"ansible_python_interpreter": "/usr/bin/python3.99"},
                    }
                }
            }
        )
    )
    before = nodes()
    run = playbook("site.yml", "-i", INVENTORY, "-i", bad)
    assert run.rc != 0
    assert "worker1: deploy cannot become root with sudo (" in run.out, run.out
    assert "worker2: nosudo cannot become root with sudo (" in run.out, run.out
    assert "manager3: no Python to run modules with (none at /usr/bin/python3.99)" in run.out, run.out
    assert "--ask-become-pass" in run.out
    assert "PLAY [Engine" not in run.out
    assert run.changed() == 0, run.recap
    assert nodes() == before


def test_a_host_of_a_foreign_swarm_is_refused(inventories):
    # node6 forms a swarm of its own: the one-node formation side_effect.yml compares with the five's.
    # Its unlock key goes to a vault of its own, not the cluster's (the group_vars are shared).
    own = playbook(
        "molecule/cluster/formation.yml",
        *inventories["foreign"],
        "-vvv",
        "-e",
        f"swarm_vault_file={Path(inventories['foreign'][1]).parent / 'unlock-vault.yml'}",
    )
    assert own.rc == 0, own.out
    foreign_id = swarm_of("node6")["Cluster"]["ID"]
    # Initialising returns the join tokens, and every task sudoes with the vault's password:
    # even at -vvv neither is printed.
    assert not [t for t in join_tokens("node6") if t in own.out]
    assert inventories["become_password"] not in own.out
    before = nodes()

    run = playbook("playbooks/scale.yml", *inventories["cluster"])
    assert run.rc != 0
    assert f"node6: already belongs to another swarm ({foreign_id}), not the inventory's" in run.out, run.out
    assert "PLAY [Engine" not in run.out
    assert run.changed() == 0, run.recap
    assert swarm_of("node6")["Cluster"]["ID"] == foreign_id
    assert nodes() == before


def test_the_join_tokens_and_root_ca_rotate_on_every_node(inventories):
    # Before scale: node6 then joins with the new tokens.
    before_tokens = join_tokens("manager1")
    before = swarm_of("manager1")["Cluster"]
    before_root = before["TLSInfo"]["TrustRoot"]
    run = playbook("playbooks/rotate_swarm.yml", *inventories["cluster"])
    assert run.rc == 0, run.out[-3000:]
    assert not [t for t in before_tokens + join_tokens("manager1") if t in run.out]
    assert all(new != old for new, old in zip(join_tokens("manager2"), before_tokens, strict=True))
    cluster = swarm_of("manager3")["Cluster"]
    assert cluster["TLSInfo"]["TrustRoot"] != before_root
    assert {**cluster["Spec"], "CAConfig": None} == {**before["Spec"], "CAConfig": None}, "other settings moved"
    issuers = {
        n["Description"]["Hostname"]: n["Description"]["TLSInfo"]["CertIssuerPublicKey"]
        for n in json.loads(node_exec("manager1", "sh", "-c", "docker node inspect $(docker node ls -q)"))
    }
    assert sorted(issuers) == sorted(EXISTING)
    assert set(issuers.values()) == {cluster["TLSInfo"]["CertIssuerPublicKey"]}, issuers
    assert "root CA rotated (5 node(s) on certificates of the new CA, valid 90 days)" in " ".join(run.out.split())


def test_scale_joins_the_new_host_and_touches_nothing_else(inventories):
    node_exec("node6", "docker", "swarm", "leave", "--force")

    def untouched():
        return {
            n: node_exec(n, "sh", "-c", "stat -c %Y /etc/docker/daemon.json; systemctl show -p MainPID docker")
            for n in EXISTING
        }

    before_hosts, before_nodes = untouched(), nodes()
    run = playbook("playbooks/scale.yml", *inventories["cluster"], "-vvv")
    assert run.rc == 0, run.out
    # The tokens were read fresh from a manager and used to join: never printed, even at -vvv.
    assert not [t for t in join_tokens("manager1") if t in run.out]
    assert {h: run.recap[h]["changed"] for h in EXISTING} == dict.fromkeys(EXISTING, 0), run.recap
    assert run.recap["node6"]["changed"] > 0

    after = nodes()
    assert after["node6"] == ("ready", "active", "", {"shopstream.tier": "app"})
    assert {n: after[n] for n in EXISTING} == before_nodes
    assert untouched() == before_hosts

    again = playbook("playbooks/scale.yml", *inventories["cluster"])
    assert again.rc == 0, again.out
    assert again.changed() == 0, again.recap


def test_site_changes_nothing_while_the_first_manager_is_down(inventories):
    cluster_id = swarm_of("manager2")["Cluster"]["ID"]
    docker("stop", "manager1")
    try:
        # The swarm's layers only: manager1 is also the kit's build host, its registry and the
        # edge node, so the images and the stacks cannot converge without it, by design.
        layers = ("-e", "images_enabled=false", "-e", "stack_enabled=false")
        # An unreachable host stops the run in preflight, naming it, unless it is known to be down.
        refused = playbook("site.yml", *inventories["cluster"], *layers)
        assert refused.rc != 0
        assert "manager1: unreachable as deploy at 192.168.241.11 (" in refused.out, refused.out
        assert "list it in preflight_hosts_down" in refused.out
        assert "PLAY [Engine" not in refused.out
        assert refused.changed() == 0, refused.recap

        run = playbook("site.yml", *inventories["cluster"], *layers, "-e", '{"preflight_hosts_down": ["manager1"]}')
        # The others go on, and change nothing; manager1 is unreachable in every later play.
        assert run.recap["manager1"]["unreachable"] == 1, run.recap
        assert "not reached: manager1" in run.out, run.out
        assert run.changed() == 0, run.recap
        assert "Swarm: existing, managed through manager2" in run.out
        # The swarm role ran through on the others; verify then reports the down manager.
        assert "TASK [shopstream.swarm.swarm : Nodes | labels, availability and role" in run.out
        assert re.search(r"The swarm is not healthy\. Nodes: manager1 manager (unknown|down) ", run.out), run.out
        assert swarm_of("manager2")["Cluster"]["ID"] == cluster_id
    finally:
        docker("start", "manager1")
    unlocked("manager1", inventories)
    wait_for("manager1 is back in Raft", lambda: nodes("manager2")["manager1"][:3] == ("ready", "active", "reachable"))
    runs_its_tasks_again("manager1")


def unlocked(manager, inventories):
    """Autolock: a manager whose engine restarted stays locked until unlock.yml gives it the vault's
    key (rotated by rotate_swarm.yml above), which is never printed."""
    wait_for(f"{manager}'s engine is back, locked", lambda: swarm_of(manager)["LocalNodeState"] == "locked")
    run = playbook("playbooks/unlock.yml", *inventories["cluster"], "-vvv")
    assert run.rc == 0, run.out[-3000:]
    assert f"Unlocked: {manager}. No manager is locked." in " ".join(run.out.split()), run.out[-3000:]
    assert run.changed() == 1, run.recap
    key = node_exec("manager2", "docker", "swarm", "unlock-key", "-q").strip()
    assert key not in run.out
    assert swarm_of(manager)["LocalNodeState"] == "active"


def runs_its_tasks_again(node):
    """A manager back from an engine stop runs its tasks again (manager1's are the edge): every
    service at its replicas, or the node's tasks and their errors are shown."""

    def whole():
        out = node_exec("manager2", "docker", "service", "ls", "--format", "{{.Replicas}}")
        return all(a == b for a, _slash, b in (line.split()[0].partition("/") for line in out.splitlines()))

    tasks = ("docker", "node", "ps", node, "--no-trunc")
    wait_for(f"{node} runs its tasks again: every service at its replicas", whole,
             explain=lambda: node_exec("manager2", *tasks, check=False))  # fmt: skip


def test_a_removal_that_would_break_quorum_is_refused(inventories):
    node_exec("manager3", "systemctl", "stop", "docker.socket", "docker.service")
    try:
        wait_for("manager3 is unreachable", lambda: nodes()["manager3"][2] == "unreachable")
        run = playbook("playbooks/remove_node.yml", *inventories["cluster"], "-e", "remove_node=manager2")
        assert run.rc != 0
        assert "Removing manager manager2 would break quorum: 1 of the 2 remaining managers are reachable" in run.out
        assert run.changed() == 0, run.recap
        # Right after an election the new leader reports node states as unknown for a moment.
        wait_for(
            "manager2 is still a ready manager", lambda: nodes()["manager2"][:3] == ("ready", "active", "reachable")
        )
    finally:
        node_exec("manager3", "systemctl", "start", "docker.service")
    unlocked("manager3", inventories)
    wait_for("manager3 is back in Raft", lambda: nodes()["manager3"][:3] == ("ready", "active", "reachable"))
    runs_its_tasks_again("manager3")


def probe_tasks():
    """Node of each running task of the probe service."""
    out = node_exec(
        "manager1",
        "docker",
        "service",
        "ps",
        "probe",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Node}} {{.CurrentState}}",
    )
    return sorted(line.split()[0] for line in out.splitlines() if line.split()[1:2] == ["Running"])


def test_removing_a_worker_moves_its_tasks_elsewhere_first(inventories):
    # After the elections above, a new leader sees node states as unknown for a while, and the
    # scheduler places tasks only on ready nodes: wait, so that the service spreads over all.
    wait_for("every node is ready", lambda: {n[0] for n in nodes().values()} == {"ready"})
    import_probe_image("worker1", "worker2", "node6")
    node_exec(
        "manager1",
        "docker",
        "service",
        "create",
        "--detach",
        "--no-resolve-image",
        "--name",
        "probe",
        "--replicas",
        "3",
        "--constraint",
        "node.role==worker",
        PROBE_IMAGE,
        "/usr/bin/sleep",
        "infinity",
    )
    wait_for(
        "the probe service runs on every worker",
        lambda: probe_tasks() == ["node6", "worker1", "worker2"],
        explain=lambda: node_exec("manager1", "docker", "service", "ps", "probe", "--no-trunc", check=False),
    )

    run = playbook("playbooks/remove_node.yml", *inventories["cluster"], "-e", "remove_node=worker2")
    assert run.rc == 0, run.out
    assert "worker2" not in nodes()
    assert swarm_of("worker2")["LocalNodeState"] == "inactive"
    # remove_node waited until worker2's task ran elsewhere before it let the node go.
    assert len(probe_tasks()) == 3
    assert "worker2" not in probe_tasks()

    again = playbook("playbooks/remove_node.yml", *inventories["cluster"], "-e", "remove_node=worker2")
    assert again.rc == 0, again.out
    assert again.changed() == 0, again.recap
    assert "worker2 is not in the swarm: nothing to remove." in again.out


def test_removing_a_manager_keeps_quorum_and_the_swarm_writable(inventories):
    run = playbook("playbooks/remove_node.yml", *inventories["cluster"], "-e", "remove_node=manager3")
    assert run.rc == 0, run.out
    left = nodes()
    assert sorted(left) == ["manager1", "manager2", "node6", "worker1"]
    assert [left[m][2] for m in ("manager1", "manager2")] == ["reachable", "reachable"]
    node_exec("manager2", "docker", "network", "create", "--driver", "overlay", "shopstream-writable")
    node_exec("manager1", "docker", "network", "rm", "shopstream-writable")
