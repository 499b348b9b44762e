"""The kit's infrastructure images, each started from the kit image alone on this host's engine.

Per image, where the official image has the feature: healthy, non-root as the official image,
secret read from a file, refusal to start without it, data kept in the volume across a
restart, clean exit on SIGTERM within the grace period. Images without secrets or data
(nginx, node-exporter, traefik, python) are not in those tests: their official images have
none either.
"""

import base64
import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils import _mariadb as mariadb_accounts

GRACE = 10  # docker stop's and swarm's default stop grace period
PASSWORD = "kit-" + base64.b32encode(os.urandom(10)).decode().lower()

PYTHON_SERVER = (
    "import http.server,signal,sys\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200 if self.path == '/healthz' else 404); self.end_headers()\n"
    "http.server.HTTPServer(('', 8080), H).serve_forever()\n"
)


# ---------------------------------------------------------------- protocol helpers


def http(url, method="GET", data=None, auth=None, timeout=5):
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http:// URLs of our own test containers
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http:// URLs of our own test containers
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def redis_command(host, *args, password=None):
    """One RESP command (after AUTH when a password is given); the first reply line."""
    with socket.create_connection((host, 6379), timeout=5) as sock:
        stream = sock.makefile("rwb")
        commands = ([("AUTH", password)] if password else []) + [args]
        for command in commands:
            stream.write(f"*{len(command)}\r\n".encode())
            for arg in command:
                data = str(arg).encode()
                stream.write(b"$%d\r\n%s\r\n" % (len(data), data))
        stream.flush()
        replies = []
        for _command in commands:
            line = stream.readline().decode().rstrip("\r\n")
            if line.startswith("$") and line != "$-1":
                line = stream.read(int(line[1:]) + 2)[:-2].decode()
            replies.append(line)
        return replies[-1]


