"""Volume ids, volume names, sizes and capability rules: pure functions, no I/O.

Volume id: `v1:<backend>:<pool or fs>:<namespace or group>:<name>`, each field
percent-encoded (so a `:` or `/` in a pool name cannot shift the fields). Delete, Expand and
every Node call find the volume from the id alone. The image or subvolume name is made from
the CO's volume name, so CreateVolume is idempotent by name without a journal: the same name
always maps to the same image, and a name that is not a safe Ceph name (too long, other
characters) maps to the prefix, `x_` and its SHA-256 (a safe name has no `_`, so the two
kinds never meet).
"""

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from idcloud_csi.errors import CsiError, invalid, not_found

BACKENDS = ("cephfs", "rbd")
ID_VERSION = "v1"
MIB = 1 << 20
GIB = 1 << 30
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}$")


@dataclass(frozen=True)
class VolumeId:
    backend: str  # cephfs | rbd
    location: str  # the CephFS volume (file system), or the RBD pool
    scope: str  # the subvolume group, or the RBD namespace ("" for none)
    name: str  # the subvolume, or the image

    def encode(self):
        fields = (ID_VERSION, self.backend, self.location, self.scope, self.name)
        return ":".join(quote(field, safe="-._") for field in fields)

    def __str__(self):
        return self.encode()


def decode_volume_id(volume_id):
    """The VolumeId of a string; CsiError NOT_FOUND for one this driver never made (the spec's code
    for an unknown volume, which csi-sanity asks for with ids like `fake-vol-id`)."""
    if not volume_id:
        raise invalid("volume_id: missing; fix: pass the id CreateVolume returned")
    parts = volume_id.split(":")
    if len(parts) != 5 or parts[0] != ID_VERSION or parts[1] not in BACKENDS or not parts[2] or not parts[4]:
        raise not_found(f"volume_id: {volume_id!r} is not a volume of this driver (want v1:<backend>:...)")
    return VolumeId(*(unquote(part) for part in parts[1:]))


def volume_name(prefix, request_name):
    """The image or subvolume name for the CO's volume name (see the module's docstring)."""
    if not request_name:
        raise invalid("name: missing; fix: the CO names every volume it creates (CSI CreateVolume.name)")
    if _SAFE_NAME.match(request_name):
        return prefix + request_name
    return prefix + "x_" + hashlib.sha256(request_name.encode()).hexdigest()[:40]


def volume_size(required, limit, default):
    """Bytes to provision for a capacity range: at least `required`, rounded up to whole MiB
    (RBD and loop devices want sector multiples, and quotas read better); `default` when
    nothing is asked; OUT_OF_RANGE when the range cannot be met."""
    if required < 0 or limit < 0:
        raise invalid(f"capacity_range: negative bytes (required {required}, limit {limit}); fix: give sizes >= 0")
    if limit and required > limit:
        raise invalid(f"capacity_range: required_bytes {required} is above limit_bytes {limit}; fix: swap them")
    size = required or (min(default, limit) if limit else default)
    size = max(MIB, -(-size // MIB) * MIB)
    if limit and size > limit:
        # the range is narrower than a MiB boundary allows: take the limit itself if it is
        # still a whole number of 512-byte sectors, else refuse
        if limit >= max(required, 1) and limit % 512 == 0:
            return limit
        raise CsiError(
            "OUT_OF_RANGE",
            f"capacity_range: no size between {required} and {limit} bytes that this driver can make "
            f"(whole MiB, or the limit when it is a multiple of 512); fix: widen the range",
        )
    return size


def size_fits(size, required, limit):
    """An existing volume of `size` bytes satisfies the range (CreateVolume idempotence)."""
    return size >= required and (not limit or size <= limit)


# access modes (csi.VolumeCapability.AccessMode.Mode names) each backend serves
SINGLE_NODE = ("SINGLE_NODE_WRITER", "SINGLE_NODE_READER_ONLY", "SINGLE_NODE_SINGLE_WRITER", "SINGLE_NODE_MULTI_WRITER")
MULTI_NODE = ("MULTI_NODE_READER_ONLY", "MULTI_NODE_SINGLE_WRITER", "MULTI_NODE_MULTI_WRITER")
FS_TYPES = ("ext4", "xfs")


def capability_problems(backend, capabilities):
    """Why the backend cannot serve these capabilities ([] when it can). Each capability is
    {access_type: mount|block|None, access_mode: name, fs_type, mount_flags}."""
    if not capabilities:
        return ["volume_capabilities: missing; fix: give at least one (access type and access mode)"]
    problems = []
    for i, cap in enumerate(capabilities):
        where = f"volume_capabilities[{i}]"
        mode = cap.get("access_mode")
        if cap.get("access_type") not in ("mount", "block"):
            problems.append(f"{where}: no access type; fix: set mount or block")
            continue
        if not mode or mode == "UNKNOWN":
            problems.append(f"{where}.access_mode: missing; fix: set one, like SINGLE_NODE_WRITER")
            continue
        if backend == "cephfs":
            if cap["access_type"] == "block":
                problems.append(f"{where}: block access on cephfs; fix: use the rbd backend for raw block volumes")
            elif cap.get("fs_type") not in (None, "", "ceph", "cephfs"):
                problems.append(f"{where}.mount.fs_type: {cap['fs_type']!r} on cephfs; fix: leave it empty")
        else:
            if mode not in SINGLE_NODE and mode != "MULTI_NODE_READER_ONLY":
                problems.append(
                    f"{where}.access_mode: {mode} on rbd, whose filesystem is not shared; fix: use "
                    "SINGLE_NODE_WRITER (ReadWriteOnce), or the cephfs backend for ReadWriteMany"
                )
            if mode == "MULTI_NODE_READER_ONLY" and cap["access_type"] == "mount":
                problems.append(
                    f"{where}.access_mode: MULTI_NODE_READER_ONLY on an rbd filesystem; fix: use cephfs "
                    "for a volume read on many nodes"
                )
            if cap["access_type"] == "mount" and cap.get("fs_type") not in (None, "", *FS_TYPES):
                problems.append(f"{where}.mount.fs_type: {cap['fs_type']!r}; fix: use one of {', '.join(FS_TYPES)}")
    return problems
