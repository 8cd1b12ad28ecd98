# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The IDC description: the model of one data centre and its validation.

Ops describe a data centre once (cluster CIDRs, rooms, racks with their ToR
switch, hosts with roles and sizes). This module turns that plain data into
dataclasses, checks the whole of it and reports every problem at once, and
lays it out as inventory groups and variables. Pure Python (stdlib only) so
the inventory plugin, the lab tool and the unit tests share one definition.
The format reference is docs/idc-description.md.

This is the inventory plugin `idc`'s entry point (docs/layout.md: a plugin's logic is
module_utils/<domain>/<plugin name>.py); the code is split by concern:
  model.py         the dataclasses and the names of roles, groups and variables
  validation.py    parse_description and the per-field readers
  cross_checks.py  the rules that need the whole description
  ceph_section.py  the ceph section, each host's osd_devices and the Ceph rules
  source.py        the file's YAML text: an empty file, a key written twice
  layout.py        inventory_layout and hosts_from_hostvars
"""

from __future__ import annotations

from ansible_collections.idcloud.platform.plugins.module_utils.idc.layout import hosts_from_hostvars, inventory_layout
from ansible_collections.idcloud.platform.plugins.module_utils.idc.model import (
    ALL_VAR_NAMES,
    CEPH_DAEMON_ROLES,
    DEFAULT_APISERVER_PORT,
    DEFAULT_DOMAIN,
    DEFAULT_POD_BLOCK_SIZE,
    HOST_VAR_NAMES,
    KNOWN_ROLES,
    PARENT_GROUPS,
    PLUGIN_KEYS,
    ROLE_GROUPS,
    Ceph,
    Host,
    IdcDescription,
    IdcValidationError,
    OsdDevice,
    Rack,
    Room,
    group_name,
)
from ansible_collections.idcloud.platform.plugins.module_utils.idc.validation import parse_description

__all__ = [
    "ALL_VAR_NAMES",
    "CEPH_DAEMON_ROLES",
    "DEFAULT_APISERVER_PORT",
    "DEFAULT_DOMAIN",
    "DEFAULT_POD_BLOCK_SIZE",
    "HOST_VAR_NAMES",
    "KNOWN_ROLES",
    "PARENT_GROUPS",
    "PLUGIN_KEYS",
    "ROLE_GROUPS",
    "Ceph",
    "Host",
    "IdcDescription",
    "IdcValidationError",
    "OsdDevice",
    "Rack",
    "Room",
    "group_name",
    "hosts_from_hostvars",
    "inventory_layout",
    "parse_description",
]
