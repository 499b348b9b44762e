"""Versioned secrets and configs: naming, hashing, prune decisions, spec rewiring, check mode."""

import hashlib
import hmac
import json

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import (
    DockerClient,
    filters_param,
    list_services,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._networks import (
    actual_state,
    create_body,
    differences,
    procedure,
    reserved_name_error,
    users,
    wanted_state,
)
from ansible_collections.shopstream.swarm.plugins.module_utils._swarm_objects import (
    CONFIG,
    LOGICAL_LABEL,
    LOGICAL_MAX,
    PLACEHOLDER_ID,
    SECRET,
    ObjectError,
    Rewirer,
    UpdateFailed,
    check_size,
    content_suffix,
    ensure_version,
    group_versions,
    inventory,
    prune_plan,
    references,
    rewire_and_prune,
    rewire_spec,
    versioned_name,
)

KEY = "k" * 64


def version(obj_id, name, created, logical="shopstream_db"):
    return {"ID": obj_id, "CreatedAt": created, "Spec": {"Name": name, "Labels": {LOGICAL_LABEL: logical}}}


def service(name, secrets=(), configs=(), index=10, update=None, sid=None, stack=None):
    spec = {
        "Name": name,
        "Labels": {"com.docker.stack.namespace": stack} if stack else {},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "app",
                "Secrets": [
                    {"File": {"Name": f, "UID": "70", "GID": "70", "Mode": 0o400}, "SecretID": i, "SecretName": n}
                    for i, n, f in secrets
                ],
                "Configs": [
                    {"File": {"Name": f, "UID": "0", "GID": "0", "Mode": 0o444}, "ConfigID": i, "ConfigName": n}
                    for i, n, f in configs
                ],
            }
        },
        "Mode": {"Replicated": {"Replicas": 1}},
    }
    return {"ID": sid or f"id-{name}", "Version": {"Index": index}, "Spec": spec, "UpdateStatus": update}


# Naming and hashing


def test_same_content_same_name_new_content_new_name():
    a = versioned_name("shopstream_db", b"one", KEY)
    assert a == versioned_name("shopstream_db", b"one", KEY)
    assert a != versioned_name("shopstream_db", b"two", KEY)
    assert a.startswith("shopstream_db_") and len(a) == len("shopstream_db_") + 12


def test_suffix_is_keyed_not_a_plain_hash_of_the_secret():
    data = b"hunter2-password"
    suffix = content_suffix(data, KEY)
    assert suffix == hmac.new(KEY.encode(), data, hashlib.sha256).hexdigest()[:12]
    assert suffix not in hashlib.sha256(data).hexdigest()
    assert content_suffix(data, "another key") != suffix


def test_without_a_key_configs_use_sha256():
    assert content_suffix(b"x") == hashlib.sha256(b"x").hexdigest()[:12]


@pytest.mark.parametrize("length", [LOGICAL_MAX, LOGICAL_MAX + 1])
def test_names_stay_within_docker_64_characters(length):
    logical = "a" * length
    if length > LOGICAL_MAX:
        with pytest.raises(ObjectError, match="at most 51 fit"):
            versioned_name(logical, b"x", KEY)
    else:
        assert len(versioned_name(logical, b"x", KEY)) == 64


@pytest.mark.parametrize("bad", ["", "-lead", "trail-", "sp ace", "sl/ash"])
def test_invalid_logical_names_are_refused(bad):
    with pytest.raises(ObjectError, match="not a valid Docker object name"):
        versioned_name(bad, b"x", KEY)


def test_size_limits_per_kind():
    check_size(SECRET, "s", b"x" * 500 * 1024)
    with pytest.raises(ObjectError, match="at most 500 KB for a secret"):
        check_size(SECRET, "s", b"x" * (500 * 1024 + 1))
    check_size(CONFIG, "c", b"x" * 1000 * 1024)


# Versions, references, pruning


def test_versions_group_by_label_newest_first():
    objs = [
        version("a", "db_1", "2026-01-01T00:00:00Z"),
        version("b", "db_2", "2026-01-03T00:00:00Z"),
        version("c", "other_1", "2026-01-02T00:00:00Z", logical="other"),
        {"ID": "d", "CreatedAt": "x", "Spec": {"Name": "foreign", "Labels": {}}},
    ]
    groups = group_versions(objs)
    assert [v["ID"] for v in groups["shopstream_db"]] == ["b", "a"]
    assert set(groups) == {"shopstream_db", "other"}


def test_references_by_id_for_each_kind():
    services = [service("web", secrets=[("s1", "db_1", "pw")], configs=[("c1", "conf_1", "conf")])]
    assert references(services, SECRET) == {"s1": ["web"]}
    assert references(services, CONFIG) == {"c1": ["web"]}


VERSIONS = [version(i, f"db_{i}", f"2026-01-0{n}T00:00:00Z") for n, i in ((5, "v5"), (4, "v4"), (3, "v3"), (2, "v2"))]


@pytest.mark.parametrize(
    ("current", "keep", "refs", "removed", "in_use"),
    [
        ("v5", 1, {}, ["v4", "v3", "v2"], []),
        ("v5", 2, {}, ["v3", "v2"], []),
        ("v5", 1, {"v3": ["api"]}, ["v4", "v2"], ["v3"]),
        # Content went back to an older version: it is current and kept, the newer one can go.
        ("v3", 1, {}, ["v5", "v4", "v2"], []),
        ("v5", 10, {}, [], []),
    ],
)
def test_prune_plan(current, keep, refs, removed, in_use):
    remove, busy = prune_plan(VERSIONS, current, keep, refs)
    assert [v["ID"] for v in remove] == removed
    assert [v["ID"] for v in busy] == in_use


