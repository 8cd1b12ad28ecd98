"""`python3 -m idcloud_csi`: the driver's entry point (flags: csi/README.md)."""

from idcloud_csi.server import main

main()
