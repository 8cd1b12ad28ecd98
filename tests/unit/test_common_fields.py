# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The error collector and field readers the IDC description and the Calico plan share (module_utils/common)."""

from __future__ import annotations

import ipaddress
import pickle

import pytest

from ansible_collections.idcloud.platform.plugins.module_utils.calico.calico_network_plan import CalicoPlanError
from ansible_collections.idcloud.platform.plugins.module_utils.common.errors import ErrorCollector, ValidationError
from ansible_collections.idcloud.platform.plugins.module_utils.common.fields import (
    AS_MAX,
    DEFAULT_BLOCK_SIZE,
    FieldReader,
    block_count,
    pod_pools,
)
from ansible_collections.idcloud.platform.plugins.module_utils.idc.idc import IdcValidationError

net = ipaddress.ip_network


# -- the collector ---------------------------------------------------------------------------


def test_collector_keeps_going_and_raises_everything_at_once():
    errors = ErrorCollector()
    errors.raise_if_any()  # nothing recorded: no exception
    errors.fail("a.b", "is wrong", "make it right")
    errors.fail("c", "is missing", "add it")
    with pytest.raises(ValidationError) as info:
        errors.raise_if_any()
    assert info.value.errors == ["a.b: is wrong; fix: make it right", "c: is missing; fix: add it"]
    assert (
        str(info.value)
        == "the input has 2 errors:\n  - a.b: is wrong; fix: make it right\n  - c: is missing; fix: add it"
    )


@pytest.mark.parametrize(
    "error_class, head",
    [
        (IdcValidationError, "the IDC description has 1 error:"),
        (CalicoPlanError, "the Calico network plan has 1 error:"),
    ],
)
def test_each_checker_names_what_it_checked(error_class, head):
    class Checker(ErrorCollector):
        pass

    Checker.error_class = error_class
    checker = Checker()
    checker.fail("x", "y", "z")
    with pytest.raises(error_class) as info:
        checker.raise_if_any()
    assert str(info.value) == f"{head}\n  - x: y; fix: z"
    assert isinstance(info.value, ValueError)


def test_errors_survive_pickling():
    # the inventory plugin may run in a worker process
    error = pickle.loads(pickle.dumps(CalicoPlanError(["a: b; fix: c"])))
    assert type(error) is CalicoPlanError and error.errors == ["a: b; fix: c"]


# -- the readers -----------------------------------------------------------------------------


def read(reader_name, value, typed=True, **kw):
    fields = FieldReader(typed_values=typed)
    result = getattr(fields, reader_name)(value, "where", "EXAMPLE", **kw)
    return result, fields.errors


@pytest.mark.parametrize("typed, shown", [(True, "a string '16'"), (False, "'16'")])
def test_a_wrong_value_is_shown_with_or_without_its_type(typed, shown):
    assert read("as_number", "16", typed=typed) == (
        None,
        [
            f"where: expected an AS number (integer), got {shown}; fix: write a plain integer without quotes, e.g. EXAMPLE"
        ],
    )


@pytest.mark.parametrize("value, good", [(1, True), (AS_MAX, True), (0, False), (AS_MAX + 1, False), (True, False)])
def test_as_numbers(value, good):
    result, errors = read("as_number", value)
    assert (result == value and not errors) if good else (result is None and len(errors) == 1)


@pytest.mark.parametrize(
    "value, good",
    [(20, True), (32, True), (DEFAULT_BLOCK_SIZE, True), (19, False), (33, False), ("27", False), (False, False)],
)
def test_block_sizes(value, good):
    result, errors = read("block_size", value)
    assert (result == value and not errors) if good else errors[0].startswith("where: expected a prefix length 20..32")


def test_networks_come_back_parsed():
    result, errors = read("network", "10.244.0.0/16")
    assert result == net("10.244.0.0/16") and isinstance(result, ipaddress.IPv4Network) and not errors
    assert read("network", "fd00::/64")[0] == net("fd00::/64")


@pytest.mark.parametrize(
    "value, message",
    [
        ("10.244.1.0/16", "where: 10.244.1.0/16 has host bits set; fix: use the network address: 10.244.0.0/16"),
        ("10.244.0.0/33", "where: '10.244.0.0/33' is not a valid CIDR; fix: write it as e.g. EXAMPLE"),
        (
            "10.244.0.0",
            "where: expected a CIDR (address/prefix), got a string '10.244.0.0'; fix: write it as e.g. EXAMPLE",
        ),
        (16, "where: expected a CIDR (address/prefix), got an integer 16; fix: write it as e.g. EXAMPLE"),
    ],
)
def test_bad_networks(value, message):
    assert read("network", value) == (None, [message])


