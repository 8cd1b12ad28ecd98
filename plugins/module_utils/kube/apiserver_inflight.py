# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""kube-apiserver in-flight limits from a cluster-wide QPS target.

JD sized 1,000 nodes at about 8,500 QPS across 10 apiservers (about 850 QPS each). The
limits bound how many requests one apiserver works on at once, so by Little's law
(concurrency = arrival rate x time in system) they follow from the QPS one apiserver must
carry and the latency it is allowed: Kubernetes' API call latency SLO is 1 s at p99 for
single-object calls, the bound used here. Apiservers that survive a failure absorb its
share, so the QPS per apiserver is the target divided by the apiservers left after
`failures` are lost. Read-only and mutating limits keep the upstream default ratio (2:1,
400/200) and never go below the defaults.
"""

from __future__ import annotations

import math

DEFAULT_READONLY = 400
DEFAULT_MUTATING = 200


class ApiserverInflightError(ValueError):
    """The sizing inputs cannot give a result; the message names the value and the fix."""


def apiserver_inflight(qps_target, apiservers, failures=1, latency_s=1.0, mutating_share=1 / 3):
    try:
        qps, count, lost = float(qps_target), int(apiservers), int(failures)
        latency, share = float(latency_s), float(mutating_share)
    except (TypeError, ValueError) as exc:
        raise ApiserverInflightError(
            f"non-numeric input ({exc}); fix: e.g. 8500 | idcloud.platform.apiserver_inflight(10)"
        )
    if qps <= 0:
        raise ApiserverInflightError(f"qps_target={qps_target!r} must be positive")
    if count < 1 or lost < 0 or lost >= count:
        raise ApiserverInflightError(
            f"apiservers={apiservers!r}, failures={failures!r}: "
            "at least one apiserver must survive; fix: failures < apiservers"
        )
    if latency <= 0 or not 0 < share < 1:
        raise ApiserverInflightError("latency_s must be positive and 0 < mutating_share < 1")
    per_apiserver_qps = qps / (count - lost)
    concurrent = math.ceil(per_apiserver_qps * latency)
    # round before ceil: 945 * 1/3 is 315.00000000000006 in floating point
    mutating_needed = math.ceil(round(concurrent * share, 6))
    mutating = max(DEFAULT_MUTATING, mutating_needed)
    readonly = max(DEFAULT_READONLY, concurrent - mutating_needed)
    return {
        "qps_per_apiserver": round(per_apiserver_qps, 1),
        "max_requests_inflight": readonly,
        "max_mutating_requests_inflight": mutating,
    }
