"""Fixtures for the kit's image tests, against this host's Docker engine.

`kit_ref(name)` builds an image of images/ with its parents (reusing every image whose
content tag exists) and returns its reference. `containers` starts containers and volumes
named `kittest-*` and removes them after each test. The session's builds are printed at the
end of the run (image, built or unchanged, seconds, size).
"""

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils._image_kit import Kit, KitError, format_table

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGES_DIR = os.path.join(REPO_ROOT, "images")
PREFIX = "kittest-"
_BUILDS = []


def _docker(*args, check=True, timeout=120, **kwargs):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout, **kwargs)


def _engine_problem():
    if not shutil.which("docker"):
        return "the docker CLI is not installed"
    try:
        if _docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20).returncode != 0:
            return "the Docker engine does not answer (docker info fails)"
    except subprocess.TimeoutExpired:
        return "the Docker engine does not answer within 20 s"
    if os.geteuid() != 0:
        return "the kit's base image is made by debootstrap, which needs root"
    if not shutil.which("debootstrap"):
        return "debootstrap is not installed (apt-get install -y debootstrap)"
    return None


@pytest.fixture(scope="session")
def kit():
    problem = _engine_problem()
    if problem:
        pytest.skip(f"image tests need this host's Docker engine and debootstrap as root: {problem}")
    return Kit(IMAGES_DIR, log=lambda message: print(message, flush=True))


@pytest.fixture(scope="session")
def kit_ref(kit):
    """Build (or reuse) an image and its parents; return its reference."""

    def build(name):
        for step in kit.order([name]):
            if any(r["name"] == step for r in _BUILDS):
                continue
            try:
                _BUILDS.append(kit.build(step))
            except KitError as exc:
                pytest.fail(f"building the kit image {step!r} failed: {exc}")
        return kit.ref(name)

    return build


def pytest_terminal_summary(terminalreporter):
    if _BUILDS:
        terminalreporter.section("image kit builds")
        terminalreporter.write_line(format_table(_BUILDS))


class Containers:
    """Containers and volumes of one test, all named kittest-*, removed afterwards."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.names = []
        self.volumes = []

    def volume(self):
        name = f"{PREFIX}{uuid.uuid4().hex[:10]}"
        _docker("volume", "create", name)
        self.volumes.append(name)
        return name

    def secrets(self, **files):
        """A directory of secret files, readable by any container user (as swarm secrets are)."""
        directory = self.tmp_path / f"secrets-{uuid.uuid4().hex[:6]}"
        directory.mkdir()
        directory.chmod(0o755)
        for name, content in files.items():
            path = directory / name
            path.write_text(content)
            path.chmod(0o444)
        return str(directory)

    def run(self, image, *command, env=None, mounts=(), user=None, name=None, flags=()):
        """Start a detached container; mounts are (source, target[, "ro"]) with a volume name or a path,
        flags further `docker run` options."""
        name = name or f"{PREFIX}{uuid.uuid4().hex[:10]}"
        argv = ["run", "-d", "--name", name, *flags]
        for key, value in (env or {}).items():
            argv += ["-e", f"{key}={value}"]
        for mount in mounts:
            argv += ["-v", ":".join(mount)]
        if user:
            argv += ["--user", user]
        self.names.append(name)
        _docker(*argv, image, *command)
        return name

    def inspect(self, name):
        return json.loads(_docker("inspect", name).stdout)[0]

    def ip(self, name):
        networks = self.inspect(name)["NetworkSettings"]["Networks"]
        return next(iter(networks.values()))["IPAddress"]

    def top(self, name, *ps_args):
        return _docker("top", name, *ps_args).stdout

    def logs(self, name):
        result = _docker("logs", name, check=False)
        return result.stdout + result.stderr

    def wait_healthy(self, name, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.inspect(name)["State"]
            if not state["Running"]:
                pytest.fail(f"{name} exited with {state['ExitCode']} before it was healthy:\n{self.logs(name)[-3000:]}")
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                return time.monotonic() - (deadline - timeout)
            time.sleep(1)
        pytest.fail(f"{name} did not become healthy within {timeout} s:\n{self.logs(name)[-3000:]}")

    def wait_exit(self, name, timeout=60):
        """The container's exit code once it stops by itself; fails when it is still running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.inspect(name)["State"]
            if not state["Running"] and state["Status"] in ("exited", "dead"):
                return state["ExitCode"]
            time.sleep(0.5)
        pytest.fail(f"{name} still runs after {timeout} s")

    def exec(self, name, *command, user=None, env=None, check=True):
        argv = ["exec"]
        if user:
            argv += ["--user", user]
        for key, value in (env or {}).items():
            argv += ["-e", f"{key}={value}"]
        return _docker(*argv, name, *command, check=check)

    def restart(self, name):
        _docker("restart", name, timeout=180)

    def sigterm(self, name, grace=10):
        """Send SIGTERM, wait up to `grace` seconds; return (exit code, seconds)."""
        start = time.monotonic()
        _docker("kill", "--signal", "TERM", name)
        deadline = start + grace
        while time.monotonic() < deadline:
            state = self.inspect(name)["State"]
            if not state["Running"]:
                return state["ExitCode"], time.monotonic() - start
            time.sleep(0.2)
        return None, time.monotonic() - start

    def cleanup(self):
        for name in self.names:
            _docker("rm", "-f", "-v", name, check=False)
        for volume in self.volumes:
            _docker("volume", "rm", "-f", volume, check=False)


@pytest.fixture
def private_tmp():
    """A temporary directory of our own: pytest prunes its numbered tmp_path directories when
    other pytest runs start on this host, which pulled files from under running containers."""
    path = tempfile.mkdtemp(prefix=PREFIX)
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def containers(private_tmp):
    box = Containers(private_tmp)
    yield box
    box.cleanup()
