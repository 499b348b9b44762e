# Copyright (c) 2025, ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What is wrong with a TLS certificate and its key, before they become Docker secrets."""

from __future__ import annotations

import datetime

DOCUMENTATION = """
name: tls_pair_problems
short_description: What is wrong with a PEM certificate and its private key
description:
  - Returns a list of messages, empty when the certificate (the first one of a chain) parses, is
    valid now and for at least O(min_days) more days, and belongs to the private key.
  - Each message names the variable that holds the value and says what to do.
  - Needs the Python package cryptography on the controller (ansible-core depends on it).
positional: certificate, key, certificate_var, key_var
options:
  _input:
    description: The certificate, PEM (a chain may follow it).
    type: str
    required: true
  key:
    description: The private key, PEM (unencrypted).
    type: str
    required: true
  certificate_var:
    description: The name of the variable holding the certificate, for the messages.
    type: str
    default: the certificate
  key_var:
    description: The name of the variable holding the key, for the messages.
    type: str
    default: the key
  min_days:
    description: Days the certificate must still be valid.
    type: int
    default: 0
"""

EXAMPLES = """
problems: "{{ shopstream_tls_certificate | shopstream.swarm.tls_pair_problems(vault_shopstream_tls_key,
              'shopstream_tls_certificate', 'vault_shopstream_tls_key') }}"
"""

RETURN = """
_value:
  description: One message per problem; empty when the pair is usable.
  type: list
  elements: str
"""


def tls_pair_problems(certificate, key, certificate_var="the certificate", key_var="the key", min_days=0, now=None):
    try:
        from cryptography import x509  # noqa: PLC0415 - only this filter needs it
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    except ImportError:
        return ["checking a TLS certificate needs the Python package cryptography on the controller"]
    problems = []
    cert = private = None
    try:
        cert = x509.load_pem_x509_certificate(str(certificate or "").encode())
    except ValueError:
        problems.append(f"{certificate_var} is not a PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        private = serialization.load_pem_private_key(str(key or "").encode(), password=None)
    except (ValueError, TypeError):
        problems.append(f"{key_var} is not an unencrypted PEM private key (-----BEGIN ... PRIVATE KEY-----)")
    if cert is None:
        return problems
    now = now or datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = _validity(cert)
    if not_after <= now:
        problems.append(f"{certificate_var} expired on {not_after:%Y-%m-%d %H:%M} UTC: renew it")
    elif not_after <= now + datetime.timedelta(days=int(min_days)):
        problems.append(
            f"{certificate_var} expires on {not_after:%Y-%m-%d %H:%M} UTC, within {int(min_days)} days: renew it"
        )
    if not_before > now:
        problems.append(f"{certificate_var} is not valid before {not_before:%Y-%m-%d %H:%M} UTC")
    if private is not None:
        pub = serialization.PublicFormat.SubjectPublicKeyInfo
        enc = serialization.Encoding.DER
        if cert.public_key().public_bytes(enc, pub) != private.public_key().public_bytes(enc, pub):
            problems.append(
                f"{key_var} is not the key of {certificate_var} (their public keys differ): "
                "give the key the certificate was issued for"
            )
    return problems


def _validity(cert):
    """notBefore and notAfter, timezone-aware (cryptography before 42 has naive UTC datetimes only)."""
    if hasattr(cert, "not_valid_after_utc"):
        return cert.not_valid_before_utc, cert.not_valid_after_utc
    utc = datetime.timezone.utc
    return cert.not_valid_before.replace(tzinfo=utc), cert.not_valid_after.replace(tzinfo=utc)


class FilterModule:
    def filters(self):
        return {"tls_pair_problems": tls_pair_problems}
