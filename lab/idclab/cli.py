"""The local IDC lab: podman containers that play the racks of an IDC description.

  lab up      build images if needed, then one podman network per rack, a systemd
              container per host at its fixed address (a containerd volume, cgroup
              paths that match systemd's view, a route for the pod CIDR via its ToR), a
              ToR router per rack (FRR, running the configuration the collection generates
              for it), a spine router that the ToRs' uplinks peer with, and a mirror host
              serving artifacts over HTTP, NTP, and the internal registry (<mirror>:5000,
              TLS from the cluster CA) with the images of lab/registry-images/images.yml pushed.
              A host the description puts in another rack is moved there (re-cabled).
  lab down    remove exactly what `up` made (by name, recorded in the state file)
  lab status  what is running, with addresses and systemd state
  lab egress-log  the lab's dropped egress, as logged by the kernel (see docs/lab.md, Containment)

Containment: `up` drops and logs (kernel log, prefix "idcloud-egress <lab>: ") every packet
that would leave the lab's networks or reach the VM itself, except replies to the VM and
the mirror's apt-cacher-ng (<mirror>:3142), which every lab host's apt goes through.

The description is the same YAML the idcloud.platform.idc inventory plugin reads, so the
lab goes through the validation a real data centre's description goes through.
"""

import argparse
import os
import sys

from .common import REPO, LabError
from .lifecycle import Lab, load_plan


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--idc",
        default=os.path.join(REPO, "inventories", "lab", "idc.yml"),
        help="IDC description to build (default: inventories/lab/idc.yml)",
    )
    parser.add_argument("command", choices=["up", "down", "status", "egress-log"])
    args = parser.parse_args(argv)
    try:
        lab = Lab(load_plan(args.idc))
        if args.command == "up":
            lab.up()
        elif args.command == "down":
            lab.down()
        elif args.command == "egress-log":
            for line in lab.egress_log():
                print(line)
        else:
            return lab.status()
    except LabError as exc:
        # the message names the problem and the fix; printed to stderr with exit code 1, as before
        print(exc, file=sys.stderr)
        return 1
    return 0
