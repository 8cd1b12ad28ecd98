#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
module: calico_bgp_status
short_description: Report the BGP sessions of a Calico node from BIRD's control socket
version_added: 0.1.0
description:
  - Runs on a Kubernetes node and asks BIRD 1.x (the BGP daemon inside calico-node, host network) through its
    control socket with BIRD's own text protocol (C(show status), C(show protocols all)). No birdcl, calicoctl
    or Kubernetes access is needed.
  - Returns every BGP protocol as a session (Calico names them C(Node_<ip>) for node-specific BGPPeers,
    C(Global_<ip>) for global ones and C(Mesh_<ip>) for the node-to-node mesh) and a list of problems.
  - "A problem is: BIRD not answering (calico-node down, socket missing); an expected peer (the node's ToR) with
    no session, or with another AS; a session not C(Established); a session to an expected peer that imported
    routes (a node should learn nothing from its ToR)."
  - Never changes anything; C(changed) is always false.
author:
  - idcloud developers
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
options:
  socket:
    description:
      - Path of BIRD's control socket on the node (root-owned; use C(become)).
      - Calico's IPv6 BIRD listens on C(/var/run/calico/bird6.ctl).
    type: path
    default: /var/run/calico/bird.ctl
  expected_peers:
    description:
      - The peers this node must have a session with, usually its rack's ToR
        (C(idc_tor_peer) and C(idc_tor_as) from the IDC inventory).
    type: list
    elements: dict
    default: []
    suboptions:
      address:
        description: Peer IP address.
        type: str
        required: true
      as:
        description: Peer AS number.
        type: int
        required: true
  fail_on_problem:
    description:
      - Fail the task when RV(problems) is not empty (the message lists them). Otherwise the task succeeds and
        RV(ok) tells.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for BIRD to connect and answer each command.
    type: int
    default: 5
notes:
  - Only BIRD 1.x (Calico's C(bird)/C(bird6)) is understood; BIRD 2 prints sessions per channel.
seealso:
  - module: idcloud.platform.calico_resource
"""

EXAMPLES = r"""
- name: BGP sessions of this node
  idcloud.platform.calico_bgp_status:
    expected_peers:
      - address: "{{ idc_tor_peer }}"
        as: "{{ idc_tor_as }}"
  become: true
  register: node_bgp

- name: Fail right here when the ToR session is not up
  idcloud.platform.calico_bgp_status:
    expected_peers: [{address: 10.10.1.254, as: 65101}]
    fail_on_problem: true
  become: true
"""

RETURN = r"""
bird_running:
  description: BIRD answered on O(socket).
  returned: always
  type: bool
bird_version:
  description: BIRD's version as it reports it (Calico's build shows C(v0.3.3+birdv1.6.8)).
  returned: always
  type: str
  sample: v0.3.3+birdv1.6.8
router_id:
  description: BIRD's router ID (Calico uses the node's IPv4 address).
  returned: always
  type: str
  sample: 10.10.1.11
socket:
  description: The socket asked.
  returned: always
  type: str
sessions:
  description: Every BGP protocol of BIRD, in BIRD's order. Counters are C(null) when BIRD did not print them.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: BIRD protocol name.
      type: str
      sample: Node_10_10_1_254
    kind:
      description: From the name, C(node), C(global), C(mesh) or C(other).
      type: str
    state:
      description: BIRD's protocol state (C(up), C(start), C(down), ...).
      type: str
    info:
      description: The info column (C(Established), or C(Active Socket... Connection refused), ...).
      type: str
    bgp_state:
      description: BGP state (C(Established), C(Active), C(Connect), C(Idle), C(OpenSent), C(OpenConfirm), ...).
      type: str
    since:
      description: When the protocol entered its state, as BIRD prints it.
      type: str
    neighbor_address:
      description: Peer address.
      type: str
    neighbor_as:
      description: Peer AS.
      type: int
    neighbor_id:
      description: Peer router ID (established sessions only).
      type: str
    source_address:
      description: Local address of the session (established sessions only).
      type: str
    description:
      description: Protocol description.
      type: str
    routes_imported:
      description: Routes imported from the peer (the C(Routes) line).
      type: int
    routes_filtered:
      description: Routes filtered on import (0 when BIRD does not print the column).
      type: int
    routes_exported:
      description: Routes exported to the peer.
      type: int
    routes_preferred:
      description: Imported routes that are the best ones.
      type: int
    import_updates:
      description: Import update counters, keys C(received), C(rejected), C(filtered), C(ignored), C(accepted)
        (C(null) for BIRD's C(---)).
      type: dict
    import_withdraws:
      description: Import withdraw counters, same keys.
      type: dict
    export_updates:
      description: Export update counters, same keys.
      type: dict
    export_withdraws:
      description: Export withdraw counters, same keys.
      type: dict
    last_error:
      description: BIRD's last error of the session.
      type: str
    expected:
      description: The session is to one of O(expected_peers).
      type: bool
problems:
  description: What is wrong, one sentence each, naming the session or peer and what to check.
  returned: always
  type: list
  elements: str
  sample: ["BGP session Node_10_10_1_254 (neighbor 10.10.1.254, AS 65101) is not Established: Active, since 10:02:11 (BIRD state start)"]
ok:
  description: No problem found.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idcloud.platform.plugins.module_utils.calico.calico_bgp_status import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    inspect_bird,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    p = module.params
    result = inspect_bird(p["socket"], p["expected_peers"], timeout=p["timeout"])
    if p["fail_on_problem"] and result["problems"]:
        module.fail_json(msg="; ".join(result["problems"]), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
