"""HS256 JWTs: issue, verify, expiry, signatures, algorithm confusion."""

import base64
import hashlib
import hmac
import json

import pytest
from shopstream import tokens

KEY = "k" * 32
NOW = 1_700_000_000


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header, claims, key=KEY):
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    sig = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


def claims(**overrides):
    base = {"sub": "demo", "iat": NOW, "exp": NOW + 600, "iss": "shopstream-auth"}
    base.update(overrides)
    return base


def test_issue_then_verify():
    token = tokens.issue_jwt(KEY, "demo", 600, now=NOW)
    got = tokens.verify_jwt(token, [KEY], now=NOW + 10)
    assert got["sub"] == "demo"
    assert got["exp"] - got["iat"] == 600
    header = json.loads(tokens.b64url_decode(token.split(".")[0]))
    assert header == {"alg": "HS256", "typ": "JWT"}
    assert "=" not in token


def test_token_matches_an_independent_hs256_implementation():
    token = tokens.issue_jwt(KEY, "demo", 600, now=NOW)
    head, body, sig = token.split(".")
    expected = hmac.new(KEY.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert tokens.b64url_decode(sig) == expected
    assert tokens.verify_jwt(forge({"alg": "HS256", "typ": "JWT"}, claims()), [KEY], now=NOW)["sub"] == "demo"


def test_expired_token_is_rejected_after_the_leeway():
    token = tokens.issue_jwt(KEY, "demo", 60, now=NOW)
    assert tokens.verify_jwt(token, [KEY], now=NOW + 60 + 29)
    with pytest.raises(tokens.JWTError, match="expired"):
        tokens.verify_jwt(token, [KEY], now=NOW + 60 + 30)


def test_token_from_the_future_is_rejected():
    with pytest.raises(tokens.JWTError, match="not yet valid"):
        tokens.verify_jwt(tokens.issue_jwt(KEY, "demo", 600, now=NOW + 3600), [KEY], now=NOW)


def test_bad_signature_is_rejected():
    token = tokens.issue_jwt("x" * 32, "demo", 600, now=NOW)
    with pytest.raises(tokens.JWTError, match="signature"):
        tokens.verify_jwt(token, [KEY], now=NOW)


def test_tampered_claims_are_rejected():
    head, _payload, sig = tokens.issue_jwt(KEY, "demo", 600, now=NOW).split(".")
    evil = b64(json.dumps(claims(sub="admin")).encode())
    with pytest.raises(tokens.JWTError, match="signature"):
        tokens.verify_jwt(f"{head}.{evil}.{sig}", [KEY], now=NOW)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "HS512", "HS384", "RS256", "ES256", None])
def test_algorithm_other_than_hs256_is_rejected_even_if_signed(alg):
    header = {"typ": "JWT"} if alg is None else {"alg": alg, "typ": "JWT"}
    with pytest.raises(tokens.JWTError, match="algorithm"):
        tokens.verify_jwt(forge(header, claims()), [KEY], now=NOW)


def test_unsigned_alg_none_token_is_rejected():
    token = f"{b64(json.dumps({'alg': 'none'}).encode())}.{b64(json.dumps(claims()).encode())}."
    with pytest.raises(tokens.JWTError):
        tokens.verify_jwt(token, [KEY], now=NOW)


def test_rs256_public_key_used_as_hmac_secret_is_rejected():
    public_key = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBg...\n-----END PUBLIC KEY-----\n"
    token = forge({"alg": "RS256", "typ": "JWT"}, claims(), key=public_key)
    with pytest.raises(tokens.JWTError, match="algorithm"):
        tokens.verify_jwt(token, [public_key], now=NOW)


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d", "!!.e30.", "e30.e30.e30", "x" * 9000, None, b"bytes.are.no"],
)
def test_malformed_tokens_are_rejected(token):
    with pytest.raises(tokens.JWTError):
        tokens.verify_jwt(token, [KEY], now=NOW)


@pytest.mark.parametrize("missing", ["exp", "iat", "sub"])
def test_required_claims(missing):
    body = claims()
    del body[missing]
    with pytest.raises(tokens.JWTError):
        tokens.verify_jwt(forge({"alg": "HS256"}, body), [KEY], now=NOW)


def test_non_numeric_or_boolean_exp_is_rejected():
    for exp in ("9999999999", True, None):
        with pytest.raises(tokens.JWTError):
            tokens.verify_jwt(forge({"alg": "HS256"}, claims(exp=exp)), [KEY], now=NOW)


@pytest.mark.parametrize("sub", ["", "a\r\nX-Shopstream-User: admin", "x" * 300, 42])
def test_subject_must_be_a_printable_name(sub):
    with pytest.raises(tokens.JWTError, match="subject"):
        tokens.verify_jwt(forge({"alg": "HS256"}, claims(sub=sub)), [KEY], now=NOW)


def test_wrong_issuer_is_rejected():
    with pytest.raises(tokens.JWTError, match="issuer"):
        tokens.verify_jwt(forge({"alg": "HS256"}, claims(iss="someone-else")), [KEY], now=NOW)


def test_crit_header_is_rejected():
    with pytest.raises(tokens.JWTError, match="header"):
        tokens.verify_jwt(forge({"alg": "HS256", "crit": ["exp"]}, claims()), [KEY], now=NOW)


def test_previous_key_verifies_during_rotation():
    old = "o" * 32
    token = tokens.issue_jwt(old, "demo", 600, now=NOW)
    assert tokens.verify_jwt(token, [KEY, old], now=NOW)["sub"] == "demo"
    with pytest.raises(tokens.JWTError):
        tokens.verify_jwt(token, [KEY], now=NOW)


def test_empty_key_list_verifies_nothing():
    with pytest.raises(tokens.JWTError):
        tokens.verify_jwt(tokens.issue_jwt(KEY, "demo", 600, now=NOW), [None, ""], now=NOW)


def test_password_hashes():
    encoded = tokens.hash_password("s3cret!", iterations=1000)
    assert "s3cret" not in encoded
    assert tokens.verify_password("s3cret!", encoded)
    assert not tokens.verify_password("s3cret", encoded)
    assert not tokens.verify_password("s3cret!", "garbage")
    assert tokens.hash_password("a", iterations=1000) != tokens.hash_password("a", iterations=1000)
