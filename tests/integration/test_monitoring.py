"""Alertmanager sends alerts to the receivers the inventory names: a firing alert reaches a site's webhook.

Runs against the platform `make deploy` left on this host (inventories/local); skips when it is not
deployed. The test runs a webhook of its own as a swarm service on the `monitoring` overlay (in the
platform's app image, which has Python), points Alertmanager at it with rotate_configs.yml, fires an alert
through Alertmanager's API with the monitoring login, and waits for the webhook to log it. Then it puts
the inventory's receivers back and removes the webhook.
"""

import json
import subprocess
import time

import pytest
from runner import LOCAL, docker, local_vault, playbook

ROTATE = (
    "playbooks/rotate_configs.yml",
    "-i",
    "inventories/local",
    "--vault-password-file",
    str(LOCAL / ".vault-pass"),
)
ALERTMANAGER = "shopstream-monitoring_alertmanager"
WEBHOOK = "itest-alert-webhook"

# The webhook: logs each notification Alertmanager posts, one JSON line after a marker. It runs
# without the image's health check (it serves no /healthz).
RECEIVE = """
import http.server, json
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        print("WEBHOOK " + json.dumps(json.loads(body)), flush=True)
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("", 8080), Hook).serve_forever()
"""

# Fires one alert at Alertmanager's API, the monitoring password read from stdin (never an argument).
FIRE = """
import base64, datetime, json, sys, urllib.request
password = sys.stdin.read().strip()
now = datetime.datetime.now(datetime.timezone.utc)
alert = [{"labels": {"alertname": sys.argv[1], "severity": "warning", "service": "itest"},
          "annotations": {"summary": "a test alert"},
          "startsAt": now.isoformat(), "endsAt": (now + datetime.timedelta(minutes=5)).isoformat()}]
request = urllib.request.Request("http://alertmanager:9093/api/v2/alerts", data=json.dumps(alert).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
request.add_header("Authorization", "Basic " + base64.b64encode(b"prometheus:" + password.encode()).decode())
print(urllib.request.urlopen(request, timeout=10).status)
"""


def service_image(service):
    return docker(
        "service", "inspect", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", service
    ).stdout.strip()


def running_container(service, timeout=120):
    """Its running container (only a task that runs is in the network's DNS)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}").stdout.split()
        state = docker("service", "ps", service, "--filter", "desired-state=running", "--format", "{{.CurrentState}}")
        if found and state.stdout.startswith("Running"):
            return found[0]
        time.sleep(1)
    pytest.fail(f"{service} has no running container: {docker('service', 'ps', '--no-trunc', service).stdout}")


def config_of(service):
    """The alertmanager config's version the service mounts."""
    spec = json.loads(docker("service", "inspect", service).stdout)[0]["Spec"]["TaskTemplate"]["ContainerSpec"]
    return sorted(ref["ConfigName"] for ref in spec.get("Configs") or [])


def test_a_firing_alert_reaches_the_webhook_the_inventory_names(deployed):
    before = config_of(ALERTMANAGER)
    docker("service", "rm", WEBHOOK)
    created = docker(
        "service", "create", "--detach", "--name", WEBHOOK, "--network", "monitoring", "--endpoint-mode", "dnsrr",
        "--no-resolve-image", "--no-healthcheck", "--entrypoint", "python3", service_image("shopstream-app_gateway"),
        "-c", RECEIVE,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    receivers = {
        "configs_alertmanager_receivers": [{"name": "itest", "webhook_configs": [{"url": f"http://{WEBHOOK}:8080/"}]}],
        "configs_alertmanager_receiver": "itest",
        "configs_alertmanager_group_wait": "1s",  # the default, 30s, would only make the test wait
    }
    try:
        webhook = running_container(WEBHOOK)
        pointed = playbook(*ROTATE, "-e", json.dumps(receivers))
        assert pointed.rc == 0, pointed.out[-3000:]
        assert f"services rewired: {ALERTMANAGER}" in " ".join(pointed.out.split()), pointed.out[-3000:]
        alertmanager = running_container(ALERTMANAGER)

        alertname = f"ShopstreamTestAlert{int(time.time())}"
        fired = subprocess.run(
            ["docker", "exec", "-i", webhook, "python3", "-c", FIRE, alertname],
            input=local_vault()["vault_shopstream_monitoring_password"], capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert fired.returncode == 0 and fired.stdout.strip() == "200", fired.stdout + fired.stderr
        # Alertmanager waits group_wait (1 s here) before the first notification of a group.
        deadline, notes = time.monotonic() + 90, []
        while time.monotonic() < deadline and not notes:
            logs = docker("logs", webhook).stdout.splitlines()
            notes = [json.loads(line.split(" ", 1)[1]) for line in logs if line.startswith("WEBHOOK ")]
            time.sleep(2)
        assert notes, f"no notification in 90 s; Alertmanager says: {docker('logs', alertmanager).stderr[-2000:]}"
        alert = notes[0]["alerts"][0]
        assert notes[0]["receiver"] == "itest" and notes[0]["status"] == "firing"
        assert alert["labels"]["alertname"] == alertname and alert["labels"]["service"] == "itest"
    finally:
        restored = playbook(*ROTATE)
        docker("service", "rm", WEBHOOK)
    assert restored.rc == 0, restored.out[-3000:]
    assert config_of(ALERTMANAGER) == before, "the inventory's receivers are back"
