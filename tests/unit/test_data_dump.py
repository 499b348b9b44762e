"""data_dump: the commands that dump each data service; passwords travel on standard input only.
The MariaDB dump script runs here against stand-ins of the client and of mariadb-dump that accept
one root password (tests/integration/test_backup.py runs the module against the real services)."""

import os
import subprocess

from ansible_collections.shopstream.swarm.plugins.module_utils._mariadb import DUMP_SCRIPT, LOGIN_SCRIPT
from ansible_collections.shopstream.swarm.plugins.modules.data_dump import dump_command

PARAMS = {
    "root_passwords": ["current-root", "", "previous-root"],
    "bootstrap_file": "/run/secrets/mariadb_root_password",
    "database": "shopstream",
    "password_file": "/run/secrets/redis_password",
}


def test_the_mariadb_dump_gets_the_root_passwords_on_stdin_never_in_its_argv():
    argv, stdin = dump_command("mariadb", "c0ffee", PARAMS)
    assert argv[:4] == ["docker", "exec", "-i", "c0ffee"] and argv[-2:] == [PARAMS["bootstrap_file"], "shopstream"]
    assert stdin == "current-root\nprevious-root\n--\n"
    assert all(password not in arg for arg in argv for password in ("current-root", "previous-root"))


def test_redis_and_rabbitmq_dump_to_stdout_with_no_password_in_their_argv():
    redis, stdin = dump_command("redis", "c0ffee", PARAMS)
    assert stdin is None and "--rdb -" in redis[-3] and redis[-1] == PARAMS["password_file"]
    rabbitmq, stdin = dump_command("rabbitmq", "c0ffee", PARAMS)
    assert stdin is None and rabbitmq[-3:] == ["--quiet", "export_definitions", "-"]


def run_script(tmp_path, script, stdin, *args):
    """The script with stand-ins: `mariadb` accepts MYSQL_PWD=good only; `mariadb-dump` prints its
    arguments and the password it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "mariadb").write_text('#!/bin/sh\n[ "$MYSQL_PWD" = good ] || exit 1\necho "mariadb $*"\n')
    (bin_dir / "mariadb-dump").write_text('#!/bin/sh\necho "dump $* with $MYSQL_PWD"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    return subprocess.run(
        ["sh", "-c", script, "sh", *args], input=stdin, capture_output=True, text=True, env=env, check=False
    )


def test_the_dump_logs_in_with_the_first_password_root_accepts(tmp_path):
    done = run_script(tmp_path, DUMP_SCRIPT, "wrong\ngood\n--\n", "/nonexistent", "shopstream")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("dump --protocol=socket -uroot --single-transaction")
    assert done.stdout.rstrip().endswith("--databases shopstream with good")


def test_the_dump_falls_back_to_the_initial_password_file_then_stops_naming_it(tmp_path):
    initial = tmp_path / "initial"
    initial.write_text("good")
    assert run_script(tmp_path, DUMP_SCRIPT, "wrong\n--\n", str(initial), "shopstream").stdout.endswith("with good\n")
    initial.write_text("bad")
    refused = run_script(tmp_path, DUMP_SCRIPT, "wrong\n--\n", str(initial), "shopstream")
    assert refused.returncode == 3 and refused.stdout == ""
    assert f"refuses the vault's current and previous passwords and the initial one ({initial})" in refused.stderr


def test_the_login_script_still_runs_the_rest_of_stdin_with_the_client(tmp_path):
    done = run_script(tmp_path, LOGIN_SCRIPT, "good\n--\nSELECT 1;\n", "/nonexistent")
    assert done.returncode == 0 and done.stdout.startswith("mariadb --protocol=socket -uroot --batch"), done
