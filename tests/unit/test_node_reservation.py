"""The reservation filter against GKE's published tiers and worked figures."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.filter.node_reservation import node_reservation
from ansible_collections.idcloud.platform.plugins.module_utils.node.node_reservation import (
    gke_cpu_millicores,
    gke_memory_mib,
)


@pytest.mark.parametrize(
    "cores, millicores",
    [
        (1, 60),  # 6% of the first core
        (2, 70),  # + 1% of the second
        (4, 80),  # + 0.5% of cores 3 and 4
        (8, 90),  # + 0.25% of cores 5..8
        (32, 150),  # 80 + 28 * 2.5
        (64, 230),  # 80 + 60 * 2.5
        (96, 310),
        (0.5, 30),  # part of the first core
    ],
)
def test_cpu_tiers(cores, millicores):
    assert gke_cpu_millicores(cores) == millicores


@pytest.mark.parametrize(
    "gib, reserved_gib",
    [
        (1, 0.25),
        (4, 1.0),  # 25% of 4
        (8, 1.8),  # + 20% of 4
        (16, 2.6),  # + 10% of 8
        (32, 3.56),  # + 6% of 16
        (128, 9.32),  # + 6% of 112
        (150, 9.76),  # + 2% of 22
        (256, 11.88),
    ],
)
def test_memory_tiers(gib, reserved_gib):
    assert gke_memory_mib(gib * 1024) == pytest.approx(reserved_gib * 1024, abs=1)


def test_published_150_gib_example_with_eviction():
    # The published worked figure: 150 GiB reserves 9.8577 GiB including 100 MiB eviction.
    total = gke_memory_mib(150 * 1024) + 100
    assert total / 1024 == pytest.approx(9.8577, abs=1 / 1024)  # we round up to whole MiB


def test_small_machine_gets_fixed_255_mib():
    assert gke_memory_mib(600) == 255


def test_split_sums_to_the_total_and_allocatable_subtracts_eviction():
    r = node_reservation({"cpu": 32, "memory_gib": 128})
    assert r["total"] == {"cpu_millicores": 150, "memory_mib": 9544}
    kube_cpu, sys_cpu = int(r["kube_reserved"]["cpu"][:-1]), int(r["system_reserved"]["cpu"][:-1])
    kube_mem, sys_mem = int(r["kube_reserved"]["memory"][:-2]), int(r["system_reserved"]["memory"][:-2])
    assert kube_cpu + sys_cpu == 150 and sys_cpu == 45
    assert kube_mem + sys_mem == 9544 and sys_mem == 2863
    assert r["eviction_hard"] == {"memory.available": "100Mi"}
    assert r["allocatable"] == {"cpu_millicores": 32000 - 150, "memory_mib": 128 * 1024 - 9544 - 100}


def test_memory_mib_input_and_share_bounds():
    r = node_reservation({"cpu": 4, "memory_mib": 8192}, system_share=0)
    assert r["system_reserved"] == {"cpu": "0m", "memory": "0Mi"}
    assert r["kube_reserved"] == {"cpu": "80m", "memory": f"{gke_memory_mib(8192)}Mi"}


@pytest.mark.parametrize(
    "size, message",
    [
        ({"cpu": 0, "memory_gib": 8}, "cpu=0 must be positive"),
        ({"cpu": "many", "memory_gib": 8}, "not a number"),
        ({"cpu": 8}, "memory_gib=None is not a number"),
        ({"cpu": True, "memory_gib": 8}, "must be positive"),
        ([8, 32], "expected a dict"),
    ],
)
def test_bad_sizes_are_rejected_with_the_field(size, message):
    with pytest.raises(AnsibleFilterError, match=message):
        node_reservation(size)


def test_bad_share_is_rejected():
    with pytest.raises(AnsibleFilterError, match="system_share"):
        node_reservation({"cpu": 8, "memory_gib": 32}, system_share=1.5)