@pytest.mark.parametrize("keep", [0, -1, "2", True, None])
def test_a_keep_below_one_is_refused_before_anything_is_read_or_written(engine, keep):
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    with pytest.raises(ObjectError, match=r"keep is .*Fix: set keep \(secrets_keep, configs_keep or rotate_keep"):
        rewire_and_prune(client, {SECRET: {"shopstream_db": "shopstream_db_aaaaaaaaaaaa"}}, keep=keep)
    assert engine.requests == []


def test_inventory_lists_current_versions_and_users():
    services = [service("api", secrets=[("v4", "db_v4", "pw")]), service("web", secrets=[("v5", "db_v5", "pw")])]
    listed = inventory(VERSIONS, services, SECRET)["shopstream_db"]
    assert listed["current"] == "db_v5"
    assert [v["name"] for v in listed["versions"]] == ["db_v5", "db_v4", "db_v3", "db_v2"]
    assert listed["versions"][1]["services"] == ["api"]
    assert listed["stale_services"] == ["api"]


# Rewiring


def test_rewire_keeps_target_uid_gid_mode_and_other_references():
    svc = service("api", secrets=[("old", "db_old", "db_password"), ("jwt", "jwt_1", "jwt")])
    new = rewire_spec(svc["Spec"], SECRET, {"old": ("new", "db_new")})
    refs = new["TaskTemplate"]["ContainerSpec"]["Secrets"]
    assert refs[0] == {
        "File": {"Name": "db_password", "UID": "70", "GID": "70", "Mode": 0o400},
        "SecretID": "new",
        "SecretName": "db_new",
    }
    assert refs[1]["SecretID"] == "jwt"
    # The original spec is left alone.
    assert svc["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"][0]["SecretID"] == "old"


def test_rewire_nothing_to_move_is_none():
    svc = service("api", secrets=[("jwt", "jwt_1", "jwt")])
    assert rewire_spec(svc["Spec"], SECRET, {"old": ("new", "db_new")}) is None


def test_one_update_per_service_for_several_objects():
    svc = service("api", secrets=[("s_old", "db_old", "pw")], configs=[("c_old", "conf_old", "conf")])
    planned = Rewirer(client=None).plan(
        [svc, service("idle")], {SECRET: {"s_old": ("s_new", "db_new")}, CONFIG: {"c_old": ("c_new", "conf_new")}}
    )
    assert len(planned) == 1
    _service, spec, moved = planned[0]
    assert moved == {"secret": [("db_old", "db_new")], "config": [("conf_old", "conf_new")]}
    assert spec["TaskTemplate"]["ContainerSpec"]["Configs"][0]["ConfigID"] == "c_new"


# Against a fake engine (the Docker API boundary)


def label_query(kind, logical):
    return f"{kind.path}?{filters_param(label=[f'{LOGICAL_LABEL}={logical}'])}"


def mutations(engine):
    return [(m, p) for m, p, _body in engine.requests if m in ("POST", "DELETE")]


def test_check_mode_plans_creation_rewiring_and_pruning_without_writing(engine):
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    old = version("v1", "shopstream_db_aaaaaaaaaaaa", "2026-01-01T00:00:00Z")
    older = version("v0", "shopstream_db_bbbbbbbbbbbb", "2025-01-01T00:00:00Z")
    name = versioned_name("shopstream_db", b"new", KEY)
    engine.routes[("GET", label_query(SECRET, "shopstream_db"))] = (200, [old, older])
    engine.routes[("GET", f"/secrets?{filters_param(name=[name])}")] = (200, [])
    api = service("shop_api", secrets=[("v1", old["Spec"]["Name"], "pw")], stack="shop")
    engine.routes[("GET", "/services")] = (200, [api])

    got = ensure_version(client, SECRET, "shopstream_db", b"new", KEY, check_mode=True)
    assert got == (name, PLACEHOLDER_ID, True, "shopstream_db_aaaaaaaaaaaa")
    result = rewire_and_prune(client, {SECRET: {"shopstream_db": name}}, keep=1, check_mode=True)
    moved = {"secret": [["shopstream_db_aaaaaaaaaaaa", name]]}
    assert result["rewired"] == [{"service": "shop_api", "stack": "shop", "moved": moved}]
    assert sorted(p["name"] for p in result["pruned"]) == ["shopstream_db_aaaaaaaaaaaa", "shopstream_db_bbbbbbbbbbbb"]
    assert mutations(engine) == []