def rabbit_definitions(users):
    """A RabbitMQ definitions file of administrators, user -> password (salted SHA-256, RabbitMQ's format)."""

    def password_hash(password):
        salt = os.urandom(4)
        return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()

    return json.dumps(
        {
            "users": [
                {
                    "name": user,
                    "password_hash": password_hash(password),
                    "hashing_algorithm": "rabbit_password_hashing_sha256",
                    "tags": ["administrator"],
                }
                for user, password in users.items()
            ],
            "vhosts": [{"name": "/"}],
            "permissions": [
                {"user": user, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"} for user in users
            ],
        }
    )


def proc_uids(containers, name):
    """uid -> the commands of the container's own processes, as docker top lists them from the host:
    its first process and what descends from it. A process docker exec starts descends from the
    runtime's shim instead, and does not count: the health check, which runs as the image's user
    (root where the entrypoint drops to the service's user itself, as the official rabbitmq
    image's does)."""
    first = containers.inspect(name)["State"]["Pid"]
    listed = containers.top(name, "-eo", "pid,ppid,uid,args").splitlines()[1:]
    rows = [line.split(None, 3) for line in listed]
    parents = {int(row[0]): int(row[1]) for row in rows}

    def own(pid):
        while pid != first and pid in parents:
            pid = parents[pid]
        return pid == first

    found = {}
    for pid, _ppid, uid, *args in rows:
        if own(int(pid)):
            found.setdefault(int(uid), []).append(f"{pid}: {' '.join(args)[:150]}")
    return found


# ---------------------------------------------------------------- per image setups


def start_mariadb(containers, ref, volume, flags=()):
    secrets = containers.secrets(root="root-" + PASSWORD, user=PASSWORD)
    return containers.run(
        ref,
        env={
            "MARIADB_ROOT_PASSWORD_FILE": "/run/secrets/root",
            "MARIADB_DATABASE": "shop",
            "MARIADB_USER": "shop",
            "MARIADB_PASSWORD_FILE": "/run/secrets/user",
        },
        mounts=[(secrets, "/run/secrets", "ro"), (volume, "/var/lib/mysql")],
        flags=flags,
    )


def start_redis(containers, ref, volume):
    secrets = containers.secrets(redis_password=PASSWORD)
    return containers.run(
        ref,
        env={"REDIS_PASSWORD_FILE": "/run/secrets/redis_password"},
        mounts=[(secrets, "/run/secrets", "ro"), (volume, "/data")],
    )


def start_rabbitmq(containers, ref, volume):
    secrets = containers.secrets(definitions=rabbit_definitions({"shop": PASSWORD}))
    return containers.run(
        ref,
        mounts=[
            (os.path.join(secrets, "definitions"), "/etc/rabbitmq/definitions.json", "ro"),
            (volume, "/var/lib/rabbitmq"),
        ],
        name=None,
    )


def start_prometheus(containers, ref, volume):
    config = containers.secrets(
        **{
            "prometheus.yml": "global: {scrape_interval: 1s}\nscrape_configs:\n  - job_name: self\n"
            "    static_configs: [{targets: ['localhost:9090']}]\n"
        }
    )
    return containers.run(
        ref,
        mounts=[
            (os.path.join(config, "prometheus.yml"), "/etc/prometheus/prometheus.yml", "ro"),
            (volume, "/prometheus"),
        ],
    )


def start_simple(path):
    def start(containers, ref, volume):
        return containers.run(ref, mounts=[(volume, path)] if path else ())

    return start


def start_socket_proxy(containers, ref, volume):
    return containers.run(
        ref, mounts=[("/var/run/docker.sock", "/var/run/docker.sock", "ro"), (volume, "/run/docker-api")]
    )


def start_python(containers, ref, volume):
    return containers.run(ref, "python3", "-c", PYTHON_SERVER, user="app")


STARTERS = {
    "mariadb": start_mariadb,
    "redis": start_redis,
    "rabbitmq": start_rabbitmq,
    "prometheus": start_prometheus,
    "alertmanager": start_simple("/alertmanager"),
    "registry": start_simple("/var/lib/registry"),
    "nginx": start_simple(None),
    "node-exporter": start_simple(None),
    "traefik": start_simple(None),
    "python": start_python,
    "socket-proxy": start_socket_proxy,
}
# The uids processes run as, as in the official images (nginx: a root master, workers 101;
# registry and traefik run as root there too; the socket proxy must, to open the engine's socket).
EXPECTED_UIDS = {
    "mariadb": {999},
    "redis": {999},
    "rabbitmq": {999},
    "prometheus": {65534},
    "alertmanager": {65534},
    "node-exporter": {65534},
    "nginx": {0, 101},
    "registry": {0},
    "traefik": {0},
    "python": {10001},
    "socket-proxy": {0},
}
HEALTH_TIMEOUT = {"rabbitmq": 180, "mariadb": 120}


def start(containers, kit_ref, image):
    volume = containers.volume()
    name = STARTERS[image](containers, kit_ref(image), volume)
    containers.wait_healthy(name, HEALTH_TIMEOUT.get(image, 60))
    return name, volume


# ---------------------------------------------------------------- every image


@pytest.mark.parametrize("image", sorted(STARTERS))
def test_starts_healthy_as_the_official_user_and_stops_on_sigterm(containers, kit_ref, image):
    name, _volume = start(containers, kit_ref, image)
    uids = proc_uids(containers, name)
    assert set(uids) == EXPECTED_UIDS[image], uids
    code, seconds = containers.sigterm(name, GRACE)
    assert code is not None, f"{image} still ran {GRACE} s after SIGTERM:\n{containers.logs(name)[-2000:]}"
    assert code in (0, 143), (
        f"{image} exited with {code} on SIGTERM after {seconds:.1f} s:\n{containers.logs(name)[-2000:]}"
    )


# ---------------------------------------------------------------- secrets


def test_mariadb_reads_its_passwords_from_files(containers, kit_ref):
    name, _volume = start(containers, kit_ref, "mariadb")
    query = ["mariadb", "-h127.0.0.1", "-ushop", "shop", "-N", "-e", "SELECT CURRENT_USER(), DATABASE()"]
    result = containers.exec(name, *query, env={"MYSQL_PWD": PASSWORD})
    assert result.stdout.split() == ["shop@%", "shop"]
    root = ["mariadb", "-h127.0.0.1", "-uroot", "-N", "-e", "SELECT 1"]
    assert containers.exec(name, *root, env={"MYSQL_PWD": "root-" + PASSWORD}).stdout.strip() == "1"
    assert containers.exec(name, *root, env={"MYSQL_PWD": "wrong"}, check=False).returncode != 0
    assert containers.exec(name, "mariadb", "-uroot", "-N", "-e", "SELECT 1", check=False).returncode != 0, (
        "root logs in without a password"
    )


def test_mariadb_accounts_rotate_in_the_running_server(containers, kit_ref):
    """What mariadb_accounts runs, in MariaDB as the data stack starts it (root at localhost with the
    initial password, no application user): root gets the vault's password, each application password
    a user; a rotation adds the new user while the old one still logs in, then drops it. One server
    process throughout: nothing restarts."""
    secrets = containers.secrets(mariadb_root_password="initial-" + PASSWORD)
    name = containers.run(
        kit_ref("mariadb"),
        env={"MARIADB_ROOT_PASSWORD_FILE": "/run/secrets/mariadb_root_password", "MARIADB_ROOT_HOST": "localhost",
             "MARIADB_DATABASE": "shopstream"},
        mounts=[(secrets, "/run/secrets", "ro"), (containers.volume(), "/var/lib/mysql")],
    )  # fmt: skip
    containers.wait_healthy(name, HEALTH_TIMEOUT["mariadb"])
    started = containers.exec(name, "cat", "/proc/1/stat").stdout.split()[21]

    def accounts(roots, passwords, drop):
        def mariadb(sql):
            proc = subprocess.run(
                ["docker", "exec", "-i", name, "sh", "-c", mariadb_accounts.LOGIN_SCRIPT, "sh",
                 "/run/secrets/mariadb_root_password"],
                input="\n".join(roots) + "\n--\n" + sql + "\n", capture_output=True, text=True, check=False,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr
            return proc.stdout

        rows = mariadb_accounts.parse_rows(mariadb(mariadb_accounts.probe_sql("shopstream")))
        changes = mariadb_accounts.plan(rows, "shopstream", "shopstream", roots[0], passwords, drop)
        if changes["sql"]:
            mariadb("\n".join(changes["sql"]))
        return changes

    def logs_in(user, password):
        # Root at localhost alone: over the socket; the application users over TCP, as the services.
        where = "--protocol=socket" if user == "root" else "-h127.0.0.1"
        query = ["mariadb", where, "-u" + user, "shopstream", "-N", "-e", "SELECT CURRENT_USER()"]
        return containers.exec(name, *query, env={"MYSQL_PWD": password}, check=False).returncode == 0

    old, new = mariadb_accounts.user_name("shopstream", "app-1"), mariadb_accounts.user_name("shopstream", "app-2")
    first = accounts(["root-1"], ["app-1"], drop=False)
    assert first["root_changed"] and first["created"] == [old]
    assert accounts(["root-1"], ["app-1"], drop=True)["sql"] == [], "a second run changes nothing"
    assert logs_in(old, "app-1") and logs_in("root", "root-1") and not logs_in("root", "initial-" + PASSWORD)
    # A rotation: the new passwords while the old application user still logs in, then the old dropped.
    during = accounts(["root-2", "root-1"], ["app-2", "app-1"], drop=True)
    assert during["created"] == [new] and during["dropped"] == [] and during["root_changed"]
    assert logs_in(old, "app-1") and logs_in(new, "app-2") and logs_in("root", "root-2")
    assert not logs_in("root", "root-1")
    assert accounts(["root-2", "root-2"], ["app-2", "app-2"], drop=True)["dropped"] == [f"{old}@%"]
    assert not logs_in(old, "app-1") and logs_in(new, "app-2")
    assert containers.exec(name, "cat", "/proc/1/stat").stdout.split()[21] == started, "the server never restarted"


# As the stack hardens it (roles/stack/defaults/main.yml, stack_hardening), with the mounts Swarm makes.
MARIADB_HARDENED = [
    "--read-only", "--cap-drop", "ALL", "--pids-limit", "1024",
    *(f for cap in ("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID") for f in ("--cap-add", cap)),
    "--mount", "type=tmpfs,destination=/run/mysqld", "--mount", "type=tmpfs,destination=/tmp",
]  # fmt: skip


def test_mariadb_initialises_hardened_as_the_stack_runs_it(containers, kit_ref):
    name = start_mariadb(containers, kit_ref("mariadb"), containers.volume(), flags=MARIADB_HARDENED)
    containers.wait_healthy(name)
    query = ["mariadb", "-h127.0.0.1", "-ushop", "shop", "-N", "-e", "SELECT CURRENT_USER()"]
    assert containers.exec(name, *query, env={"MYSQL_PWD": PASSWORD}).stdout.split() == ["shop@%"]
    uids = proc_uids(containers, name)
    assert set(uids) == {999}, uids  # the server as mysql, no root process left


def test_mariadb_after_a_failed_first_start_initialises_again(containers, kit_ref, tmp_path):
    """A first start that fails part-way (here: an option the temporary server refuses) leaves no data
    directory without users behind; the next start initialises it and the user logs in."""
    volume = containers.volume()
    bad = tmp_path / "99-bad.cnf"
    bad.write_text("[mariadbd]\nno-such-option-anywhere = 1\n")
    bad.chmod(0o644)
    flags = ["-v", f"{bad}:/etc/mysql/conf.d/99-bad.cnf:ro"]
    failed = start_mariadb(containers, kit_ref("mariadb"), volume, flags=flags)
    assert containers.wait_exit(failed, 60) != 0
    assert "removed the half-initialised /var/lib/mysql" in containers.logs(failed)
    name = start_mariadb(containers, kit_ref("mariadb"), volume)
    containers.wait_healthy(name)
    query = ["mariadb", "-h127.0.0.1", "-ushop", "shop", "-N", "-e", "SELECT CURRENT_USER()"]
    assert containers.exec(name, *query, env={"MYSQL_PWD": PASSWORD}).stdout.split() == ["shop@%"]


@pytest.mark.parametrize(
    "env, expected",
    [
        (
            {"MARIADB_ROOT_PASSWORD_FILE": "/run/secrets/missing"},
            "MARIADB_ROOT_PASSWORD_FILE names /run/secrets/missing",
        ),
        ({}, "no root password is given"),
        (
            {
                "MARIADB_ROOT_PASSWORD_FILE": "/run/secrets/root",
                "MARIADB_USER": "shop",
                "MARIADB_PASSWORD_FILE": "/run/secrets/nope",
            },
            "MARIADB_PASSWORD_FILE names /run/secrets/nope",
        ),
    ],
    ids=["root-secret-missing", "no-password-at-all", "user-secret-missing"],
)
def test_mariadb_refuses_to_start_without_its_secret(containers, kit_ref, env, expected):
    secrets = containers.secrets(root=PASSWORD)
    name = containers.run(
        kit_ref("mariadb"), env=env, mounts=[(secrets, "/run/secrets", "ro"), (containers.volume(), "/var/lib/mysql")]
    )
    assert containers.wait_exit(name, 30) != 0
    assert expected in containers.logs(name)


def test_redis_reads_its_password_from_a_file_never_the_command_line(containers, kit_ref):
    name, _volume = start(containers, kit_ref, "redis")
    ip = containers.ip(name)
    assert redis_command(ip, "PING").startswith("-NOAUTH")
    assert redis_command(ip, "PING", password=PASSWORD) == "+PONG"
    cmdline = containers.exec(name, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '").stdout
    assert PASSWORD not in cmdline and cmdline.startswith("redis-server")
    assert PASSWORD not in json.dumps(containers.inspect(name)["Config"])


def test_redis_accepts_the_previous_password_too_while_a_rotation_moves_its_clients(containers, kit_ref):
    previous = "previous-" + PASSWORD
    files = containers.secrets(redis_password=PASSWORD, redis_password_previous=previous)
    name = containers.run(
        kit_ref("redis"),
        env={
            "REDIS_PASSWORD_FILE": "/run/secrets/redis_password",
            "REDIS_PASSWORD_PREVIOUS_FILE": "/run/secrets/redis_password_previous",
        },  # fmt: skip
        mounts=[(files, "/run/secrets", "ro")],
    )
    containers.wait_healthy(name, 60)
    ip = containers.ip(name)
    assert redis_command(ip, "PING", password=PASSWORD) == "+PONG"
    assert redis_command(ip, "PING", password=previous) == "+PONG"
    assert redis_command(ip, "AUTH", "other-" + PASSWORD).startswith("-WRONGPASS")
    assert redis_command(ip, "ACL", "WHOAMI", password=previous) == "default"
    acl_list = "REDISCLI_AUTH=$(cat /run/secrets/redis_password) redis-cli ACL LIST"
    acl = containers.exec(name, "sh", "-c", acl_list).stdout
    hashes = [hashlib.sha256(p.encode()).hexdigest() for p in (PASSWORD, previous)]
    assert acl.startswith("user default on") and all(f"#{h}" in acl for h in hashes), acl
    assert PASSWORD not in acl + json.dumps(containers.inspect(name)["Config"])


def test_redis_with_an_acl_file_from_the_config(containers, kit_ref):
    files = containers.secrets(
        **{
            "users.acl": f"user default off\nuser shop on >{PASSWORD} ~* &* +@all\n",
            "redis.conf": "aclfile /run/secrets/users.acl\n",
        }
    )
    name = containers.run(
        kit_ref("redis"), "redis-server", "/run/secrets/redis.conf", mounts=[(files, "/run/secrets", "ro")]
    )
    containers.wait_healthy(name, 60)
    ip = containers.ip(name)
    assert redis_command(ip, "PING").startswith("-NOAUTH")
    with socket.create_connection((ip, 6379), timeout=5) as sock:
        sock.sendall(f"AUTH shop {PASSWORD}\r\nPING\r\n".encode())
        time.sleep(0.5)
        assert sock.recv(100) == b"+OK\r\n+PONG\r\n"


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"REDIS_PASSWORD_FILE": "/run/secrets/missing"}, "REDIS_PASSWORD_FILE names /run/secrets/missing"),
        ({}, "no password"),
    ],
    ids=["secret-missing", "no-password-at-all"],
)
def test_redis_refuses_to_start_without_its_secret(containers, kit_ref, env, expected):
    name = containers.run(kit_ref("redis"), env=env, mounts=[(containers.secrets(other="x"), "/run/secrets", "ro")])
    assert containers.wait_exit(name, 30) != 0
    assert expected in containers.logs(name)


