"""swarm_join: joins drained, waits for a new manager, leaves a member alone, honours check mode."""

import json

import pytest

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import DockerAPIError
from ansible_collections.shopstream.swarm.plugins.modules.swarm_join import SwarmJoiner

INACTIVE = {"Swarm": {"LocalNodeState": "inactive", "NodeID": ""}}
WORKER = {"Swarm": {"LocalNodeState": "active", "NodeID": "W1", "ControlAvailable": False}}
MANAGER = {"Swarm": {"LocalNodeState": "active", "NodeID": "M2", "ControlAvailable": True}}


class Failed(Exception):
    pass


class FakeModule:
    """The AnsibleModule boundary: parameters, check mode, and fail_json."""

    def __init__(self, socket, check_mode=False, **params):
        self.check_mode = check_mode
        self.params = {
            "docker_host": "unix://" + socket,
            "timeout": 3,
            "remote_addrs": ["192.0.2.11:2377"],
            "join_token": "SWMTKN-1-secret",
            "advertise_addr": "192.0.2.12",
            "listen_addr": "0.0.0.0:2377",
            "data_path_addr": None,
            "availability": "drain",
            **params,
        }

    def fail_json(self, msg):
        raise Failed(msg)


def posts(engine):
    return [json.loads(body) for method, path, body in engine.requests if (method, path) == ("POST", "/swarm/join")]


@pytest.fixture
def join(engine):
    """Join against an engine whose /info says inactive until the join request arrives, then `after`."""

    def run(after, check_mode=False, **params):
        engine.routes[("GET", "/info")] = lambda: (200, after if posts(engine) else INACTIVE)
        engine.routes[("POST", "/swarm/join")] = (200, None)
        return SwarmJoiner(FakeModule(engine.server_address, check_mode, **params)).join()

    return run


def test_a_worker_joins_drained_with_every_address(join, engine):
    changed, swarm = join(WORKER)
    assert changed is True
    assert swarm["NodeID"] == "W1"
    assert posts(engine) == [
        {
            "ListenAddr": "0.0.0.0:2377",
            "AdvertiseAddr": "192.0.2.12",
            "DataPathAddr": "192.0.2.12",
            "RemoteAddrs": ["192.0.2.11:2377"],
            "JoinToken": "SWMTKN-1-secret",
            "Availability": "drain",
        }
    ]


def test_a_member_is_left_alone(engine):
    engine.routes[("GET", "/info")] = (200, WORKER)
    changed, swarm = SwarmJoiner(FakeModule(engine.server_address)).join()
    assert (changed, swarm["NodeID"]) == (False, "W1")
    assert posts(engine) == []


def test_check_mode_reports_the_join_and_sends_nothing(engine):
    engine.routes[("GET", "/info")] = (200, INACTIVE)
    changed, _swarm = SwarmJoiner(FakeModule(engine.server_address, check_mode=True, join_token=None)).join()
    assert changed is True
    assert posts(engine) == []


def test_no_token_outside_check_mode_fails_before_joining(engine):
    engine.routes[("GET", "/info")] = (200, INACTIVE)
    with pytest.raises(Failed, match="join_token is required"):
        SwarmJoiner(FakeModule(engine.server_address, join_token=None)).join()
    assert posts(engine) == []


def test_a_manager_join_waits_until_it_is_reachable(join, engine):
    answers = iter([{"ManagerStatus": {"Reachability": "unknown"}}, {"ManagerStatus": {"Reachability": "reachable"}}])
    engine.routes[("GET", "/nodes/M2")] = lambda: (200, next(answers))
    changed, swarm = join(MANAGER)
    assert changed is True
    assert [p for m, p, _body in engine.requests if p == "/nodes/M2"] == ["/nodes/M2", "/nodes/M2"]


def test_a_manager_that_never_becomes_reachable_fails_clearly(join, engine):
    engine.routes[("GET", "/nodes/M2")] = lambda: (200, {"ManagerStatus": {"Reachability": "unreachable"}})
    with pytest.raises(Failed, match=r"did not become reachable in Raft within 1s \(last state: unreachable\)"):
        join(MANAGER, timeout=1)


BACKGROUND = "Timeout was reached before node joined. The attempt to join the swarm will continue in the background."


def test_a_join_the_engine_goes_on_with_in_the_background_is_waited_for(engine):
    infos = iter([INACTIVE, {"Swarm": {"LocalNodeState": "pending"}}, WORKER])
    engine.routes[("GET", "/info")] = lambda: (200, next(infos, WORKER))
    engine.routes[("POST", "/swarm/join")] = (503, {"message": BACKGROUND})
    changed, swarm = SwarmJoiner(FakeModule(engine.server_address)).join()
    assert (changed, swarm["NodeID"]) == (True, "W1")


