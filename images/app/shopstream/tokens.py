"""HS256 JWTs (every service verifies the caller's token itself: who is asking never comes from a
header) and password hashes (PBKDF2).
"""

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid

from .config import env, read_secret

_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class JWTError(Exception):
    pass


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise JWTError("malformed base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key, signing_input):
    return hmac.new(key, signing_input, hashlib.sha256).digest()


def _as_key(key):
    return key.encode("utf-8") if isinstance(key, str) else key


def issue_jwt(key, subject, ttl, issuer="shopstream-auth", now=None, extra=None):
    now = int(time.time() if now is None else now)
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"sub": subject, "iat": now, "exp": now + int(ttl), "iss": issuer, "jti": uuid.uuid4().hex}
    claims.update(extra or {})
    signing_input = ".".join(b64url_encode(json.dumps(p, separators=(",", ":")).encode()) for p in (header, claims))
    return signing_input + "." + b64url_encode(_sign(_as_key(key), signing_input.encode("ascii")))


def verify_jwt(token, keys, issuer="shopstream-auth", now=None, leeway=30):
    """The claims of a valid HS256 token signed by one of keys; JWTError otherwise.

    The algorithm is fixed: a header naming anything but HS256 (none, RS256, ...) is rejected before any
    signature check, so a token cannot choose how it is verified.
    """
    if not isinstance(token, str) or token.count(".") != 2 or len(token) > 8192:
        raise JWTError("malformed token")
    head_b64, body_b64, sig_b64 = token.split(".")
    try:
        header = json.loads(b64url_decode(head_b64))
    except ValueError:
        raise JWTError("malformed header") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise JWTError("unsupported algorithm")
    if header.get("typ", "JWT") != "JWT" or "crit" in header:
        raise JWTError("unsupported header")
    signature = b64url_decode(sig_b64)
    signing_input = f"{head_b64}.{body_b64}".encode("ascii")
    if not any(hmac.compare_digest(_sign(_as_key(k), signing_input), signature) for k in keys if k):
        raise JWTError("bad signature")
    try:
        claims = json.loads(b64url_decode(body_b64))
    except ValueError:
        raise JWTError("malformed claims") from None
    if not isinstance(claims, dict):
        raise JWTError("malformed claims")
    now = time.time() if now is None else now
    for name in ("exp", "iat"):
        if not isinstance(claims.get(name), (int, float)) or isinstance(claims.get(name), bool):
            raise JWTError(f"missing or invalid {name}")
    if now >= claims["exp"] + leeway:
        raise JWTError("token expired")
    if claims["iat"] > now + leeway or ("nbf" in claims and claims["nbf"] > now + leeway):
        raise JWTError("token not yet valid")
    if issuer and claims.get("iss") != issuer:
        raise JWTError("wrong issuer")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255 or not sub.isprintable():
        raise JWTError("missing or invalid subject")
    return claims


def bearer_token(headers):
    """(token, via_subprotocol): from Authorization, or from a WebSocket offering the protocols "bearer, TOKEN"
    (browsers cannot set headers on a WebSocket; a query string would end up in access logs)."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip(), False
    offered = [p.strip() for p in headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if len(offered) >= 2 and offered[0] == "bearer":
        return offered[1], True
    return None, False


def jwt_keys():
    """The keys a token may be signed with: the current one, and the one before the last rotation."""
    keys = [read_secret("JWT_SIGNING_KEY_FILE", "jwt_signing_key", min_length=32)]
    previous = read_secret("JWT_PREVIOUS_SIGNING_KEY_FILE", "jwt_previous_signing_key", required=False)
    if previous:  # accepted during a key rotation, never used to sign
        keys.append(previous)
    return keys


def token_verifier(keys=None, issuer=None):
    """A function: token -> verified claims (JWTError otherwise), over jwt_keys() and $JWT_ISSUER by default.

    No service takes an identity from a header: the gateway forwards the caller's own token and every
    service behind it verifies it again, so a request from inside the backend network names a user only
    with a token auth signed."""
    keys = jwt_keys() if keys is None else list(keys)
    issuer = env("JWT_ISSUER", "shopstream-auth") if issuer is None else issuer
    return lambda token: verify_jwt(token, keys, issuer=issuer)


# --- passwords -----------------------------------------------------------------------------------

PBKDF2_ITERATIONS = 120_000


def hash_password(password, salt=None, iterations=PBKDF2_ITERATIONS):
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"pbkdf2_sha256${iterations}${b64url_encode(salt)}${b64url_encode(digest)}"


def verify_password(password, encoded):
    try:
        scheme, iterations, salt, digest = encoded.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        expected = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), b64url_decode(salt), int(iterations))
        return hmac.compare_digest(expected, b64url_decode(digest))
    except (ValueError, JWTError):
        return False
