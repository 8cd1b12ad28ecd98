"""The only module of the lab that runs commands (podman, iptables, ssh-keygen, builds, playbooks)
or reads the machine's state (the kernel log, sysctls, TCP ports, HTTPS). Failures raise LabError.
"""

import json
import os
import shlex
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

from .common import LAB_DIR, LabError, lab_file

os.environ.setdefault("CONTAINERS_CONF", os.path.join(LAB_DIR, "containers.conf"))


class Runner:
    """podman and iptables as the lab uses them; every other module goes through one of these."""

    # --- podman ----------------------------------------------------------------------
    def podman(self, *args, check=True, capture=False, input=None):
        res = subprocess.run(
            ["podman", *args],
            text=True,
            input=input,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
        )
        if check and res.returncode != 0:
            err = (res.stderr or "").strip()
            raise LabError(f"podman {' '.join(args)} failed ({res.returncode}): {err}")
        return res

    def remove_container(self, name, attempts=3):
        """`podman rm -f -t 5 NAME`, again when podman loses a race with the container's exit.

        Seen on 2026-12-07: podman's SIGKILL came after the container had stopped by itself, and
        `rm` failed with "container state improper: stopped"; a second `rm` removes it."""
        for attempt in range(1, attempts + 1):
            res = self.podman("rm", "-f", "-t", "5", name, check=False, capture=True)
            if res.returncode == 0 or not self.exists("container", name):
                return res
            if attempt == attempts:
                raise LabError(f"podman rm -f -t 5 {name} failed ({res.returncode}): {(res.stderr or '').strip()}")
            time.sleep(2)

    def exists(self, kind, name):
        return self.podman(kind, "exists", name, check=False, capture=True).returncode == 0

    def inspect(self, fmt, name):
        """`podman inspect -f FMT NAME` (a container), stripped."""
        return self.podman("inspect", "-f", fmt, name, capture=True).stdout.strip()

    def network_info(self, net):
        return json.loads(self.podman("network", "inspect", net, capture=True).stdout)[0]

    def label(self, kind, name, label):
        """The value of a label on a container, volume or network ('' when it has none)."""
        if kind == "container":
            return self.inspect('{{index .Config.Labels "%s"}}' % label, name)
        fmt = '{{index .Labels "%s"}}' % label
        return self.podman(kind, "inspect", "-f", fmt, name, capture=True, check=False).stdout.strip()

    def networks_of(self, cname):
        """{network: address} of a container's networks."""
        nets = json.loads(self.inspect("{{json .NetworkSettings.Networks}}", cname) or "{}")
        return {name: info.get("IPAddress") for name, info in (nets or {}).items()}

    def exec(self, cname, *cmd):
        """A command in a container; the result, whatever its exit code."""
        return self.podman("exec", cname, *cmd, check=False, capture=True)

    def script(self, cname, name, *args, input=None, shell="sh"):
        """One of the package's shell scripts (files/NAME) in a container, with args and stdin."""
        argv = ["exec", *(["-i"] if input is not None else []), cname, shell, "-c", lab_file(name), name, *args]
        return self.podman(*argv, check=False, capture=True, input=input)

    def wait_systemd(self, cname, timeout):
        """Block until systemd in the container has finished booting (running or degraded)."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.exec(cname, "systemctl", "is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                return state
            time.sleep(0.5)
        raise LabError(f"systemd in {cname} did not finish booting within {timeout}s (state {state or 'unknown'})")

    # --- iptables --------------------------------------------------------------------
    def iptables(self, table, *args, check=True):
        # -w: wait for the xtables lock; two labs may come up or go down at the same time
        res = subprocess.run(["iptables", "-w", "-t", table, *args], text=True, capture_output=True)
        if check and res.returncode != 0:
            raise LabError(f"iptables -t {table} {' '.join(args)} failed ({res.returncode}): {res.stderr.strip()}")
        return res

    def has_rule(self, table, chain, rule):
        return self.iptables(table, "-C", chain, *rule, check=False).returncode == 0

    def delete_all(self, table, chain, rule):
        """Delete every copy of a rule."""
        while self.iptables(table, "-D", chain, *rule, check=False).returncode == 0:
            pass

    def tagged_rules(self, table, chain, tag):
        """The rules of a chain whose comment is exactly tag, as `-D` arguments."""
        found = []
        for line in self.iptables(table, "-S", chain).stdout.splitlines():
            words = shlex.split(line)
            if words[:2] != ["-A", chain] or "--comment" not in words:
                continue
            if words[words.index("--comment") + 1] == tag:
                found.append(words[2:])
        return found

    def lab_rules(self, table, chain, prefix="idcloud-lab:"):
        """The rules of a chain whose comment starts with prefix, as (comment, `-D` arguments)."""
        found = []
        for line in self.iptables(table, "-S", chain).stdout.splitlines():
            words = shlex.split(line)
            if words[:2] != ["-A", chain] or "--comment" not in words:
                continue
            comment = words[words.index("--comment") + 1]
            if comment.startswith(prefix):
                found.append((comment, words[2:]))
        return found

    @staticmethod
    def bridges_filtered():
        """Whether frames crossing a bridge go through iptables (br_netfilter loaded and on)."""
        try:
            with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as f:
                return f.read().strip() == "1"
        except OSError:
            return False

    @staticmethod
    def log_all_netns():
        """Let netfilter LOG rules of every network namespace write to the kernel log.

        The kernel logs only the initial namespace's by default (net.netfilter.nf_log_all_netns
        0); a lab host is a namespace, a real host is not. Returns whether it was changed.
        """
        path = "/proc/sys/net/netfilter/nf_log_all_netns"
        try:
            with open(path) as f:
                if f.read().strip() == "1":
                    return False
            with open(path, "w") as f:
                f.write("1\n")
        except OSError as e:
            raise LabError(
                f"cannot set {path} to 1 ({e}): the lab hosts' netfilter logs (network_guard) "
                "would not reach the kernel log; fix: run `lab up` as root on the VM"
            ) from e
        return True

    # --- the kernel log ----------------------------------------------------------------
    @staticmethod
    def read_kmsg():
        """The kernel log as [(sequence number, message)], read from /dev/kmsg (not consumed)."""
        return read_kmsg()

    # --- other programs ---------------------------------------------------------------
    def run(self, argv, what, **kwargs):
        """A program that must succeed (an image build, ssh-keygen); output goes to ours."""
        res = subprocess.run(argv, **kwargs)
        if res.returncode != 0:
            raise LabError(f"{what} failed ({res.returncode}): {shlex.join(argv)}")
        return res

    def python(self, script, *args, what):
        return self.run([sys.executable, script, *args], what)

    @staticmethod
    def capture(argv, **kwargs):
        """A program whose output we read; the result, whatever its exit code."""
        return subprocess.run(argv, text=True, capture_output=True, **kwargs)

    # --- the network -------------------------------------------------------------------
    @staticmethod
    def wait_tcp(addresses, port, timeout, what):
        deadline = time.monotonic() + timeout
        pending = list(addresses)
        while pending and time.monotonic() < deadline:
            for addr in list(pending):
                try:
                    with socket.create_connection((addr, port), timeout=1):
                        pending.remove(addr)
                except OSError:
                    pass
            if pending:
                time.sleep(0.5)
        if pending:
            raise LabError(f"{what} did not answer on port {port} within {timeout}s: {', '.join(pending)}")

    @staticmethod
    def https_ok(url, cafile):
        """GET url over TLS verified with cafile: True on 200."""
        try:
            ctx = ssl.create_default_context(cafile=cafile)
            with urllib.request.urlopen(url, timeout=3, context=ctx) as resp:
                return resp.status == 200
        except (OSError, ssl.SSLError):
            return False


def read_kmsg():
    """The kernel log as [(sequence number, message)], read from /dev/kmsg (not consumed)."""
    records = []
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                raw = os.read(fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # the oldest records were overwritten while reading: go on
                continue
            if not raw:
                break
            head, _, msg = raw.decode(errors="replace").partition(";")
            records.append((int(head.split(",")[1]), msg.split("\n")[0]))
    finally:
        os.close(fd)
    return records