def test_rabbitmqs_health_check_fails_without_a_node_and_runs_no_erlang_cli(containers, kit_ref):
    """The check connects to the node's listeners instead of running rabbitmq-diagnostics (an Erlang
    VM, 0.85 s of CPU per run, every 10 s): with no node running it fails, and it made no Erlang
    cookie, which any run of an Erlang CLI makes when it is missing."""
    name = containers.run(kit_ref("rabbitmq"), "sleep", "120", mounts=[(containers.volume(), "/var/lib/rabbitmq")])
    test = containers.inspect(name)["Config"]["Healthcheck"]["Test"]
    assert test == ["CMD", "healthcheck.sh"], test
    assert containers.exec(name, "healthcheck.sh", check=False).returncode != 0, "healthy with no node running"
    assert containers.exec(name, "test", "-e", "/var/lib/rabbitmq/.erlang.cookie", check=False).returncode != 0


def test_rabbitmq_keeps_only_the_users_its_definitions_list_and_its_data_across_a_restart(containers, kit_ref):
    """A rotation: the definitions list the previous password's user beside the current one, then the
    current one alone; after each boot exactly their users exist (guest, never listed, is deleted),
    and what the broker wrote to its volume is still there."""
    old, new = {"shop-0ld": "old-" + PASSWORD}, {"shop-n3w": PASSWORD}
    secrets = containers.secrets(definitions=rabbit_definitions({**old, **new}))
    definitions = os.path.join(secrets, "definitions")
    name = containers.run(
        kit_ref("rabbitmq"),
        mounts=[(definitions, "/etc/rabbitmq/definitions.json", "ro"), (containers.volume(), "/var/lib/rabbitmq")],
    )
    containers.wait_healthy(name, HEALTH_TIMEOUT["rabbitmq"])
    api = f"http://{containers.ip(name)}:15672/api/whoami"

    def users(expected):
        deadline, listed = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            listed = sorted(
                containers.exec(name, "rabbitmqctl", "-q", "list_users", "--no-table-headers").stdout.split()[::2]
            )
            if listed == sorted(expected):
                return
            time.sleep(1)
        raise AssertionError(f"users {listed}, expected {sorted(expected)}:\n{containers.logs(name)[-3000:]}")

    users([*old, *new])
    for user, password in {**old, **new}.items():
        status, body, _headers = http(api, auth=(user, password))
        assert status == 200 and json.loads(body)["name"] == user, user
    assert http(api, auth=("shop-n3w", "wrong"))[0] == 401
    assert http(api, auth=("guest", "guest"))[0] == 401, "guest logs in from outside the container"
    containers.exec(name, "rabbitmqctl", "-q", "add_vhost", "kittest-kept")
    with open(definitions, "w", encoding="utf-8") as handle:  # the same file (bind-mounted), rewritten
        handle.write(rabbit_definitions(new))
    containers.restart(name)
    containers.wait_healthy(name, HEALTH_TIMEOUT["rabbitmq"])
    users(new)
    assert http(api, auth=("shop-n3w", PASSWORD))[0] == 200
    assert http(api, auth=("shop-0ld", "old-" + PASSWORD))[0] == 401
    assert "deleted user shop-0ld" in containers.logs(name)
    assert "kittest-kept" in containers.exec(name, "rabbitmqctl", "-q", "list_vhosts").stdout
    # Healthy through both boots, and Docker's checks left no trace in the log: a check that began an
    # AMQP handshake and hung up would log a warning every 10 s.
    assert containers.exec(name, "healthcheck.sh").returncode == 0
    assert "AMQP connection" not in containers.logs(name), containers.logs(name)[-2000:]