def test_consumers_of_a_previous_value_move_first(engine):
    """A JWT rotation: the gateway (which accepts the previous key) moves before auth signs with the new one."""
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    key, prev = "shopstream_jwt", "shopstream_jwt_previous"
    key_old, key_new = version("k1", "shopstream_jwt_1", "2026-01"), version("k2", "shopstream_jwt_2", "2026-02")
    prev_old, prev_new = (
        version("p0", "shopstream_jwt_previous_0", "2026-01"),
        version("p1", "shopstream_jwt_previous_1", "2026-02"),
    )
    engine.routes[("GET", label_query(SECRET, key))] = (200, [key_new, key_old])
    engine.routes[("GET", label_query(SECRET, prev))] = (200, [prev_new, prev_old])
    auth = service("auth", secrets=[("k1", "shopstream_jwt_1", "jwt")])
    gateway = service(
        "gateway", secrets=[("k1", "shopstream_jwt_1", "jwt"), ("p0", "shopstream_jwt_previous_0", "prev")]
    )
    engine.routes[("GET", "/services")] = (200, [auth, gateway])
    targets = {SECRET: {key: "shopstream_jwt_2", prev: "shopstream_jwt_previous_1"}}

    ordered = rewire_and_prune(client, targets, keep=1, check_mode=True, first=[prev])["rewired"]
    assert [r["service"] for r in ordered] == ["gateway", "auth"]
    assert ordered[0]["moved"] == {"secret": [["shopstream_jwt_1", "shopstream_jwt_2"],
                                              ["shopstream_jwt_previous_0", "shopstream_jwt_previous_1"]]}  # fmt: skip
    as_listed = rewire_and_prune(client, targets, keep=1, check_mode=True)["rewired"]
    assert [r["service"] for r in as_listed] == ["auth", "gateway"]
    assert mutations(engine) == []


def test_a_vault_older_than_the_signer_keeps_the_signers_key_accepted_until_it_moves(engine):
    """site.yml with a vault put back to an older copy: auth signs with key 2, the vault says key 1
    (previous 0). The verifiers move first onto key 1 with key 2 as their previous (its twin, made
    when key 2 was deployed), not the vault's 0: auth's tokens stay valid while it moves. Then, with
    auth on key 1, the verifiers keep key 2 as their previous: nothing moves again."""
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    key, prev = "shopstream_jwt", "shopstream_jwt_previous"
    keys = [version(f"k{n}", f"{key}_{n}", f"2026-0{n + 1}", logical=key) for n in (2, 1)]
    prevs = [version(f"p{n}", f"{prev}_{n}", f"2026-0{n + 1}", logical=prev) for n in (2, 1, 0)]
    engine.routes[("GET", label_query(SECRET, key))] = (200, keys)
    engine.routes[("GET", label_query(SECRET, prev))] = (200, prevs)
    auth = service("auth", secrets=[("k2", f"{key}_2", "jwt")])
    gateway = service("gateway", secrets=[("k2", f"{key}_2", "jwt"), ("p1", f"{prev}_1", "prev")])
    engine.routes[("GET", "/services")] = (200, [auth, gateway])
    targets = {SECRET: {key: f"{key}_1", prev: f"{prev}_0"}}

    result = rewire_and_prune(client, targets, keep=1, check_mode=True, first=[prev], follow=[prev])
    assert [r["service"] for r in result["rewired"]] == ["gateway", "auth"]
    assert result["rewired"][0]["moved"] == {"secret": [[f"{key}_2", f"{key}_1"], [f"{prev}_1", f"{prev}_2"]]}
    assert result["targets"] == {"secret": {key: f"{key}_1", prev: f"{prev}_2"}}
    # The twin of the key auth moves to is kept for the next change; the vault's previous, unused, goes.
    assert sorted(p["name"] for p in result["pruned"]) == [f"{key}_2", f"{prev}_0"]
    assert targets == {SECRET: {key: f"{key}_1", prev: f"{prev}_0"}}, "the caller's targets are not changed"
    # Without follow, the verifiers would drop key 2 while auth still signs with it.
    plain = rewire_and_prune(client, targets, keep=1, check_mode=True, first=[prev])
    assert plain["rewired"][0]["moved"] == {"secret": [[f"{key}_2", f"{key}_1"], [f"{prev}_1", f"{prev}_0"]]}

    auth = service("auth", secrets=[("k1", f"{key}_1", "jwt")])
    gateway = service("gateway", secrets=[("k1", f"{key}_1", "jwt"), ("p2", f"{prev}_2", "prev")])
    engine.routes[("GET", "/services")] = (200, [auth, gateway])
    again = rewire_and_prune(client, targets, keep=1, check_mode=True, first=[prev], follow=[prev])
    assert again["rewired"] == [] and again["targets"]["secret"][prev] == f"{prev}_2"
    assert mutations(engine) == []


def test_an_object_of_that_name_made_elsewhere_is_refused(engine):
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    name = versioned_name("shopstream_db", b"new", KEY)
    engine.routes[("GET", label_query(SECRET, "shopstream_db"))] = (200, [])
    engine.routes[("GET", f"/secrets?{filters_param(name=[name])}")] = (
        200,
        [{"ID": "x", "Spec": {"Name": name, "Labels": {}}}],
    )
    with pytest.raises(ObjectError, match="was not made by this collection"):
        ensure_version(client, SECRET, "shopstream_db", b"new", KEY)
    assert mutations(engine) == []


def test_same_content_creates_nothing(engine):
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    name = versioned_name("shopstream_db", b"same", KEY)
    engine.routes[("GET", label_query(SECRET, "shopstream_db"))] = (200, [version("v1", name, "2026")])
    assert ensure_version(client, SECRET, "shopstream_db", b"same", KEY) == (name, "v1", False, None)
    assert mutations(engine) == []


