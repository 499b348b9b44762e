"""Run the collection's playbooks against this host and read what they did."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "inventories" / "local"
BIN = Path(sys.executable).parent
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


class Run:
    def __init__(self, proc, seconds):
        self.rc = proc.returncode
        self.out = proc.stdout + (proc.stderr or "")
        self.seconds = seconds
        self.recap = {
            m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
            for m in RECAP.finditer(self.out)
        }

    def changed(self):
        return sum(h["changed"] for h in self.recap.values())

    def trouble(self, width=1500):
        """The run's failures, each after its task, first (what a failed assertion's first line
        shows), then its warnings and messages, then the recap: where the output's tail may have lost
        the cause."""
        failures, said, task = [], [], None
        for line in self.out.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                task = line.rstrip(" *")
            elif line.startswith(("fatal:", "failed:", "[ERROR]", "ERROR!")):
                failures.append(f"{task or ''} {line[:width]}".strip())
            elif line.startswith("[WARNING]") or '"msg": "' in line:
                said.append(f"{task or ''} {line.strip()[:width]}".strip())
        recap = self.out[self.out.rfind("PLAY RECAP") :] if "PLAY RECAP" in self.out else self.out[-2000:]
        return "\n".join(failures + said + [recap])


def playbook(*args, env=None, interleaved=False):
    """Run ansible-playbook from the repo root with the repo's ansible.cfg; ``interleaved``: its
    stderr (warnings) in its stdout, in the order they were written."""
    cmd = [str(BIN / "ansible-playbook"), *map(str, args)]
    full_env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        **(env or {}),
    )
    start = time.monotonic()
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT} if interleaved else {"capture_output": True}
    proc = subprocess.run(cmd, cwd=ROOT, env=full_env, text=True, timeout=1800, check=False, **streams)
    return Run(proc, time.monotonic() - start)


def docker(*args, env=None, stdin=None):
    run_env = dict(os.environ, **env) if env else None
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False, env=run_env, input=stdin)


def host_state():
    """What a failed preflight must leave untouched on this host."""
    daemon_json = Path("/etc/docker/daemon.json")
    info = json.loads(docker("info", "--format", "{{json .Swarm}}").stdout or "{}")
    return {
        "daemon.json": daemon_json.read_text() if daemon_json.exists() else None,
        "swarm": (info.get("LocalNodeState"), info.get("NodeID")),
        "dockerd": Path("/var/run/docker.pid").read_text().strip() if Path("/var/run/docker.pid").exists() else None,
    }


def local_vault():
    """The values of the vault `make deploy` made for inventories/local."""
    import yaml
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret((LOCAL / ".vault-pass").read_text().strip().encode()))])
    return yaml.safe_load(vault.decrypt((LOCAL / "group_vars/all/vault.yml").read_bytes()))