def test_a_join_still_pending_at_the_timeout_fails_naming_the_managers(engine):
    infos = iter([INACTIVE])
    engine.routes[("GET", "/info")] = lambda: (200, next(infos, {"Swarm": {"LocalNodeState": "pending"}}))
    engine.routes[("POST", "/swarm/join")] = (503, {"message": BACKGROUND})
    with pytest.raises(Failed, match=r"still joining the swarm after 1s \(state: pending; .*192\.0\.2\.11:2377"):
        SwarmJoiner(FakeModule(engine.server_address, timeout=1)).join()


UNAVAILABLE = "rpc error: code = Unavailable desc = all SubConns are in TransientFailure"


def test_a_join_the_managers_refused_as_unavailable_is_tried_again(engine, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    answers = iter([(500, {"message": UNAVAILABLE}), (500, {"message": UNAVAILABLE}), (200, None)])
    engine.routes[("POST", "/swarm/join")] = lambda: next(answers)
    engine.routes[("GET", "/info")] = lambda: (200, WORKER if len(posts(engine)) == 3 else INACTIVE)
    changed, swarm = SwarmJoiner(FakeModule(engine.server_address)).join()
    assert (changed, swarm["NodeID"], len(posts(engine))) == (True, "W1", 3)


def test_a_join_refused_three_times_fails_with_the_last_refusal(engine, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    engine.routes[("POST", "/swarm/join")] = (500, {"message": UNAVAILABLE})
    engine.routes[("GET", "/info")] = (200, INACTIVE)
    with pytest.raises(DockerAPIError, match="code = Unavailable"):
        SwarmJoiner(FakeModule(engine.server_address)).join()
    assert len(posts(engine)) == 3


def test_a_join_refused_for_good_is_not_tried_again(engine):
    engine.routes[("POST", "/swarm/join")] = (400, {"message": "invalid join token"})
    engine.routes[("GET", "/info")] = (200, INACTIVE)
    with pytest.raises(DockerAPIError, match="invalid join token"):
        SwarmJoiner(FakeModule(engine.server_address)).join()
    assert len(posts(engine)) == 1


def test_a_node_that_joins_in_spite_of_an_error_is_waited_for(engine):
    infos = iter([INACTIVE, {"Swarm": {"LocalNodeState": "pending"}}, {"Swarm": {"LocalNodeState": "pending"}}])
    engine.routes[("GET", "/info")] = lambda: (200, next(infos, WORKER))
    engine.routes[("POST", "/swarm/join")] = (500, {"message": "context deadline exceeded"})
    changed, swarm = SwarmJoiner(FakeModule(engine.server_address)).join()
    assert (changed, swarm["NodeID"], len(posts(engine))) == (True, "W1", 1)


GAVE_UP = {"Swarm": {"LocalNodeState": "error", "Error": "rpc error: code = Unknown desc = raft: stopped"}}


def leaves(engine):
    return [p for m, p, _body in engine.requests if (m, p) == ("POST", "/swarm/leave?force=1")]


def test_a_join_the_engine_gave_up_in_the_background_is_set_aside_and_asked_again(engine, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    joins = iter([(503, {"message": BACKGROUND}), (200, None)])
    engine.routes[("POST", "/swarm/join")] = lambda: next(joins)
    engine.routes[("POST", "/swarm/leave?force=1")] = (200, None)

    def info():
        if len(posts(engine)) == 2:
            return 200, WORKER
        if leaves(engine):
            return 200, INACTIVE
        return 200, GAVE_UP if posts(engine) else INACTIVE

    engine.routes[("GET", "/info")] = info
    changed, swarm = SwarmJoiner(FakeModule(engine.server_address)).join()
    assert (changed, swarm["NodeID"], len(posts(engine)), len(leaves(engine))) == (True, "W1", 2, 1)


def test_a_join_the_engine_gives_up_every_time_fails_with_its_reason(engine, monkeypatch):
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    engine.routes[("POST", "/swarm/join")] = (503, {"message": BACKGROUND})
    engine.routes[("POST", "/swarm/leave?force=1")] = (200, None)
    engine.routes[("GET", "/info")] = lambda: (200, GAVE_UP if len(posts(engine)) > len(leaves(engine)) else INACTIVE)
    reason = r"gave the join up \(rpc error: .*raft: stopped; .*3 attempts in all.*192\.0\.2\.11"
    with pytest.raises(Failed, match=reason):
        SwarmJoiner(FakeModule(engine.server_address)).join()
    assert (len(posts(engine)), len(leaves(engine))) == (3, 2)
