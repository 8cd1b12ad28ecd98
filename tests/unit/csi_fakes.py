"""Fakes for the CSI driver's unit tests: a command runner that answers like the ceph, rbd,
mount and losetup command lines, and the mount table it keeps."""

import json
import os

from idcloud_csi.runner import CommandFailed, redact

KEY = "AQBzZ2VjcmV0a2V5Zm9ydGVzdHM0NTY3ODkwMTIzNA=="
SECRETS = {"userID": "csi", "userKey": KEY}


class FakeCluster:
    """What the ceph/rbd commands read and change: images {spec: size}, subvolumes {(fs, group, name): quota}."""

    def __init__(self):
        self.images = {}
        self.subvolumes = {}
        self.groups = set()
        self.pools = {"rbd": 5 << 30, "cephfs.cephfs.data": 4 << 30}
        self.fs = {"cephfs": ["cephfs.cephfs.data"]}


class FakeRunner:
    """Records every command; answers ceph, rbd, rbd-fuse, losetup, blkid, mkfs, mount, umount."""

    def __init__(self, tmp_path, cluster=None):
        self.tmp = tmp_path
        self.cluster = cluster or FakeCluster()
        self.commands = []
        self.keyrings_seen = []
        self.mountinfo = tmp_path / "mountinfo"
        self.mountinfo.write_text("")
        self.rows = []  # [source, target, fstype, options], as the mountinfo file shows them
        self.loops = {}  # device -> backing file
        self.filesystems = {}  # device -> fs type
        self.device_size = 2 << 30  # what blockdev says of every device
        self.fs_bytes = {}  # device -> the size its filesystem was made or grown to
        self.online_resize_refused = False  # resize2fs of a mounted ext4 as without CAP_SYS_RESOURCE
        self.fail = {}  # first words, without the connection options -> (rc, stderr)

    # --- the mount table --------------------------------------------------------------
    def _mounts(self):
        return [list(row) for row in self.rows]

    def _add_mount(self, source, target, fstype, options="rw"):
        rows = self._mounts() + [[source, os.path.realpath(target), fstype, options]]
        self._write(rows)

    def _write(self, rows):
        lines = []
        for i, (source, target, fstype, options) in enumerate(rows):
            escaped = target.replace(" ", "\\040")
            lines.append(f"{100 + i} 1 0:1 / {escaped} {options} - {fstype} {source} rw")
        self.mountinfo.write_text("\n".join(lines) + ("\n" if lines else ""))
        self.rows = [list(row) for row in rows]

    def mounted(self):
        return {target: (source, fstype, options) for source, target, fstype, options in self._mounts()}

    # --- the runner -------------------------------------------------------------------
    def run(self, cmd, check=True, env=None, timeout=None, input=None):
        self.commands.append(list(cmd))
        if "--keyring" in cmd:
            path = cmd[cmd.index("--keyring") + 1]
            self.keyrings_seen.append(path)
            assert os.stat(path).st_mode & 0o077 == 0, f"keyring {path} is readable by others"
        for prefix, (rc, err) in self.fail.items():
            if " ".join(self._strip(cmd)).startswith(prefix):
                if check:
                    raise CommandFailed(cmd, rc, "", err)
                return rc, "", err
        rc, out, err = self._answer(cmd, env or {})
        if check and rc != 0:
            raise CommandFailed(cmd, rc, out, err)
        return rc, out, err

    def _strip(self, cmd):
        """The command without the connection options."""
        out, skip = [], 0
        for word in cmd:
            if skip:
                skip -= 1
            elif word in ("--conf", "--id", "--keyring", "--connect-timeout", "--format"):
                skip = 1
            else:
                out.append(word)
        return out

    def _answer(self, cmd, env):
        c = self.cluster
        words = self._strip(cmd)
        if words[0] == "rbd":
            op, spec = words[1], words[-1]
            if op == "info":
                if spec not in c.images:
                    return 2, "", f"rbd: error opening image {spec}: (2) No such file or directory"
                return 0, json.dumps({"name": spec.split("/")[-1], "size": c.images[spec]}), ""
            if op == "create":
                c.images[spec] = int(words[words.index("--size") + 1].rstrip("B"))
                return 0, "", ""
            if op == "resize":
                c.images[spec] = int(words[words.index("--size") + 1].rstrip("B"))
                return 0, "", ""
            if op == "rm":
                if spec not in c.images:
                    return 2, "", "rbd: delete error: (2) No such file or directory"
                del c.images[spec]
                return 0, "", ""
        if words[0] == "ceph":
            if words[1:3] == ["fs", "subvolumegroup"]:
                c.groups.add((words[4], words[5]))
                return 0, "", ""
            if words[1:3] == ["fs", "subvolume"]:
                op, fs, name = words[3], words[4], words[5]
                group = words[words.index("--group_name") + 1] if "--group_name" in words else ""
                key = (fs, group, name)
                if op == "info":
                    if key not in c.subvolumes:
                        return 2, "", f"Error ENOENT: subvolume '{name}' does not exist"
                    return 0, json.dumps({"bytes_quota": c.subvolumes[key], "bytes_used": 0}), ""
                if op == "create":
                    c.subvolumes[key] = int(words[words.index("--size") + 1])
                    return 0, "", ""
                if op == "getpath":
                    return 0, f"/volumes/{group or '_nogroup'}/{name}/0f0f\n", ""
                if op == "resize":
                    c.subvolumes[key] = int(words[6])
                    return 0, "", ""
                if op == "rm":
                    if key not in c.subvolumes:
                        return 2, "", f"Error ENOENT: subvolume '{name}' does not exist"
                    del c.subvolumes[key]
                    return 0, "", ""
            if words[1:] == ["df"]:
                pools = [{"name": n, "stats": {"max_avail": v}} for n, v in c.pools.items()]
                return 0, json.dumps({"stats": {"total_avail_bytes": 27 << 30}, "pools": pools}), ""
            if words[1:] == ["fs", "ls"]:
                return 0, json.dumps([{"name": n, "data_pools": p} for n, p in c.fs.items()]), ""
        if words[0] == "rbd-fuse":
            mnt = words[1]
            image = words[words.index("-r") + 1]
            assert cmd[cmd.index("--id") + 1] == "csi" and "--keyring" in cmd
            self._add_mount("rbd-fuse", mnt, "fuse.rbd-fuse")
            # the fake cannot mount: the image shows as a plain file in the directory
            with open(os.path.join(mnt, image), "w"):
                pass
            return 0, "", ""
        if words[0] == "ceph-fuse":
            self._add_mount("ceph-fuse", words[1], "fuse.ceph-fuse")
            return 0, "", ""
        if words[0] == "losetup":
            if "--list" in words:
                return 0, "".join(f"{dev} {f}\n" for dev, f in self.loops.items()), ""
            if "--find" in words:
                dev = f"/dev/loop{len(self.loops)}"
                self.loops[dev] = words[-1]
                return 0, dev + "\n", ""
            if "--detach" in words:
                self.loops.pop(words[-1], None)
                return 0, "", ""
            if "--set-capacity" in words:
                return 0, "", ""
        if words[0] == "blkid":
            fs = self.filesystems.get(words[-1])
            return (0, fs + "\n", "") if fs else (2, "", "")
        if words[0].startswith("mkfs."):
            self.filesystems[words[-1]] = words[0].split(".", 1)[1]
            self.fs_bytes[words[-1]] = self.device_size
            return 0, "", ""
        if words[0] == "dumpe2fs":
            return (
                0,
                f"Block count:              {self.fs_bytes[words[-1]] // 4096}\nBlock size:               4096\n",
                "",
            )
        if words[0] == "e2fsck":
            return 0, "", ""
        if words[0] == "resize2fs":
            device = words[-1]
            if self.online_resize_refused and any(s == device for s, _, _, _ in self._mounts()):
                return 1, "", "resize2fs: Permission denied to resize filesystem"
            self.fs_bytes[device] = self.device_size
            return 0, "", ""
        if words[0] == "mount":
            if "--bind" in words:
                source, target = words[-2], words[-1]
                fstype = dict((t, f) for t, (s, f, o) in self.mounted().items()).get(os.path.realpath(source), "none")
                self._add_mount(source, target, fstype)
                return 0, "", ""
            if "-o" in words and words[words.index("-o") + 1].startswith("remount"):
                rows = self._mounts()
                rows[-1][3] = "ro" if "ro" in words[words.index("-o") + 1].split(",") else "rw"
                self._write(rows)
                return 0, "", ""
            fstype = words[words.index("-t") + 1] if "-t" in words else "auto"
            self._add_mount(words[-2], words[-1], fstype)
            return 0, "", ""
        if words[0] == "umount":
            rows = self._mounts()
            target = os.path.realpath(words[1])
            for i in range(len(rows) - 1, -1, -1):
                if rows[i][1] == target:
                    del rows[i]
                    break
            self._write(rows)
            return 0, "", ""
        if words[0] == "xfs_growfs":
            return 0, "", ""
        if words[0] == "blockdev":
            return 0, f"{self.device_size}\n", ""
        return 127, "", f"fake runner: no answer for {redact(' '.join(cmd))}"
