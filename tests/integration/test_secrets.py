"""Versioned secrets, configs and networks against this host's real engine in swarm mode.

Pattern: check mode -> apply -> apply again (unchanged) -> check mode again (unchanged) ->
new content (new version); a version in use survives pruning; a service is rewired and
converges; bad input fails clearly and changes nothing. Objects are named itest_* and removed.
"""

import datetime
import functools
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from ansible.parsing.vault import VaultLib, VaultSecret
from runner import ROOT, docker, playbook

from ansible_collections.shopstream.swarm.plugins.filter.tls import tls_pair_problems
from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import DockerClient
from ansible_collections.shopstream.swarm.plugins.module_utils._local_ca import issue_ca, issue_server, reissue_reason
from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import SECRET, Rewirer, rewire_and_prune

KEY = secrets.token_hex(32)
VALUE1 = "first-" + secrets.token_hex(16)
VALUE2 = "second-" + secrets.token_hex(16)


def objects(kind, logical):
    out = docker(kind, "ls", "--filter", f"label=com.shopstream.object={logical}", "--format", "{{.Name}}").stdout
    return sorted(out.split())


def remove_all(prefix="itest_"):
    for service in docker("service", "ls", "--format", "{{.Name}}").stdout.split():
        if service.startswith(prefix):
            docker("service", "rm", service)
    for kind in ("secret", "config"):
        for name in docker(kind, "ls", "--format", "{{.Name}}").stdout.split():
            if name.startswith(prefix):
                docker(kind, "rm", name)
    for name in docker("network", "ls", "--format", "{{.Name}}").stdout.split():
        if name.startswith(prefix):
            docker("network", "rm", name)


@pytest.fixture(autouse=True)
def clean():
    remove_all()
    yield
    remove_all()


@pytest.mark.parametrize(
    ("module", "kind"), [("shopstream.swarm.swarm_secret", "secret"), ("shopstream.swarm.swarm_config", "config")]
)
def test_check_apply_again_check_then_new_content(module_run, module, kind):
    logical = f"itest_{kind}"
    args = {"name": logical, "data": VALUE1, "hash_key": KEY}

    planned = module_run(module, args, check=True)
    assert planned["changed"] and planned["created"], planned
    assert objects(kind, logical) == []

    first = module_run(module, args)
    assert first["changed"] and first["created"]
    assert first["name"] == planned["name"]
    assert objects(kind, logical) == [first["name"]]

    again = module_run(module, args)
    assert not again["changed"] and again["name"] == first["name"]
    assert not module_run(module, args, check=True)["changed"]

    second = module_run(module, dict(args, data=VALUE2))
    assert second["changed"] and second["name"] != first["name"]
    assert second["previous"] == first["name"]
    assert objects(kind, logical) == sorted([first["name"], second["name"]])

    # keep=1: the first version is unused, so it goes.
    pruned = module_run(module, dict(args, data=VALUE2, keep=1))
    assert pruned["changed"] and [p["name"] for p in pruned["pruned"]] == [first["name"]]
    assert objects(kind, logical) == [second["name"]]


def wait_running(service, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = docker("service", "ps", service, "--filter", "desired-state=running", "--format", "{{.CurrentState}}")
        if states.stdout.startswith("Running"):
            return
        time.sleep(1)
    pytest.fail(docker("service", "ps", service, "--no-trunc").stdout)


def file_in_service(service, path):
    container = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}").stdout.split()[0]
    return docker("exec", container, "cat", path).stdout