def test_create_sends_content_and_labels(engine):
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    name = versioned_name("shopstream_db", b"value", KEY)
    engine.routes[("GET", label_query(SECRET, "shopstream_db"))] = (200, [])
    engine.routes[("GET", f"/secrets?{filters_param(name=[name])}")] = (200, [])
    engine.routes[("POST", "/secrets/create")] = (201, {"ID": "new"})
    assert ensure_version(client, SECRET, "shopstream_db", b"value", KEY, labels={"team": "shop"})[1:3] == (
        "new",
        True,
    )
    body = json.loads(engine.requests[-1][2])
    assert body["Name"] == name and body["Data"] == "dmFsdWU="
    assert body["Labels"][LOGICAL_LABEL] == "shopstream_db" and body["Labels"]["team"] == "shop"
    assert "com.shopstream.created" in body["Labels"]


@pytest.mark.parametrize("answer, listed", [(None, []), ([], []), ([{"ID": "id-api"}], [{"ID": "id-api"}])])
def test_list_services_reads_every_service(engine, answer, listed):
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    engine.routes[("GET", "/services")] = (200, answer)
    assert list_services(client) == listed
    assert [(m, p) for m, p, _body in engine.requests] == [("GET", "/services")]


def test_configs_alone_read_configs_and_services_never_secrets(engine):
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    old = version("c1", "shopstream_nginx_aaaaaaaaaaaa", "2026-01-01T00:00:00Z", logical="shopstream_nginx")
    new = version("c2", "shopstream_nginx_bbbbbbbbbbbb", "2026-02-01T00:00:00Z", logical="shopstream_nginx")
    engine.routes[("GET", label_query(CONFIG, "shopstream_nginx"))] = (200, [new, old])
    engine.routes[("GET", "/services")] = (200, [service("web", configs=[("c1", old["Spec"]["Name"], "nginx.conf")])])
    result = rewire_and_prune(client, {CONFIG: {"shopstream_nginx": new["Spec"]["Name"]}}, keep=1, check_mode=True)
    assert result["rewired"] == [
        {"service": "web", "stack": None, "moved": {"config": [[old["Spec"]["Name"], new["Spec"]["Name"]]]}}
    ]
    assert [p for _method, p, _body in engine.requests] == [label_query(CONFIG, "shopstream_nginx"), "/services"]


def _status(state, started="t2", message=""):
    return {"State": state, "StartedAt": started, "Message": message}


def test_wait_ignores_the_previous_updates_completed_status(engine):
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    svc = service("api", secrets=[("new", "db_new", "pw")], update=_status("completed", started="t1"))
    answers = iter([svc, dict(svc, UpdateStatus=_status("updating")), dict(svc, UpdateStatus=_status("completed"))])
    seen = []
    engine.routes[("GET", "/services/id-api")] = lambda: (200, (seen.append(1), next(answers))[1])
    engine.routes[("GET", f"/tasks?{filters_param(service=['id-api'])}")] = (200, [])
    Rewirer(client, timeout=5, poll=0.01).wait("id-api", svc["Spec"], previous_started="t1")
    assert len(seen) == 3


def test_a_rollback_fails_naming_the_service_and_the_task_error(engine):
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    svc = service("api", secrets=[("new", "db_new", "pw")])
    engine.routes[("GET", "/services/id-api")] = (
        200,
        dict(svc, UpdateStatus=_status("rollback_completed", message="rollback completed")),
    )
    engine.routes[("GET", f"/tasks?{filters_param(service=['id-api'])}")] = (
        200,
        [{"UpdatedAt": "2", "Status": {"State": "failed", "Err": "task: non-zero exit (1)"}}],
    )
    with pytest.raises(UpdateFailed, match=r"service api did not complete: rollback_completed.*non-zero exit \(1\)"):
        Rewirer(client, timeout=5, poll=0.01).wait("id-api", svc["Spec"], previous_started="t1")


def test_a_stuck_update_times_out_with_a_clear_failure(engine):
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    svc = service("api", secrets=[("new", "db_new", "pw")])
    engine.routes[("GET", "/services/id-api")] = (200, dict(svc, UpdateStatus=_status("updating")))
    engine.routes[("GET", f"/tasks?{filters_param(service=['id-api'])}")] = (
        200,
        [{"UpdatedAt": "2", "Status": {"State": "pending", "Err": "no suitable node (insufficient resources)"}}],
    )
    with pytest.raises(UpdateFailed, match=r"api did not complete within 0s.*insufficient resources"):
        Rewirer(client, timeout=0, poll=0.01).wait("id-api", svc["Spec"], previous_started="t1")


def test_a_service_without_tasks_to_replace_completes_on_its_tasks(engine):
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    svc = service("api", secrets=[("new", "db_new", "pw")])
    task_spec = svc["Spec"]["TaskTemplate"]
    engine.routes[("GET", "/services/id-api")] = (200, svc)
    engine.routes[("GET", f"/tasks?{filters_param(service=['id-api'])}")] = (
        200,
        [{"DesiredState": "running", "Status": {"State": "running"}, "Spec": task_spec}],
    )
    Rewirer(client, timeout=2, poll=0.01).wait("id-api", svc["Spec"], previous_started=None)


# A service changed by someone else between the rewire's read and its update


OUT_OF_SEQUENCE = (500, {"message": "rpc error: code = Unknown desc = update out of sequence"})