def test_rabbitmq_runs_no_root_process_while_its_job_prunes_users(containers, kit_ref):
    """The entrypoint starts the user-pruning job as user rabbitmq and execs the server as it: no
    process of the container is root's while the job waits for the node to boot (a job started as
    the list `[ ] || setpriv ... &` kept a root bash as its parent all that time)."""
    name = start_rabbitmq(containers, kit_ref("rabbitmq"), containers.volume())
    deadline = time.monotonic() + 60
    while True:
        uids = proc_uids(containers, name)
        if any("prune-users" in command for commands in uids.values() for command in commands):
            break
        assert time.monotonic() < deadline, f"no prune-users job: {uids}"
        time.sleep(0.2)
    assert set(uids) == {999}, uids


def test_rabbitmq_refuses_to_start_without_its_definitions(containers, kit_ref):
    name = containers.run(kit_ref("rabbitmq"))
    assert containers.wait_exit(name, 30) != 0
    assert "definitions file /etc/rabbitmq/definitions.json" in containers.logs(name)


# ---------------------------------------------------------------- data across a restart


def test_mariadb_keeps_its_data_across_a_restart(containers, kit_ref):
    name, volume = start(containers, kit_ref, "mariadb")
    pwd = {"MYSQL_PWD": PASSWORD}
    sql = "CREATE TABLE t (v VARCHAR(20)); INSERT INTO t VALUES ('kept');"
    containers.exec(name, "mariadb", "-h127.0.0.1", "-ushop", "shop", "-e", sql, env=pwd)
    containers.restart(name)
    containers.wait_healthy(name, 120)
    logs = containers.logs(name)
    assert logs.count("Initialising the database") == 1, "the datadir was initialised twice"
    out = containers.exec(
        name, "mariadb", "-h127.0.0.1", "-ushop", "shop", "-N", "-e", "SELECT v FROM t", env=pwd
    ).stdout
    assert out.strip() == "kept"


