"""meta/runtime.yml: the action group holds exactly the modules that take docker_host."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_the_action_group_is_every_module_that_takes_docker_host():
    group = yaml.safe_load((ROOT / "meta/runtime.yml").read_text())["action_groups"]["swarm"]
    takes_docker_host = sorted(
        path.stem
        for path in (ROOT / "plugins/modules").glob("*.py")
        if "shopstream.swarm.engine_api" in path.read_text() or "docker_host=dict(" in path.read_text()
    )
    assert sorted(group) == takes_docker_host