class RacingEngine:
    """The service ``id-auth`` as a swarm keeps it: each update bumps its version; an update with a
    stale version is refused as swarmkit refuses it. ``race(n)`` makes another client update the
    service (a label) right after each of our next ``n`` reads, before our update arrives."""

    def __init__(self, engine, secrets):
        self.engine = engine
        self.service = service("auth", secrets=secrets, index=10, update=_status("completed", started="t1"))
        self.races = 0
        self.updates = []
        engine.routes[("GET", "/services/id-auth")] = self.read
        for index in range(10, 30):
            engine.routes[("POST", f"/services/id-auth/update?version={index}")] = self.writer(index)
        engine.routes[("GET", f"/tasks?{filters_param(service=['id-auth'])}")] = (200, [])

    def read(self):
        answer = json.loads(json.dumps(self.service))
        if self.races:
            self.races -= 1
            self.bump(dict(self.service["Spec"], Labels={"changed.by": f"other-{self.service['Version']['Index']}"}))
        return 200, answer

    def bump(self, spec, started=None):
        self.service = dict(self.service, Spec=spec, Version={"Index": self.service["Version"]["Index"] + 1})
        if started:
            self.service["UpdateStatus"] = _status("completed", started=started)

    def writer(self, index):
        def write():
            if index != self.service["Version"]["Index"]:
                return OUT_OF_SEQUENCE
            spec = json.loads(self.engine.requests[-1][2])
            self.updates.append(spec)
            self.bump(spec, started=f"t{index}")
            return 200, {}

        return write


def jwt_rotation(engine, races):
    old, new = version("k1", "jwt_1", "2026-01", logical="jwt"), version("k2", "jwt_2", "2026-02", logical="jwt")
    engine.routes[("GET", label_query(SECRET, "jwt"))] = (200, [new, old])
    swarm = RacingEngine(engine, secrets=[("k1", "jwt_1", "jwt")])
    engine.routes[("GET", "/services")] = lambda: (200, [swarm.service])
    engine.routes[("DELETE", "/secrets/k1")] = (204, None)
    swarm.races = races
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    return swarm, lambda: rewire_and_prune(client, {SECRET: {"jwt": "jwt_2"}}, keep=1, timeout=5, poll=0.01)


def test_a_concurrent_update_between_read_and_write_is_read_again_and_kept(engine):
    swarm, rotate = jwt_rotation(engine, races=2)
    result = rotate()
    assert result["rewired"] == [{"service": "auth", "stack": None, "moved": {"secret": [["jwt_1", "jwt_2"]]}}]
    assert [p["name"] for p in result["pruned"]] == ["jwt_1"]
    # Two refused updates (versions 10 and 11), then one on the version read last, keeping the other's label.
    posts = [p for m, p, _body in engine.requests if m == "POST"]
    assert posts == [f"/services/id-auth/update?version={v}" for v in (10, 11, 12)]
    assert len(swarm.updates) == 1
    secret = swarm.service["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"][0]
    assert (secret["SecretID"], secret["SecretName"]) == ("k2", "jwt_2")
    assert swarm.service["Spec"]["Labels"] == {"changed.by": "other-11"}
    assert sum("reading it again" in e for e in result["events"]) == 2


def test_a_service_that_never_settles_fails_naming_it_and_the_conflict(engine):
    swarm, rotate = jwt_rotation(engine, races=99)
    with pytest.raises(UpdateFailed, match=r"Service auth changed between each of 5 reads.*update out of sequence"):
        rotate()
    assert swarm.updates == []


def test_a_service_someone_else_moved_already_is_not_updated_again(engine):
    swarm, _rotate = jwt_rotation(engine, races=0)
    moves = {SECRET: {"k1": ("k2", "jwt_2")}}
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    spec, moved = Rewirer(client, timeout=5, poll=0.01).apply("id-auth", moves)
    assert moved == {"secret": [("jwt_1", "jwt_2")]}
    again = Rewirer(client, timeout=5, poll=0.01).apply("id-auth", moves)
    assert again == (spec, None) and len(swarm.updates) == 1


# Waves: the consumers of `first` objects update together, before the services they serve


class SwarmOfServices:
    """Services as Swarm keeps them while they update: an accepted update is "updating" for the
    next ``reads`` reads of the service, then ends as ``ends.get(name, "completed")``. ``log``
    records each update's start and end in the order the rewire caused them."""

    def __init__(self, engine, services, reads=3, ends=None):
        self.engine, self.reads, self.ends = engine, reads, ends or {}
        self.services = {svc["ID"]: svc for svc in services}
        self.pending = {}
        self.log = []
        engine.routes[("GET", "/services")] = lambda: (200, list(self.services.values()))
        for sid, svc in self.services.items():
            engine.routes[("GET", f"/services/{sid}")] = self.reader(sid)
            engine.routes[("POST", f"/services/{sid}/update?version={svc['Version']['Index']}")] = self.writer(sid)
            engine.routes[("GET", f"/tasks?{filters_param(service=[sid])}")] = (200, [])

    def reader(self, sid):
        def read():
            svc = self.services[sid]
            if sid in self.pending:
                self.pending[sid] -= 1
                if self.pending[sid] == 0:
                    del self.pending[sid]
                    end = self.ends.get(svc["Spec"]["Name"], "completed")
                    svc["UpdateStatus"] = _status(end, started="t2", message=end)
                    self.log.append(("end", svc["Spec"]["Name"]))
            return 200, json.loads(json.dumps(svc))

        return read

    def writer(self, sid):
        def write():
            svc = self.services[sid]
            svc["Spec"] = json.loads(self.engine.requests[-1][2])
            svc["UpdateStatus"] = _status("updating", started="t2")
            self.pending[sid] = self.reads
            self.log.append(("start", svc["Spec"]["Name"]))
            return 200, {}

        return write


