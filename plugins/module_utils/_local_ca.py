# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A private CA and the edge's server certificate, for inventories without a certificate of their own.

vault_values (playbooks/vault_init.yml) keeps the CA's key and both certificates in the vault.
Keys are ECDSA P-256; the server certificate names every DNS name and IP address given.
"""

from __future__ import annotations

import datetime
import ipaddress

CA_NAME = "ShopStream local CA"


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _pem_key(key):
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - cryptography comes with ansible-core

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _pem_cert(cert):
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _alt_names(names):
    from cryptography import x509  # noqa: PLC0415

    out = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def issue_ca(days=3650, now=None):
    """(certificate PEM, key PEM) of a new CA that may sign server certificates only."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key)


def issue_server(ca_certificate, ca_key, names, days=397, now=None):
    """(certificate PEM, key PEM) for ``names`` (DNS names and IP addresses), signed by the CA."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415

    if not names:
        raise ValueError("a server certificate needs at least one name")
    now = now or _now()
    ca_cert = x509.load_pem_x509_certificate(ca_certificate.encode())
    signer = serialization.load_pem_private_key(ca_key.encode(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(_alt_names(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
        .sign(signer, hashes.SHA256())
    )
    return _pem_cert(cert), _pem_key(key)


def reissue_reason(certificate, ca_certificate, names, renew_days=30, now=None):
    """Why the server certificate must be issued again (None when it is fine): not from this CA,
    a name it does not carry, or fewer than ``renew_days`` days left."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415

    now = now or _now()
    try:
        cert = x509.load_pem_x509_certificate(certificate.encode())
        ca_cert = x509.load_pem_x509_certificate(ca_certificate.encode())
    except ValueError as exc:
        return f"it does not parse ({exc})"
    if cert.issuer != ca_cert.subject:
        return "it is not signed by the local CA"
    try:
        cert.verify_directly_issued_by(ca_cert)  # cryptography >= 40
    except (InvalidSignature, ValueError, TypeError):
        return "it is not signed by the local CA"
    try:
        carried = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        carried = x509.SubjectAlternativeName([])
    have = {str(v) for v in carried.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in carried.get_values_for_type(x509.IPAddress)}
    wanted = {str(ipaddress.ip_address(n)) if _is_ip(n) else n for n in names}
    missing = sorted(wanted - have)
    if missing:
        return f"it does not name {', '.join(missing)}"
    expires = cert.not_valid_after_utc  # cryptography >= 42
    if expires - now < datetime.timedelta(days=renew_days):
        return f"it expires on {expires:%Y-%m-%d}, in fewer than {renew_days} days"
    return None


def _is_ip(name):
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
