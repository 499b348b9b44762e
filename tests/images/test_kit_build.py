"""The kit's build: a second build with unchanged inputs builds nothing, and says so per image."""

import os
import subprocess
import sys
import time

from ansible_collections.shopstream.swarm.plugins.module_utils._image_kit import Kit

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGES_DIR = os.path.join(REPO_ROOT, "images")

# ShopStream's own images are tested with the services; the infrastructure images are ours.
OURS = [
    "base",
    "python",
    "nginx",
    "mariadb",
    "redis",
    "rabbitmq",
    "prometheus",
    "alertmanager",
    "node-exporter",
    "registry",
    "traefik",
    "socket-proxy",
]


def test_a_second_build_with_unchanged_inputs_builds_nothing(kit_ref):
    for name in OURS:
        kit_ref(name)  # the first build (or a reuse of an earlier one)
    start = time.monotonic()
    results = Kit(IMAGES_DIR).build_all(OURS)  # a new Kit hashes every input again
    assert [r["name"] for r in results if r["changed"]] == []
    assert time.monotonic() - start < 30


def test_the_build_prints_each_images_time_and_size(kit_ref):
    for name in OURS:
        kit_ref(name)
    cli = os.path.join(REPO_ROOT, "plugins", "module_utils", "_image_kit.py")
    out = subprocess.run([sys.executable, cli, *OURS], capture_output=True, text=True, check=True, timeout=120).stdout
    lines = out.splitlines()
    assert lines[0].split() == ["image", "result", "seconds", "size", "reference"]
    for name in OURS:
        row = next(line for line in lines if line.split()[0] == name).split()
        assert row[1:3] == ["unchanged", "0.0"] and row[4] == "MB" and row[5].startswith(f"shopstream/{name}:")
    assert lines[-1].split()[:3] == ["total", "0", "built"]