def jwt_consumers(engine, ends=None):
    key, prev = "jwt", "jwt_previous"
    engine.routes[("GET", label_query(SECRET, key))] = (
        200,
        [version("k2", "jwt_2", "2026-02", logical=key), version("k1", "jwt_1", "2026-01", logical=key)],
    )
    engine.routes[("GET", label_query(SECRET, prev))] = (
        200,
        [
            version("p1", "jwt_previous_1", "2026-02", logical=prev),
            version("p0", "jwt_previous_0", "2026-01", logical=prev),
        ],
    )
    engine.routes[("DELETE", "/secrets/k1")] = (204, None)
    engine.routes[("DELETE", "/secrets/p0")] = (204, None)
    verifier = [("k1", "jwt_1", "jwt"), ("p0", "jwt_previous_0", "prev")]
    services = [service("auth", secrets=[("k1", "jwt_1", "jwt")]), service("gateway", secrets=verifier),
                service("order", secrets=verifier), service("product", secrets=verifier)]  # fmt: skip
    swarm = SwarmOfServices(engine, services, ends=ends)
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    targets = {SECRET: {key: "jwt_2", prev: "jwt_previous_1"}}
    return swarm, lambda: rewire_and_prune(client, targets, keep=1, timeout=5, poll=0.01, first=[prev])


def test_the_verifiers_update_together_and_the_issuer_only_after_them(engine):
    swarm, rotate = jwt_consumers(engine)
    result = rotate()
    verifiers = {"gateway", "order", "product"}
    # Every verifier's update starts before any of them ends; auth's starts after all have ended.
    assert {name for event, name in swarm.log[:3]} == verifiers and all(e == "start" for e, _name in swarm.log[:3])
    assert {name for event, name in swarm.log[3:6]} == verifiers and all(e == "end" for e, _name in swarm.log[3:6])
    assert swarm.log[6:] == [("start", "auth"), ("end", "auth")]
    assert [r["service"] for r in result["rewired"]] == ["gateway", "order", "product", "auth"]
    assert sorted(p["name"] for p in result["pruned"]) == ["jwt_1", "jwt_previous_0"]


def test_servers_move_before_their_clients_and_a_client_that_verifies_moves_once_in_between(engine):
    """rotate=jwt,redis: Redis (given the previous password too) and product (a JWT verifier), then the
    gateway (a verifier, and Redis's client), then auth (the signer) with rabbit (in no order)."""
    objects = {"jwt": ("k", "jwt_previous", "p"), "redis": ("r", "redis_previous", "q")}
    for logical, (old_id, prev, prev_id) in objects.items():
        engine.routes[("GET", label_query(SECRET, logical))] = (200, [
            version(f"{old_id}2", f"{logical}_2", "2026-02", logical=logical),
            version(f"{old_id}1", f"{logical}_1", "2026-01", logical=logical)])  # fmt: skip
        engine.routes[("GET", label_query(SECRET, prev))] = (200, [
            version(f"{prev_id}1", f"{prev}_1", "2026-02", logical=prev),
            version(f"{prev_id}0", f"{prev}_0", "2026-01", logical=prev)])  # fmt: skip
    amqp = [version("a2", "amqp_2", "2026-02", logical="amqp"), version("a1", "amqp_1", "2026-01", logical="amqp")]
    engine.routes[("GET", label_query(SECRET, "amqp"))] = (200, amqp)
    jwt, jwt_prev = ("k1", "jwt_1", "jwt"), ("p0", "jwt_previous_0", "prev")
    redis, redis_prev = ("r1", "redis_1", "redis"), ("q0", "redis_previous_0", "redis_prev")
    services = [service("auth", secrets=[jwt]), service("gateway", secrets=[jwt, jwt_prev, redis]),
                service("rabbit", secrets=[("a1", "amqp_1", "amqp")]), service("product", secrets=[jwt, jwt_prev]),
                service("redis", secrets=[redis, redis_prev])]  # fmt: skip
    swarm = SwarmOfServices(engine, services)
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    targets = {SECRET: {"jwt": "jwt_2", "jwt_previous": "jwt_previous_1", "redis": "redis_2",
                        "redis_previous": "redis_previous_1", "amqp": "amqp_2"}}  # fmt: skip
    first = ["jwt_previous", "redis_previous"]
    planned = rewire_and_prune(client, targets, prune=False, check_mode=True, first=first)["rewired"]
    assert [r["service"] for r in planned] == ["product", "redis", "gateway", "auth", "rabbit"]
    assert mutations(engine) == []

    rewire_and_prune(client, targets, prune=False, timeout=5, poll=0.01, first=first)
    starts = [name for event, name in swarm.log if event == "start"]
    ends = [name for event, name in swarm.log if event == "end"]
    assert set(starts[:2]) == {"product", "redis"} and set(starts[3:]) == {"auth", "rabbit"}, swarm.log
    assert starts[2] == "gateway" and swarm.log.index(("start", "gateway")) > max(
        swarm.log.index(("end", name)) for name in ("product", "redis")
    ), swarm.log
    assert swarm.log.index(("start", "auth")) > swarm.log.index(("end", "gateway")), swarm.log
    assert sorted(ends) == sorted(starts)


