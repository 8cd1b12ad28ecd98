"""The node's mounts: read /proc/self/mountinfo, mount, bind, unmount, and volume stats.

Everything that changes the node goes through the runner (mount, umount, losetup, mkfs, ...);
the mount table is read from a file the tests replace.
"""

import os
from dataclasses import dataclass

from idcloud_csi.errors import CsiError


@dataclass(frozen=True)
class Mount:
    mountpoint: str
    source: str
    fstype: str
    options: tuple  # per-mount and per-superblock options


def _unescape(field):
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text):
    mounts = []
    for line in text.splitlines():
        if " - " not in line:
            continue
        left, right = line.split(" - ", 1)
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or len(tail) < 2:
            continue
        options = tuple(fields[5].split(",")) + (tuple(tail[2].split(",")) if len(tail) > 2 else ())
        mounts.append(Mount(_unescape(fields[4]), _unescape(tail[1]), tail[0], options))
    return mounts


class Mounter:
    def __init__(self, runner, mountinfo="/proc/self/mountinfo"):
        self.runner = runner
        self.mountinfo = mountinfo

    def mounts(self):
        with open(self.mountinfo) as f:
            return parse_mountinfo(f.read())

    def mount_at(self, path):
        """The topmost mount at `path`, or None."""
        path = os.path.realpath(path) if os.path.exists(path) else os.path.normpath(path)
        found = None
        for mount in self.mounts():
            if mount.mountpoint == path:
                found = mount
        return found

    def is_mounted(self, path):
        return self.mount_at(path) is not None

    def mount(self, source, target, fstype=None, options=()):
        cmd = ["mount"] + (["-t", fstype] if fstype else [])
        if options:
            cmd += ["-o", ",".join(options)]
        self.runner.run(cmd + [source, target])

    def bind(self, source, target, readonly=False, options=()):
        self.runner.run(["mount", "--bind", source, target])
        if readonly or options:
            # a bind mount takes ro (and other per-mount flags) only on a remount
            flags = ["remount", "bind"] + (["ro"] if readonly else []) + list(options)
            self.runner.run(["mount", "-o", ",".join(flags), target])

    def unmount(self, path):
        """Unmount every mount stacked at `path` (a repeated publish may have stacked two)."""
        while self.is_mounted(path):
            self.runner.run(["umount", path])


def volume_stats(path):
    """{bytes: (available, total, used), inodes: (...)} of a mounted file system."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    available = st.f_bavail * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    inodes = st.f_files
    return {
        "bytes": (available, total, used),
        "inodes": (st.f_favail, inodes, inodes - st.f_ffree) if inodes else None,
    }


def block_size(runner, device):
    _, out, _ = runner.run(["blockdev", "--getsize64", device])
    try:
        return int(out.strip())
    except ValueError:
        raise CsiError("INTERNAL", f"blockdev --getsize64 {device} printed {out!r}") from None
