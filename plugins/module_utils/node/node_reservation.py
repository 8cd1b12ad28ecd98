# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Node resource reservation for the kubelet, from the node's size.

The tiers are GKE's published formula for Standard node pools ("Plan GKE Standard node
sizes", memory and CPU reservations), chosen because it is published, tiered and scales
from small VMs to large bare-metal servers:

  CPU:    6% of the first core, 1% of the next core (up to 2), 0.5% of the next 2 cores
          (up to 4), 0.25% of every core above 4
  memory: 255 MiB on machines under 1 GiB; otherwise 25% of the first 4 GiB, 20% of the
          next 4 GiB (up to 8), 10% of the next 8 GiB (up to 16), 6% of the next 112 GiB
          (up to 128), 2% of everything above 128 GiB
  eviction: memory.available < 100Mi (hard)

idcloud splits that total between kube-reserved (kubelet, runtime, network agent, log
shipper) and system-reserved (sshd, journald, chrony, ...) by `system_share`.
"""

from __future__ import annotations

import math

CPU_TIERS = ((1.0, 0.06), (1.0, 0.01), (2.0, 0.005), (math.inf, 0.0025))
MEMORY_TIERS_GIB = ((4.0, 0.25), (4.0, 0.20), (8.0, 0.10), (112.0, 0.06), (math.inf, 0.02))
SMALL_MACHINE_MIB = 255
EVICTION_HARD_MIB = 100


class NodeReservationError(ValueError):
    """The node's size cannot give a result; the message names the value and the fix."""


def _tiered(amount, tiers):
    reserved, left = 0.0, amount
    for width, share in tiers:
        step = min(left, width)
        reserved += step * share
        left -= step
        if left <= 0:
            break
    return reserved


def gke_cpu_millicores(cores):
    """CPU GKE reserves on a node with `cores` cores, in millicores (rounded up)."""
    return math.ceil(round(_tiered(cores, CPU_TIERS) * 1000, 6))


def gke_memory_mib(memory_mib):
    """Memory GKE reserves on a node with `memory_mib` MiB, without the eviction threshold."""
    if memory_mib < 1024:
        return SMALL_MACHINE_MIB
    return math.ceil(round(_tiered(memory_mib / 1024.0, MEMORY_TIERS_GIB) * 1024, 6))


def _positive(value, field):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NodeReservationError(
            f"{field}={value!r} is not a number; fix: give the node's size, e.g. {{cpu: 32, memory_gib: 128}}"
        )
    if isinstance(value, bool) or number <= 0:
        raise NodeReservationError(
            f"{field}={value!r} must be positive; fix: give the node's size, e.g. {{cpu: 32, memory_gib: 128}}"
        )
    return number


def node_reservation(size, system_share=0.3, eviction_hard_mib=EVICTION_HARD_MIB):
    """Split GKE's reservation for a node of `size` into kube- and system-reserved.

    size: {cpu: cores, memory_mib: MiB} or {cpu: cores, memory_gib: GiB}
    Returns millicores and MiB, plus kubelet-ready strings and the allocatable that the
    kubelet will report (capacity - kube-reserved - system-reserved - eviction-hard).
    """
    if not isinstance(size, dict):
        raise NodeReservationError(f"expected a dict like {{cpu: 32, memory_gib: 128}}, got {type(size).__name__}")
    cpu = _positive(size.get("cpu"), "cpu")
    if "memory_mib" in size:
        memory_mib = _positive(size["memory_mib"], "memory_mib")
    else:
        memory_mib = _positive(size.get("memory_gib"), "memory_gib") * 1024
    share = float(system_share)
    if not 0 <= share <= 1:
        raise NodeReservationError(f"system_share={system_share!r} must be between 0 and 1")
    eviction = int(eviction_hard_mib)
    if eviction < 0:
        raise NodeReservationError(f"eviction_hard_mib={eviction_hard_mib!r} must not be negative")

    total_cpu = gke_cpu_millicores(cpu)
    total_mem = gke_memory_mib(memory_mib)
    system_cpu = math.floor(total_cpu * share)
    system_mem = math.floor(total_mem * share)
    kube_cpu, kube_mem = total_cpu - system_cpu, total_mem - system_mem
    capacity_cpu = round(cpu * 1000)
    capacity_mem = math.floor(memory_mib)
    return {
        "total": {"cpu_millicores": total_cpu, "memory_mib": total_mem},
        "kube_reserved": {"cpu": f"{kube_cpu}m", "memory": f"{kube_mem}Mi"},
        "system_reserved": {"cpu": f"{system_cpu}m", "memory": f"{system_mem}Mi"},
        "eviction_hard": {"memory.available": f"{eviction}Mi"},
        "allocatable": {"cpu_millicores": capacity_cpu - total_cpu, "memory_mib": capacity_mem - total_mem - eviction},
    }
