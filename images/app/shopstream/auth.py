"""auth: POST /api/auth/login checks a user in MariaDB and issues an HS256 JWT.

Each account has its own back-off besides the gateway's per-client limit: after LOGIN_FREE_FAILURES
failed logins in a row it is locked for 1 s, then 2, 4, ... up to LOGIN_LOCKOUT_MAX_SECONDS, and a
locked account answers 429 with Retry-After without looking at the password. Unknown user names are
counted alike, so the answers tell nobody which accounts exist. A successful login clears the count.

The demo user's password comes from a secret file (DEMO_PASSWORD_FILE); a rotation gives auth the
replaced one too (DEMO_PASSWORD_PREVIOUS_FILE). Each task accepts the password in MariaDB (the last
started task's) and the values of its own files, so that during the rolling update the old and the
new password both log in on every task; once the rotation retires the replaced value, no task
accepts it.
"""

import hmac
import logging
import math
import threading
import time

from . import clients, config, server, tokens

LOG = logging.getLogger("shopstream.auth")
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  id INT AUTO_INCREMENT PRIMARY KEY,
  username VARCHAR(64) NOT NULL UNIQUE,
  password_hash VARCHAR(255) NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""
FAILURES_SCHEMA = """
CREATE TABLE IF NOT EXISTS login_failures (
  username VARCHAR(64) NOT NULL PRIMARY KEY,
  failures INT NOT NULL,
  locked_until DOUBLE NOT NULL DEFAULT 0,
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""
# Verified when the user does not exist, so that a login takes as long either way.
_DUMMY_HASH = tokens.hash_password("not-a-password", salt=b"0" * 16)


def file_accepts(password, values):
    """Whether ``password`` is one of the demo user's ``values`` (its secret files), compared in constant time."""
    given = password.encode("utf-8")
    return any(hmac.compare_digest(given, value.encode("utf-8")) for value in values if value)


def lockout_seconds(failures, free, cap):
    """How long an account is locked after its ``failures``-th failed login in a row."""
    return 0 if failures < free else min(2 ** (failures - free), cap)


def build():
    db = clients.mysql_config()
    free_failures = config.env_int("LOGIN_FREE_FAILURES", 5, 1)
    lockout_cap = config.env_int("LOGIN_LOCKOUT_MAX_SECONDS", 900, 1)
    key = config.read_secret("JWT_SIGNING_KEY_FILE", "jwt_signing_key", min_length=32)
    ttl = config.env_int("JWT_TTL_SECONDS", 3600, 60)
    issuer = config.env("JWT_ISSUER", "shopstream-auth")
    demo_user = config.env("DEMO_USER", "demo")
    demo_password = config.read_secret("DEMO_PASSWORD_FILE", "demo_password", required=False, min_length=8)
    demo_previous = config.read_secret(
        "DEMO_PASSWORD_PREVIOUS_FILE", "demo_password_previous", required=False, min_length=8
    )
    demo_values = [demo_password, demo_previous] if demo_password is not None else []
    app = server.App("auth")
    app.health_checks["mariadb"] = lambda: clients.mysql_ping(db)

    def init():
        conn = clients.mysql_connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(SCHEMA)
                cur.execute(FAILURES_SCHEMA)
                cur.execute("DELETE FROM login_failures WHERE updated_at < NOW() - INTERVAL 1 DAY")
                if demo_password is not None:
                    cur.execute("SELECT password_hash FROM users WHERE username=%s", (demo_user,))
                    row = cur.fetchone()
                    if row is None:
                        cur.execute(
                            "INSERT INTO users (username, password_hash) VALUES (%s, %s)",
                            (demo_user, tokens.hash_password(demo_password)),
                        )
                    elif not tokens.verify_password(demo_password, row["password_hash"]):  # the secret was rotated
                        cur.execute(
                            "UPDATE users SET password_hash=%s WHERE username=%s",
                            (tokens.hash_password(demo_password), demo_user),
                        )
            conn.commit()
        finally:
            conn.close()
        LOG.info("schema ready", extra={"demo_user_seeded": demo_password is not None})
        app.ready.set()

    def login(req):
        if not app.ready.is_set():
            raise server.HTTPError(503, "starting")
        data = req.json()
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            raise server.HTTPError(400, "username and password are required")
        name = username[:64]
        conn = clients.mysql_connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT failures, locked_until FROM login_failures WHERE username=%s", (name,))
                guard = cur.fetchone()
                now = time.time()
                if guard and guard["locked_until"] > now:
                    app.metrics.inc("shopstream_auth_logins_total", "Login attempts.", result="locked")
                    raise server.HTTPError(
                        429,
                        "too many failed logins for this account",
                        {"Retry-After": str(math.ceil(guard["locked_until"] - now))},
                    )
                cur.execute("SELECT password_hash FROM users WHERE username=%s", (name,))
                row = cur.fetchone()
                valid = (
                    tokens.verify_password(password, row["password_hash"] if row else _DUMMY_HASH) and row is not None
                ) or (name == demo_user and row is not None and file_accepts(password, demo_values))
                if valid and guard:
                    cur.execute("DELETE FROM login_failures WHERE username=%s", (name,))
                elif not valid:  # counted in the database, so that concurrent attempts all count
                    cur.execute(
                        "INSERT INTO login_failures (username, failures) VALUES (%s, 1) "
                        "ON DUPLICATE KEY UPDATE failures = failures + 1",
                        (name,),
                    )
                    cur.execute("SELECT failures FROM login_failures WHERE username=%s", (name,))
                    lock = lockout_seconds(cur.fetchone()["failures"], free_failures, lockout_cap)
                    if lock:
                        cur.execute(
                            "UPDATE login_failures SET locked_until=%s WHERE username=%s", (time.time() + lock, name)
                        )
                        LOG.warning("account locked after failed logins", extra={"user": name, "seconds": lock})
            conn.commit()
        finally:
            conn.close()
        if not valid:
            app.metrics.inc("shopstream_auth_logins_total", "Login attempts.", result="failure")
            LOG.info("login failed", extra={"user": name})
            raise server.HTTPError(401, "invalid username or password")
        app.metrics.inc("shopstream_auth_logins_total", "Login attempts.", result="success")
        token = tokens.issue_jwt(key, username, ttl, issuer=issuer)
        return 200, {"token": token, "token_type": "Bearer", "expires_in": ttl}

    app.route("POST", "/api/auth/login", login)
    threading.Thread(target=server.retry_forever, args=("schema setup", init, app.stopping), daemon=True).start()
    return app
