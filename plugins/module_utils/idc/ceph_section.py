# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The IDC description's Ceph: the ceph section, each host's osd_devices, and their rules.

A mixin of the validator (validation._Checker, a FieldReader), like cross_checks.CrossChecks:
the readers check the fields, ceph_checks() the rules that need the whole description (the mon
count and spread, the daemons a cluster needs, the OSD devices, a pool that fits the OSDs and
the failure domains, one CRUSH name space). What works but is advised against is a warning.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import posixpath
from collections.abc import Mapping
from typing import Any

from ansible_collections.idcloud.platform.plugins.module_utils.common.fields import shown
from ansible_collections.idcloud.platform.plugins.module_utils.idc.model import (
    CEPH_CRUSH_ROOT,
    CEPH_DAEMON_ROLES,
    CEPH_FAILURE_DOMAINS,
    CEPH_MODES,
    CEPH_POOL_SIZE_MAX,
    DEFAULT_CEPH_FAILURE_DOMAIN,
    DEFAULT_CEPH_POOL_SIZE,
    Ceph,
    IdcDescription,
    OsdDevice,
)

_CEPH_KEYS = ("mode", "pool_size", "failure_domain", "external")
_EXTERNAL_KEYS = ("mons",)
_FILE_DEVICE_KEYS = ("file", "size_gib")
# the quorum needs a majority: more than 5 mons only slow every map update
_MONS_ADVISED_MAX = 5
# how many hosts a message lists before it says "and N more"
_LISTED = 5
_SMALLER_DOMAINS = {"room": ("rack", "host"), "rack": ("host",), "host": ()}


def _listed(names: list[str], separator: str = ", ") -> str:
    if len(names) <= _LISTED:
        return separator.join(names)
    return f"{separator.join(names[:_LISTED])} and {len(names) - _LISTED} more"


def _either(choices: list[str]) -> str:
    return choices[0] if len(choices) == 1 else f"{', '.join(choices[:-1])}, or {choices[-1]}"