def test_a_version_in_use_survives_pruning_and_the_service_is_rewired(module_run, probe_image):
    logical = "itest_db_password"
    first = module_run("shopstream.swarm.swarm_secret", {"name": logical, "data": VALUE1, "hash_key": KEY})
    created = docker(
        "service", "create", "-d", "--name", "itest_consumer", "--no-resolve-image",
        "--secret", f"source={first['name']},target=db_password,uid=70,gid=71,mode=0440",
        probe_image, "sleep", "100000",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    wait_running("itest_consumer")

    # A new value with keep=1 and no rewiring: the old version is in use, so it stays and is reported.
    second = module_run("shopstream.swarm.swarm_secret", {"name": logical, "data": VALUE2, "hash_key": KEY, "keep": 1})
    assert second["created"] and second["pruned"] == []
    assert second["in_use"] == [
        {"kind": "secret", "object": logical, "name": first["name"], "services": ["itest_consumer"]}
    ]
    assert objects("secret", logical) == sorted([first["name"], second["name"]])

    rewire = {"secrets": {logical: second["name"]}, "keep": 1}
    planned = module_run("shopstream.swarm.swarm_rewire", rewire, check=True)
    assert planned["changed"] and [r["service"] for r in planned["rewired"]] == ["itest_consumer"]
    spec = json.loads(docker("service", "inspect", "itest_consumer").stdout)[0]["Spec"]
    assert spec["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretName"] == first["name"]

    done = module_run("shopstream.swarm.swarm_rewire", rewire)
    assert done["changed"], done
    assert done["rewired"] == [
        {"service": "itest_consumer", "stack": None, "moved": {"secret": [[first["name"], second["name"]]]}}
    ]
    assert [p["name"] for p in done["pruned"]] == [first["name"]]
    ref = json.loads(docker("service", "inspect", "itest_consumer").stdout)[0]["Spec"]["TaskTemplate"]
    ref = ref["ContainerSpec"]["Secrets"][0]
    assert ref == {
        "File": {"Name": "db_password", "UID": "70", "GID": "71", "Mode": 0o440},
        "SecretID": second["id"],
        "SecretName": second["name"],
    }
    assert json.loads(docker("service", "inspect", "itest_consumer").stdout)[0]["UpdateStatus"]["State"] == "completed"
    wait_running("itest_consumer")
    assert file_in_service("itest_consumer", "/run/secrets/db_password") == VALUE2
    assert objects("secret", logical) == [second["name"]]

    assert not module_run("shopstream.swarm.swarm_rewire", rewire)["changed"]

    listed = module_run("shopstream.swarm.swarm_object_info", {"kinds": ["secret"], "names": [logical]})
    assert listed["secrets"][logical]["current"] == second["name"]
    assert listed["secrets"][logical]["versions"][0]["services"] == ["itest_consumer"]


def test_an_update_racing_the_rewire_is_read_again_and_both_changes_land(module_run, probe_image, monkeypatch):
    """Between the rewire's read of a service and its update, another client updates the service:
    the real engine refuses the stale update ("update out of sequence"); the rewire reads it again
    and ends on the new version, keeping the other client's change."""
    logical = "itest_raced"
    first = module_run("shopstream.swarm.swarm_secret", {"name": logical, "data": VALUE1, "hash_key": KEY})
    created = docker(
        "service", "create", "-d", "--name", "itest_raced", "--no-resolve-image",
        "--secret", f"source={first['name']},target=raced", probe_image, "sleep", "100000",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    wait_running("itest_raced")
    second = module_run("shopstream.swarm.swarm_secret", {"name": logical, "data": VALUE2, "hash_key": KEY})

    raced = []
    read = Rewirer.read

    def read_then_race(self, service_id):
        service = read(self, service_id)
        if not raced:
            raced.append(docker("service", "update", "-d", "--label-add", "changed.by=on-call", "itest_raced"))
        return service

    monkeypatch.setattr(Rewirer, "read", read_then_race)
    result = rewire_and_prune(DockerClient(), {SECRET: {logical: second["name"]}}, keep=1, timeout=120)
    assert raced and raced[0].returncode == 0, raced
    assert sum("reading it again" in e for e in result["events"]) == 1, result["events"]
    assert result["rewired"] == [
        {"service": "itest_raced", "stack": None, "moved": {"secret": [[first["name"], second["name"]]]}}
    ]
    spec = json.loads(docker("service", "inspect", "itest_raced").stdout)[0]["Spec"]
    assert spec["Labels"] == {"changed.by": "on-call"}
    assert spec["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretName"] == second["name"]
    wait_running("itest_raced")
    assert file_in_service("itest_raced", "/run/secrets/raced") == VALUE2
    assert objects("secret", logical) == [second["name"]]


def test_a_failing_update_is_reported_with_the_service_and_task_error(module_run, probe_image):
    logical = "itest_cfg"
    first = module_run("shopstream.swarm.swarm_config", {"name": logical, "data": "a"})
    # The new version is mounted over the binary the task runs: the update's task cannot start.
    created = docker(
        "service", "create", "-d", "--name", "itest_fragile", "--no-resolve-image",
        "--update-failure-action", "rollback", "--update-monitor", "2s",
        "--config", f"source={first['name']},target=/etc/app.conf",
        probe_image, "sleep", "100000",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    wait_running("itest_fragile")
    docker("service", "update", "-d", "--config-rm", first["name"], "--config-add",
           f"source={first['name']},target=/bin/sleep", "itest_fragile")  # fmt: skip
    time.sleep(1)
    second = module_run("shopstream.swarm.swarm_config", {"name": logical, "data": "b", "rewire": True, "timeout": 90})
    assert second.get("failed"), second
    assert "itest_fragile" in second["msg"] and "task error" in second["msg"], second["msg"]


def test_the_engines_ingress_network_is_refused_in_check_mode_and_for_real(module_run):
    before = docker("network", "inspect", "--format", "{{.Id}}", "ingress").stdout
    for check in (True, False):
        refused = module_run("shopstream.swarm.swarm_network", {"name": "ingress", "internal": True}, check=check)
        assert refused.get("failed") and "made and owned by the Docker engine" in refused["msg"], refused
    assert docker("network", "inspect", "--format", "{{.Id}}", "ingress").stdout == before


def test_networks_check_apply_again_and_a_change_in_use_is_refused(module_run, probe_image):
    args = {"name": "itest_net", "internal": True, "subnet": "10.199.0.0/24"}
    assert module_run("shopstream.swarm.swarm_network", args, check=True)["changed"]
    assert docker("network", "inspect", "itest_net").returncode != 0
    assert module_run("shopstream.swarm.swarm_network", args)["changed"]
    inspected = json.loads(docker("network", "inspect", "itest_net").stdout)[0]
    assert inspected["Internal"] and "encrypted" in inspected["Options"] and inspected["Scope"] == "swarm"
    assert not module_run("shopstream.swarm.swarm_network", args)["changed"]
    assert not module_run("shopstream.swarm.swarm_network", args, check=True)["changed"]

    docker("service", "create", "-d", "--name", "itest_netuser", "--no-resolve-image", "--network", "itest_net",
           probe_image, "sleep", "100000")  # fmt: skip
    refused = module_run("shopstream.swarm.swarm_network", dict(args, internal=False))
    assert refused.get("failed")
    assert "internal True -> False" in refused["msg"] and "itest_netuser" in refused["msg"]
    assert json.loads(docker("network", "inspect", "itest_net").stdout)[0]["Id"] == inspected["Id"]


# The secrets role and the vault playbooks, with an inventory of their own


# The secrets role alone: the configs role's template checks (nginx, promtool, amtool, Traefik)
# have tests of their own below and cost a minute per run; it would also rewire the live platform.
# MariaDB's accounts: a service of the itest_ prefix, which never exists (the platform's own MariaDB
# may run on this host meanwhile); the cluster's rotation test changes the accounts of a running one.
SECRETS_ONLY = ("playbooks/secrets.yml", "--skip-tags", "configs", "-e", "secrets_mariadb_service=itest-data_mariadb")


@functools.cache
def edge_certificate():
    """The edge's certificate and key (secrets_extra's tls_certificate, tls_key), from a local CA."""
    ca_cert, ca_key = issue_ca(days=30)
    return issue_server(ca_cert, ca_key, ["localhost"], days=30)


def secret_vars(**overrides):
    values = {f"vault_shopstream_{name}": secrets.token_hex(16) for name in SECRET_NAMES}
    values["vault_shopstream_object_hash_key"] = KEY
    values["shopstream_tls_certificate"], values["vault_shopstream_tls_key"] = edge_certificate()
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


TLS_VARS = {
    "shopstream_tls_certificate", "vault_shopstream_tls_key",
    "shopstream_tls_ca_certificate", "vault_shopstream_tls_ca_key",
}  # fmt: skip
SECRET_NAMES = [
    "mariadb_root_password", "mariadb_root_password_previous", "mariadb_password", "mariadb_password_previous",
    "jwt_signing_key", "jwt_signing_key_previous", "redis_password",
    "redis_password_previous", "rabbitmq_password", "rabbitmq_password_previous", "rabbitmq_erlang_cookie",
    "minio_root_user", "minio_root_password", "grafana_admin_password", "traefik_dashboard_password", "demo_password",
    "demo_password_previous", "monitoring_password",
]  # fmt: skip


def tls_pair(days, same_key=True):
    """A self-signed PEM certificate, issued 30 days ago, valid until ``days`` days from now (negative:
    expired), and a key: its own, or another one."""
    from cryptography import x509  # noqa: PLC0415 - only these cases need it
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "itest.example")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now + datetime.timedelta(days=days)).sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = (key if same_key else other).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return {
        "secrets_extra": {"tls_certificate": "itest_tls_certificate", "tls_key": "vault_itest_tls_key"},
        "itest_tls_certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "vault_itest_tls_key": pem.decode(),
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            tls_pair(90, same_key=False),
            "The TLS certificate cannot be used: vault_itest_tls_key is not the key of itest_tls_certificate",
        ),
        (tls_pair(-2), "The TLS certificate cannot be used: itest_tls_certificate expired on "),
        (
            {"vault_shopstream_redis_password": None},
            "No value for vault_shopstream_redis_password: create missing values with `ansible-playbook "
            "playbooks/vault_init.yml",
        ),
        ({"vault_shopstream_object_hash_key": ""}, "No value for vault_shopstream_object_hash_key"),
        (
            {"vault_shopstream_demo_password": "x" * (500 * 1024 + 1)},
            "Over Docker's 500 KB limit for a secret: vault_shopstream_demo_password",
        ),
    ],
)
def test_bad_vault_values_fail_before_anything_changes(inventory, tmp_path, overrides, message):
    group_vars = dict(secret_vars(**overrides), secrets_prefix="itest_")
    (tmp_path / "vars.json").write_text(json.dumps(group_vars))
    run = playbook(*SECRETS_ONLY, "-i", inventory(managers=["localhost"]), "-e", f"@{tmp_path / 'vars.json'}")
    assert run.rc != 0
    assert message in " ".join(run.out.split()), run.out
    assert [n for n in docker("secret", "ls", "--format", "{{.Name}}").stdout.split() if n.startswith("itest_")] == []


