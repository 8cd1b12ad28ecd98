# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The `ceph` command line for the ceph modules: JSON in, CephError out.

The modules run on a host with the Ceph client (a mon host of the collection's cluster, or a
client host of a storage team's cluster in ceph_external mode) and name the cluster by its
configuration file, the cephx user and its keyring. Every call gets `--format json` and a
timeout; a failure is raised with the command and Ceph's own message. The same class runs
`rbd`, which takes the same connection options and JSON output.
"""

from __future__ import annotations

import json
import shlex

# ceph and rbd exit with the errno of a failed request: a read of something missing exits 2
ENOENT = 2

# how long to wait for the mons: the ceph CLI has its own flag, rbd takes the config option
TIMEOUT_FLAGS = {"ceph": "--connect-timeout", "rbd": "--client-mount-timeout"}


class CephError(Exception):
    """A refused request (field, value, fix in the message) or a failed ceph command."""


def ceph_connection_argument_spec():
    """The options every ceph module shares (doc fragment idcloud.platform.ceph_client)."""
    return dict(
        cluster_conf=dict(type="path", default="/etc/ceph/ceph.conf"),
        user=dict(type="str", default="admin"),
        keyring=dict(type="path"),
        timeout=dict(type="int", default=30),
    )


class CephCli:
    """Runs `ceph <args>` (or `rbd <args>`) through a runner with AnsibleModule.run_command's signature."""

    def __init__(self, run_command, params, binary="ceph"):
        self.run_command = run_command
        self.binary = binary
        self.base = [
            binary,
            "--conf",
            params["cluster_conf"],
            "--id",
            params["user"],
            TIMEOUT_FLAGS[binary],
            str(params["timeout"]),
        ]
        if params.get("keyring"):
            self.base += ["--keyring", params["keyring"]]

    def shown(self, args):
        """One command as a shell would take it, for the result's `commands` (caps hold spaces)."""
        return shlex.join([self.binary] + list(args))

    def run(self, *args, json_out=True, missing_ok=False):
        """The command's JSON (its text with json_out=False); None with missing_ok when it exits ENOENT."""
        cmd = self.base + list(args) + (["--format", "json"] if json_out else [])
        rc, out, err = self.run_command(cmd)
        if rc == ENOENT and missing_ok:
            return None
        if rc != 0:
            raise CephError("`%s %s` failed (rc %d): %s" % (self.binary, " ".join(args), rc, (err or out).strip()))
        if not json_out:
            return out
        try:
            return json.loads(out) if out.strip() else None
        except ValueError as exc:
            raise CephError("`%s %s` printed no JSON: %s" % (self.binary, " ".join(args), exc))
