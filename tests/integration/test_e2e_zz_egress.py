"""End to end, nothing phones out (docs/air-gap.md): the e2e lab's egress log, from before
`lab up` through site.yml and every test of the session.

The lab drops and logs every packet from its networks to anything outside them (lab/idclab
fabric.contain_egress): a component that tried usage.projectcalico.org, an upstream image
registry or a public resolver shows up there. Marker `final` (conftest.py) runs this after
the drills, so it covers the whole tier; a fixture teardown could not fail the run.

The log is read in two parts, to say which kind of failure it is. Drops to addresses
outside the cluster's pod and service networks are something trying to leave the IDC.
Drops to addresses inside them are packets for a pod or Service address that nothing
answered which left a host by its default route instead of dying on the way: the hosts
refuse untranslated service addresses (roles/network_guard) and the ToRs null-route both
ranges (tor_frr_config). Neither kind is allowed.
"""

import ipaddress

import pytest

from e2e import FIGURES, LAB
from lab_helpers import egress_log, log_fields

pytestmark = pytest.mark.final


def _drops(cluster):
    nets = [ipaddress.ip_network(cluster["desc"]["cluster"][k]) for k in ("pod_cidr", "service_cidr")]
    inside, outside = [], []
    for line in egress_log(LAB, since=cluster["egress_mark"]):
        fields = log_fields(line)
        dst = ipaddress.ip_address(fields.get("DST", "0.0.0.0"))
        (inside if any(dst in n for n in nets) else outside).append(fields)
    return inside, outside


def _summary(drops):
    return sorted({(f.get("SRC"), f.get("DST"), f.get("PROTO"), f.get("DPT")) for f in drops})


def test_the_lab_logged_no_egress_outside_the_cluster_during_the_session(cluster):
    inside, outside = _drops(cluster)
    FIGURES["egress_drops"] = len(outside)
    FIGURES["egress_drops_cluster_ranges"] = {"drops": len(inside), "flows": [list(t) for t in _summary(inside)]}
    assert outside == [], (
        f"the e2e lab tried to reach outside it ({len(outside)} drops; src, dst, proto, port): {_summary(outside)}"
    )


def test_no_packet_for_the_cluster_ranges_left_a_host(cluster):
    inside, _ = _drops(cluster)
    assert inside == [], (
        f"{len(inside)} drops to the pod or service network (src, dst, proto, port): "
        f"{_summary(inside)}; the host's guard (nft list counter inet idcloud_guard "
        "untranslated) or the ToR's null route should have stopped them"
    )