def decrypt(path, password_file):
    vault = VaultLib([("default", VaultSecret(Path(password_file).read_text().strip().encode()))])
    return yaml.safe_load(vault.decrypt(Path(path).read_bytes()))


@pytest.fixture
def vault_inventory(tmp_path):
    """An inventory directory of its own, this host as its manager, for vault_init and rotation."""
    inv = tmp_path / "inv"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "swarm": {
                    "vars": {"secrets_prefix": "itest_", "secrets_mariadb_service": "itest-data_mariadb"},
                    "children": {
                        "swarm_managers": {
                            "hosts": {
                                "localhost": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": str(Path(os.sys.executable)),
                                }
                            }
                        },
                        "swarm_workers": {"hosts": {}},
                    },
                }
            }
        )
    )
    return inv


def test_vault_init_then_rotation_rewires_and_prunes_and_leaks_nothing(vault_inventory, probe_image):
    inv, vault_file, password_file = (
        vault_inventory,
        vault_inventory / "group_vars/all/vault.yml",
        vault_inventory / ".vault-pass",
    )
    init = playbook("playbooks/vault_init.yml", "-i", inv / "hosts.yml")
    assert init.rc == 0, init.out
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert vault_file.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256")
    values = decrypt(vault_file, password_file)
    randoms = {f"vault_shopstream_{n}" for n in SECRET_NAMES}
    randoms |= {"vault_shopstream_object_hash_key", "vault_shopstream_registry_password", "vault_shopstream_backup_key"}
    assert set(values) == randoms | TLS_VARS
    assert all(len(v) >= 20 and v.isalnum() for k, v in values.items() if k not in TLS_VARS)
    # The local CA: its certificate beside the vault for clients, and the edge's certificate is its,
    # for this inventory's host, valid, and its key's.
    ca = values["shopstream_tls_ca_certificate"]
    assert (inv / ".tls-ca.pem").read_text() == ca
    assert reissue_reason(values["shopstream_tls_certificate"], ca, ["localhost", "127.0.0.1", "::1"]) is None
    assert tls_pair_problems(values["shopstream_tls_certificate"], values["vault_shopstream_tls_key"]) == []
    # Until the first rotation, the gateway's previous JWT key is the current one.
    assert values["vault_shopstream_jwt_signing_key_previous"] == values["vault_shopstream_jwt_signing_key"]

    with_pass = ("-i", inv / "hosts.yml", "--vault-password-file", password_file)
    again = playbook("playbooks/vault_init.yml", *with_pass)
    assert again.rc == 0 and again.changed() == 0, again.out
    assert decrypt(vault_file, password_file) == values

    wrong = vault_inventory / "wrong-pass"
    wrong.write_text("not the password\n")
    wrong.chmod(0o600)
    refused = playbook(*SECRETS_ONLY, "-i", inv / "hosts.yml", "--vault-password-file", wrong)
    # Named before any play runs (the collection's vars plugin vault_files), not a bare "Decryption failed".
    assert refused.rc != 0, refused.out
    assert f"{os.path.realpath(vault_file)}: none of the vault passwords given decrypts it" in refused.out, refused.out
    assert f"Fix: --vault-password-file {os.path.realpath(inv)}/.vault-pass" in refused.out
    assert objects("secret", "itest_mariadb_password") == []

    deployed = playbook(*SECRETS_ONLY, *with_pass)
    assert deployed.rc == 0, deployed.out
    old = objects("secret", "itest_jwt_signing_key")
    assert len(old) == 1
    previous = objects("secret", "itest_jwt_signing_key_previous")
    # auth signs with the current key; the gateway verifies with the current and the previous one.
    docker("service", "create", "-d", "--name", "itest_auth", "--no-resolve-image",
           "--secret", f"source={old[0]},target=jwt_signing_key", probe_image, "sleep", "100000")  # fmt: skip
    docker("service", "create", "-d", "--name", "itest_gateway", "--no-resolve-image",
           "--secret", f"source={old[0]},target=jwt_signing_key",
           "--secret", f"source={previous[0]},target=jwt_previous_signing_key",
           probe_image, "sleep", "100000")  # fmt: skip
    wait_running("itest_auth")
    wait_running("itest_gateway")

    # On call, a rotation names what it rotates: no default, and an empty list is no list.
    before = (decrypt(vault_file, password_file), objects("secret", "itest_jwt_signing_key"))
    for unnamed in ((), ("-e", "rotate="), ("-e", "rotate= , ")):
        refused = playbook("playbooks/rotate_secrets.yml", *with_pass, *unnamed)
        assert refused.rc != 0 and "Name the secrets to rotate: -e rotate=" in refused.out, refused.out[-3000:]
        assert (decrypt(vault_file, password_file), objects("secret", "itest_jwt_signing_key")) == before
    # Nor does it start one it could not finish: the keep is checked before the vault is rewritten.
    for keep in ("0", "-1", "one"):
        refused = playbook(
            "playbooks/rotate_secrets.yml", *with_pass, "-e", "rotate=jwt_signing_key", "-e", f"rotate_keep={keep}"
        )
        assert refused.rc != 0 and f"rotate_keep is {keep}: the number of unused versions" in refused.out, refused.out[
            -3000:
        ]
        assert (decrypt(vault_file, password_file), objects("secret", "itest_jwt_signing_key")) == before

    before_rotation = vault_file.read_bytes()
    rotated = playbook("playbooks/rotate_secrets.yml", *with_pass, "-e", "rotate=jwt_signing_key", "-vvv")
    assert rotated.rc == 0, rotated.out[-3000:]
    new_values = decrypt(vault_file, password_file)
    jwt, jwt_previous = (
        new_values["vault_shopstream_jwt_signing_key"],
        new_values["vault_shopstream_jwt_signing_key_previous"],
    )
    assert jwt != values["vault_shopstream_jwt_signing_key"]
    assert jwt_previous == values["vault_shopstream_jwt_signing_key"], "the previous key is the one rotated away from"
    assert {k: v for k, v in new_values.items() if "jwt" not in k} == {
        k: v for k, v in values.items() if "jwt" not in k
    }
    new = objects("secret", "itest_jwt_signing_key")
    assert len(new) == 1 and new != old
    report = " ".join(rotated.out.split())
    # The gateway moves first: it accepts the new key before auth signs with it.
    assert (
        f"jwt_signing_key: new {new[0]}, was {old[0]}; rewired: itest_gateway, itest_auth; pruned: {old[0]}" in report
    )
    wait_running("itest_auth")
    wait_running("itest_gateway")
    assert file_in_service("itest_auth", "/run/secrets/jwt_signing_key") == jwt
    assert file_in_service("itest_gateway", "/run/secrets/jwt_signing_key") == jwt
    assert file_in_service("itest_gateway", "/run/secrets/jwt_previous_signing_key") == jwt_previous

    # Leak check: no value, old or new, in the -vvv output or in any object's or service's inspect.
    inspected = "".join(
        docker(kind, "inspect", *docker(kind, "ls", "-q").stdout.split()).stdout
        for kind in ("secret", "config", "service")
    )
    # (Certificates are public: the CA's is even written beside the vault.)
    for name, value in list(values.items()) + list(new_values.items()):
        if name.startswith("vault_"):
            assert value not in rotated.out + deployed.out + init.out, name
            assert value not in inspected, name

    # The vault put back to its copy from before the rotation (a restored backup): site.yml's secrets
    # step moves auth back to the older key, and the gateway, moved first, accepts both that key and
    # the one auth signed with until then (not the vault's previous): no token auth issued is refused.
    vault_file.write_bytes(before_rotation)
    restored = playbook(*SECRETS_ONLY, *with_pass)
    assert restored.rc == 0, restored.out[-3000:]
    report = " ".join(restored.out.split())
    assert "rewired: itest_gateway, itest_auth" in report, report[-3000:]
    assert "(the value its signers ran, not the vault's)" in report, report[-3000:]
    wait_running("itest_auth")
    wait_running("itest_gateway")
    assert file_in_service("itest_auth", "/run/secrets/jwt_signing_key") == values["vault_shopstream_jwt_signing_key"]
    assert (
        file_in_service("itest_gateway", "/run/secrets/jwt_signing_key") == values["vault_shopstream_jwt_signing_key"]
    )
    assert file_in_service("itest_gateway", "/run/secrets/jwt_previous_signing_key") == jwt, "the key auth signed with"
    again = playbook(*SECRETS_ONLY, *with_pass)
    assert again.rc == 0 and again.changed() == 0, again.out[-3000:]


