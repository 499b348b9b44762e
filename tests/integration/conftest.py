"""Fixtures for tests that run the collection's playbooks against this host."""

import json
import sys

import pytest
from runner import LOCAL, docker


@pytest.fixture
def inventory(tmp_path):
    """Write an inventory of local-connection hosts and return its path."""

    def write(managers=(), workers=(), host_vars=None, group_vars=None):
        def hosts(names):
            return {
                n: dict(
                    {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                    **(host_vars or {}).get(n, {}),
                )
                for n in names
            }

        inv = {
            "swarm": {
                "vars": {
                    "shopstream_endpoint_mode": "auto",
                    "shopstream_publish_mode": "auto",
                    "shopstream_overlay_encrypted": "auto",
                    **(group_vars or {}),
                },
                "children": {
                    "swarm_managers": {"hosts": hosts(managers)},
                    "swarm_workers": {"hosts": hosts(workers)},
                },
            }
        }
        path = tmp_path / "hosts.yml"
        path.write_text(json.dumps(inv))
        return path

    return write


@pytest.fixture
def module_run(tmp_path):
    """Run one module task on this host through ansible-playbook; return its result."""
    from runner import playbook

    def run(module, args, check=False, verbosity=""):
        book = tmp_path / "task.yml"
        task = {"name": "module under test", module: args, "register": "result"}
        book.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
        flags = ["--check"] if check else []
        run = playbook(
            str(book),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            *flags,
            *([verbosity] if verbosity else []),
            env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"},
        )
        start = run.out.index("{")
        report = json.JSONDecoder().raw_decode(run.out[start:])[0]
        result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
        return result

    return run


@pytest.fixture(scope="session")
def probe_image():
    """A tiny image made from the host's static busybox (no registry here): sh, cat, sleep."""
    import hashlib
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    busybox = shutil.which("busybox")
    if not busybox:
        pytest.fail("busybox is needed for the probe image: apt-get install busybox-static")
    tag = "shopstream-test/busybox:" + hashlib.sha256(Path(busybox).read_bytes()).hexdigest()[:12]
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode != 0:
        with tempfile.TemporaryDirectory() as root:
            Path(root, "bin").mkdir()
            shutil.copy(busybox, Path(root, "bin", "busybox"))
            for applet in ("sh", "cat", "sleep", "ls"):
                Path(root, "bin", applet).symlink_to("busybox")
            tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
            subprocess.run(["docker", "import", "-", tag], stdin=tar.stdout, check=True, capture_output=True)
            tar.wait()
    return tag


@pytest.fixture(scope="session")
def platform_images():
    """Component -> image of the deployed platform's services whose configs have a tool check."""
    from runner import docker

    services = {
        "traefik": "shopstream-edge_traefik",
        "frontend": "shopstream-app_frontend",
        "prometheus": "shopstream-monitoring_prometheus",
        "alertmanager": "shopstream-monitoring_alertmanager",
    }
    images = {}
    for component, service in services.items():
        found = docker("service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", service)
        assert found.returncode == 0, f"{service}: the platform is not deployed here ({found.stderr.strip()})"
        images[component] = found.stdout.strip()
    return images


@pytest.fixture(scope="module")
def deployed():
    """Skips unless the platform `make deploy` made (inventories/local) runs on this host."""
    if docker("info").returncode != 0:
        pytest.skip("the Docker engine does not answer")
    if not (LOCAL / ".vault-pass").exists():
        pytest.skip("inventories/local has no vault: run `make deploy` first")
    for service in ("shopstream-app_frontend", "shopstream-monitoring_alertmanager"):
        if docker("service", "inspect", service).returncode != 0:
            pytest.skip(f"{service} is not deployed: run `make deploy` first")
