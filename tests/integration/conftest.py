"""Fixtures for tests that run the collection's playbooks against this host."""

import json
import sys

import pytest


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
