"""End to end, nothing phones out (docs/air-gap.md): the e2e lab's egress log, from before
`lab up` through site.yml and every test of the session, holds no drop.

The lab drops and logs every packet from its networks to anything outside them (lab/idclab
fabric.contain_egress): a component that tried usage.projectcalico.org, an upstream image
registry or a public resolver shows up there. Marker `final` (conftest.py) runs this after
the drills, so it covers the whole tier; a fixture teardown could not fail the run.
"""
import pytest

from e2e import FIGURES, LAB
from lab_helpers import egress_log, log_fields

pytestmark = pytest.mark.final


def test_the_lab_logged_no_egress_during_the_session(cluster):
    drops = egress_log(LAB, since=cluster["egress_mark"])
    FIGURES["egress_drops"] = len(drops)
    summary = sorted({(f.get("SRC"), f.get("DST"), f.get("PROTO"), f.get("DPT")) for f in map(log_fields, drops)})
    assert drops == [], f"the e2e lab tried to reach outside it ({len(drops)} drops; src, dst, proto, port): {summary}"
