"""auth: POST /api/auth/login checks a user in MariaDB and issues an HS256 JWT."""

import logging
import threading

from . import common

LOG = logging.getLogger("shopstream.auth")
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  id INT AUTO_INCREMENT PRIMARY KEY,
  username VARCHAR(64) NOT NULL UNIQUE,
  password_hash VARCHAR(255) NOT NULL,
  created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""
# Verified when the user does not exist, so that a login takes as long either way.
_DUMMY_HASH = common.hash_password("not-a-password", salt=b"0" * 16)


def build():
    db = common.mysql_config()
    key = common.read_secret("JWT_SIGNING_KEY_FILE", "jwt_signing_key", min_length=32)
    ttl = common.env_int("JWT_TTL_SECONDS", 3600, 60)
    issuer = common.env("JWT_ISSUER", "shopstream-auth")
    demo_user = common.env("DEMO_USER", "demo")
    demo_password = common.read_secret("DEMO_PASSWORD_FILE", "demo_password", required=False, min_length=8)
    app = common.App("auth")
    app.health_checks["mariadb"] = lambda: common.mysql_ping(db)

    def init():
        conn = common.mysql_connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute(SCHEMA)
                if demo_password is not None:
                    cur.execute("SELECT password_hash FROM users WHERE username=%s", (demo_user,))
                    row = cur.fetchone()
                    if row is None:
                        cur.execute(
                            "INSERT INTO users (username, password_hash) VALUES (%s, %s)",
                            (demo_user, common.hash_password(demo_password)),
                        )
                    elif not common.verify_password(demo_password, row["password_hash"]):  # the secret was rotated
                        cur.execute(
                            "UPDATE users SET password_hash=%s WHERE username=%s",
                            (common.hash_password(demo_password), demo_user),
                        )
            conn.commit()
        finally:
            conn.close()
        LOG.info("schema ready", extra={"demo_user_seeded": demo_password is not None})
        app.ready.set()

    def login(req):
        if not app.ready.is_set():
            raise common.HTTPError(503, "starting")
        data = req.json()
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            raise common.HTTPError(400, "username and password are required")
        conn = common.mysql_connect(db)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT password_hash FROM users WHERE username=%s", (username[:64],))
                row = cur.fetchone()
        finally:
            conn.close()
        valid = common.verify_password(password, row["password_hash"] if row else _DUMMY_HASH) and row is not None
        if not valid:
            app.metrics.inc("shopstream_auth_logins_total", "Login attempts.", result="failure")
            LOG.info("login failed", extra={"user": username[:64]})
            raise common.HTTPError(401, "invalid username or password")
        app.metrics.inc("shopstream_auth_logins_total", "Login attempts.", result="success")
        token = common.issue_jwt(key, username, ttl, issuer=issuer)
        return 200, {"token": token, "token_type": "Bearer", "expires_in": ttl}

    app.route("POST", "/api/auth/login", login)
    threading.Thread(target=common.retry_forever, args=("schema setup", init, app.stopping), daemon=True).start()
    return app