def test_redis_keeps_its_data_across_a_restart(containers, kit_ref):
    name, _volume = start(containers, kit_ref, "redis")
    assert redis_command(containers.ip(name), "SET", "kittest", "kept", password=PASSWORD) == "+OK"
    containers.restart(name)
    containers.wait_healthy(name, 60)
    assert redis_command(containers.ip(name), "GET", "kittest", password=PASSWORD) == "kept"


def test_prometheus_keeps_its_data_across_a_restart(containers, kit_ref):
    name, _volume = start(containers, kit_ref, "prometheus")
    query = "http://{}:9090/api/v1/query?query=up&time={:.3f}"
    deadline = time.monotonic() + 30
    while True:
        before = time.time()
        result = json.loads(http(query.format(containers.ip(name), before))[1])["data"]["result"]
        if result or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert result, "prometheus scraped nothing"
    containers.restart(name)
    containers.wait_healthy(name, 60)
    # A sample from before the restart can only come from the TSDB in the volume.
    result = json.loads(http(query.format(containers.ip(name), before))[1])["data"]["result"]
    assert result and float(result[0]["value"][0]) == pytest.approx(before, abs=0.01)


def test_alertmanager_keeps_its_silences_across_a_restart(containers, kit_ref):
    name, _volume = start(containers, kit_ref, "alertmanager")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    silence = {
        "matchers": [{"name": "alertname", "value": "kittest", "isRegex": False}],
        "startsAt": now,
        "endsAt": later,
        "createdBy": "kittest",
        "comment": "kept",
    }
    url = f"http://{containers.ip(name)}:9093/api/v2/silences"
    status, body, _headers = http(url, "POST", json.dumps(silence).encode())
    assert status == 200, body
    # Alertmanager writes silences to its data dir on shutdown and every 15 minutes.
    containers.restart(name)
    containers.wait_healthy(name, 60)
    silences = json.loads(http(f"http://{containers.ip(name)}:9093/api/v2/silences")[1])
    assert [s["comment"] for s in silences if s["status"]["state"] == "active"] == ["kept"]