def test_a_rotation_that_fails_or_is_killed_halfway_is_completed_by_the_next_run(vault_inventory, probe_image):
    """Atomic and resumable. A Redis client whose update fails (its node cannot get its image) ends the
    rotation non-zero, naming the service; a rotation killed while services move stops where it was.
    Either way the vault holds the new value and the replaced one as previous, the server accepts
    both, no service uses a password the vault lost, and the next run of the secrets step
    (site.yml's) moves the rest: every service ends on the vault's current versions."""
    inv = vault_inventory
    with_pass = ("-i", inv / "hosts.yml", "--vault-password-file", inv / ".vault-pass")
    vault_file, password_file = inv / "group_vars" / "all" / "vault.yml", inv / ".vault-pass"
    assert playbook("playbooks/vault_init.yml", "-i", inv / "hosts.yml").rc == 0
    assert playbook(*SECRETS_ONLY, *with_pass).rc == 0
    # The client's image is a tag of its own, which the test takes away and gives back.
    client_image = "shopstream-test/redis-client:" + secrets.token_hex(4)
    assert docker("tag", probe_image, client_image).returncode == 0
    current, previous = objects("secret", "itest_redis_password"), objects("secret", "itest_redis_password_previous")
    docker("service", "create", "-d", "--name", "itest_redis", "--no-resolve-image",
           "--secret", f"source={current[0]},target=redis_password",
           "--secret", f"source={previous[0]},target=redis_password_previous",
           probe_image, "sleep", "100000")  # fmt: skip
    # As the stack updates its services: the new task first, back to the old spec when it fails.
    docker("service", "create", "-d", "--name", "itest_redis_client", "--no-resolve-image",
           "--update-order", "start-first", "--update-failure-action", "rollback", "--update-monitor", "2s",
           "--secret", f"source={current[0]},target=redis_password", client_image, "sleep", "100000")  # fmt: skip
    wait_running("itest_redis")
    wait_running("itest_redis_client")

    def consistent(vault):
        """The password each service uses is one the vault has (the server may still accept, besides,
        the value before the vault's previous one, until it moves: no client has that one)."""
        for service in ("itest_redis", "itest_redis_client"):
            wait_running(service)
            assert file_in_service(service, "/run/secrets/redis_password") in vault.values(), service

    try:
        assert docker("rmi", client_image).returncode == 0  # the running task keeps it; a new one cannot start
        failed = playbook("playbooks/rotate_secrets.yml", *with_pass, "-e", "rotate=redis_password")
        assert failed.rc != 0, failed.out[-3000:]
        assert "itest_redis_client" in " ".join(failed.out.split()), failed.out[-3000:]
        vault = decrypt(vault_file, password_file)
        new, old = vault["vault_shopstream_redis_password"], vault["vault_shopstream_redis_password_previous"]
        assert new != old and file_in_service("itest_redis", "/run/secrets/redis_password_previous") == old
        consistent(vault)
    finally:
        docker("tag", probe_image, client_image)
    completed = playbook(*SECRETS_ONLY, *with_pass)
    assert completed.rc == 0, completed.out[-3000:]
    wait_running("itest_redis_client")
    assert file_in_service("itest_redis_client", "/run/secrets/redis_password") == new
    assert file_in_service("itest_redis", "/run/secrets/redis_password") == new

    # Killed while the services move (the whole process group, as a lost SSH session or a ^C would).
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/rotate_secrets.yml",
         *map(str, with_pass), "-e", "rotate=redis_password"],
        cwd=ROOT, env=dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg")), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    for line in proc.stdout:
        if "Objects | move every service onto the current versions" in line:
            time.sleep(2)
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    vault = decrypt(vault_file, password_file)
    assert vault["vault_shopstream_redis_password"] != new and vault["vault_shopstream_redis_password_previous"] == new
    consistent(vault)
    resumed = playbook(*SECRETS_ONLY, *with_pass)
    assert resumed.rc == 0, resumed.out[-3000:]
    wait_running("itest_redis_client")
    for service in ("itest_redis", "itest_redis_client"):
        assert file_in_service(service, "/run/secrets/redis_password") == vault["vault_shopstream_redis_password"]
    assert file_in_service("itest_redis", "/run/secrets/redis_password_previous") == new, "both accepted until retired"


