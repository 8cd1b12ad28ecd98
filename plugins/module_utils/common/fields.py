# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Field readers shared by the IDC description and the Calico plan, and the pod network rules.

Each reader takes (value, path, example), returns the checked value (ipaddress objects for
networks and addresses) or None after recording one error that names the path, the value and
the fix. One IP library: the standard ipaddress module.
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Mapping
from typing import Any

from ansible_collections.idcloud.platform.plugins.module_utils.common.errors import ErrorCollector

__all__ = [
    "AS_MAX",
    "AS_MIN",
    "BLOCK_SIZE_MAX",
    "BLOCK_SIZE_MIN",
    "DEFAULT_BLOCK_SIZE",
    "FieldReader",
    "block_count",
    "pod_pools",
    "shown",
    "type_name",
]

AS_MIN, AS_MAX = 1, 4294967295
# Calico IPAM hands each node /27 blocks of the pod CIDR by default; the ToRs see one route per block
DEFAULT_BLOCK_SIZE = 27
BLOCK_SIZE_MIN, BLOCK_SIZE_MAX = 20, 32


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def shown(value: Any) -> str:
    # repr keeps quotes on strings so '16' and 16 read differently in a type error
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def pod_pools(pod, fixed=None) -> list:
    """pod_cidr minus fixed_ip_cidr, as the sorted networks Calico gets one IP pool each for."""
    if fixed is None:
        return [pod]
    return sorted(pod.address_exclude(fixed))


def block_count(pools, block_size: int) -> int:
    """How many /block_size blocks the pools hold: one node needs at least one."""
    return sum(2 ** (block_size - net.prefixlen) for net in pools if net.prefixlen <= block_size)


