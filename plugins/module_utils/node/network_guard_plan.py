# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The network guard's ruleset parameters, checked (filter network_guard_plan, role network_guard).

The guard's nftables set holds ranges whose every packet a host must translate before it
leaves (the service network): network_guard_plan() checks the role's settings, every
problem at once, and returns what the ruleset template needs. Same input, same output.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.idcloud.platform.plugins.module_utils.common.errors import ErrorCollector, ValidationError

__all__ = ["NetworkGuardError", "network_guard_plan"]

ACTIONS = ("refuse", "drop")
# the kernel's log prefix limit (NF_LOG_PREFIXLEN 128, with its terminating NUL)
MAX_LOG_PREFIX = 127
TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class NetworkGuardError(ValidationError):
    subject = "network_guard"


def _overlaps(a, b) -> bool:
    return a.version == b.version and (a.subnet_of(b) or b.subnet_of(a))


def network_guard_plan(
    cidrs,
    service_cidr=None,
    proxy_mode="iptables",
    action="refuse",
    log_rate=10,
    log_prefix="idcloud-guard: ",
    table="idcloud_guard",
) -> dict:
    """{family, set_type, match, elements, log_rate} of the guard's ruleset; NetworkGuardError lists every problem.

    cidrs: the guarded ranges (network_guard_cidrs). service_cidr: the cluster's service network;
    with kube-proxy in ipvs mode (proxy_mode) a guarded range that overlaps it is refused, since
    ipvs keeps the Service address as a packet's destination.
    """
    err = ErrorCollector()
    err.error_class = NetworkGuardError
    if isinstance(cidrs, str) or not isinstance(cidrs, (list, tuple)):
        err.fail("network_guard_cidrs", f"{cidrs!r} is not a list", "give a list of ranges, e.g. [10.96.0.0/12]")
        cidrs = []
    elif not cidrs:
        err.fail("network_guard_cidrs", "is empty", "name at least one range (the service network by default)")
    nets = []
    for i, value in enumerate(cidrs):
        try:
            if not isinstance(value, str) or "/" not in value:
                raise ValueError
            nets.append(ipaddress.ip_network(value.strip()))
        except ValueError:
            err.fail(
                f"network_guard_cidrs[{i}]",
                f"{value!r} is not a network in CIDR notation",
                "write a network address and a prefix length, e.g. 10.96.0.0/12",
            )
    families = sorted({n.version for n in nets})
    if len(families) > 1:
        err.fail("network_guard_cidrs", f"mixes IPv4 and IPv6 ({', '.join(map(str, nets))})", "guard one family")
    if action not in ACTIONS:
        err.fail("network_guard_action", f"{action!r} is not one of {', '.join(ACTIONS)}", "refuse or drop")
    if isinstance(log_rate, str) and log_rate.strip().isdigit():
        log_rate = int(log_rate)
    if isinstance(log_rate, bool) or not isinstance(log_rate, int) or log_rate < 0:
        err.fail(
            "network_guard_log_rate",
            f"{log_rate!r} is not a whole number of lines per second",
            "0 or more (0 logs nothing)",
        )
    if not isinstance(log_prefix, str) or len(log_prefix) > MAX_LOG_PREFIX or '"' in log_prefix:
        err.fail(
            "network_guard_log_prefix",
            f"{log_prefix!r} is not text of at most {MAX_LOG_PREFIX} characters without a double quote",
            "shorten it",
        )
    if not isinstance(table, str) or not TABLE_NAME.match(table):
        err.fail("network_guard_table", f"{table!r} is not an nftables name", "letters, digits and _, a letter first")
    if proxy_mode == "ipvs" and service_cidr:
        try:
            service = ipaddress.ip_network(str(service_cidr))
        except ValueError:
            err.fail("service network", f"{service_cidr!r} is not a network", "fix cluster.service_cidr")
        else:
            hit = [str(n) for n in nets if _overlaps(n, service)]
            if hit:
                err.fail(
                    "network_guard_cidrs",
                    f"{', '.join(hit)} overlaps the service network {service} and "
                    "kube-proxy runs in ipvs mode, which keeps the Service address as a packet's destination, "
                    "so every Service would be refused",
                    "kube_proxy_mode iptables or nftables, or leave the service network out",
                )
    err.raise_if_any()
    family = families[0]
    return {
        "family": family,
        "set_type": "ipv4_addr" if family == 4 else "ipv6_addr",
        "match": "ip" if family == 4 else "ip6",
        "elements": [str(n) for n in nets],
        "log_rate": log_rate,
    }
