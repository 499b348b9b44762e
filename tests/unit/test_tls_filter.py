"""tls_pair_problems: a certificate and key are refused, naming their variables, when they do not
parse, do not belong together, or are not valid now; a good pair passes."""

import datetime
import importlib.util
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_path = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "tls.py"
_spec = importlib.util.spec_from_file_location("tls_filter", _path)
tls = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tls)

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
CERT_VAR, KEY_VAR = "shopstream_tls_certificate", "vault_shopstream_tls_key"


def key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def cert_pem(key, not_before, not_after):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def keys():
    return ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())


def check(cert, key, **kwargs):
    return tls.tls_pair_problems(cert, key, CERT_VAR, KEY_VAR, now=NOW, **kwargs)


def test_a_valid_pair_passes(keys):
    key = keys[0]
    assert check(cert_pem(key, NOW - datetime.timedelta(days=1), NOW + datetime.timedelta(days=90)), key_pem(key)) == []


def test_a_key_of_another_certificate_is_refused_naming_both(keys):
    cert = cert_pem(keys[0], NOW - datetime.timedelta(days=1), NOW + datetime.timedelta(days=90))
    [problem] = check(cert, key_pem(keys[1]))
    assert problem.startswith(f"{KEY_VAR} is not the key of {CERT_VAR}")


def test_expired_not_yet_valid_and_expiring_soon_are_refused(keys):
    key = keys[0]
    expired = cert_pem(key, NOW - datetime.timedelta(days=90), NOW - datetime.timedelta(days=1))
    assert check(expired, key_pem(key)) == [f"{CERT_VAR} expired on 2026-11-30 00:00 UTC: renew it"]
    future = cert_pem(key, NOW + datetime.timedelta(days=1), NOW + datetime.timedelta(days=90))
    assert check(future, key_pem(key)) == [f"{CERT_VAR} is not valid before 2026-12-02 00:00 UTC"]
    soon = cert_pem(key, NOW - datetime.timedelta(days=1), NOW + datetime.timedelta(days=3))
    assert check(soon, key_pem(key), min_days=7) == [
        f"{CERT_VAR} expires on 2026-12-04 00:00 UTC, within 7 days: renew it"
    ]


def test_garbage_is_refused_naming_each_variable():
    assert check("not a cert", "not a key") == [
        f"{CERT_VAR} is not a PEM certificate (-----BEGIN CERTIFICATE-----)",
        f"{KEY_VAR} is not an unencrypted PEM private key (-----BEGIN ... PRIVATE KEY-----)",
    ]