def test_a_server_whose_file_accepts_the_previous_value_moves_before_the_clients_of_the_value(engine):
    """rotate=rabbitmq_password: RabbitMQ mounts no `_previous` secret but a definitions file made from
    both passwords (accepts maps it to the password); it moves before order and notification."""
    for logical, old_id in (("amqp", "a"), ("amqp_definitions", "d")):
        engine.routes[("GET", label_query(SECRET, logical))] = (200, [
            version(f"{old_id}2", f"{logical}_2", "2026-02", logical=logical),
            version(f"{old_id}1", f"{logical}_1", "2026-01", logical=logical)])  # fmt: skip
    services = [service("order", secrets=[("a1", "amqp_1", "amqp")]),
                service("notification", secrets=[("a1", "amqp_1", "amqp")]),
                service("rabbitmq", secrets=[("d1", "amqp_definitions_1", "definitions.json")])]  # fmt: skip
    swarm = SwarmOfServices(engine, services)
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    targets = {SECRET: {"amqp": "amqp_2", "amqp_definitions": "amqp_definitions_2"}}
    accepts = {"amqp_definitions": "amqp"}
    planned = rewire_and_prune(client, targets, prune=False, check_mode=True, accepts=accepts)["rewired"]
    assert [r["service"] for r in planned] == ["rabbitmq", "order", "notification"]
    as_listed = rewire_and_prune(client, targets, prune=False, check_mode=True)["rewired"]
    assert [r["service"] for r in as_listed] == ["order", "notification", "rabbitmq"]

    rewire_and_prune(client, targets, prune=False, timeout=5, poll=0.01, accepts=accepts)
    assert swarm.log.index(("end", "rabbitmq")) < min(
        swarm.log.index(("start", name)) for name in ("order", "notification")
    ), swarm.log


def test_a_move_that_restarts_a_single_host_mode_edge_is_announced(engine):
    """An edge on one node (one task publishing in host mode) refuses connections while it restarts:
    the plan says so (the roles show it in a check-mode plan before they move anything)."""
    client = DockerClient("unix://" + engine.server_address, timeout=3)
    engine.routes[("GET", label_query(CONFIG, "shop_edge"))] = (200, [
        version("e2", "shop_edge_2", "2026-02", logical="shop_edge"),
        version("e1", "shop_edge_1", "2026-01", logical="shop_edge")])  # fmt: skip
    host_ports = {"Ports": [{"PublishedPort": p, "TargetPort": p, "PublishMode": "host"} for p in (80, 443)]}
    ingress = {"Ports": [{"PublishedPort": 8443, "TargetPort": 443, "PublishMode": "ingress"}]}
    services = [
        service(n, configs=[("e1", "shop_edge_1", "edge.yml")]) for n in ("traefik", "spread", "meshed", "other")
    ]
    services[0]["Spec"]["EndpointSpec"] = host_ports
    services[1]["Spec"]["EndpointSpec"] = host_ports
    services[1]["Spec"]["Mode"] = {"Replicated": {"Replicas": 2}}
    services[2]["Spec"]["EndpointSpec"] = ingress
    engine.routes[("GET", "/services")] = (200, services)
    result = rewire_and_prune(client, {CONFIG: {"shop_edge": "shop_edge_2"}}, prune=False, check_mode=True)
    assert [r["service"] for r in result["rewired"]] == ["traefik", "spread", "meshed", "other"]
    assert len(result["warnings"]) == 1 and result["warnings"][0].startswith("traefik publishes port(s) 80, 443")
    assert mutations(engine) == []


def test_a_failed_update_in_a_wave_names_it_after_the_others_end_and_stops_the_next_wave(engine):
    swarm, rotate = jwt_consumers(engine, ends={"order": "rollback_completed"})
    with pytest.raises(UpdateFailed, match=r"service order did not complete: rollback_completed") as failure:
        rotate()
    assert "gateway" not in str(failure.value) and "product" not in str(failure.value)
    assert {name for event, name in swarm.log if event == "end"} == {"gateway", "order", "product"}
    assert ("start", "auth") not in swarm.log
    assert [p for m, p in mutations(engine) if m == "DELETE"] == []


# Networks


NETWORK = {
    "Id": "n1",
    "Name": "data",
    "Driver": "overlay",
    "Internal": True,
    "Attachable": False,
    "Options": {"encrypted": "", "com.docker.network.driver.overlay.vxlanid_list": "4097"},
    "IPAM": {"Config": [{"Subnet": "10.42.3.0/24", "Gateway": "10.42.3.1"}]},
    "Labels": {"com.shopstream.platform": "shopstream"},
}
PARAMS = {
    "driver": "overlay",
    "internal": True,
    "attachable": False,
    "encrypted": True,
    "subnet": "10.42.3.0/24",
    "labels": {"com.shopstream.platform": "shopstream"},
}


@pytest.mark.parametrize("name", ["ingress", "bridge", "host", "none", "docker_gwbridge"])
def test_the_engines_own_networks_are_refused_by_name(name):
    assert reserved_name_error(name).startswith(f"Network {name} is made and owned by the Docker engine")
    assert reserved_name_error(f"{name}-shop") is None