def test_ipv4_only_readers_refuse_ipv6():
    assert read("network", "fd00::/64", ipv4_only=True)[1][0].startswith("where: fd00::/64 is not IPv4; fix: ")
    assert read("address", "fd00::1", ipv4_only=True)[1][0].startswith("where: fd00::1 is not an IPv4 address; fix: ")
    assert read("address", "10.1.1.1", ipv4_only=True) == (ipaddress.ip_address("10.1.1.1"), [])


@pytest.mark.parametrize(
    "value, message",
    [
        ("10.1.1", "where: '10.1.1' is not a valid IP address; fix: write it as e.g. EXAMPLE"),
        (101, "where: expected an IP address, got an integer 101; fix: write it as e.g. EXAMPLE"),
    ],
)
def test_bad_addresses(value, message):
    assert read("address", value) == (None, [message])


def test_interfaces_keep_their_prefix_and_refuse_the_network_address():
    iface, errors = read("interface", "10.210.0.11/24")
    assert (str(iface.ip), str(iface.network), errors) == ("10.210.0.11", "10.210.0.0/24", [])
    assert read("interface", "10.210.0.0/24")[1] == [
        "where: 10.210.0.0 is the network address of 10.210.0.0/24; fix: use a host address in 10.210.0.0/24"
    ]


def test_take_reports_missing_required_keys_only():
    fields = FieldReader()
    assert fields.take({}, "node_as", "cluster", fields.as_number, "64512") is None
    assert fields.take({}, "domain", "cluster", fields.text, "x", required=False) is None
    assert fields.take({"port": 8443}, "port", "cluster", fields.port, "6443") == 8443
    assert fields.errors == ["cluster.node_as: missing; fix: add it, e.g. node_as: 64512"]


def test_unknown_keys_suggest_the_close_one():
    fields = FieldReader()
    fields.unknown_keys({"pod_cdr": 1, "zzz": 2}, ("pod_cidr", "service_cidr"), "cluster")
    assert fields.errors == [
        "cluster.pod_cdr: unknown key 'pod_cdr'; fix: did you mean pod_cidr?",
        "cluster.zzz: unknown key 'zzz'; fix: remove it; known keys here: pod_cidr, service_cidr",
    ]


# -- the pod network rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    "fixed, problem",
    [
        ("10.245.0.0/24", "pod: 10.245.0.0/24 is outside the pod cidr 10.244.0.0/16"),
        ("10.244.0.0/16", "pod: 10.244.0.0/16 is all of the pod cidr"),
        ("10.244.0.16/28", "pod: 10.244.0.16/28 is smaller than one /27 block (size)"),
    ],
)
def test_fixed_range_must_be_whole_blocks_inside_the_pod_network(fixed, problem):
    fields = FieldReader()
    assert fields.fixed_ip_range(net(fixed), net("10.244.0.0/16"), 27, "pod", "the pod cidr", "size") is None
    assert len(fields.errors) == 1 and fields.errors[0].startswith(problem + "; fix: ")


def test_a_good_fixed_range_and_what_is_left_for_the_nodes():
    fields = FieldReader()
    fixed = fields.fixed_ip_range(net("10.244.255.0/24"), net("10.244.0.0/16"), 27, "f", "p")
    assert fixed == net("10.244.255.0/24") and not fields.errors
    pools = pod_pools(net("10.244.0.0/16"), fixed)
    assert [str(p) for p in pools] == [
        "10.244.0.0/17",
        "10.244.128.0/18",
        "10.244.192.0/19",
        "10.244.224.0/20",
        "10.244.240.0/21",
        "10.244.248.0/22",
        "10.244.252.0/23",
        "10.244.254.0/24",
    ]
    assert block_count(pools, 27) == 2048 - 8
    assert block_count([net("10.244.0.0/24")], 27) == 8
    # a pool smaller than one block holds none
    assert block_count([net("10.244.0.0/28")], 27) == 0
    assert pod_pools(net("10.244.0.0/16")) == [net("10.244.0.0/16")]
