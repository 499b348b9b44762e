"""images/socket-proxy/docker-api-proxy, run as its image runs it, in front of the fake engine:
reads pass, everything else is refused before the engine; a swarm read the engine fails gets the
last good answer while it is young enough."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import UnixHTTPConnection

PROXY = Path(__file__).resolve().parents[2] / "images" / "socket-proxy" / "docker-api-proxy"


@pytest.fixture
def proxy(engine):
    """Start the proxy (earlier answers kept for the given seconds); a function that asks it."""
    started = []

    def start(stale_seconds=300):
        listen = os.path.join(os.path.dirname(engine.server_address), "proxy.sock")
        env = dict(os.environ, DOCKER_API_LISTEN=listen, DOCKER_API_ENGINE=engine.server_address,
                   DOCKER_API_STALE_SECONDS=str(stale_seconds))  # fmt: skip
        process = subprocess.Popen([sys.executable, "-IS", str(PROXY)], env=env, stderr=subprocess.PIPE, text=True)
        started.append(process)
        deadline = time.monotonic() + 10
        while not os.path.exists(listen):
            assert process.poll() is None and time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.02)

        def ask(method, path):
            client = UnixHTTPConnection(listen, timeout=10)
            try:
                client.request(method, path)
                response = client.getresponse()
                return response.status, dict(response.getheaders()), response.read()
            finally:
                client.close()

        ask.process = process
        return ask

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_the_providers_reads_pass_and_anything_else_never_reaches_the_engine(engine, proxy):
    ask = proxy()
    engine.routes[("GET", "/v1.41/services")] = (200, [{"ID": "s1"}])
    engine.routes[("GET", "/v1.41/tasks?filters=%7B%22service%22%3A%5B%22s1%22%5D%7D")] = (200, [{"ID": "t1"}])
    engine.routes[("GET", "/nodes/n1")] = (200, {"ID": "n1"})
    status, headers, body = ask("GET", "/v1.41/services")
    assert (status, json.loads(body)) == (200, [{"ID": "s1"}])
    assert headers["Content-Type"] == "application/json"
    assert ask("GET", "/v1.41/tasks?filters=%7B%22service%22%3A%5B%22s1%22%5D%7D")[0] == 200
    assert ask("GET", "/nodes/n1")[0] == 200
    asked = len(engine.requests)
    denied = [
        ("GET", "/secrets"), ("GET", "/v1.41/configs"), ("GET", "/containers/json"), ("GET", "/services/s1/logs"),
        ("GET", "/services/.."), ("GET", "/services/%2e%2e"), ("GET", "/events"), ("GET", "/v1.41/nodes/n1/x"),
        ("POST", "/services/create"), ("POST", "/v1.41/containers/create"), ("DELETE", "/networks/x"),
        ("POST", "/services/s1/update"), ("PUT", "/v1.41/containers/x/archive"),
    ]  # fmt: skip
    assert {f"{m} {p}": ask(m, p)[0] for m, p in denied} == {f"{m} {p}": 403 for m, p in denied}
    assert len(engine.requests) == asked, engine.requests[asked:]


def test_a_swarm_read_the_engine_fails_gets_its_last_good_answer(engine, proxy):
    ask = proxy()
    tasks = "/v1.41/tasks?filters=%7B%22service%22%3A%5B%22s1%22%5D%7D"
    engine.routes[("GET", tasks)] = (200, [{"ID": "t1"}])
    engine.routes[("GET", "/v1.41/nodes/n1")] = (200, {"ID": "n1"})
    assert ask("GET", tasks)[0] == 200 and ask("GET", "/v1.41/nodes/n1")[0] == 200
    no_leader = (503, {"message": "rpc error: code = Unknown desc = The swarm does not have a leader."})
    for route in (("GET", tasks), ("GET", "/v1.41/nodes/n1"), ("GET", "/v1.41/services"), ("GET", "/_ping")):
        engine.routes[route] = no_leader
    status, headers, body = ask("GET", tasks)
    assert (status, json.loads(body)) == (200, [{"ID": "t1"}])
    assert headers["Warning"] == '110 docker-api-proxy "stale: engine 503"'
    assert ask("GET", "/v1.41/nodes/n1")[0] == 200
    # Nothing good to give: the engine's answer. The engine's own ping is never answered from before.
    assert ask("GET", "/v1.41/services")[0] == 503
    assert ask("GET", "/_ping")[0] == 503
    # The leader back, the engine's answers again.
    engine.routes[("GET", tasks)] = (200, [{"ID": "t2"}])
    status, headers, body = ask("GET", tasks)
    assert (status, json.loads(body), "Warning" in headers) == (200, [{"ID": "t2"}], False)
    ask.process.send_signal(signal.SIGTERM)
    assert ask.process.wait(timeout=5) == 0
    log = ask.process.stderr.read()
    assert f"GET {tasks}: the engine answered 503 (" in log and "The swarm does not have a leader" in log, log
    assert "answered with its answer of" in log, log


def test_an_earlier_answer_older_than_the_limit_is_not_given(engine, proxy):
    ask = proxy(stale_seconds=0.5)
    engine.routes[("GET", "/v1.41/networks")] = (200, [{"Id": "w1"}])
    assert ask("GET", "/v1.41/networks")[0] == 200
    engine.routes[("GET", "/v1.41/networks")] = (500, {"message": "boom"})
    assert ask("GET", "/v1.41/networks")[0] == 200
    time.sleep(0.6)
    status, _headers, body = ask("GET", "/v1.41/networks")
    assert (status, json.loads(body)) == (500, {"message": "boom"})


def test_an_engine_that_does_not_answer(engine, proxy):
    ask = proxy()
    engine.routes[("GET", "/v1.41/services")] = (200, [{"ID": "s1"}])
    assert ask("GET", "/v1.41/services")[0] == 200
    engine.shutdown()
    engine.server_close()
    os.unlink(engine.server_address)
    status, _headers, body = ask("GET", "/v1.41/services")
    assert (status, json.loads(body)) == (200, [{"ID": "s1"}])
    status, _headers, body = ask("GET", "/v1.41/nodes")
    assert status == 502 and "the engine did not answer" in json.loads(body)["message"], body