def test_another_inventorys_vault_is_refused_before_anything_changes(vault_inventory):
    """The platform deployed here runs on inventories/local's vault. site.yml with another inventory's
    vault (made by vault_init beside it, given with -e @) matches none of the secrets the services use:
    refused in preflight, before the engine, the registry's password or any object changes."""
    local_pass = ROOT / "inventories" / "local" / ".vault-pass"
    if not local_pass.exists():
        pytest.skip("inventories/local has no vault: run `make deploy` first")
    init = playbook("playbooks/vault_init.yml", "-i", vault_inventory / "hosts.yml")
    assert init.rc == 0, init.out

    def state():
        services = docker("service", "ls", "-q").stdout.split()
        versions = docker("service", "inspect", "--format", "{{.ID}} {{.Version.Index}}", *services).stdout
        return docker("secret", "ls", "--format", "{{.Name}}").stdout, versions

    before = state()
    run = playbook(
        "site.yml", "-i", "inventories/local",
        "--vault-password-file", local_pass, "--vault-password-file", vault_inventory / ".vault-pass",
        "-e", f"@{vault_inventory / 'group_vars' / 'all' / 'vault.yml'}",
    )  # fmt: skip
    assert run.rc != 0
    message = " ".join(run.out.split())
    assert "The vault matches none of the" in message, run.out[-3000:]
    assert (
        "every credential would change at once, and the data services keep the passwords they were initialised "
        "with. Is it another inventory's vault, or an old copy? Fix: run with this inventory's vault" in message
    )
    named = message.split("secrets the platform's services use now (")[1].split(")")[0].split(", ")
    assert {"redis_password", "mariadb_password", "jwt_signing_key"} <= set(named), named
    assert run.changed() == 0, run.recap
    assert "TASK [shopstream.swarm.engine" not in run.out, "refused after preflight"
    assert state() == before


