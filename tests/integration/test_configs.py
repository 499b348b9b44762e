"""The configs role's tool checks, run where they run in a deployment: inside the image of the
component that reads each config (nginx -t in the frontend's, promtool in Prometheus', amtool in
Alertmanager's, Traefik's own loader in Traefik's), on the platform deployed here. This host has
none of those tools (.ci/run installs none), so a pass proves the images did the checking.

tests/configs/render.yml renders and validates only: nothing is created.
"""

import json

import pytest
from runner import docker, playbook

from ansible_collections.shopstream.swarm.plugins.module_utils._config_check import shown

RENDER = ("tests/configs/render.yml", "-i", "localhost,")
TOOLS = {
    "traefik": ("traefik", "traefik", True),
    "nginx": ("frontend", "nginx", False),
    "prometheus": ("prometheus", "promtool", True),
    "prometheus_rules": ("prometheus", "promtool", True),
    "alertmanager": ("alertmanager", "amtool", True),
}


def render(extra_vars, *args):
    return playbook(*RENDER, "-e", json.dumps(extra_vars), *args)


def leftovers():
    return docker("ps", "-aq", "--filter", "label=shopstream.swarm.config-check").stdout.split()


def test_the_defaults_pass_every_tool_in_the_image_of_the_services_that_read_them(platform_images):
    """No image is given: each config is checked in the image of the services that use it (a rotation)."""
    for extra in (
        {},
        {
            "configs_traefik_tls": True,
            "configs_promtail_discovery": "docker",
            "configs_prometheus_engine_targets": ["10.0.0.1:9323", "10.0.0.2:9323"],
            "configs_services_overrides": {"gateway": {"port": 9000, "metrics_path": "/actuator/prometheus"}},
        },
    ):
        run = render(extra)
        assert run.rc == 0, run.out
        for key, (component, tool, syntax) in TOOLS.items():
            tools = ("syntax, " if syntax else "") + f"{tool} in {shown(platform_images[component])}"
            assert f'"{key}: checked ({tools})"' in run.out, run.out
        assert "NOT checked" not in run.out
    assert '"traefik_tls: checked (syntax)"' in run.out, run.out
    assert leftovers() == []


def test_invalid_configs_are_refused_in_check_mode_naming_each_config_and_its_tool():
    run = render(
        {
            "configs_nginx_extra_directives": "proxy_pas http://example.com;",
            "configs_prometheus_extra_scrape_configs": [{"job_name": "broken", "scrape_interval": "banana"}],
            "configs_traefik_extra": {"providers": {"swarm": {"exposedByDefualt": True}}},
            "configs_alertmanager_receivers": [{"name": "null", "webhook_configs": [{"urlx": "http://a"}]}],
        },
        "--check",
    )
    assert run.rc != 0, run.out
    assert "4 invalid config(s), nothing was created" in run.out, run.out
    for fragment in (
        "[nginx] shopstream_nginx (/etc/nginx/conf.d/default.conf), nginx: ",
        'unknown directive \\"proxy_pas\\" in /etc/nginx/conf.d/default.conf',
        "[prometheus] shopstream_prometheus (/etc/prometheus/prometheus.yml), promtool:",
        'not a valid duration string: \\"banana\\"',
        "[traefik] shopstream_traefik (/etc/traefik/traefik.yml), traefik: command healthcheck error: "
        "field not found, node: exposedByDefualt",
        "[alertmanager] shopstream_alertmanager (/etc/alertmanager/alertmanager.yml), amtool:",
        "field urlx not found",
    ):
        assert fragment in run.out, run.out
    assert "Publish |" not in run.out
    assert leftovers() == []


def test_with_no_image_known_required_fails_naming_the_fix_and_auto_says_what_it_skipped():
    """A prefix no service uses, and no images step: nothing to check the tools' configs with."""
    required = render({"configs_name_prefix": "itest_"})
    assert required.rc != 0
    message = " ".join(required.out.split())
    assert "5 invalid config(s), nothing was created" in message, required.out
    assert (
        "[nginx] itest_nginx (/etc/nginx/conf.d/default.conf), nginx: no image of frontend to run nginx in: none "
        "was built or pulled in this run and no service uses itest_nginx; run the images step first (site.yml "
        "does), or set configs_validate_images.frontend, or configs_validate: auto to skip the check"
    ) in message, required.out

    auto = render({"configs_name_prefix": "itest_", "configs_validate": "auto"})
    assert auto.rc == 0, auto.out
    assert '"nginx: NOT checked with nginx: no image of frontend to run nginx in:' in auto.out, auto.out
    assert '"loki: checked (syntax)"' in auto.out


