# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The network guard's settings check and ruleset parameters (module_utils/node/network_guard_plan.py)."""

from __future__ import annotations

import pytest

from ansible_collections.idcloud.platform.plugins.module_utils.node.network_guard_plan import (
    NetworkGuardError,
    network_guard_plan,
)


def test_the_service_network_gives_an_ipv4_set():
    assert network_guard_plan(["10.96.0.0/12"], service_cidr="10.96.0.0/12") == {
        "family": 4,
        "set_type": "ipv4_addr",
        "match": "ip",
        "elements": ["10.96.0.0/12"],
        "log_rate": 10,
    }


def test_ipv6_ranges_give_an_ipv6_set_and_a_rate_given_as_text_is_a_number():
    plan = network_guard_plan(["fd00:96::/108"], log_rate="0")
    assert (plan["set_type"], plan["match"], plan["log_rate"]) == ("ipv6_addr", "ip6", 0)


def test_every_problem_at_once_each_with_its_field():
    with pytest.raises(NetworkGuardError) as info:
        network_guard_plan(
            ["10.96.0.1/12", "fd00::/64", "10.1.0.0", 7, "10.0.0.0/8"],
            action="reject",
            log_rate=-1,
            log_prefix='say "hi"',
            table="1bad-name",
        )
    fields = [error.split(":")[0] for error in info.value.errors]
    assert fields == [
        "network_guard_cidrs[0]",
        "network_guard_cidrs[2]",
        "network_guard_cidrs[3]",
        "network_guard_cidrs",
        "network_guard_action",
        "network_guard_log_rate",
        "network_guard_log_prefix",
        "network_guard_table",
    ]
    assert all("; fix: " in error for error in info.value.errors)
    assert str(info.value).startswith("network_guard has 8 errors:\n")


@pytest.mark.parametrize("cidrs", [[], "10.96.0.0/12", None])
def test_no_list_or_an_empty_one_is_refused(cidrs):
    with pytest.raises(NetworkGuardError, match=r"network_guard_cidrs: .*(is empty|is not a list)"):
        network_guard_plan(cidrs)


@pytest.mark.parametrize("guarded", [["10.96.0.0/12"], ["10.96.4.0/24"], ["10.0.0.0/8"]])
def test_ipvs_refuses_a_range_that_overlaps_the_service_network(guarded):
    with pytest.raises(NetworkGuardError, match="ipvs mode"):
        network_guard_plan(guarded, service_cidr="10.96.0.0/12", proxy_mode="ipvs")
    # the other modes translate a programmed Service address before the guard sees it
    for mode in ("iptables", "nftables"):
        assert network_guard_plan(guarded, service_cidr="10.96.0.0/12", proxy_mode=mode)["elements"] == guarded


def test_ipvs_leaves_a_range_apart_from_the_service_network_alone():
    assert network_guard_plan(["10.200.0.0/16"], service_cidr="10.96.0.0/12", proxy_mode="ipvs")["family"] == 4


def test_the_log_prefix_may_be_as_long_as_the_kernel_takes():
    assert network_guard_plan(["10.96.0.0/12"], log_prefix="x" * 127)["family"] == 4
    with pytest.raises(NetworkGuardError, match="network_guard_log_prefix"):
        network_guard_plan(["10.96.0.0/12"], log_prefix="x" * 128)
