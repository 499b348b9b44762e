#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: vault_values
short_description: Generate and rotate random secret values in an Ansible Vault file
version_added: 0.2.0
author: ShopStream platform team (@shopstream)
description:
  - Runs on the controller (an action plugin). Decrypts O(path) with the password in
    O(password_file), generates a random value for every key of O(values) that is missing or empty,
    and for the keys named in O(rotate), and writes the file back encrypted; every other key is kept
    as it was.
  - Creates O(password_file) with mode 0600 when it does not exist, and refuses one that others can
    read.
  - Never returns or logs a value; the result names the keys only.
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.attributes.action
options:
  path:
    description: The vault file, e.g. C(inventories/prod/group_vars/all/vault.yml).
    type: path
    required: true
  password_file:
    description:
      - The vault password file; created (random, mode 0600) when missing, unless the run was given
        a vault password some other way (C(--vault-password-file) elsewhere, a password script,
        C(ANSIBLE_VAULT_PASSWORD_FILE)), which is then used.
    type: path
    required: true
  values:
    description:
      - Key to the value's C(length) and C(alphabet) (V(alnum), V(upper) or V(hex)). Letters and digits
        fit every consumer (MariaDB, URLs, shells, connection strings).
      - With C(keep_previous=true), a rotation keeps the value it replaces in C(<key>_previous), for
        consumers that must accept both during the rotation (a JWT verifier); until the first
        rotation C(<key>_previous) holds the current value.
    type: dict
    required: true
  rotate:
    description: Keys to give new values; V(all) rotates every key of O(values).
    type: list
    elements: str
    default: []
  retire:
    description:
      - Keys with C(keep_previous) whose C(<key>_previous) no consumer needs any more (every client
        of a server moved to the current value). C(<key>_previous) becomes the current value, so the
        server stops accepting the replaced one once it moves onto it.
    type: list
    elements: str
    default: []
    version_added: 0.3.0
  record:
    description:
      - Key to a value made elsewhere that the vault must hold, written when the vault's value differs
        (the swarm's autolock unlock key, which only Docker can make). Not a key of O(values) or its
        C(<key>_previous). Give the task C(no_log), as its arguments hold the values.
    type: dict
    version_added: 0.3.0
  tls:
    description:
      - A private CA and a server certificate for the platform's edge, kept in the vault, for an
        inventory that has no certificate of its own. The CA (ECDSA P-256, O(tls.ca_days)) is made
        once; the server certificate is issued when missing and issued again when it lacks a name of
        O(tls.names), has fewer than O(tls.renew_days) days left, or is not the CA's.
      - A certificate and key already in the vault without the CA's key are the site's own and are
        never touched.
    type: dict
    suboptions:
      certificate:
        description: Variable of the server certificate (PEM).
        type: str
        required: true
      key:
        description: Variable of its private key (PEM).
        type: str
        required: true
      ca_certificate:
        description: Variable of the CA's certificate (PEM); returned in RV(tls.ca_certificate), as it is public.
        type: str
        required: true
      ca_key:
        description: Variable of the CA's private key (PEM).
        type: str
        required: true
      names:
        description: DNS names and IP addresses the server certificate carries; the first is its subject.
        type: list
        elements: str
        required: true
      days:
        description: Validity of the server certificate, in days.
        type: int
        default: 397
      ca_days:
        description: Validity of the CA, in days.
        type: int
        default: 3650
      renew_days:
        description: Issue the server certificate again when it has fewer days left than this.
        type: int
        default: 30
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: Idempotent unless O(rotate) is given.
  action:
    support: full
notes:
  - The play itself still holds the old values after a rotation; load the file again with
    C(ansible.builtin.include_vars) (with C(no_log)) to use the new ones.
"""

EXAMPLES = r"""
- name: Create the vault with every platform secret (existing values are kept)
  shopstream.swarm.vault_values:
    path: inventories/prod/group_vars/all/vault.yml
    password_file: inventories/prod/.vault-pass
    values:
      vault_shopstream_mariadb_password: {length: 32}
      vault_shopstream_rabbitmq_erlang_cookie: {length: 32, alphabet: upper}

- name: Rotate one secret
  shopstream.swarm.vault_values:
    path: inventories/prod/group_vars/all/vault.yml
    password_file: inventories/prod/.vault-pass
    values:
      vault_shopstream_mariadb_password: {length: 32}
    rotate: [vault_shopstream_mariadb_password]

- name: A local CA and the edge's certificate for localhost and the edge's address
  shopstream.swarm.vault_values:
    path: inventories/staging/group_vars/all/vault.yml
    password_file: inventories/staging/.vault-pass
    values: {}
    tls:
      certificate: shopstream_tls_certificate
      key: vault_shopstream_tls_key
      ca_certificate: shopstream_tls_ca_certificate
      ca_key: vault_shopstream_tls_ca_key
      names: [localhost, 127.0.0.1, shop.staging.example.com]
"""

RETURN = r"""
generated:
  description: Keys that were missing or empty and got a value.
  returned: success
  type: list
  elements: str
rotated:
  description: Keys that got a new value because O(rotate) named them.
  returned: success
  type: list
  elements: str
previous:
  description: The C(<key>_previous) keys written, for keys with C(keep_previous).
  returned: success
  type: list
  elements: str
recorded:
  description: Keys of O(record) written, as the vault held another value or none.
  returned: success
  type: list
  elements: str
  version_added: 0.3.0
kept:
  description: Keys left as they were.
  returned: success
  type: list
  elements: str
tls:
  description: What O(tls) did.
  returned: success
  type: dict
  contains:
    issued:
      description: Whether a certificate was made (its variables are in RV(generated)).
      type: bool
    reason:
      description: Why it was made, e.g. C(a new local CA) or C(it does not name 10.0.0.5); null when nothing was.
      type: str
    ca_certificate:
      description:
        - The CA's certificate (PEM, public), for clients to trust.
        - Empty without O(tls), or with the site's own certificate.
      type: str
    names:
      description: The names asked for.
      type: list
      elements: str
"""