def test_registry_keeps_its_blobs_across_a_restart(containers, kit_ref):
    name, _volume = start(containers, kit_ref, "registry")
    blob = b"kittest blob " + os.urandom(8)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    base = f"http://{containers.ip(name)}:5000"
    status, _body, headers = http(f"{base}/v2/kittest/blobs/uploads/", "POST", b"")
    assert status == 202
    location = headers["Location"]
    location = location if location.startswith("http") else base + location
    separator = "&" if "?" in location else "?"
    request = urllib.request.Request(f"{location}{separator}digest={digest}", data=blob, method="PUT")  # noqa: S310 - http:// URLs of our own test containers
    request.add_header("Content-Type", "application/octet-stream")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http:// URLs of our own test containers
        assert response.status == 201
    containers.restart(name)
    containers.wait_healthy(name, 60)
    status, body, _headers = http(f"http://{containers.ip(name)}:5000/v2/kittest/blobs/{digest}")
    assert status == 200 and body == blob


# ---------------------------------------------------------------- interfaces


def test_traefik_serves_its_ping_and_the_config_path(containers, kit_ref):
    name, _volume = start(containers, kit_ref, "traefik")
    assert http(f"http://{containers.ip(name)}:8080/ping")[:2] == (200, b"OK")
    assert containers.exec(name, "traefik", "version").stdout.split()[:2] == ["Version:", "3.7.15"]


