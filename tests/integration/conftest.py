"""The integration tier's shared fixtures and order.

`cluster` is the one converged end-to-end lab of the session (e2e.py): made at the first
test that asks for it, removed at the end. Tests that use it run after every other test
(the other tests bring up small labs of their own and remove them); among them the tests
that add hosts to it (marker `scale`) run after the checks, and the drills (marker `drill`)
run last, in file order, so that neither can disturb a check; a drill that changes the
cluster for good (marker `last_drill`: a node re-cabled to another rack) runs after the others. Tests marked `final` read
what the whole session did (the lab's egress log) and run after the drills.

Tests marked `long` (a drill of several minutes), `kafka` (the Kafka cluster and the log
shipper), `storage` (a Ceph cluster), `scale` (hosts added to the cluster) and `check_mode` (site.yml --check on the fresh
hosts and on the converged cluster) are left out of `make integration` for the 45-minute
budget of `make test`; `make e2e-extra` runs them, with the `final` checks, on an e2e cluster
of their own. The e2e cluster carries Kafka and the log shipper only when a selected test is
marked `kafka` (about 7 minutes of every full converge otherwise), Ceph only when one is
marked `storage`, and the fixture previews
the first install with --check only when a selected test is marked `check_mode`.
"""

import pytest

from e2e import converged_cluster

WITH_KAFKA = pytest.StashKey[bool]()
WITH_CEPH = pytest.StashKey[bool]()
FRESH_CHECK = pytest.StashKey[bool]()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "scale: adds hosts to the shared cluster; runs after the checks, before the drills"
    )
    config.addinivalue_line("markers", "drill: stops real components of the shared cluster; runs last")
    config.addinivalue_line(
        "markers", "conformance: the conformance CI subset; `make conformance-ci`, out of `make test` for its budget"
    )
    config.addinivalue_line(
        "markers", "long: a drill of several minutes; `make drills`, out of `make test` for its budget"
    )
    config.addinivalue_line(
        "markers", "last_drill: changes the cluster for good (re-cables a node); runs after every other drill"
    )
    config.addinivalue_line("markers", "final: checks the whole session (egress log); runs after the drills")
    config.addinivalue_line(
        "markers",
        "kafka: needs the Kafka cluster and the log shipper in the e2e cluster; `make e2e-extra`, out of `make test`",
    )
    config.addinivalue_line(
        "markers",
        "storage: needs a Ceph cluster (the e2e cluster's, or a lab of its own); `make e2e-extra`, out of `make test`",
    )
    config.addinivalue_line(
        "markers", "check_mode: site.yml --check on fresh hosts or the converged cluster; `make e2e-extra`"
    )


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        if "cluster" not in getattr(item, "fixturenames", ()):
            return 0
        if item.get_closest_marker("final"):
            return 4
        if item.get_closest_marker("drill"):
            return 3.5 if item.get_closest_marker("last_drill") else 3
        return 2 if item.get_closest_marker("scale") else 1

    items[:] = sorted(items, key=rank)  # stable: file order within each rank


def pytest_collection_finish(session):
    # after -m deselected what it does: the session's cluster gets Kafka only if a test needs it
    session.config.stash[WITH_KAFKA] = any(item.get_closest_marker("kafka") for item in session.items)
    session.config.stash[WITH_CEPH] = any(item.get_closest_marker("storage") for item in session.items)
    # and the preview of the first install only if a test reads it
    session.config.stash[FRESH_CHECK] = any(
        item.name.startswith("test_check_mode_on_fresh_hosts") for item in session.items
    )


@pytest.fixture(scope="session")
def cluster(request, tmp_path_factory):
    with converged_cluster(
        str(tmp_path_factory.mktemp("e2e")),
        kafka=request.config.stash[WITH_KAFKA],
        ceph=request.config.stash[WITH_CEPH],
        fresh_check=request.config.stash[FRESH_CHECK],
    ) as c:
        yield c
