"""RBD: a volume is an image of the volume's size, used by one node at a time.

Controller: `rbd create|info|resize|rm` in the pool (and namespace) of the StorageClass.
Node: a mapper attaches the image as a block device; for a filesystem volume the driver
makes the filesystem once (blkid finds none) and mounts it at the staging path, then
bind-mounts it into each pod's target path; a raw block volume's device is bind-mounted onto
the target file. Mappers (node flag --rbd-mapper, or the StorageClass's `mapper`):

  krbd  `rbd map` (the kernel's rbd module)
  nbd   `rbd-nbd map` (the kernel's nbd module, librbd in userspace)
  fuse  `rbd-fuse` shows the image as a file under a FUSE mount of its own, and a loop device
        (`losetup`) on that file is the block device: no rbd or nbd module needed, only
        /dev/fuse and loop devices (the lab's hosts).
"""

import hashlib
import os
import shutil
import time

from idcloud_csi.backends.common import known_params, pool_avail, require
from idcloud_csi.errors import CsiError, invalid, not_found
from idcloud_csi.mounts import block_size
from idcloud_csi.runner import CommandFailed
from idcloud_csi.volumes import VolumeId, size_fits, volume_name

PARAMS = ("pool", "namespace", "imageFeatures", "dataPool", "mapper")
MAPPERS = ("krbd", "nbd", "fuse")
# what `rbd create --image-feature` takes; the default is what every mapper can open
FEATURES = ("layering", "exclusive-lock", "object-map", "fast-diff", "deep-flatten", "journaling")
DEFAULT_FEATURES = "layering"
REQUIRES = {"object-map": "exclusive-lock", "fast-diff": "object-map", "journaling": "exclusive-lock"}


def spec(vid):
    return "/".join(part for part in (vid.location, vid.scope, vid.name) if part)


def features_of(params):
    features = [f.strip() for f in (params.get("imageFeatures") or DEFAULT_FEATURES).split(",") if f.strip()]
    for feature in features:
        if feature not in FEATURES:
            raise invalid(f"parameters: imageFeatures has {feature!r}; fix: use only {', '.join(FEATURES)}")
        need = REQUIRES.get(feature)
        if need and need not in features:
            raise invalid(f"parameters: imageFeatures {feature} needs {need}; fix: add {need}")
    return features


class RBDController:
    backend = "rbd"

    def __init__(self, ceph, name_prefix):
        self.ceph = ceph
        self.prefix = name_prefix

    def volume_id(self, request_name, params):
        known_params(params, PARAMS, self.backend)
        pool = require(params, "pool", self.backend, "pool: rbd")
        features_of(params)
        mapper = params.get("mapper")
        if mapper and mapper not in MAPPERS:
            raise invalid(f"parameters: mapper {mapper!r}; fix: use one of {', '.join(MAPPERS)}")
        return VolumeId(self.backend, pool, params.get("namespace", ""), volume_name(self.prefix, request_name))

    def info(self, session, vid):
        return session.rbd("info", spec(vid), missing_ok=True)

    def create(self, vid, size, required, limit, params, secrets):
        with self.ceph.for_call(secrets, "CreateVolume") as s:
            info = self.info(s, vid)
            if info is not None:
                if not size_fits(info["size"], required, limit):
                    raise CsiError(
                        "ALREADY_EXISTS",
                        f"volume {vid.name} exists with {info['size']} bytes, outside the asked range "
                        f"({required}..{limit or 'no limit'}); fix: ask for its size, or use another name",
                    )
                size = info["size"]
            else:
                cmd = ["create", "--size", f"{size}B"]
                for feature in features_of(params):
                    cmd += ["--image-feature", feature]
                if params.get("dataPool"):
                    cmd += ["--data-pool", params["dataPool"]]
                s.rbd(*cmd, spec(vid), json_out=False)
        context = {"backend": self.backend, "pool": vid.location, "image": vid.name}
        if params.get("mapper"):
            context["mapper"] = params["mapper"]
        return size, context

    def delete(self, vid, secrets):
        with self.ceph.for_call(secrets, "DeleteVolume") as s:
            try:
                s.rbd("rm", "--no-progress", spec(vid), json_out=False, missing_ok=True)
            except CsiError as exc:
                if "still has watchers" in exc.message or "rc 16" in exc.message:
                    raise CsiError(
                        "FAILED_PRECONDITION",
                        f"volume {vid}: image {spec(vid)} is still open on a node; fix: unstage it there first",
                    ) from None
                raise

    def expand(self, vid, size, secrets):
        with self.ceph.for_call(secrets, "ControllerExpandVolume") as s:
            info = self.info(s, vid)
            if info is None:
                raise not_found(f"volume {vid}: no image {spec(vid)}")
            if info["size"] >= size:
                return info["size"]
            s.rbd("resize", "--size", f"{size}B", "--no-progress", spec(vid), json_out=False)
        return size

    def exists(self, vid, secrets):
        with self.ceph.for_call(secrets, "ValidateVolumeCapabilities") as s:
            return self.info(s, vid) is not None

    def capacity(self, session, params):
        return pool_avail(session, (params or {}).get("pool"))