def test_socket_proxy_answers_only_the_reads_of_traefiks_swarm_provider(containers, kit_ref):
    name, _volume = start(containers, kit_ref, "socket-proxy")

    def status(method, path):
        return containers.exec(
            name, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method,
            "--unix-socket", "/run/docker-api/docker.sock", f"http://engine{path}",
        ).stdout  # fmt: skip

    engine = ["/_ping", "/v1.41/version", "/info", "/networks"]
    assert {p: status("GET", p) for p in engine} == dict.fromkeys(engine, "200")
    # Passed to the engine, which answers 503 where this host is no swarm manager yet.
    swarm = ["/services", "/v1.41/tasks", "/nodes"]
    assert {p: status("GET", p) in ("200", "503") for p in swarm} == dict.fromkeys(swarm, True)
    denied = [
        ("GET", "/secrets"), ("GET", "/configs"), ("GET", "/containers/json"), ("GET", "/services/x/logs"),
        ("GET", "/v1.41/containers/x/archive"), ("POST", "/services/create"), ("POST", "/v1.41/containers/create"),
        ("DELETE", "/networks/x"), ("POST", "/services/x/update"), ("GET", "/events"),
    ]  # fmt: skip
    assert {f"{m} {p}": status(m, p) for m, p in denied} == dict.fromkeys((f"{m} {p}" for m, p in denied), "403")


