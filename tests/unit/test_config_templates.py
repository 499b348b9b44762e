"""The configs role's templates and its syntax checker, without an engine.

- the role through `ansible-playbook -i localhost, tests/configs/render.yml` with
  `configs_validate: skip` (render, then syntax and structure only; no swarm, nothing created):
  the defaults pass, and bad settings are refused before rendering;
- the syntax checker (the config_syntax action plugin's checks) on small hand-written configs.

The tools (nginx, promtool, amtool, Traefik) run inside the platform's images:
tests/integration/test_configs.py checks them there.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.shopstream.swarm.plugins.action import config_syntax

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "configs"
PLAYBOOK = REPO / "tests" / "configs" / "render.yml"
BIN = Path(sys.executable).parent

KEYS = [
    "traefik",
    "nginx",
    "prometheus",
    "prometheus_rules",
    "alertmanager",
    "grafana_datasources",
    "grafana_dashboards_provider",
    "grafana_dashboard_shopstream",
    "loki",
    "promtail",
]


def play(extra_vars, *args):
    """Run the render-and-validate playbook; return (rc, output)."""
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
    )
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(PLAYBOOK), "-e", json.dumps(extra_vars), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=300,
        check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


# The role, end to end.


def test_defaults_render_and_pass_the_syntax_checks():
    rc, out = play({"configs_validate": "skip"})
    assert rc == 0, out
    tool = {"traefik": "traefik", "nginx": "nginx", "prometheus": "promtool", "prometheus_rules": "promtool"}
    tool["alertmanager"] = "amtool"
    for key in KEYS:
        if key in tool:
            assert f'"{key}: NOT checked with {tool[key]}: configs_validate is skip"' in out, out
        else:
            assert f'"{key}: checked (syntax)"' in out, out
    assert "changed=0" in out


def test_a_syntax_error_is_refused_naming_the_config():
    rc, out = play({"configs_validate": "skip", "configs_traefik_extra": {"entrypoint": {}}}, "--check")
    assert rc != 0, out
    assert "1 invalid config(s), nothing was created" in out, out
    assert "[traefik] shopstream_traefik (/etc/traefik/traefik.yml), syntax: unknown root keys ['entrypoint']" in out, (
        out
    )


def test_unknown_receiver_is_refused_before_rendering():
    rc, out = play({"configs_validate": "skip", "configs_alertmanager_receiver": "pager"})
    assert rc != 0, out
    assert "configs_alertmanager_receiver 'pager' is not the name of any entry" in out, out
    assert "Render |" not in out


# The checker, one tool at a time, on small configs.


def check(key, check_kind, target, content, mode="required"):
    spec = {
        "mode": mode,
        "prefix": "shopstream_",
        "configs": [{"key": key, "check": check_kind, "target": target, "image": "component"}],
        "contents": {key: content},
    }
    return config_syntax.validate(spec)


TRAEFIK_OK = "entryPoints:\n  web:\n    address: ':80'\nping: {}\nproviders:\n  swarm:\n    exposedByDefault: false\n"
PROMETHEUS_OK = "scrape_configs:\n  - job_name: p\n    static_configs: [{targets: ['localhost:9090']}]\n"

CASES = [
    pytest.param(
        "traefik",
        "traefik",
        "/etc/traefik/traefik.yml",
        TRAEFIK_OK,
        TRAEFIK_OK + "entrypoint: {}\n",
        "unknown root keys ['entrypoint']",
        id="traefik-root-key",
    ),
    pytest.param(
        "traefik",
        "traefik",
        "/etc/traefik/traefik.yml",
        TRAEFIK_OK,
        TRAEFIK_OK.replace("':80'", "web"),
        "entryPoints.web.address 'web' is not [host]:port",
        id="traefik-address",
    ),
    pytest.param(
        "grafana_datasources",
        "yaml",
        "/etc/grafana/provisioning/datasources/shopstream.yml",
        "apiVersion: 1\ndatasources: [{name: P, type: prometheus, url: 'http://p:9090'}]\n",
        "apiVersion: 1\ndatasources: [{name: P, type: prometheus}]\n",
        "datasource 'P' lacks ['url']",
        id="grafana",
    ),
    pytest.param(
        "grafana_dashboard_shopstream",
        "json",
        "/etc/grafana/dashboards/shopstream.json",
        '{"uid": "u", "title": "t", "panels": []}',
        '{"uid": "u", "title": "t", "panels": [}',
        "not valid JSON",
        id="dashboard",
    ),
    pytest.param(
        "loki",
        "yaml",
        "/etc/loki/local-config.yaml",
        "schema_config: {configs: [{store: tsdb}]}\n",
        "schema_config: {configs: [{store: tsdb}]\n",
        "not valid YAML",
        id="loki",
    ),
]


@pytest.mark.parametrize(("key", "kind", "target", "good", "bad", "message"), CASES)
def test_checker_accepts_the_good_and_refuses_the_bad_naming_the_config(key, kind, target, good, bad, message):
    result = check(key, kind, target, good)
    assert result["errors"] == [], result
    assert [c["key"] for c in result["checked"] + result["tool_checks"]] == [key]
    result = check(key, kind, target, bad)
    assert len(result["errors"]) == 1, result
    error = result["errors"][0]
    assert (error["key"], error["name"], error["target"], error["tool"]) == (key, "shopstream_" + key, target, "syntax")
    assert message in error["message"], error
    assert result["tool_checks"] == []


def test_checker_hands_each_tools_config_to_the_image_check_with_its_component():
    result = check("prometheus", "promtool_config", "/etc/prometheus/prometheus.yml", PROMETHEUS_OK)
    assert result["tool_checks"] == [
        {
            "key": "prometheus",
            "name": "shopstream_prometheus",
            "check": "promtool_config",
            "target": "/etc/prometheus/prometheus.yml",
            "image": "component",
        }
    ]
    assert result["syntax_checked"] == ["prometheus"] and result["checked"] == []


def test_checker_skip_mode_checks_syntax_only_and_says_so():
    result = check("nginx", "nginx", "/etc/nginx/conf.d/default.conf", "not nginx at all", mode="skip")
    assert result["errors"] == [] and result["tool_checks"] == []
    assert result["skipped"] == [{"key": "nginx", "tool": "nginx", "reason": "configs_validate is skip"}]
