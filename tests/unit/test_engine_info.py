"""engine_info: one read of the packages, daemon.json and the daemon, run as Ansible runs it."""

import json
import os
import shutil
import subprocess
import sys

import pytest

# What dpkg-query -W -f '${Package}\t${Version}\t${db:Status-Want}\t${db:Status-Status}\n' prints
# for the names it knows (rc 1 when a name matches nothing).
DPKG = {
    "docker.io": "docker.io\t20.10.24+dfsg1-1+deb12u1\thold\tinstalled",
    "python3-docker": "python3-docker\t5.0.3-1\tinstall\tinstalled",
    "python3-yaml": "python3-yaml\t\tdeinstall\tconfig-files",
}


@pytest.fixture
def host(tmp_path):
    """A PATH with a dpkg-query that answers from DPKG, and a directory for the config."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dpkg-query"
    lines = "\n".join(f"  {name}) printf '%s\\n' '{line}' ;;" for name, line in DPKG.items())
    fake.write_text(
        "#!/bin/sh\nshift 3\nrc=0\nfor p; do case $p in\n" + lines + "\n  *) rc=1 ;;\nesac; done\nexit $rc\n"
    )
    fake.chmod(0o755)
    return tmp_path


def run(host, args):
    args_file = host / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PATH=f"{host / 'bin'}:{os.environ['PATH']}", PYTHONPATH=os.pathsep.join(sys.path))
    done = subprocess.run(
        [sys.executable, "-m", "ansible_collections.shopstream.swarm.plugins.modules.engine_info", str(args_file)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    return json.loads(done.stdout)


def test_packages_missing_when_absent_removed_or_of_another_version(host):
    specs = ["docker.io=20.10.24+dfsg1-1+deb12u1", "python3-docker=9.9", "python3-yaml", "containerd"]
    result = run(host, {"packages": specs, "config_path": str(host / "etc/docker/daemon.json")})
    assert result["changed"] is False
    assert result["missing"] == ["python3-docker=9.9", "python3-yaml", "containerd"]
    assert result["packages"]["docker.io"] == {"installed": True, "version": "20.10.24+dfsg1-1+deb12u1", "held": True}
    assert result["packages"]["python3-yaml"] == {"installed": False, "version": None, "held": False}
    assert result["packages"]["containerd"]["installed"] is False


def test_every_package_as_asked_is_nothing_missing(host):
    specs = ["docker.io=20.10.*", "python3-docker=5.0.3-1"]
    assert run(host, {"packages": specs, "config_path": str(host / "x.json")})["missing"] == []
    assert run(host, {"packages": ["docker.io=23.*"], "config_path": str(host / "x.json")})["missing"] == [
        "docker.io=23.*"
    ]


def test_the_config_file_and_its_directory_as_they_are(host):
    config = host / "etc/docker/daemon.json"
    result = run(host, {"config_path": str(config)})
    assert result["config"]["exists"] is False and result["config"]["content"] is None
    assert result["config"]["dir"]["exists"] is False
    config.parent.mkdir(parents=True)
    config.parent.chmod(0o750)
    config.write_text('{\n  "log-driver": "json-file"\n}\n')
    config.chmod(0o600)
    result = run(host, {"config_path": str(config)})
    assert result["config"]["content"] == '{\n  "log-driver": "json-file"\n}\n'
    assert (result["config"]["mode"], result["config"]["dir"]["mode"]) == ("0600", "0750")
    assert result["config"]["owner"] == result["config"]["dir"]["owner"] and result["config"]["owner"]


def test_a_pid_file_runs_only_when_its_process_is_dockerd(host):
    pidfile = host / "docker.pid"
    args = {"config_path": str(host / "x.json"), "pidfile": str(pidfile)}
    assert "direct" not in run(host, {"config_path": str(host / "x.json")})
    assert run(host, args)["direct"] == {"pidfile": str(pidfile), "pid": None, "running": False}
    pidfile.write_text(f"{os.getpid()}\n")  # alive, but pytest, not dockerd
    assert run(host, args)["direct"]["running"] is False
    dockerd = host / "bin/dockerd"  # a process whose name is dockerd
    shutil.copy(shutil.which("sleep"), dockerd)
    with subprocess.Popen([str(dockerd), "30"]) as proc:
        try:
            pidfile.write_text(f"{proc.pid}\n")
            assert run(host, args)["direct"] == {"pidfile": str(pidfile), "pid": proc.pid, "running": True}
        finally:
            proc.kill()