def test_a_changed_template_rotates_its_config_and_rewires_its_users(inventory, probe_image, platform_images):
    # No service uses the itest_ configs yet: the tools run in the platform's images.
    images = ("-e", json.dumps({"configs_validate_images": platform_images}))
    base = ("-i", inventory(managers=["localhost"]), "-e", "configs_name_prefix=itest_", *images)
    key = ("-e", f"vault_shopstream_object_hash_key={KEY}")
    first = playbook("playbooks/rotate_configs.yml", *base, *key)
    assert first.rc == 0, first.out
    old = objects("config", "itest_nginx")
    target = "target=/etc/nginx/conf.d/default.conf"
    # One task publishing a port in host mode, as the edge on one node does.
    docker("service", "create", "-d", "--name", "itest_frontend", "--no-resolve-image",
           "--publish", "mode=host,published=18089,target=80",
           "--config", f"source={old[0]},{target}", probe_image, "sleep", "100000")  # fmt: skip
    wait_running("itest_frontend")

    unchanged = playbook("playbooks/rotate_configs.yml", *base, *key)
    assert unchanged.rc == 0 and unchanged.changed() == 0, unchanged.out

    changed = playbook(
        "playbooks/rotate_configs.yml", *base, *key, "-e", "configs_nginx_assets_max_age=600", interleaved=True
    )
    assert changed.rc == 0, changed.out
    new = objects("config", "itest_nginx")
    assert len(new) == 1 and new != old
    report = " ".join(changed.out.split())
    assert (
        f"nginx: {new[0]} (new version, was {old[0]}); services rewired: itest_frontend; versions pruned: {old[0]}"
        in report
    )
    # Said before anything moved: its restart refuses connections on that port.
    warned = report.find("itest_frontend publishes port(s) 18089 in host mode")
    assert -1 < warned < report.index("Publish | move services onto the current versions"), changed.out
    wait_running("itest_frontend")
    assert "max-age=600" in file_in_service("itest_frontend", "/etc/nginx/conf.d/default.conf")
    # The other configs did not change: one new version in all.
    assert report.count("(new version") == 1


