"""Password hashes for secret-backed files: what their consumers check, and stable across runs."""

import base64
import hashlib

import bcrypt
import pytest

from ansible_collections.shopstream.swarm.plugins.filter.credentials import htpasswd_bcrypt, rabbitmq_password_hash


def test_rabbitmq_hash_is_what_rabbit_password_hashing_sha256_checks():
    raw = base64.b64decode(rabbitmq_password_hash("s3cret", "key"))
    salt, digest = raw[:4], raw[4:]
    assert digest == hashlib.sha256(salt + b"s3cret").digest()


def test_rabbitmq_hash_is_stable_and_keyed():
    assert rabbitmq_password_hash("pw", "k1") == rabbitmq_password_hash("pw", "k1")
    assert rabbitmq_password_hash("pw", "k1") != rabbitmq_password_hash("pw", "k2")
    assert rabbitmq_password_hash("pw", "k1") != rabbitmq_password_hash("pw2", "k1")


def test_htpasswd_line_verifies_with_bcrypt_and_is_stable():
    line = htpasswd_bcrypt("s3cret", "admin", "key")
    user, hashed = line.split(":", 1)
    assert user == "admin" and hashed.startswith("$2b$10$")
    assert bcrypt.checkpw(b"s3cret", hashed.encode())
    assert not bcrypt.checkpw(b"wrong", hashed.encode())
    assert htpasswd_bcrypt("s3cret", "admin", "key") == line
    assert "s3cret" not in line


def test_htpasswd_keeps_the_hash_of_earlier_releases_and_refuses_what_bcrypt_would_cut():
    # The line crypt(3) made for these inputs before: the dashboard users' secret keeps its version.
    assert (
        htpasswd_bcrypt("s3cret", "admin", "key")
        == "admin:$2b$10$ph/M4RHpQGSc4MUDLdeD4O8miguJtz80ZF2EEKmcTPcodKTvUGuH2"
    )
    with pytest.raises(ValueError, match="admin is 73 bytes long; bcrypt reads at most 72"):
        htpasswd_bcrypt("x" * 73, "admin", "key")
