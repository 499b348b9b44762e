"""The kit RabbitMQ entrypoint's user pruning (`docker-entrypoint.sh prune-users <definitions>`).

The real node is in tests/images (test_kit_images.py); here `rabbitmqctl` is a script on PATH
that lists the node's users and records the deletions, so that the pruning's choice is checked
with a definitions file larger than a pipe's buffer: the size at which a listed user was taken
for an unlisted one (`printf | grep -q` under pipefail) and deleted on a RabbitMQ restart.
"""

import json
import os
import subprocess
from pathlib import Path

ENTRYPOINT = Path(__file__).resolve().parents[2] / "images" / "rabbitmq" / "docker-entrypoint.sh"

RABBITMQCTL = """#!/bin/sh
case "$2" in
  await_startup) exit 0 ;;
  list_users) printf '%s\\t[]\\n' $NODE_USERS ;;
  delete_user) echo "$3" >>"$DELETED" ;;
esac
"""


def prune(tmp_path, listed, node_users):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ctl = bin_dir / "rabbitmqctl"
    ctl.write_text(RABBITMQCTL)
    ctl.chmod(0o755)
    (tmp_path / ".erlang.cookie").write_text("cookie")
    definitions = tmp_path / "definitions.json"
    definitions.write_text(
        json.dumps(
            {
                "users": [{"name": name, "password_hash": "x", "tags": []} for name in listed],
                "vhosts": [{"name": "/"}],
                "permissions": [{"user": name, "vhost": "/"} for name in listed],
            }
        )
    )
    deleted = tmp_path / "deleted"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "NODE_USERS": " ".join(node_users),
        "DELETED": str(deleted),
    }
    run = subprocess.run(
        ["bash", str(ENTRYPOINT), "prune-users", str(definitions)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return (deleted.read_text().split() if deleted.exists() else []), run.stderr


def test_only_the_users_the_definitions_do_not_list_are_deleted(tmp_path):
    deleted, said = prune(tmp_path, ["shopstream-b"], ["guest", "shopstream-a", "shopstream-b"])
    assert deleted == ["guest", "shopstream-a"]
    assert "deleted user shopstream-a, which" in said


def test_a_listed_user_is_kept_however_long_the_definitions(tmp_path):
    # Some 200 KB of names: more than a pipe holds, so a reader that stops at its first match
    # leaves the writer a broken pipe.
    listed = [f"shopstream-user-{n:05d}" for n in range(8000)]
    deleted, said = prune(tmp_path, listed, [listed[0], listed[-1], "guest"])
    assert deleted == ["guest"], said