def test_encrypted_network_reads_back_unchanged():
    assert differences(wanted_state(PARAMS), actual_state(NETWORK)) == {}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"encrypted": False}, {"encrypted": (True, False)}),
        ({"internal": False}, {"internal": (True, False)}),
        ({"subnet": "10.9.0.0/24"}, {"subnet": ("10.42.3.0/24", "10.9.0.0/24")}),
        ({"subnet": None}, {}),
    ],
)
def test_network_differences(change, expected):
    assert differences(wanted_state(dict(PARAMS, **change)), actual_state(NETWORK)) == expected


def test_network_create_body_and_users():
    body = create_body("data", wanted_state(PARAMS))
    assert body["Options"] == {"encrypted": ""} and body["Internal"] is True
    assert body["IPAM"]["Config"] == [{"Subnet": "10.42.3.0/24"}]
    svc = service("db")
    svc["Spec"]["TaskTemplate"]["Networks"] = [{"Target": "n1"}]
    assert users("n1", "data", [svc, service("web")]) == ["db"]
    message = procedure("data", {"internal": (True, False)}, ["db"])
    assert "internal True -> False" in message and "docker network rm data" in message and "(db)" in message


def test_several_secrets_in_one_call_are_versioned_each_as_alone_and_their_values_never_shown(engine, run_module):
    values = {"shopstream_db": "db-value-1", "shopstream_jwt": "jwt-value-2"}
    same = version("v1", versioned_name("shopstream_db", b"db-value-1", KEY), "2026", logical="shopstream_db")
    old_jwt = version("j0", "shopstream_jwt_aaaaaaaaaaaa", "2025", logical="shopstream_jwt")
    new_jwt = versioned_name("shopstream_jwt", b"jwt-value-2", KEY)
    engine.routes[("GET", label_query(SECRET, "shopstream_db"))] = (200, [same])
    made = version("j1", new_jwt, "2026", logical="shopstream_jwt")
    engine.routes[("GET", label_query(SECRET, "shopstream_jwt"))] = lambda: (
        200,
        ([made] if mutations(engine) else []) + [old_jwt],
    )
    engine.routes[("GET", f"/secrets?{filters_param(name=[new_jwt])}")] = (200, [])
    engine.routes[("POST", "/secrets/create")] = (201, {"ID": "j1"})
    engine.routes[("GET", "/services")] = (200, [])
    args = {
        "objects": [{"name": n, "data": v} for n, v in values.items()],
        "hash_key": KEY,
        "labels": {"team": "shop"},
        "prune": False,
        "docker_host": "unix://" + engine.server_address,
    }

    result = run_module("swarm_secret", args)

    assert result.get("changed") is True, result
    assert result["objects"] == [
        {"object": "shopstream_db", "name": same["Spec"]["Name"], "id": "v1", "created": False, "previous": ""},
        {"object": "shopstream_jwt", "name": new_jwt, "id": "j1", "created": True, "previous": old_jwt["Spec"]["Name"]},
    ]
    assert mutations(engine) == [("POST", "/secrets/create")]  # the unchanged one is left alone
    body = json.loads(next(b for m, _p, b in engine.requests if m == "POST"))
    assert body["Labels"]["team"] == "shop"
    shown = json.dumps(result)
    assert not any(value in shown for value in values.values()) and KEY not in shown


def test_one_secret_by_name_answers_as_before_and_lists_its_versions_once(engine, run_module):
    old = version("j0", "shopstream_jwt_aaaaaaaaaaaa", "2025", logical="shopstream_jwt")
    new = versioned_name("shopstream_jwt", b"jwt-value-3", KEY)
    made = version("j1", new, "2026", logical="shopstream_jwt")
    engine.routes[("GET", label_query(SECRET, "shopstream_jwt"))] = lambda: (
        200,
        ([made] if mutations(engine) else []) + [old],
    )
    engine.routes[("GET", f"/secrets?{filters_param(name=[new])}")] = (200, [])
    engine.routes[("POST", "/secrets/create")] = (201, {"ID": "j1"})
    engine.routes[("GET", "/services")] = (200, [])
    args = {"name": "shopstream_jwt", "data": "jwt-value-3", "hash_key": KEY, "prune": False}

    result = run_module("swarm_secret", dict(args, docker_host="unix://" + engine.server_address))

    assert result.get("changed") is True, result
    assert [result[k] for k in ("name", "id", "created", "previous")] == [new, "j1", True, old["Spec"]["Name"]]
    listings = [p for m, p, _b in engine.requests if m == "GET" and p == label_query(SECRET, "shopstream_jwt")]
    # once before the version is made, once by the rewire that needs it
    assert len(listings) == 2 and mutations(engine) == [("POST", "/secrets/create")]
    assert "jwt-value-3" not in json.dumps(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"objects": [{"name": "a", "data": "x"}], "name": "a"}, "mutually exclusive"),
        ({"objects": [{"name": "a", "data": "x"}, {"name": "a", "data": "y"}]}, "a more than once"),
        ({"objects": [{"name": "a"}]}, "data"),
        ({"state": "absent", "objects": [{"name": "a", "data": "x"}]}, "name"),
    ],
)
def test_objects_refused_before_anything_is_written(engine, run_module, args, message):
    engine.routes[("GET", "/services")] = (200, [])
    result = run_module("swarm_config", dict(args, docker_host="unix://" + engine.server_address))
    assert result.get("failed") and message in result["msg"], result
    assert mutations(engine) == []
