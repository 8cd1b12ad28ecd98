"""What every lab tool shares: the cache directory, logging, file hashes, the lab's error."""

import hashlib
import os

LAB_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(LAB_DIR)
FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "files")
# How long a container's systemd may take to finish booting: seconds on an idle machine, but
# 50 hosts starting at once on 2 shared cores took over a minute (bench/run_scale.py).
BOOT_TIMEOUT = 300


class LabError(Exception):
    """A problem `lab` reports and stops on; the CLI prints it and exits 1."""


def cache_dir(*parts):
    """~/.cache/idcloud (or $IDCLOUD_CACHE), joined with parts: builds and state live there."""
    return os.path.join(os.environ.get("IDCLOUD_CACHE", os.path.expanduser("~/.cache/idcloud")), *parts)


def logger(tag):
    """A log function that prints '[tag] message' at once (output is read as it comes)."""

    def log(msg):
        print(f"[{tag}] {msg}", flush=True)

    return log


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def lab_file(name):
    """The text of one of the package's data files (systemd units, shell scripts)."""
    with open(os.path.join(FILES, name)) as f:
        return f.read()