def test_nginx_serves_html_and_conf_d(containers, kit_ref):
    name, _volume = start(containers, kit_ref, "nginx")
    status, body, _headers = http(f"http://{containers.ip(name)}/")
    assert status == 200 and b"nginx" in body
    containers.exec(name, "test", "-f", "/etc/nginx/conf.d/default.conf")


def test_node_exporter_serves_metrics(containers, kit_ref):
    name, _volume = start(containers, kit_ref, "node-exporter")
    status, body, _headers = http(f"http://{containers.ip(name)}:9100/metrics")
    assert status == 200 and b"node_cpu_seconds_total" in body


def test_python_has_the_service_libraries(containers, kit_ref):
    name, _volume = start(containers, kit_ref, "python")
    containers.exec(name, "python3", "-c", "import pymysql, redis, pika, websockets, yaml")


def test_pythons_health_check_fails_on_anything_but_a_2xx_answer(containers, kit_ref):
    """http-healthcheck (a raw HTTP/1.0 request): healthy on the server's 200 for /healthz, unhealthy
    on its 404, on a port nothing listens on and on a URL that is not http://, naming the URL."""
    name, _volume = start(containers, kit_ref, "python")
    assert containers.exec(name, "http-healthcheck").returncode == 0
    for url, why in (
        ("http://127.0.0.1:8080/missing", "404"),
        ("http://127.0.0.1:8081/healthz", "refused"),
        ("https://127.0.0.1:8080/healthz", "not an http:// URL"),
    ):
        result = containers.exec(name, "http-healthcheck", url, check=False)
        assert result.returncode == 1 and f"unhealthy: {url}" in result.stderr and why in result.stderr, result