def rbd_fuse_pids(mnt, proc="/proc"):
    """The rbd-fuse processes serving mount point `mnt`."""
    pids = []
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            with open(os.path.join(proc, pid, "cmdline"), "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and os.path.basename(args[0]) == b"rbd-fuse" and os.fsencode(mnt) in args:
            pids.append(int(pid))
    return pids


class FuseMapper:
    """rbd-fuse + a loop device. Per volume a directory under the state dir whose `mnt/` is
    the FUSE mount showing only this image (`-r`)."""

    kind = "fuse"
    # rbd-fuse is a libfuse high-level file system: the kernel keeps a file's size for the
    # attribute timeout (1 s) before it asks again
    ATTR_TIMEOUT = 1.1

    def __init__(self, runner, mounter, state_dir, proc="/proc"):
        self.runner = runner
        self.mounter = mounter
        self.state_dir = os.path.join(state_dir, "rbd-fuse")
        self.proc = proc

    def dir(self, vid):
        return os.path.join(self.state_dir, hashlib.sha256(str(vid).encode()).hexdigest()[:24])

    def image_file(self, vid):
        return os.path.join(self.dir(vid), "mnt", vid.name)

    def loops(self, vid):
        _, out, _ = self.runner.run(["losetup", "--noheadings", "--raw", "--output", "NAME,BACK-FILE", "--list"])
        wanted = self.image_file(vid)
        return [line.split(None, 1)[0] for line in out.splitlines() if line.split(None, 1)[1:] == [wanted]]

    def device(self, vid):
        if not self.mounter.is_mounted(os.path.join(self.dir(vid), "mnt")):
            return None
        found = self.loops(vid)
        return found[0] if found else None

    def attach(self, vid, session):
        if vid.scope:
            raise invalid(f"volume {vid}: rbd-fuse cannot open images in a namespace; fix: use krbd or nbd for it")
        base = self.dir(vid)
        mnt = os.path.join(base, "mnt")
        os.makedirs(mnt, mode=0o700, exist_ok=True)
        if not self.mounter.is_mounted(mnt):
            # rbd-fuse (Pacific) takes Ceph's common options (global_init) and connects as it
            # starts; the call's keyring lasts until the image file answers, and no longer
            self.runner.run(["rbd-fuse", mnt, *session.args(), "-p", vid.location, "-r", vid.name])
            self._wait_for(self.image_file(vid))
        found = self.loops(vid)
        if found:
            return found[0]
        _, out, _ = self.runner.run(["losetup", "--find", "--show", self.image_file(vid)])
        return out.strip()

    def _wait_for(self, path, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.stat(path)
                return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise CsiError(
                        "INTERNAL",
                        f"rbd-fuse started but {path} did not appear in {timeout} s ({exc.strerror}); fix: check the "
                        "image exists and the user may read the pool (ceph auth get client.<id>)",
                    ) from None
                time.sleep(0.5)

    def detach(self, vid):
        if os.path.isdir(self.dir(vid)):
            for loop in self.loops(vid):
                self.runner.run(["losetup", "--detach", loop])
            mnt = os.path.join(self.dir(vid), "mnt")
            self.mounter.unmount(mnt)
            # rbd-fuse closes the image (its watch) only as it exits, after the unmount; an
            # `rbd rm` before then fails with "image still has watchers"
            self._wait_gone(mnt)
            shutil.rmtree(self.dir(vid), ignore_errors=True)

    def _wait_gone(self, mnt, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and rbd_fuse_pids(mnt, self.proc):
            time.sleep(0.2)

    def refresh(self, vid, device):
        """Make the loop device take the image's new size: the kernel's cached file size first
        (a stat after the attribute timeout asks rbd-fuse again), then LOOP_SET_CAPACITY."""
        time.sleep(self.ATTR_TIMEOUT)
        os.stat(self.image_file(vid))
        self.runner.run(["losetup", "--set-capacity", device])


class KrbdMapper:
    kind = "krbd"

    def __init__(self, runner):
        self.runner = runner

    def _mapped(self):
        import json

        _, out, _ = self.runner.run(["rbd", "device", "list", "--format", "json"])
        return json.loads(out or "[]")

    def device(self, vid):
        for entry in self._mapped():
            if (entry.get("pool"), entry.get("namespace") or "", entry.get("name")) == (
                vid.location,
                vid.scope,
                vid.name,
            ):
                return entry["device"]
        return None

    def attach(self, vid, session):
        found = self.device(vid)
        if found:
            return found
        _, out, _ = self.runner.run(["rbd", "device", "map", *session.args(), spec(vid)])
        return out.strip()

    def detach(self, vid):
        device = self.device(vid)
        if device:
            self.runner.run(["rbd", "device", "unmap", device])

    def refresh(self, vid, device):
        pass  # krbd follows the image's header: the device grows by itself


class NbdMapper(KrbdMapper):
    kind = "nbd"

    def _mapped(self):
        import json

        _, out, _ = self.runner.run(["rbd-nbd", "list-mapped", "--format", "json"])
        return json.loads(out or "[]")

    def attach(self, vid, session):
        found = self.device(vid)
        if found:
            return found
        _, out, _ = self.runner.run(["rbd-nbd", "map", *session.args(), spec(vid)])
        return out.strip()

    def detach(self, vid):
        device = self.device(vid)
        if device:
            self.runner.run(["rbd-nbd", "unmap", device])

    def refresh(self, vid, device):
        pass  # rbd-nbd resizes the nbd device when the image grows


class RBDNode:
    backend = "rbd"

    def __init__(self, ceph, runner, mounter, state_dir, default_mapper, default_fs="ext4"):
        self.ceph = ceph
        self.runner = runner
        self.mounter = mounter
        self.mappers = {
            "fuse": FuseMapper(runner, mounter, state_dir),
            "krbd": KrbdMapper(runner),
            "nbd": NbdMapper(runner),
        }
        self.default_mapper = default_mapper
        self.default_fs = default_fs
        self.state_dir = state_dir

    def mapper(self, context=None, vid=None):
        kind = (context or {}).get("mapper") or self._recorded(vid) or self.default_mapper
        if kind not in MAPPERS:
            raise invalid(f"volume_context: mapper {kind!r}; fix: use one of {', '.join(MAPPERS)}")
        return self.mappers[kind]

    # which mapper staged a volume, for the calls that carry no volume context (unstage, expand)
    def _record_path(self, vid):
        return os.path.join(self.state_dir, "staged", hashlib.sha256(str(vid).encode()).hexdigest()[:24])

    def _recorded(self, vid):
        if vid is None:
            return None
        try:
            with open(self._record_path(vid)) as f:
                return f.read().strip()
        except OSError:
            return None

    def _record(self, vid, kind):
        os.makedirs(os.path.dirname(self._record_path(vid)), exist_ok=True)
        with open(self._record_path(vid), "w") as f:
            f.write(kind + "\n")

    def device(self, vid):
        return self.mapper(vid=vid).device(vid)

    def stage(self, vid, staging, cap, context, secrets):
        mapper = self.mapper(context, vid)
        block = cap["access_type"] == "block"
        if not block and self.mounter.is_mounted(staging):
            return
        with self.ceph.for_call(secrets, "NodeStageVolume") as s:
            self._record(vid, mapper.kind)
            device = mapper.attach(vid, s)
        if block:
            return
        fs_type = cap.get("fs_type") or self.default_fs
        rc, out, _ = self.runner.run(
            ["blkid", "--probe", "--match-tag", "TYPE", "--output", "value", device], check=False
        )
        found = out.strip()
        if rc == 2 or not found:  # blkid exits 2 when it finds no signature: a new image
            if fs_type == "xfs":
                self.runner.run(["mkfs.xfs", "-K", device], timeout=600)
            else:
                self.runner.run(
                    ["mkfs." + fs_type, "-m0", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", device],
                    timeout=600,
                )
            found = fs_type
        elif rc != 0:
            raise CsiError("INTERNAL", f"blkid on {device} of volume {vid} failed (rc {rc})")
        elif found.startswith("ext") and self._ext_smaller_than_device(device):
            # the image grew while the volume was not staged (or online growth was refused):
            # grow offline, which needs no CAP_SYS_RESOURCE
            rc, _, err = self.runner.run(["e2fsck", "-f", "-p", device], check=False, timeout=600)
            if rc not in (0, 1):
                raise CsiError(
                    "INTERNAL", f"e2fsck of {device} (volume {vid}) before its resize: rc {rc}: {err.strip()}"
                )
            self.runner.run(["resize2fs", device], timeout=600)
        os.makedirs(staging, exist_ok=True)
        self.mounter.mount(device, staging, found, cap.get("mount_flags") or ())
        if found == "xfs":
            self.runner.run(["xfs_growfs", staging])  # a no-op unless the image grew while unstaged

    def _ext_smaller_than_device(self, device):
        _, out, _ = self.runner.run(["dumpe2fs", "-h", device])
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        try:
            fs_bytes = int(fields["Block count"]) * int(fields["Block size"])
        except (KeyError, ValueError):
            return False
        return fs_bytes < block_size(self.runner, device)

    def unstage(self, vid, staging):
        self.mounter.unmount(staging)
        self.mapper(vid=vid).detach(vid)
        try:
            os.unlink(self._record_path(vid))
        except OSError:
            pass

    def expand(self, vid, volume_path, required):
        mapper = self.mapper(vid=vid)
        device = mapper.device(vid)
        if device is None:
            raise CsiError(
                "FAILED_PRECONDITION", f"volume {vid} is not staged on this node; fix: stage it before expanding"
            )
        mapper.refresh(vid, device)
        mount = self.mounter.mount_at(volume_path)
        if mount is not None and os.path.isdir(volume_path):
            # the mount table names the loop device for the bind mount too; the fs type decides the tool
            if mount.fstype == "xfs":
                self.runner.run(["xfs_growfs", volume_path])
            elif mount.fstype.startswith("ext"):
                rc, _, err = self.runner.run(["resize2fs", device], check=False, timeout=600)
                if rc != 0 and "Permission denied" in err:
                    raise CsiError(
                        "FAILED_PRECONDITION",
                        f"volume {vid}: the kernel refused to grow {mount.fstype} online on {device} (the driver "
                        "lacks CAP_SYS_RESOURCE); fix: give the node plugin CAP_SYS_RESOURCE, or restage the volume "
                        "(NodeStageVolume grows ext4 offline), or use fsType xfs",
                    )
                if rc != 0:
                    raise CsiError("INTERNAL", f"resize2fs {device} (volume {vid}) failed (rc {rc}): {err.strip()}")
            else:
                raise CsiError("INTERNAL", f"volume {vid}: cannot grow a {mount.fstype} filesystem")
        _, out, _ = self.runner.run(["blockdev", "--getsize64", device])
        return int(out.strip())

    def detach_quietly(self, vid):
        try:
            self.mapper(vid=vid).detach(vid)
        except (CsiError, CommandFailed):
            pass