class CephSection:
    """The ceph section and osd_devices (mixed into validation._Checker, a FieldReader)."""

    # a field of the Ceph section or an osd_devices list could not be read: the rules would only add noise
    ceph_errors = False
    # the ceph section's values left to their default (all of them without a section), so a rule says "(the default)"
    ceph_defaults: frozenset[str] = frozenset({"pool_size", "failure_domain"})

    # -- readers

    def one_of(self, value: Any, path: str, choices: tuple[str, ...], why: str) -> str | None:
        if isinstance(value, str) and value in choices:
            return value
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        self.fail(path, f"expected one of {', '.join(choices)}, got {self.got(value)}", f"{hint}{why}")
        return None

    def ceph_section(self, data: Mapping) -> Ceph | None:
        """The ceph section with its defaults filled in, or None after recording its errors."""
        errors_before = len(self.errors)
        self.unknown_keys(data, _CEPH_KEYS, "ceph")
        mode = self.take(
            data,
            "mode",
            "ceph",
            lambda value, path, _: self.one_of(
                value,
                path,
                CEPH_MODES,
                "internal: the collection deploys Ceph on the hosts with the Ceph roles; "
                "external: the storage team's cluster, reached at ceph.external.mons",
            ),
            "internal",
            required=False,
        )
        pool_size = self.take(data, "pool_size", "ceph", self.pool_size, str(DEFAULT_CEPH_POOL_SIZE), required=False)
        domain = self.take(
            data,
            "failure_domain",
            "ceph",
            lambda value, path, _: self.one_of(
                value,
                path,
                CEPH_FAILURE_DOMAINS,
                "the level of the description each replica goes to a different one of: rack (the default), "
                "room or host",
            ),
            DEFAULT_CEPH_FAILURE_DOMAIN,
            required=False,
        )
        mode = mode or "internal"
        external_mons: list[str] = []
        if mode == "external":
            if data.get("failure_domain") is not None:
                self.fail(
                    "ceph.failure_domain",
                    f"{shown(data['failure_domain'])} is set, and ceph.mode is external",
                    "remove it: the storage team's CRUSH map decides where its replicas go",
                )
            external = self.take(data, "external", "ceph", self.mapping, "{mons: [10.20.0.11, 10.20.0.12, 10.20.0.13]}")
            if external is not None:
                external_mons = self.external_mons(external)
        elif data.get("external") is not None:
            self.fail(
                "ceph.external",
                f"is set, and ceph.mode is {mode}",
                "set mode: external to use the storage team's cluster, or remove external: "
                "in internal mode the mons are the hosts with the ceph_mon role",
            )
        if len(self.errors) > errors_before:
            self.ceph_errors = True
            return None
        self.ceph_defaults = frozenset(key for key in ("pool_size", "failure_domain") if data.get(key) is None)
        return Ceph(
            mode=mode,
            pool_size=pool_size or DEFAULT_CEPH_POOL_SIZE,
            # the storage team's CRUSH map decides where an external cluster's replicas go
            failure_domain=None if mode == "external" else domain or DEFAULT_CEPH_FAILURE_DOMAIN,
            external_mons=external_mons,
        )

    def pool_size(self, value: Any, path: str, example: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= CEPH_POOL_SIZE_MAX:
            self.fail(
                path,
                f"expected a pool size 1..{CEPH_POOL_SIZE_MAX}, got {self.got(value)}",
                f"write the number of replicas without quotes, e.g. {example}",
            )
            return None
        return value

    def external_mons(self, data: Mapping) -> list[str]:
        path = "ceph.external"
        self.unknown_keys(data, _EXTERNAL_KEYS, path)
        mons = self.take(data, "mons", path, self.seq, "[10.20.0.11, 10.20.0.12, 10.20.0.13]")
        if mons is None:
            return []
        if not mons:
            self.fail(f"{path}.mons", "is empty", "list the addresses of the storage team's mons, e.g. [10.20.0.11]")
            return []
        seen: dict[str, str] = {}
        addresses = []
        for index, value in enumerate(mons):
            where = f"{path}.mons[{index}]"
            address = self.address(value, where, "10.20.0.11")
            if address is None:
                continue
            if str(address) in seen:
                self.fail(where, f"{address} is listed twice (also at {seen[str(address)]})", "list each mon once")
                continue
            seen[str(address)] = where
            addresses.append(str(address))
        return addresses

    def osd_devices(self, value: Any, path: str, example: str) -> list[OsdDevice] | None:
        """A host's OSD devices: block device paths under /dev, or {file, size_gib} for a file-backed one."""
        errors_before = len(self.errors)
        items = self.seq(value, path, example)
        if items is not None and not items:
            self.fail(
                path,
                "is empty",
                "name the host's OSD devices, e.g. osd_devices: [/dev/sdb], or remove the key from a host "
                "without the ceph_osd role",
            )
        devices: list[OsdDevice] = []
        seen: dict[str, str] = {}
        for index, item in enumerate(items or []):
            where = f"{path}[{index}]"
            device = self.osd_device(item, where)
            if device is None:
                continue
            if device.path in seen:
                self.fail(
                    where,
                    f"{device.path} is listed twice (also at {seen[device.path]})",
                    "list each device once: one device is one OSD",
                )
                continue
            seen[device.path] = where
            devices.append(device)
        if len(self.errors) > errors_before:
            self.ceph_errors = True
            return None
        return devices

    def osd_device(self, item: Any, path: str) -> OsdDevice | None:
        if isinstance(item, str):
            return self.device_path(item, path)
        if isinstance(item, Mapping):
            self.unknown_keys(item, _FILE_DEVICE_KEYS, path)
            file = self.take(item, "file", path, self.file_path, "/var/lib/ceph-osd/osd-0.img")
            size = self.take(item, "size_gib", path, self.size_gib, "10")
            if file is None or size is None:
                return None
            return OsdDevice(path=file, size_gib=size)
        self.fail(
            path,
            f"expected a device path or a mapping, got {self.got(item)}",
            "write a block device as /dev/sdb, or a file-backed device as {file: /var/lib/ceph-osd/osd-0.img, "
            "size_gib: 10}",
        )
        return None

    def plain_path(self, value: str, path: str, example: str) -> bool:
        if not value.startswith("/"):
            self.fail(path, f"{shown(value)} is not an absolute path", f"write the whole path, e.g. {example}")
            return False
        if any(char.isspace() for char in value):
            self.fail(path, f"{shown(value)} holds a space", f"name a path without spaces, e.g. {example}")
            return False
        plain = posixpath.normpath(value)
        if plain != value:
            self.fail(
                path,
                f"{shown(value)} is not a plain path",
                f"write it without '.', '..', repeated or trailing '/': {plain}",
            )
            return False
        return True

    def device_path(self, value: str, path: str) -> OsdDevice | None:
        if not self.plain_path(value, path, "/dev/sdb"):
            return None
        if not value.startswith("/dev/"):
            self.fail(
                path,
                f"{shown(value)} is not a device under /dev",
                f"name a block device (/dev/sdb, /dev/disk/by-id/...), or write a file-backed device as "
                f"{{file: {value}, size_gib: 10}}",
            )
            return None
        return OsdDevice(path=value)

    def file_path(self, value: Any, path: str, example: str) -> str | None:
        value = self.text(value, path, example)
        if value is None or not self.plain_path(value, path, example):
            return None
        if value == "/dev" or value.startswith("/dev/"):
            self.fail(
                path,
                f"{shown(value)} is under /dev",
                f"name a block device as a plain string ({value}); file: is a file the role makes, e.g. {example}",
            )
            return None
        return value

    def size_gib(self, value: Any, path: str, example: str) -> float | None:
        good_type = isinstance(value, (int, float)) and not isinstance(value, bool)
        # an int is finite however large (math.isfinite would try to make it a float)
        if not good_type or (isinstance(value, float) and not math.isfinite(value)) or value <= 0:
            self.fail(
                path,
                f"expected a positive number, got {self.got(value)}",
                f"write the file's size in GiB without quotes, e.g. {example}",
            )
            return None
        return value

    # -- the rules that need the whole description

    def ceph_checks(self, desc: IdcDescription) -> None:
        """The Ceph rules; run when every host's roles and every Ceph field could be read."""
        self.devices_need_the_osd_role(desc)
        ceph = desc.ceph
        if ceph is None:
            return
        daemons = [host for host in desc.iter_hosts() if any(role in CEPH_DAEMON_ROLES for role in host.roles)]
        if ceph.mode == "external":
            self.external_family(desc, ceph)
            for host in daemons:
                roles = [role for role in host.roles if role in CEPH_DAEMON_ROLES]
                self.fail(
                    f"{self.paths[id(host)]}.roles",
                    f"host {self.who(host)} has {', '.join(roles)}, and ceph.mode is external",
                    "remove the Ceph roles: in external mode the storage team runs the mons, mgrs, OSDs and MDSs, "
                    "and the collection only connects to ceph.external.mons",
                )
            return
        if not daemons:
            self.fail(
                "ceph",
                "asks for a Ceph cluster the collection deploys (mode internal), and no host has a Ceph role",
                "give ceph_mon, ceph_mgr and ceph_osd to the storage hosts, set mode: external to use the storage "
                "team's cluster, or remove the ceph section",
            )
            return
        placed = _listed(
            [f"{self.who(host)}: {', '.join(r for r in host.roles if r in CEPH_DAEMON_ROLES)}" for host in daemons],
            "; ",
        )
        self.ceph_mons(desc, placed)
        self.ceph_daemons(desc, ceph, placed)
        if any("ceph_osd" in host.roles for host in daemons) and self.osd_hosts_have_devices(desc):
            self.pool_fits(desc, ceph)
        self.crush_names(desc)

    def external_family(self, desc: IdcDescription, ceph: Ceph) -> None:
        """The storage team's mons in the cluster's one address family (cross_checks.address_families)."""
        where, ref = (
            ("cluster.pod_cidr", desc.pod_network)
            if desc.pod_network
            else ("cluster.service_cidr", desc.service_network)
        )
        if ref is None:
            return
        for index, mon in enumerate(ceph.external_mons):
            version = ipaddress.ip_address(mon).version
            if version != ref.version:
                self.fail(
                    f"ceph.external.mons[{index}]",
                    f"{mon} is IPv{version}, but {where} {ref} is IPv{ref.version}",
                    f"give the mons' IPv{ref.version} addresses: the hosts reach them over the cluster's one address "
                    "family",
                )

    def devices_need_the_osd_role(self, desc: IdcDescription) -> None:
        for host in desc.iter_hosts():
            if host.osd_devices and "ceph_osd" not in host.roles:
                self.fail(
                    f"{self.paths[id(host)]}.osd_devices",
                    f"host {self.who(host)} has osd_devices and not the ceph_osd role",
                    "add ceph_osd to its roles, or remove osd_devices",
                )

    def ceph_mons(self, desc: IdcDescription, placed: str) -> None:
        mons = [host for host in desc.iter_hosts() if "ceph_mon" in host.roles]
        count = len(mons)
        names = [self.who(host) for host in mons]
        if count == 0:
            self.fail(
                "role ceph_mon",
                f"no host has it, and the description places Ceph daemons ({placed})",
                "give ceph_mon to 3 hosts in 3 racks (1 for a small lab cluster): without mons there is no cluster",
            )
            return
        if count % 2 == 0:
            self.quorum(desc, "ceph_mon", allow_zero=True)
            return
        if count == 1:
            self.warn(
                "role ceph_mon",
                f"1 host has it ({names[0]}): the cluster stops whenever that host does",
                "give ceph_mon to 3 hosts in 3 racks for a cluster that outlives a host; one mon is for a lab or a test",
            )
            return
        if count > _MONS_ADVISED_MAX:
            self.warn(
                "role ceph_mon",
                f"{count} hosts have it ({_listed(names)})",
                "use 5 (or 3): every map update waits for a majority of the mons, so each mon beyond 5 slows the "
                "cluster, and 5 already outlive 2 failures",
            )
        by_rack: dict[Any, list[str]] = {}
        for host in mons:
            by_rack.setdefault(host.rack, []).append(self.who(host))
        racks_with_hosts = sum(1 for rack in desc.iter_racks() if rack.hosts)
        wanted = min(count, racks_with_hosts)
        # the fewest mons the fullest rack can hold when they are spread as far as the racks allow
        per_rack = math.ceil(count / wanted)
        worst_rack, worst = max(by_rack.items(), key=lambda item: len(item[1]))
        if len(by_rack) >= wanted and len(worst) <= per_rack:
            return
        listed = "; ".join(f"{', '.join(hosts)} in rack {rack}" for rack, hosts in by_rack.items())
        lost = f"{len(worst)} of the {count} mons"
        if len(worst) > count // 2:
            lost += ", and with them the quorum"
        spread = "one mon per rack" if per_rack == 1 else f"at most {per_rack} mons per rack"
        self.warn(
            "role ceph_mon",
            f"the {count} mons are in {len(by_rack)} rack{'s' if len(by_rack) > 1 else ''} ({listed}), "
            f"and {racks_with_hosts} racks hold hosts",
            f"give ceph_mon to hosts in {wanted} different racks, {spread}: losing rack {worst_rack} takes {lost}",
        )

    def ceph_daemons(self, desc: IdcDescription, ceph: Ceph, placed: str) -> None:
        has = {role: any(role in host.roles for host in desc.iter_hosts()) for role in CEPH_DAEMON_ROLES}
        if not has["ceph_mgr"]:
            self.fail(
                "role ceph_mgr",
                f"no host has it, and the description places Ceph daemons ({placed})",
                "give ceph_mgr to 2 hosts (one active, one standby), e.g. two of the mon hosts: without a mgr the "
                "cluster has no PG statistics, no PG autoscaler and no ceph fs subvolume (the mgr's volumes module)",
            )
        if not has["ceph_osd"]:
            domain = ceph.failure_domain
            self.fail(
                "role ceph_osd",
                f"no host has it, and the description places Ceph daemons ({placed})",
                f"give ceph_osd (with osd_devices) to hosts in at least {ceph.pool_size} {domain}s (ceph.pool_size "
                f"replicas, one per {domain}): pools, RBD images and CephFS (its metadata too) live on OSDs",
            )

    def osd_hosts_have_devices(self, desc: IdcDescription) -> bool:
        complete = True
        for host in desc.iter_hosts():
            if "ceph_osd" in host.roles and not host.osd_devices:
                name = self.who(host)
                self.fail(
                    f"{self.paths[id(host)]}.osd_devices",
                    f"missing, and host {name} has the ceph_osd role",
                    "name the devices its OSDs take, one OSD per device, e.g. osd_devices: [/dev/sdb, /dev/sdc]; "
                    f"in a lab a file-backed one: [{{file: /var/lib/ceph-osd/{name}-0.img, size_gib: 10}}]",
                )
                complete = False
        return complete

    def pool_fits(self, desc: IdcDescription, ceph: Ceph) -> None:
        size = ceph.pool_size
        shown_size = f"{size} (the default)" if "pool_size" in self.ceph_defaults else str(size)
        if size == 1:
            self.warn(
                "ceph.pool_size",
                "1 keeps a single copy of every object: losing one OSD loses data",
                "use 3 (2 at the least) for data that matters; a pool size of 1 is for a lab, and Ceph accepts it "
                "only with mon_allow_pool_size_one",
            )
        osd_hosts = [host for host in desc.iter_hosts() if "ceph_osd" in host.roles]
        osds = sum(len(host.osd_devices) for host in osd_hosts)
        if size > osds:
            self.fail(
                "ceph.pool_size",
                f"{shown_size} is above the {osds} OSD{'s' if osds > 1 else ''} the description names "
                f"(osd_devices of {_listed([self.who(host) for host in osd_hosts])})",
                f"set pool_size to at most {osds}, or name more osd_devices: a pool with more replicas than OSDs "
                "never becomes active+clean",
            )
        domain = ceph.failure_domain
        domains: dict[Any, None] = {}
        for host in osd_hosts:
            domains.setdefault(self.who(host) if domain == "host" else getattr(host, domain), None)
        if size <= len(domains):
            return
        shown_domain = f"{domain} (the default)" if "failure_domain" in self.ceph_defaults else domain
        count = len(domains)
        more = f"{size} hosts" if domain == "host" else f"hosts in {size} {domain}s"
        fixes = [f"give ceph_osd (with osd_devices) to {more}", f"set pool_size to {count}"]
        smaller = _SMALLER_DOMAINS[domain]
        if smaller:
            fixes.append(f"set failure_domain to {' or '.join(smaller)}")
        self.fail(
            "ceph.pool_size",
            f"{shown_size} is above the {count} {domain}{'s' if count > 1 else ''} that hold OSDs "
            f"({_listed([str(name) for name in domains])}), and ceph.failure_domain is {shown_domain}",
            f"{_either(fixes)}: CRUSH puts each replica in a different {domain}, so with fewer "
            f"{domain}s than replicas the PGs stay undersized",
        )

    def crush_names(self, desc: IdcDescription) -> None:
        """The CRUSH map has one name space: the OSD hosts, their racks and rooms, and the root."""
        seen: dict[str, str] = {CEPH_CRUSH_ROOT: "the CRUSH root"}
        for room in desc.rooms:
            for rack in room.racks:
                osd_hosts = [host for host in rack.hosts if "ceph_osd" in host.roles]
                if not osd_hosts:
                    continue
                buckets = [(room, "room", room.name), (rack, "rack", rack.name)]
                buckets += [(host, "host", host.name) for host in osd_hosts]
                for item, kind, name in buckets:
                    if name is None:
                        continue
                    where = f"{self.paths[id(item)]}.name"
                    other = seen.setdefault(name, f"{kind} {name} ({where})")
                    if other.startswith(f"{kind} {name} ("):
                        continue
                    self.fail(
                        where,
                        f"{kind} {name} has the CRUSH name of {other}",
                        f"rename {'the ' + kind if other == 'the CRUSH root' else 'one of them'}: the CRUSH map "
                        f"names the root ({CEPH_CRUSH_ROOT}), rooms, racks and hosts in one name space",
                    )
