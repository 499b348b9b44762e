"""playbooks/rotate_swarm.yml rotates the swarm's join tokens, unlock key and root CA while the platform runs.

Runs against the platform `make deploy` left on this host (inventories/local); skips when it is not
deployed. After the run both join tokens and the autolock unlock key are new and printed nowhere
(not even at -vvv), the vault holds the new unlock key, the swarm trusts a new root CA, this node's
certificate is issued by it with the validity asked for, no service was updated, and the rest of
the swarm's settings (task history, Raft, dispatcher) are untouched. A validity that is not a
whole number of days is refused before anything changes.
"""

import json

from runner import LOCAL, docker, local_vault, playbook

ROTATE = ("playbooks/rotate_swarm.yml", "-i", "inventories/local", "--vault-password-file", str(LOCAL / ".vault-pass"))


def tokens():
    """The join tokens, and the autolock unlock key."""
    return {
        **{role: docker("swarm", "join-token", "-q", role).stdout.strip() for role in ("worker", "manager")},
        "unlock": docker("swarm", "unlock-key", "-q").stdout.strip(),
    }


def swarm():
    return json.loads(docker("info", "--format", "{{json .Swarm.Cluster}}").stdout)


def node():
    return json.loads(docker("node", "inspect", "self").stdout)[0]


def services():
    return docker("service", "ls", "--format", "{{.Name}} {{.ID}}").stdout, {
        s: docker("service", "inspect", "--format", "{{.Version.Index}}", s).stdout.strip()
        for s in docker("service", "ls", "--format", "{{.Name}}").stdout.split()
    }


def test_join_tokens_and_root_ca_rotate_and_no_service_moves(deployed):
    before_tokens, before_swarm, before_services = tokens(), swarm(), services()
    before_ca = before_swarm["TLSInfo"]

    refused = playbook(*ROTATE, "-e", "swarm_node_cert_expiry_days=soon")
    assert refused.rc != 0 and "swarm_node_cert_expiry_days is soon" in refused.out, refused.out[-2000:]
    assert tokens() == before_tokens and swarm()["TLSInfo"] == before_ca

    run = playbook(*ROTATE, "-e", "swarm_node_cert_expiry_days=30", "-vvv")
    assert run.rc == 0, run.out[-3000:]
    after_tokens, after = tokens(), swarm()
    assert all(after_tokens[role] != before_tokens[role] for role in after_tokens), "the join tokens, the unlock key"
    assert not [t for t in (*before_tokens.values(), *after_tokens.values()) if t in run.out], "a token printed"
    assert local_vault()["vault_shopstream_swarm_unlock_key"] == after_tokens["unlock"], "the vault has the new key"
    assert after["TLSInfo"]["TrustRoot"] != before_ca["TrustRoot"]
    assert node()["Description"]["TLSInfo"]["CertIssuerPublicKey"] == after["TLSInfo"]["CertIssuerPublicKey"]
    assert after["Spec"]["CAConfig"]["NodeCertExpiry"] == 30 * 86400 * 10**9
    unchanged = {k: v for k, v in after["Spec"].items() if k != "CAConfig"}
    assert unchanged == {k: v for k, v in before_swarm["Spec"].items() if k != "CAConfig"}, "other settings moved"
    report = " ".join(run.out.split())
    assert "New join tokens, a new unlock key (in the vault); root CA rotated (1 node(s)" in report
    assert "on certificates of the new CA, valid 30 days)" in report
    assert services() == before_services, "a service was updated"


def test_check_mode_rotates_nothing(deployed):
    before = tokens(), swarm()["TLSInfo"]
    run = playbook(*ROTATE, "--check")
    assert run.rc == 0, run.out[-3000:]
    assert run.changed() == 3, run.recap  # the CA, the tokens and the unlock key it would rotate, reported
    assert (tokens(), swarm()["TLSInfo"]) == before