class FieldReader(ErrorCollector):
    """An error collector with typed readers for the fields of plain (YAML-loaded) data.

    typed_values: say the type of a wrong value ("got a string '16'"), as the IDC description
    does for what people write by hand; False shows the value's repr only ("got '16'").
    """

    def __init__(self, typed_values: bool = True) -> None:
        super().__init__()
        self.typed_values = typed_values

    def got(self, value: Any) -> str:
        return f"{type_name(value)} {shown(value)}" if self.typed_values else repr(value)

    # -- structure

    def unknown_keys(self, data: Mapping, known: tuple[str, ...], path: str, also: frozenset = frozenset()) -> None:
        for key in data:
            if key in known or key in also:
                continue
            where = f"{path}.{key}" if path else str(key)
            close = difflib.get_close_matches(str(key), list(known) + sorted(also), n=1, cutoff=0.6)
            fix = f"did you mean {close[0]}?" if close else f"remove it; known keys here: {', '.join(known)}"
            self.fail(where, f"unknown key {shown(key)}", fix)

    def take(self, data: Mapping, key: str, path: str, reader, example: str, required: bool = True):
        where = f"{path}.{key}" if path else key
        value = data.get(key)
        if value is None:
            if required:
                self.fail(where, "missing", f"add it, e.g. {key}: {example}")
            return None
        return reader(value, where, example)

    def mapping(self, value: Any, path: str, example: str) -> Mapping | None:
        if isinstance(value, Mapping):
            return value
        self.fail(path, f"expected a mapping, got {self.got(value)}", f"write it as a mapping, e.g. {example}")
        return None

    def seq(self, value: Any, path: str, example: str) -> list | None:
        if isinstance(value, list):
            return value
        self.fail(path, f"expected a list, got {self.got(value)}", f"write it as a YAML list, e.g. {example}")
        return None

    # -- scalars

    def text(self, value: Any, path: str, example: str) -> str | None:
        if isinstance(value, str) and value:
            return value
        self.fail(path, f"expected a non-empty string, got {self.got(value)}", f"use a string, e.g. {example}")
        return None

    def boolean(self, value: Any, path: str, example: str) -> bool | None:
        if not isinstance(value, bool):
            self.fail(
                path,
                f"expected a boolean, got {self.got(value)}",
                f"write true or false without quotes, e.g. {example}",
            )
            return None
        return value

    def port(self, value: Any, path: str, example: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            self.fail(
                path,
                f"expected a TCP port (1..65535), got {self.got(value)}",
                f"write a plain integer without quotes, e.g. {example}",
            )
            return None
        return value

    # -- BGP and IPAM numbers

    def as_number(self, value: Any, path: str, example: str = "64512") -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(
                path,
                f"expected an AS number (integer), got {self.got(value)}",
                f"write a plain integer without quotes, e.g. {example}",
            )
            return None
        if not AS_MIN <= value <= AS_MAX:
            self.fail(
                path,
                f"AS {value} is out of range {AS_MIN}..{AS_MAX}",
                "use your assigned AS or a private one: 64512..65534 or 4200000000..4294967294",
            )
            return None
        return value

    def block_size(self, value: Any, path: str, example: str = str(DEFAULT_BLOCK_SIZE)) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not BLOCK_SIZE_MIN <= value <= BLOCK_SIZE_MAX:
            self.fail(
                path,
                f"expected a prefix length {BLOCK_SIZE_MIN}..{BLOCK_SIZE_MAX}, got {self.got(value)}",
                f"write a plain integer without quotes, e.g. {example} (blocks of 32 addresses)",
            )
            return None
        return value

    # -- networks and addresses (ipaddress objects)

    def network(self, value: Any, path: str, example: str, ipv4_only: bool = False):
        if not isinstance(value, str) or "/" not in value:
            self.fail(path, f"expected a CIDR (address/prefix), got {self.got(value)}", f"write it as e.g. {example}")
            return None
        try:
            net = ipaddress.ip_network(value, strict=False)
        except ValueError:
            self.fail(path, f"{shown(value)} is not a valid CIDR", f"write it as e.g. {example}")
            return None
        if ipv4_only and net.version != 4:
            self.fail(path, f"{value} is not IPv4", "the ToR design here announces IPv4 pod blocks; use an IPv4 CIDR")
            return None
        if ipaddress.ip_interface(value).ip != net.network_address:
            self.fail(path, f"{value} has host bits set", f"use the network address: {net}")
            return None
        return net

    def address(self, value: Any, path: str, example: str, ipv4_only: bool = False):
        if not isinstance(value, str):
            self.fail(path, f"expected an IP address, got {self.got(value)}", f"write it as e.g. {example}")
            return None
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            self.fail(path, f"{shown(value)} is not a valid IP address", f"write it as e.g. {example}")
            return None
        if ipv4_only and address.version != 4:
            self.fail(
                path,
                f"{value} is not an IPv4 address",
                f"the ToR design here peers over IPv4; write it as e.g. {example}",
            )
            return None
        return address

    def interface(self, value: Any, path: str, example: str):
        # an address with the prefix of its segment, as on a router interface
        if not isinstance(value, str) or "/" not in value:
            self.fail(
                path, f"expected an address with its prefix, got {self.got(value)}", f"write it as e.g. {example}"
            )
            return None
        try:
            iface = ipaddress.ip_interface(value)
        except ValueError:
            self.fail(path, f"{shown(value)} is not a valid address/prefix", f"write it as e.g. {example}")
            return None
        if (
            iface.version == 4
            and iface.network.prefixlen < 31
            and iface.ip in (iface.network.network_address, iface.network.broadcast_address)
        ):
            kind = "network" if iface.ip == iface.network.network_address else "broadcast"
            self.fail(
                path, f"{iface.ip} is the {kind} address of {iface.network}", f"use a host address in {iface.network}"
            )
            return None
        return iface

    # -- the pod network rules both the description and the plan enforce

    def fixed_ip_range(self, fixed, pod, block_size: int | None, path: str, pod_path: str, block_name: str = ""):
        """fixed_ip_cidr must be a proper part of pod_cidr and at least one block; returns it or None."""
        if fixed is None or pod is None:
            return fixed
        if fixed.version != pod.version or not fixed.subnet_of(pod):
            self.fail(
                path,
                f"{fixed} is outside {pod_path} {pod}",
                f"use a range inside {pod} (e.g. its last /24): Calico gives fixed pod addresses from the pod network",
            )
            return None
        if fixed == pod:
            self.fail(
                path,
                f"{fixed} is all of {pod_path}",
                f"use a smaller part of {pod}, e.g. its last /24; the rest is cut into blocks for the nodes",
            )
            return None
        if block_size is not None and fixed.version == 4 and fixed.prefixlen > block_size:
            # the rest of pod_cidr must split into whole blocks, or Calico refuses the pools
            named = f" ({block_name})" if block_name else ""
            self.fail(
                path,
                f"{fixed} is smaller than one /{block_size} block{named}",
                f"use a /{block_size} or larger range aligned to it, e.g. {fixed.supernet(new_prefix=block_size)}",
            )
            return None
        return fixed
