"""apiserver in-flight limits: Little's law over the apiservers that survive."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.filter.apiserver_inflight import apiserver_inflight


def test_jd_sizing_with_one_apiserver_down():
    r = apiserver_inflight(8500, 10)
    assert r["qps_per_apiserver"] == 944.4  # 8500 / 9 survivors
    # 945 concurrent at 1 s: one third mutating, two thirds read-only
    assert r == {"qps_per_apiserver": 944.4, "max_requests_inflight": 630, "max_mutating_requests_inflight": 315}


def test_jd_sizing_with_all_apiservers_up_is_their_850_qps_each():
    r = apiserver_inflight(8500, 10, failures=0)
    assert r["qps_per_apiserver"] == 850.0
    assert r["max_requests_inflight"] + r["max_mutating_requests_inflight"] >= 850


def test_small_clusters_keep_the_upstream_defaults():
    assert apiserver_inflight(300, 3) == {
        "qps_per_apiserver": 150.0,
        "max_requests_inflight": 400,
        "max_mutating_requests_inflight": 200,
    }


def test_limits_grow_with_allowed_latency():
    fast, slow = apiserver_inflight(20000, 5, latency_s=0.5), apiserver_inflight(20000, 5, latency_s=2)
    assert slow["max_requests_inflight"] > fast["max_requests_inflight"]


@pytest.mark.parametrize(
    "args, message",
    [
        ((0, 3), "qps_target"),
        ((8500, 1), "at least one apiserver must survive"),
        ((8500, 3, 3), "failures < apiservers"),
        (("lots", 3), "non-numeric"),
    ],
)
def test_bad_input_names_the_field(args, message):
    with pytest.raises(AnsibleFilterError, match=message):
        apiserver_inflight(*args)
