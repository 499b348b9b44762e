#!/usr/bin/python
# Copyright: ShopStream platform team
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: swarm_join
short_description: Join this host to a Docker Swarm without letting it take work yet
version_added: 0.1.0
author: ShopStream platform team (@shopstream)
description:
  - Joins the host to an existing swarm as a manager or a worker (the join token decides),
    with its availability set in the join request itself, C(drain) by default, so that the
    scheduler places nothing on it before its labels are set
    (L(moby#25220,https://github.com/moby/moby/issues/25220)).
    C(community.docker.docker_swarm) cannot do this, it joins nodes active.
  - A manager join waits until the new manager is reachable in Raft, so that managers can be
    joined one at a time safely.
  - After any error of the join request, a node that is joining anyway (pending) is waited for. A
    join the managers refused as unavailable or answered too late (gRPC C(Unavailable),
    C(DeadlineExceeded), as a swarm that was just forced or rejoined may) is tried again, three attempts
    in all, 5 then 10 seconds apart. So is a join the engine went on with in the background and then
    gave up (state C(error), which the engine does not try again by itself), once its half-made swarm
    state is set aside (a forced leave of this host only, which is in no swarm yet).
  - A host already in a swarm is left alone and reported unchanged. Whether that swarm is the
    right one is for M(shopstream.swarm.swarm_host_info) and the preflight role to decide.
  - Talks to the Engine API over its unix socket with the Python standard library only.
extends_documentation_fragment:
  - shopstream.swarm.attributes
  - shopstream.swarm.engine_api
options:
  remote_addrs:
    description: Addresses (C(host:port)) of managers of the swarm.
    type: list
    elements: str
    required: true
  join_token:
    description:
      - The worker or manager join token, read fresh from a manager. Never logged.
      - Not needed in check mode.
    type: str
  advertise_addr:
    description: Address advertised to the other nodes.
    type: str
    required: true
  listen_addr:
    description: Address (and port) the node listens on for cluster management.
    type: str
    default: 0.0.0.0:2377
  data_path_addr:
    description: Address for data traffic (overlay networks); defaults to the advertise address.
    type: str
  availability:
    description: Availability the node joins with.
    type: str
    choices: [active, pause, drain]
    default: drain
  timeout:
    description: Seconds to wait for the join and, for a manager, for it to become reachable.
    type: int
    default: 120
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
notes:
  - Set labels and availability afterwards with C(community.docker.docker_node) from a manager.
seealso:
  - module: shopstream.swarm.swarm_host_info
  - module: community.docker.docker_node
"""

EXAMPLES = r"""
- name: Join a worker, drained until it is labelled
  shopstream.swarm.swarm_join:
    remote_addrs: ["10.0.0.11:2377"]
    join_token: "{{ tokens.swarm_facts.JoinTokens.Worker }}"
    advertise_addr: "{{ ansible_facts.default_ipv4.address }}"

- name: Run again on a node already joined - reports no change
  shopstream.swarm.swarm_join:
    remote_addrs: ["10.0.0.11:2377"]
    join_token: "{{ tokens.swarm_facts.JoinTokens.Worker }}"
    advertise_addr: "{{ ansible_facts.default_ipv4.address }}"
"""

RETURN = r"""
node_id:
  description: The node's swarm ID; empty in check mode when the node would join.
  returned: always
  type: str
  sample: 2lx4ky3ai2qwfwfb7o3j7ns2b
is_manager:
  description: Whether the node is a manager.
  returned: always
  type: bool
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.shopstream.swarm.plugins.module_utils._docker_api import DockerAPIError, DockerClient

# Errors of a join that a later attempt may not meet: the managers' gRPC not answering yet, or
# answering too late (a swarm that was just forced or rejoined), or this engine not answering.
PASSING_REFUSALS = ("code = Unavailable", "code = DeadlineExceeded", "context deadline exceeded", "Cannot talk to")
RETRY_PAUSES = (5, 10)  # seconds before the second and the third attempt


class SwarmJoiner:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.client = DockerClient(self.params["docker_host"], timeout=self.params["timeout"])

    def swarm(self):
        return self.client.get_json("/info").get("Swarm") or {}

    def join(self):
        before = self.swarm()
        if before.get("LocalNodeState") == "active":
            return False, before
        if self.module.check_mode:
            return True, {}
        if not self.params["join_token"]:
            self.module.fail_json(msg="join_token is required to join the swarm outside check mode.")
        for attempt in range(len(RETRY_PAUSES) + 1):
            last = attempt == len(RETRY_PAUSES)
            try:
                self.client.request("POST", "/swarm/join", self.request_body())
                break
            except DockerAPIError as exc:
                # The engine answers 503 when its own wait (20 s) ends before the node joined, and
                # goes on joining; whatever the error, a node that is joining is waited for (and one
                # whose engine gave the join up is set aside and asked again).
                if self.local_state() in ("pending", "active", "error"):
                    if self.wait_active(str(exc), last):
                        break
                    # The engine gave the join up (state: error), and does not try it again by itself:
                    # its half-made swarm state is set aside and the join is asked for again.
                    self.leave()
                    time.sleep(RETRY_PAUSES[attempt])
                    continue
                # A manager that is still settling (a swarm just forced or rejoined) may refuse or
                # not answer the join: asked again a little later, it takes it.
                if not last and any(word in str(exc) for word in PASSING_REFUSALS):
                    time.sleep(RETRY_PAUSES[attempt])
                    continue
                raise
        after = self.swarm()
        if after.get("ControlAvailable"):
            self.wait_reachable(after["NodeID"])
        return True, after

    def request_body(self):
        return {
            "ListenAddr": self.params["listen_addr"],
            "AdvertiseAddr": self.params["advertise_addr"],
            "DataPathAddr": self.params["data_path_addr"] or self.params["advertise_addr"],
            "RemoteAddrs": self.params["remote_addrs"],
            "JoinToken": self.params["join_token"],
            "Availability": self.params["availability"],
        }

    def local_state(self):
        """This engine's LocalNodeState, None when it does not answer."""
        try:
            return self.swarm().get("LocalNodeState")
        except DockerAPIError:
            return None

    def poll(self, read):
        """Call ``read()`` (returns (done, state)) once a second until it is done or ``timeout`` ends;
        returns (done, the last state read)."""
        deadline = time.monotonic() + self.params["timeout"]
        done, state = False, None
        while not done and time.monotonic() < deadline:
            done, state = read()
            if not done:
                time.sleep(1)
        return done, state

    def leave(self):
        self.client.request("POST", "/swarm/leave?force=1")

    def wait_active(self, answer, last):
        """Wait until the join the engine goes on with ends: True once active, False once the engine gave
        it up (state: error) while another attempt is left; fails otherwise."""

        def read():
            swarm = self.swarm()
            return swarm.get("LocalNodeState") in ("active", "error"), swarm

        done, swarm = self.poll(read)
        state = (swarm or {}).get("LocalNodeState")
        if state == "active":
            return True
        if state == "error" and not last:
            return False
        if state == "error":
            self.module.fail_json(
                msg=f"The engine gave the join up ({swarm.get('Error') or 'no reason given'}; it answered: "
                f"{answer}), {len(RETRY_PAUSES) + 1} attempts in all. Check that the managers at "
                f"{', '.join(self.params['remote_addrs'])} are reachable on 2377/tcp and have a Raft leader."
            )
        self.module.fail_json(
            msg=f"The engine is still joining the swarm after {self.params['timeout']}s (state: {state}; it "
            f"answered: {answer}). Check that the managers at {', '.join(self.params['remote_addrs'])} are "
            "reachable on 2377/tcp."
        )

    def wait_reachable(self, node_id):
        def read():
            try:
                state = (self.client.get_json(f"/nodes/{node_id}").get("ManagerStatus") or {}).get("Reachability")
            except DockerAPIError as exc:
                return False, str(exc)
            return state == "reachable", state

        done, state = self.poll(read)
        if not done:
            self.module.fail_json(
                msg="Joined as manager, but the node did not become reachable in Raft within "
                f"{self.params['timeout']}s (last state: {state}). Check that port 2377/tcp is open "
                "between the managers."
            )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            remote_addrs=dict(type="list", elements="str", required=True),
            join_token=dict(type="str", no_log=True),
            advertise_addr=dict(type="str", required=True),
            listen_addr=dict(type="str", default="0.0.0.0:2377"),
            data_path_addr=dict(type="str"),
            availability=dict(type="str", choices=["active", "pause", "drain"], default="drain"),
            timeout=dict(type="int", default=120),
            docker_host=dict(type="str", default="unix:///var/run/docker.sock"),
        ),
        supports_check_mode=True,
    )
    try:
        changed, swarm = SwarmJoiner(module).join()
    except DockerAPIError as exc:
        module.fail_json(msg=f"Joining the swarm at {', '.join(module.params['remote_addrs'])} failed: {exc}")
    module.exit_json(changed=changed, node_id=swarm.get("NodeID", ""), is_manager=bool(swarm.get("ControlAvailable")))


if __name__ == "__main__":
    main()