TRAEFIK_OK = "entryPoints:\n  web:\n    address: ':80'\nping: {}\nproviders:\n  swarm:\n    exposedByDefault: false\n"
PROMETHEUS_OK = "scrape_configs:\n  - job_name: p\n    static_configs: [{targets: ['localhost:9090']}]\n"
RULES_OK = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n"
# (key, check, component, target, good, bad, the tool's words for the bad one)
CASES = [
    (
        "nginx", "nginx", "frontend", "/etc/nginx/conf.d/default.conf",
        "server { listen 80; root /usr/share/nginx/html; location / { try_files $uri /index.html; } }\n",
        "server { listen 80; proxy_pass; }\n",
        '"proxy_pass" directive is not allowed here',
    ),
    (
        "prometheus", "promtool_config", "prometheus", "/etc/prometheus/prometheus.yml",
        PROMETHEUS_OK, PROMETHEUS_OK + "    scrape_timeout: soon\n", 'not a valid duration string: "soon"',
    ),
    (
        "prometheus_rules", "promtool_rules", "prometheus", "/etc/prometheus/rules/shopstream.yml",
        RULES_OK, RULES_OK.replace("up == 0", "up ==="), "could not parse expression",
    ),
    (
        "alertmanager", "amtool", "alertmanager", "/etc/alertmanager/alertmanager.yml",
        "route: {receiver: 'null'}\nreceivers: [{name: 'null'}]\n",
        "route: {receiver: pager}\nreceivers: [{name: 'null'}]\n",
        'undefined receiver "pager"',
    ),
    (
        "traefik", "traefik", "traefik", "/etc/traefik/traefik.yml",
        TRAEFIK_OK, TRAEFIK_OK.replace("exposedByDefault: false", "exposedByDefault: perhaps"), "ParseBool",
    ),
    (
        "traefik_v2", "traefik", "traefik", "/etc/traefik/v2.yml",
        TRAEFIK_OK, TRAEFIK_OK.replace("  swarm:\n", "  docker:\n    swarmMode: true\n"),
        "incompatible deprecated install configuration option",
    ),
]  # fmt: skip


def module_args(images, content):
    configs = [
        {"key": key, "name": f"itest_{key}", "check": check, "target": target, "image": component}
        for key, check, component, target, *_rest in CASES
    ]
    return {"configs": configs, "files": {c[3]: content(c) for c in CASES}, "images": images}


def test_each_tool_accepts_the_good_and_refuses_the_bad_in_its_image(module_run, platform_images):
    good = module_run("shopstream.swarm.config_check", module_args(platform_images, lambda c: c[4]))
    assert good.get("failed") is not True, good
    assert good["errors"] == [] and good["not_checked"] == []
    assert sorted(c["key"] for c in good["checked"]) == sorted(c[0] for c in CASES)

    bad = module_run("shopstream.swarm.config_check", module_args(platform_images, lambda c: c[5]))
    assert bad["checked"] == [], bad
    errors = {e["key"]: e for e in bad["errors"]}
    for key, _check, _component, target, _good, _bad, words in CASES:
        assert words in errors[key]["message"], errors[key]
        assert (errors[key]["name"], errors[key]["target"]) == (f"itest_{key}", target)
    assert bad["changed"] is False
    assert leftovers() == []


@pytest.mark.parametrize("check", [True, False], ids=["check-mode", "real"])
def test_an_image_that_cannot_be_had_is_reported_and_pulled_only_for_real(module_run, check):
    absent = {"frontend": "127.0.0.1:5000/shopstream/absent:none"}
    args = {
        "configs": [
            {"key": "nginx", "name": "itest_nginx", "check": "nginx", "target": "/n.conf", "image": "frontend"}
        ],
        "files": {"/n.conf": "server {}\n"},
        "images": absent,
    }
    result = module_run("shopstream.swarm.config_check", args, check=check)
    if check:
        assert result["errors"] == [], result
        reason = result["not_checked"][0]["reason"]
        assert reason == "127.0.0.1:5000/shopstream/absent:none is not on this host yet, and check mode pulls nothing"
    else:
        assert result["not_checked"] == [], result
        message = result["errors"][0]["message"]
        assert message.startswith("cannot create a container of 127.0.0.1:5000/shopstream/absent:none:"), message