def test_an_invalid_template_fails_before_any_config_changes(inventory, platform_images):
    """nginx -t in the frontend's image refuses it: this host has no nginx of its own."""
    run = playbook(
        "playbooks/rotate_configs.yml", "-i", inventory(managers=["localhost"]),
        "-e", "configs_name_prefix=itest_", "-e", f"vault_shopstream_object_hash_key={KEY}",
        "-e", "configs_nginx_extra_directives='proxy_pas http://x;'",
        "-e", json.dumps({"configs_validate_images": platform_images}),
    )  # fmt: skip
    assert run.rc != 0
    assert "1 invalid config(s), nothing was created" in run.out, run.out
    assert "[nginx] itest_nginx (/etc/nginx/conf.d/default.conf), nginx: " in run.out, run.out
    assert 'unknown directive \\"proxy_pas\\"' in run.out, run.out
    assert [n for n in docker("config", "ls", "--format", "{{.Name}}").stdout.split() if n.startswith("itest_")] == []


def test_a_new_value_of_a_pinned_secret_is_refused_while_services_use_the_current_one(inventory, tmp_path, probe_image):
    # No platform secret is pinned (MariaDB's passwords rotate through its accounts); a site's may be.
    values = dict(secret_vars(), secrets_pinned=["mariadb_password"])
    (tmp_path / "vars.json").write_text(json.dumps(dict(values, secrets_prefix="itest_")))
    args = (*SECRETS_ONLY, "-i", inventory(managers=["localhost"]), "-e", f"@{tmp_path / 'vars.json'}")
    first = playbook(*args)
    assert first.rc == 0, first.out
    current = objects("secret", "itest_mariadb_password")
    docker("service", "create", "-d", "--name", "itest_db_user", "--no-resolve-image",
           "--secret", f"source={current[0]},target=db_password", probe_image, "sleep", "100000")  # fmt: skip

    (tmp_path / "vars.json").write_text(
        json.dumps(dict(values, secrets_prefix="itest_", vault_shopstream_mariadb_password=secrets.token_hex(16)))
    )
    refused = playbook(*args)
    assert refused.rc != 0
    assert "mariadb_password changed in the vault while services use the current version (itest_db_user)" in " ".join(
        refused.out.split()
    ), refused.out
    assert objects("secret", "itest_mariadb_password") == current
