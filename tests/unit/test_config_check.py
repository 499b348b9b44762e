"""config_check's logic without an engine: the tar it copies, the tools' verdicts, which image each
config is checked in, and what is an error, a pass or a skip. The checks in the real images run
in tests/integration/test_configs.py."""

import io
import json
import tarfile

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils._config_check import (
    ImageAbsent,
    Runner,
    archive,
    argv,
    check_all,
    shown,
    users_image,
    verdict,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import DockerClient, filters_param
from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import LOGICAL_LABEL

NGINX = {"key": "nginx", "name": "shopstream_nginx", "check": "nginx", "target": "/etc/nginx/conf.d/default.conf"}
NGINX["image"] = "frontend"
RULES = {"key": "prometheus_rules", "name": "shopstream_prometheus_rules", "check": "promtool_rules"}
RULES.update(target="/etc/prometheus/rules/shopstream.yml", image="prometheus")
FILES = {NGINX["target"]: "server {}\n", RULES["target"]: "groups: []\n"}


class FakeRunner:
    """Answers per image: (rc, output), or an exception to raise."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def run(self, image, command, tar):
        self.calls.append((image, command, tar))
        answer = self.answers[image]
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_tar_holds_each_file_at_its_container_path_and_no_directories():
    with tarfile.open(fileobj=io.BytesIO(archive(FILES))) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["etc/nginx/conf.d/default.conf", "etc/prometheus/rules/shopstream.yml"]
        assert all(m.isfile() and m.mode == 0o644 and m.uid == 0 for m in members)
        assert tar.extractfile(members[0]).read() == b"server {}\n"


def test_each_tool_reads_the_config_where_the_service_will():
    assert argv("nginx", NGINX["target"]) == ["nginx", "-t"]
    assert argv("promtool_config", "/etc/prometheus/prometheus.yml") == [
        "promtool", "check", "config", "/etc/prometheus/prometheus.yml",
    ]  # fmt: skip
    assert argv("amtool", "/a.yml") == ["amtool", "check-config", "/a.yml"]
    assert argv("traefik", "/etc/traefik/traefik.yml") == [
        "traefik",
        "healthcheck",
        "--configFile=/etc/traefik/traefik.yml",
    ]


@pytest.mark.parametrize(
    ("check", "rc", "output", "expected"),
    [
        ("nginx", 0, "nginx: configuration file /etc/nginx/nginx.conf test is successful", None),
        ("nginx", 1, 'unknown directive "proxy_pas"\n', 'unknown directive "proxy_pas"'),
        ("amtool", 1, "", "exit status 1"),
        # Traefik read its configuration, then found /ping unreachable or not enabled: accepted.
        ("traefik", 1, 'Error calling healthcheck: Head "http://:8080/ping": connection refused', None),
        ("traefik", 1, "please enable `ping` to use health check", None),
        (
            "traefik",
            1,
            '{"level":"error","error":"field not found, node: exposedByDefualt"}\nplain line',
            "field not found, node: exposedByDefualt; plain line",
        ),
    ],
)
def test_verdicts(check, rc, output, expected):
    assert verdict(check, rc, output) == expected


def test_messages_show_the_image_without_its_digest():
    assert shown("r:5000/shopstream/frontend:1@sha256:" + "a" * 64) == "r:5000/shopstream/frontend:1"


def test_the_given_image_is_used_and_every_config_is_in_every_container():
    runner = FakeRunner({"fe:1": (0, "ok"), "prom:2": (1, "could not parse expression")})
    result = check_all([NGINX, RULES], FILES, {"frontend": "fe:1", "prometheus": "prom:2"}, runner)
    assert result["checked"] == [{"key": "nginx", "tool": "nginx", "image": "fe:1"}]
    assert result["errors"] == [
        {
            "key": "prometheus_rules",
            "name": "shopstream_prometheus_rules",
            "target": "/etc/prometheus/rules/shopstream.yml",
            "tool": "promtool",
            "message": "could not parse expression",
        }
    ]
    assert {call[2] for call in runner.calls} == {archive(FILES)}


def test_an_unknown_image_is_an_error_when_required_and_reported_otherwise():
    required = check_all([NGINX], FILES, {}, FakeRunner({}))
    assert required["checked"] == [] and len(required["errors"]) == 1
    message = required["errors"][0]["message"]
    assert "no image of frontend to run nginx in" in message
    assert "configs_validate_images.frontend" in message and "configs_validate: auto" in message
    auto = check_all([NGINX], FILES, {}, FakeRunner({}), required=False)
    assert auto["errors"] == [] and auto["not_checked"][0]["key"] == "nginx"


def test_an_image_absent_in_check_mode_is_reported_and_an_engine_failure_is_an_error():
    runner = FakeRunner(
        {"fe:1": ImageAbsent("fe:1 is not on this host yet"), "prom:2": RuntimeError("cannot create a container")}
    )
    result = check_all([NGINX, RULES], FILES, {"frontend": "fe:1", "prometheus": "prom:2"}, runner)
    assert result["not_checked"] == [{"key": "nginx", "tool": "nginx", "reason": "fe:1 is not on this host yet"}]
    assert [(e["key"], e["message"]) for e in result["errors"]] == [("prometheus_rules", "cannot create a container")]


def test_without_a_given_image_the_services_using_the_config_name_it(engine):
    query = "/configs?" + filters_param(label=[f"{LOGICAL_LABEL}=shopstream_nginx"])
    engine.routes[("GET", query)] = (200, [{"ID": "c1", "CreatedAt": "2026-01-01T00:00:00Z", "Spec": {}}])
    users = [
        {"Spec": {"Name": name, "TaskTemplate": {"ContainerSpec": {"Image": image, "Configs": configs}}}}
        for name, image, configs in [
            ("other", "other:1", []),
            ("b_frontend", "fe:2", [{"ConfigID": "c1"}]),
            ("a_frontend", "fe:1", [{"ConfigID": "c1"}]),
        ]
    ]
    engine.routes[("GET", "/services")] = (200, users)
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    assert users_image(client, "shopstream_nginx") == "fe:1"
    runner = FakeRunner({"fe:1": (0, "")})
    assert check_all([NGINX], FILES, {}, runner, client=client)["checked"][0]["image"] == "fe:1"
    # A config no service uses (a new prefix, a first deploy): no image.
    engine.routes[("GET", query)] = (200, [])
    assert users_image(client, "shopstream_nginx") is None


FAKE_DOCKER = r"""#!/usr/bin/env python3
import json, os, sys
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
command = sys.argv[1]
if command == "create":
    sys.stderr.write("missing: Pulling from shopstream/frontend\nStatus: Downloaded newer image for r/fe:1\n")
    print("c0ffee")
elif command == "cp":
    with open(os.environ["FAKE_LOG"] + ".tar", "wb") as tar:
        tar.write(sys.stdin.buffer.read())
elif command == "start":
    sys.stderr.write('nginx: [emerg] unknown directive "proxy_pas"\n')
    sys.exit(1)
"""


def test_the_runner_creates_copies_starts_and_removes_whatever_a_pull_prints(tmp_path, monkeypatch):
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    log = tmp_path / "calls"
    monkeypatch.setenv("FAKE_LOG", str(log))
    rc, out = Runner(str(docker), timeout=10).run("r/fe:1", ["nginx", "-t"], archive(FILES))
    assert (rc, out.strip()) == (1, 'nginx: [emerg] unknown directive "proxy_pas"')
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls[0][:5] == ["create", "--pull", "missing", "--network", "none"]
    assert calls[0][-3:] == ["nginx", "r/fe:1", "-t"]
    assert calls[1:] == [["cp", "-", "c0ffee:/"], ["start", "--attach", "c0ffee"], ["rm", "--force", "c0ffee"]]
    assert (tmp_path / "calls.tar").read_bytes() == archive(FILES)


def test_a_config_whose_version_exists_is_not_checked_again(engine):
    from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import versioned_name

    query = "/configs?" + filters_param(label=[f"{LOGICAL_LABEL}=shopstream_nginx"])
    made = versioned_name("shopstream_nginx", FILES[NGINX["target"]].encode(), "k")
    engine.routes[("GET", query)] = (200, [{"ID": "c1", "CreatedAt": "x", "Spec": {"Name": made}}])
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    runner = FakeRunner({"fe:1": (1, "would fail")})
    kept = check_all([NGINX], FILES, {"frontend": "fe:1"}, runner, client=client, hash_key="k", skip_existing=True)
    assert kept["unchanged"] == [{"key": "nginx", "tool": "nginx"}] and runner.calls == []
    # Another key names other content: checked.
    other = check_all([NGINX], FILES, {"frontend": "fe:1"}, runner, client=client, hash_key="j", skip_existing=True)
    assert other["errors"][0]["message"] == "would fail"
