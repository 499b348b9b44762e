# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Minimal Docker Engine API client over a unix socket, standard library only.

Meant for bare hosts where neither the Docker SDK nor requests is installed.
"""

import http.client
import json
import socket
import time
from urllib.parse import quote

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"

# Swarm's answer to an update whose version index is no longer the object's (swarmkit's
# store.ErrSequenceConflict): the object changed between the read and the write. Every update
# the collection sends reads again and retries, at most UPDATE_ATTEMPTS times.
SEQUENCE_CONFLICT = "update out of sequence"
UPDATE_ATTEMPTS = 5


class DockerAPIError(Exception):
    """The Engine could not be reached or answered with an error.

    ``status`` is the HTTP status code, or None when no response was received.
    """

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTPConnection whose transport is an AF_UNIX stream socket."""

    def __init__(self, socket_path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class DockerClient:
    def __init__(self, docker_host=DEFAULT_DOCKER_HOST, timeout=5):
        if not docker_host.startswith("unix://"):
            raise DockerAPIError(f"Unsupported docker_host {docker_host!r}: only unix:// is supported")
        self.socket_path = docker_host[len("unix://") :]
        self.timeout = timeout

    def request(self, method, path, body=None):
        """Send a request; return ``(status, parsed body)``.

        ``body`` is JSON-encoded when given. A JSON response is decoded, any other
        response is returned as text (None when empty). Raises DockerAPIError when
        the socket cannot be used or the status is 400 or higher.
        """
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        conn = UnixHTTPConnection(self.socket_path, self.timeout)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            reason = str(exc) or type(exc).__name__
            raise DockerAPIError(f"Cannot talk to the Docker daemon at unix://{self.socket_path}: {reason}") from exc
        finally:
            conn.close()

        content_type = response.getheader("Content-Type", "")
        try:
            if content_type.startswith("application/json"):
                parsed = json.loads(raw.decode("utf-8")) if raw else None
            else:
                parsed = raw.decode("utf-8", "replace") or None
        except ValueError as exc:
            raise DockerAPIError(f"Invalid JSON from {method} {path}: {exc}", response.status) from exc

        if response.status >= 400:
            message = parsed.get("message") if isinstance(parsed, dict) else parsed
            raise DockerAPIError(
                f"{method} {path} failed with HTTP {response.status}: {message or response.reason}", response.status
            )
        return response.status, parsed

    def get_json(self, path):
        return self.request("GET", path)[1]


def is_sequence_conflict(exc):
    return isinstance(exc, DockerAPIError) and SEQUENCE_CONFLICT in str(exc)


def update_service(client, service_id, change, attempts, pause, on_conflict=None, read=None):
    """Read the service and POST ``change(service)``, the spec to update it to (None: nothing to do), at
    the version read. When the service changed between the read and the update (Swarm answers "update
    out of sequence"), ``on_conflict(service, attempt)`` is told, and it is read and changed again, up
    to ``attempts`` times: whatever else changed in it meanwhile is kept. ``read(service_id)`` reads it
    (``GET /services/<id>`` unless given). Returns ``(service as read, the spec posted or None)``; the
    last conflict, or any other error, is raised."""
    attempt = 0
    while True:
        attempt += 1
        service = read(service_id) if read else client.get_json(f"/services/{service_id}")
        spec = change(service)
        if spec is None:
            return service, None
        try:
            client.request("POST", f"/services/{service_id}/update?version={service['Version']['Index']}", spec)
        except DockerAPIError as exc:
            if not is_sequence_conflict(exc) or attempt >= attempts:
                raise
            if on_conflict:
                on_conflict(service, attempt)
            time.sleep(pause * attempt)
            continue
        return service, spec


def list_services(client):
    """Every service of the swarm (``GET /services``): ID, Version, Spec, UpdateStatus..."""
    return client.get_json("/services") or []


def filters_param(**filters):
    """The ``filters=`` query parameter of list endpoints, e.g. ``filters_param(label=["a=b"])``."""
    return "filters=" + quote(json.dumps(filters, separators=(",", ":")), safe="")


def service_containers(client, service):
    """The service's running containers on this node, as ``GET /containers/json`` lists them."""
    query = filters_param(label=[f"com.docker.swarm.service.name={service}"], status=["running"])
    return client.get_json(f"/containers/json?{query}") or []


def is_healthy(container):
    """Whether a container of ``GET /containers/json`` is healthy, or has no health check: its Status
    ends "(healthy)", "(unhealthy)", "(health: starting)", or with neither without one."""
    status = container.get("Status", "")
    return "(healthy)" in status or not ("(health:" in status or "(unhealthy)" in status)


def running_container(client, service, timeout):
    """The ID of the service's healthy (or health-less) running container on this node."""
    deadline = time.monotonic() + timeout
    while True:
        for container in service_containers(client, service):
            if is_healthy(container):
                return container["Id"]
        if time.monotonic() >= deadline:
            return None
        time.sleep(2)


def service_container(client, service, timeout):
    """(container ID, None) of running_container, or (None, a message saying what to do)."""
    try:
        container = running_container(client, service, timeout)
    except DockerAPIError as exc:
        return None, f"Cannot list the containers of {service}: {exc}"
    if container is None:
        return None, (
            f"No healthy container of {service} runs on this node after {timeout} s: run this on the node that "
            "runs it (the data node), once its task is healthy. " + what_runs(client, service)
        )
    return container, None


def what_runs(client, service, count=3):
    """What this node shows of a service that has no healthy container here: its containers' states
    here and, on a manager, the service's newest tasks with their nodes and errors (the reason a task
    does not start: "no suitable node", a rejected network, a failing health check)."""
    label = f"com.docker.swarm.service.name={service}"
    seen = []
    try:
        here = client.get_json("/containers/json?all=1&" + filters_param(label=[label])) or []
        states = [f"{(c.get('Names') or ['?'])[0].lstrip('/')} {c.get('Status') or c.get('State')}" for c in here]
        seen.append("Its containers here: " + ("; ".join(states[:count]) if states else "none") + ".")
        if not ((client.get_json("/info") or {}).get("Swarm") or {}).get("ControlAvailable"):
            return " ".join(seen)
        tasks = client.get_json("/tasks?" + filters_param(service=[service])) or []
        hostnames = {n.get("ID"): (n.get("Description") or {}).get("Hostname") for n in client.get_json("/nodes") or []}
    except DockerAPIError as exc:
        return " ".join(seen + [f"(could not read more: {exc})"])
    newest = sorted(tasks, key=lambda t: t.get("UpdatedAt") or "", reverse=True)[:count]
    described = []
    for task in newest:
        status = task.get("Status") or {}
        why = status.get("Err") or status.get("Message") or ""
        node = hostnames.get(task.get("NodeID")) or task.get("NodeID") or "no node"
        described.append(f"{status.get('State')} ({why}) on {node}, wanted {task.get('DesiredState')}")
    seen.append("Its newest tasks: " + ("; ".join(described) if described else "none") + ".")
    return " ".join(seen)
