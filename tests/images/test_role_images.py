"""Role shopstream.swarm.images on this host: check mode, apply, apply again, check mode again.

The kit mode builds redis (and its base, and the registry image), runs the kit's registry on a
test port with a test volume, behind a login, pushes redis there and maps it in shopstream_images
by digest; official mode
maps the official images and changes nothing. Everything created is named kittest-* and removed.
"""

import base64
import json
import re
import secrets
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest
import yaml
from runner import playbook

PLAYBOOK = """
- name: The images role on this host
  hosts: swarm_managers
  gather_facts: false
  roles:
    - role: shopstream.swarm.images
  post_tasks:
    - name: Print the mapping for the test
      ansible.builtin.debug:
        msg: "SHOPSTREAM_IMAGES={{ shopstream_images | to_json }}"
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def images_of(run):
    match = re.search(r'"msg": "SHOPSTREAM_IMAGES=(.*)"\n', run.out)
    assert match, run.out[-3000:]
    return json.loads(json.loads(f'"{match[1]}"'))


@pytest.fixture
def role_run(private_tmp, kit):
    tmp_path = private_tmp
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "swarm": {
                    "children": {
                        "swarm_managers": {
                            "hosts": {
                                "localhost": {
                                    "ansible_connection": "local",
                                    "ansible_python_interpreter": sys.executable,
                                }
                            }
                        }
                    }
                }
            }
        )
    )
    book = tmp_path / "images.yml"
    book.write_text(PLAYBOOK)
    names = {
        "container": f"kittest-registry-{uuid.uuid4().hex[:6]}",
        "volume": f"kittest-registry-{uuid.uuid4().hex[:6]}",
    }

    def run(*extra, **variables):
        varfile = tmp_path / f"vars-{uuid.uuid4().hex[:6]}.yml"
        varfile.write_text(yaml.safe_dump(variables))
        result = playbook(
            book,
            "-i",
            inventory,
            "-e",
            f"@{varfile}",
            *extra,
            env={"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"},
        )
        print(f"images role {' '.join(extra) or 'apply'}: {result.seconds:.1f} s, changed={result.changed()}")
        assert result.rc == 0, result.out[-4000:]
        return result

    yield run, names
    subprocess.run(["docker", "rm", "-f", "-v", names["container"]], capture_output=True, check=False)
    subprocess.run(["docker", "volume", "rm", "-f", names["volume"]], capture_output=True, check=False)


def test_kit_mode_builds_serves_and_maps_then_changes_nothing(role_run, kit, private_tmp):
    run, names = role_run
    port = free_port()
    address = f"127.0.0.1:{port}"
    variables = {
        "images_source": "kit",
        "images_components": ["redis", "minio"],
        "images_registry_port": port,
        "images_registry_address": address,
        "images_registry_container": names["container"],
        "images_registry_volume": names["volume"],
        "images_build_dir": str(private_tmp / "kit"),
        "images_archive_controller_dir": str(private_tmp / "cache"),
        "images_registry_password": secrets.token_hex(16),
        "images_registry_auth_dir": str(private_tmp / "registry-auth"),
        "vault_shopstream_object_hash_key": secrets.token_hex(32),
    }
    redis = kit.ref("redis")
    try:
        first_check = run("--check", **variables)
        assert first_check.changed() > 0
        assert (
            subprocess.run(["docker", "inspect", names["container"]], capture_output=True, check=False).returncode != 0
        )

        applied = run(**variables)
        assert applied.changed() > 0
        images = images_of(applied)
        assert images["minio"] == "quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z"
        assert re.fullmatch(re.escape(f"{address}/{redis}") + r"@sha256:[0-9a-f]{64}", images["redis"]), images
        assert re.search(r"redis: (built in [\d.]+ s|unchanged), [\d.]+ MB, " + re.escape(redis), applied.out)
        # No anonymous client; with the login, the tag points at the digest the services run.
        repository, tag = redis.split(":")
        login = base64.b64encode(f"shopstream:{variables['images_registry_password']}".encode()).decode()
        url = f"http://{address}/v2/{repository}/manifests/{tag}"
        accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
        with pytest.raises(urllib.error.HTTPError) as anonymous:
            urllib.request.urlopen(urllib.request.Request(url, headers=accept, method="HEAD"), timeout=10)  # noqa: S310
        assert anonymous.value.code == 401
        request = urllib.request.Request(url, headers=dict(accept, Authorization=f"Basic {login}"), method="HEAD")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own test registry
            assert response.status == 200
            assert images["redis"].endswith("@" + response.headers["Docker-Content-Digest"])

        again = run(**variables)
        assert again.changed() == 0, again.out[-4000:]
        assert images_of(again) == images
        check_again = run("--check", **variables)
        assert check_again.changed() == 0, check_again.out[-4000:]
    finally:
        tags = subprocess.run(
            ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", f"{address}/*/*"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if tags:
            subprocess.run(["docker", "rmi", *tags], capture_output=True, check=False)
        subprocess.run(["docker", "logout", address], capture_output=True, check=False)


def test_official_mode_maps_the_pinned_images_and_changes_nothing(role_run):
    run, _names = role_run
    result = run(images_source="official", images_components=["traefik", "mariadb", "grafana"])
    assert result.changed() == 0
    assert images_of(result) == {
        "traefik": "traefik:v3.7.15",
        "mariadb": "mariadb:10.11.11",
        "grafana": "grafana/grafana:11.6.1",
    }


def test_a_component_without_an_image_is_refused(role_run):
    run, _names = role_run
    with pytest.raises(AssertionError) as exc:
        run(images_source="kit", images_components=["redis", "opensearch"])
    assert "images_components lists opensearch, which the kit cannot build and images_official does not name." in str(
        exc.value
    )


def test_archive_mode_saves_once_and_loads_where_images_are_missing(role_run, kit, private_tmp):
    run, _names = role_run
    variables = {
        "images_source": "kit",
        "images_distribution": "archive",
        "images_components": ["redis", "grafana"],
        "images_build_dir": str(private_tmp / "kit"),
        "images_archive_controller_dir": str(private_tmp / "cache"),
        "images_archive_node_dir": str(private_tmp / "node"),
    }
    redis = kit.ref("redis")
    # This one-node test host has every image already: say it lacks them (an extra var beats
    # set_fact), so that the save, fetch, copy and load all run for real.
    forced = run(**variables, __images_lacking=[redis])
    assert re.search(r"Archive \| load it\] \*+\n(?:[^\n]*\n)?changed: \[localhost\]", forced.out)
    assert list((private_tmp / "cache").glob("shopstream-kit-*.tar")), "no archive on the controller"
    assert list((private_tmp / "node").iterdir()) == [], "the node's copy of the archive was left behind"
    assert images_of(forced) == {"redis": redis, "grafana": "grafana/grafana:11.6.1"}
    again = run(**variables)
    assert again.changed() == 0, again.out[-4000:]
