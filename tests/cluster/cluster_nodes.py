"""What the tests of the Molecule `cluster` scenario share: its inventory and its node containers."""

import json
import os
import time

import pytest
from runner import docker

INVENTORY = os.environ.get("MOLECULE_INVENTORY_FILE")
needs_cluster = pytest.mark.skipif(
    not INVENTORY, reason="needs the Molecule cluster: run `molecule test -s cluster` (its side_effect step runs this)"
)
PROBE_IMAGE = "shopstream/probe:1"


def node_exec(node, *cmd, check=True):
    proc = docker("exec", node, *cmd)
    if check:
        assert proc.returncode == 0, f"{node}: {' '.join(cmd)}: {proc.stderr}"
    return proc.stdout


def wait_for(what, predicate, timeout=180, explain=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (AssertionError, json.JSONDecodeError):
            pass
        time.sleep(3)
    pytest.fail(f"timed out after {timeout}s waiting until {what}" + (f"\n{explain()}" if explain else ""))


def import_probe_image(*nodes):
    """No registry: the probe image is the node's own `sleep` and what it links, imported."""
    for node in nodes:
        node_exec(
            node,
            "sh",
            "-c",
            "tar -C / -chf - usr/bin/sleep lib/x86_64-linux-gnu/libc.so.6 "
            f"lib64/ld-linux-x86-64.so.2 | docker import - {PROBE_IMAGE}",
        )
