# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Password hashes that consumers read from secret-backed files, deterministic for idempotence."""

import base64
import hashlib
import hmac


def rabbitmq_password_hash(password, key):
    """base64(salt + SHA-256(salt + password)), RabbitMQ's rabbit_password_hashing_sha256.

    The 4-byte salt is an HMAC of the password keyed with ``key``: the same password always
    gives the same hash, so the secret holding it keeps its version.
    """
    salt = hmac.new(str(key).encode(), b"rabbitmq:" + str(password).encode(), hashlib.sha256).digest()[:4]
    return base64.b64encode(salt + hashlib.sha256(salt + str(password).encode()).digest()).decode("ascii")


BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def htpasswd_bcrypt(password, user, key, cost=10):
    """A `user:$2b$...` line for Traefik's basicAuth users file, its salt derived from ``key``.

    Needs the Python package bcrypt on the controller (the standard library's crypt module is
    gone from Python 3.13). bcrypt reads at most 72 bytes of a password: a longer one is refused
    rather than silently cut.
    """
    try:
        import bcrypt  # noqa: PLC0415 - only this filter needs it
    except ImportError as exc:  # the message says what to install
        raise ValueError(
            "htpasswd_bcrypt needs the Python package bcrypt on the controller: pip install bcrypt"
        ) from exc
    secret = str(password).encode("utf-8")
    if len(secret) > 72:
        raise ValueError(f"the password of {user} is {len(secret)} bytes long; bcrypt reads at most 72")
    seed = hmac.new(str(key).encode(), b"htpasswd:" + str(user).encode(), hashlib.sha256).digest()
    salt = "".join(BCRYPT_ALPHABET[b % 64] for b in seed[:21]) + BCRYPT_ALPHABET[seed[21] % 4 * 16]
    hashed = bcrypt.hashpw(secret, f"$2b${int(cost):02d}${salt}".encode("ascii")).decode("ascii")
    return f"{user}:{hashed}"


class FilterModule:
    def filters(self):
        return {"rabbitmq_password_hash": rabbitmq_password_hash, "htpasswd_bcrypt": htpasswd_bcrypt}
