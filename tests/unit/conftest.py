"""A fake Docker Engine on a real unix socket, for the modules' API clients, and a module runner."""

import json
import os
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler

import pytest


class _FakeEngine(BaseHTTPRequestHandler):
    """Answers from server.routes {(method, path): (status, JSON payload), or a callable returning one}."""

    def _answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.command, self.path, body))
        answer = self.server.routes.get((self.command, self.path), (404, {"message": "page not found"}))
        status, payload = answer() if callable(answer) else answer
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def engine():
    # Not tmp_path: a unix socket path must stay under ~108 characters.
    directory = tempfile.mkdtemp(prefix="engine-")
    server = socketserver.UnixStreamServer(os.path.join(directory, "docker.sock"), _FakeEngine)
    server.routes = {}
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    shutil.rmtree(directory)


@pytest.fixture
def run_module():
    """Run a module as Ansible does (its arguments in a JSON file, in a process of its own, with this
    process's environment); its JSON result."""

    def run(module, args):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
            handle.flush()
            done = subprocess.run(
                [sys.executable, "-m", f"ansible_collections.shopstream.swarm.plugins.modules.{module}", handle.name],
                capture_output=True,
                text=True,
                env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
                check=False,
            )
        return json.loads(done.stdout)

    return run
