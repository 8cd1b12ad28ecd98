# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
name: idc
short_description: Inventory from an IDC description (rooms, racks, ToR switches, hosts)
version_added: 0.1.0
author: idcloud developers
description:
  - Reads one IDC description, a YAML file that describes a data centre once (cluster CIDRs and
    BGP AS, rooms, racks with their subnet, gateway and ToR switch, hosts with their roles and
    sizes), validates the whole of it and turns it into groups and host variables.
  - Validation runs before any host is added; every problem is reported at once, each naming
    the field path, the value and the fix. An invalid description adds nothing to the inventory.
    What is valid but advised against (a single Ceph mon, mons sharing a rack, a pool size of 1)
    is shown as a warning, in the same form.
  - 'Role groups: C(etcd), C(etcd_spare), C(kube_control_plane) (role C(control_plane)),
    C(kube_node) (role C(worker)), C(lb), C(ceph_mon), C(ceph_mgr), C(ceph_osd), C(ceph_mds),
    C(gluster), C(kafka); they exist even when empty.'
  - 'Parent groups: C(k8s_cluster) (kube_control_plane, kube_node) and C(storage) (ceph_mon,
    ceph_mgr, ceph_osd, ceph_mds, gluster). Location groups: C(room_<room>) with child groups
    C(rack_<rack>), names lowercased with any character outside a-z, 0-9 and _ replaced by _.'
  - 'Host variables: C(ansible_host), C(idc_address) (the host''s rack address, even when its vars
    point C(ansible_host) elsewhere), C(idc_room), C(idc_rack), C(idc_rack_subnet),
    C(idc_rack_gateway), C(idc_tor_name), C(idc_tor_as), C(idc_tor_peer), C(idc_tor_uplink) (the
    ToR''s O(rooms[].racks[].tor.uplink) or null), C(idc_node_as),
    C(idc_roles), C(idc_cpu), C(idc_memory_gib), C(idc_ceph_osd_devices) (the host''s
    O(rooms[].racks[].hosts[].osd_devices) as C({path, file, size_gib}) items, an empty list without any),
    then the host''s O(rooms[].racks[].hosts[].vars).
    Group C(all) gets C(idc_cluster_name), C(idc_pod_cidr), C(idc_service_cidr), C(idc_node_as),
    C(idc_cluster_domain), C(idc_apiserver_vip) (an empty string without a VIP), C(idc_apiserver_port),
    C(idc_apiserver_url) (C(https://VIP:port), or the first control plane''s address without a VIP),
    C(idc_pod_block_size), C(idc_fixed_ip_cidr) (null without one), C(idc_advertise_service_cidr),
    C(idc_ceph) (null without Ceph; else C(mode), C(pool_size), C(failure_domain) (null in external mode),
    C(mons) (the mon addresses: the C(ceph_mon) hosts'', or O(ceph.external.mons)) and C(crush_tree)
    (C({room, rack, host}) of every C(ceph_osd) host, empty in external mode)), then O(vars).'
  - The file name must end with C(idc.yml) or C(idc.yaml), for example C(idc.yml) or C(bj1.idc.yml).
  - An empty file and a key written twice in one mapping are errors, not an empty inventory or a silently dropped value.
  - The full format reference, with every validation rule, is docs/idc-description.md in the collection.
extends_documentation_fragment:
  - constructed
notes:
  - The file may be encrypted with ansible-vault as a whole, and single values may be C(!vault) strings.
  - group_vars/ and host_vars/ next to the description still apply, with normal precedence
    (host variables from this plugin outrank group_vars files, host_vars files outrank them).
  - The top-level C(lab) section is read only by the lab tool; this plugin ignores its content.
  - Nothing depends on the current directory, so the same file works from ansible-playbook,
    ansible-inventory and as an AWX inventory source.
seealso:
  - plugin: ansible.builtin.constructed
    plugin_type: inventory
options:
  plugin:
    description: Marks this file as an IDC description for this plugin.
    type: str
    required: true
    choices: [idcloud.platform.idc]
  cluster:
    description: The Kubernetes cluster built in this data centre.
    type: dict
    required: true
    suboptions:
      name:
        description: Cluster name; 1-63 lowercase letters, digits and C(-), starting with a letter.
        type: str
        required: true
      pod_cidr:
        description: Pod network (CIDR, no host bits); must not overlap O(cluster.service_cidr) or any rack subnet.
        type: str
        required: true
      service_cidr:
        description: Service network (CIDR, no host bits); must not overlap O(cluster.pod_cidr) or any rack subnet.
        type: str
        required: true
      node_as:
        description:
          - BGP AS number of every server (1..4294967295). Servers peer with their rack's ToR over eBGP,
            so no ToR (and no spine) may use it.
        type: int
        required: true
      pod_block_size:
        description:
          - Prefix length of the blocks Calico IPAM gives each node from O(cluster.pod_cidr), 20..32; each
            block is one route on the ToR.
          - O(cluster.pod_cidr) without O(cluster.fixed_ip_cidr) must hold at least one block per C(worker) host.
        type: int
        default: 27
      fixed_ip_cidr:
        description:
          - Part of O(cluster.pod_cidr) kept for pods that ask for a fixed address; Calico makes it its own
            IP pool with blocks of one address, so each such pod is announced as a /32 from its node.
          - Must lie inside O(cluster.pod_cidr), be smaller than it, and be at least one block.
        type: str
      advertise_service_cidr:
        description: Announce O(cluster.service_cidr) from every node to the ToRs.
        type: bool
        default: false
      domain:
        description: Cluster DNS domain.
        type: str
        default: cluster.local
      apiserver_vip:
        description:
          - IPv4 address every client reaches the apiservers at. Required when a host has the C(lb) role.
          - With C(lb) hosts it is a keepalived VRRP VIP, so every C(lb) host must be in one rack and the VIP
            inside that rack's subnet; it must not be a host address, a gateway, a ToR peer, or inside the pod
            or service network.
          - Without C(lb) hosts it may be the address of an external load balancer.
        type: str
      apiserver_port:
        description: TCP port of O(cluster.apiserver_vip) (the HAProxy frontend on the C(lb) hosts).
        type: int
        default: 6443
      partial:
        description:
          - The description is deliberately a part of a cluster, such as a test scenario for one role; it may then
            lack C(control_plane) and C(worker) hosts, which a whole cluster must have. C(etcd) stays required.
        type: bool
        default: false
  vars:
    description: Variables for group C(all). Names computed by this plugin (C(idc_*)) are refused.
    type: dict
    default: {}
  lab:
    description: Settings read only by the lab tool; ignored and not validated by this plugin.
    type: dict
  ceph:
    description:
      - The Ceph cluster of this data centre. Without it and without any C(ceph_*) role there is no Ceph;
        C(ceph_*) roles without it mean O(ceph.mode=internal) with the defaults.
      - 'Internal mode: an odd number of C(ceph_mon) hosts, 3 or 5 (1 or more than 5 is a warning, and so are mons
        in fewer racks than they could be), at least one C(ceph_mgr), C(ceph_osd) hosts each with
        O(rooms[].racks[].hosts[].osd_devices), and O(ceph.pool_size) not above the OSD count or the failure
        domains that hold OSDs.'
    type: dict
    suboptions:
      mode:
        description:
          - V(internal) deploys Ceph on the hosts with the C(ceph_*) roles; V(external) connects to the storage
            team's cluster at O(ceph.external.mons), and then no host may have a C(ceph_*) role.
        type: str
        choices: [internal, external]
        default: internal
      pool_size:
        description: Replicas of each object in the pools the collection makes, 1..10 (1 is a warning).
        type: int
        default: 3
      failure_domain:
        description:
          - The level each replica of a pool goes to a different one of; the CRUSH map mirrors room, rack and
            host from the description. Internal mode only.
        type: str
        choices: [host, rack, room]
        default: rack
      external:
        description: The storage team's cluster; required with O(ceph.mode=external), refused otherwise.
        type: dict
        suboptions:
          mons:
            description: The addresses of its mons (IP addresses, default ports); at least one, each once.
            type: list
            elements: str
            required: true
  rooms:
    description: The rooms of the data centre; at least one.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Room name, unique; becomes group C(room_<name>).
        type: str
        required: true
      racks:
        description: The racks of the room; at least one.
        type: list
        elements: dict
        required: true
        suboptions:
          name:
            description: Rack name, unique across all rooms; becomes group C(rack_<name>).
            type: str
            required: true
          subnet:
            description: The rack's server subnet (CIDR, no host bits).
            type: str
            required: true
          gateway:
            description: Default gateway of the rack; inside the subnet, not its network or broadcast address.
            type: str
            required: true
          tor:
            description: The rack's top-of-rack switch, the BGP peer of its servers.
            type: dict
            required: true
            suboptions:
              name:
                description: Switch name; defaults to C(tor-<rack>).
                type: str
              as:
                description: BGP AS of the switch (1..4294967295).
                type: int
                required: true
              peer:
                description: Address the servers peer with; inside the subnet and not the gateway.
                type: str
                required: true
              uplink:
                description: The switch's link towards the spine, over eBGP; omit it for a ToR without one.
                type: dict
                suboptions:
                  address:
                    description: The switch's own address on the uplink segment, with the prefix (C(10.10.0.11/24)); unique.
                    type: str
                    required: true
                  peer:
                    description: The spine's address; inside the uplink segment and not the switch's own address.
                    type: str
                    required: true
                  as:
                    description: The spine's AS; not the switch's AS and not O(cluster.node_as).
                    type: int
                    required: true
          hosts:
            description: The servers in the rack; may be empty.
            type: list
            elements: dict
            default: []
            suboptions:
              name:
                description: Host name, unique across the description; a lowercase DNS name (it becomes the node name).
                type: str
                required: true
              address:
                description: Host address; inside the rack subnet, unique, not the gateway or the ToR peer.
                type: str
                required: true
              roles:
                description: What the host runs; at least one, each one of the known roles.
                type: list
                elements: str
                required: true
                choices: [etcd, etcd_spare, control_plane, worker, lb, ceph_mon, ceph_mgr, ceph_osd, ceph_mds, gluster, kafka]
              size:
                description: The hardware, used for resource reservations.
                type: dict
                required: true
                suboptions:
                  cpu:
                    description: Logical CPUs, a positive integer.
                    type: int
                    required: true
                  memory_gib:
                    description: Memory in GiB, a positive number.
                    type: float
                    required: true
              osd_devices:
                description:
                  - The devices of a C(ceph_osd) host, one OSD each; required on every C(ceph_osd) host in internal
                    mode and refused on other hosts.
                  - 'A block device is a plain path under C(/dev) (C(/dev/sdb), C(/dev/disk/by-id/...)); a
                    file-backed device for a lab is C({file: /var/lib/ceph-osd/osd-0.img, size_gib: 10}), a file
                    outside C(/dev) that the role makes. Each path once per host.'
                type: list
                elements: raw
              vars:
                description: Host variables; they override the computed ones except the reserved C(idc_*) names.
                type: dict
                default: {}
"""

EXAMPLES = r"""
# inventories/bj1/idc.yml -- run: ansible-inventory -i inventories/bj1/idc.yml --graph
plugin: idcloud.platform.idc
cluster:
  name: bj1-prod
  pod_cidr: 10.244.0.0/16
  service_cidr: 10.96.0.0/16
  node_as: 64512
  apiserver_vip: 10.10.1.10
rooms:
  - name: room-a
    racks:
      - name: a01
        subnet: 10.10.1.0/24
        gateway: 10.10.1.1
        tor: {name: tor-a01, as: 65101, peer: 10.10.1.254}
        hosts:
          - {name: m1, address: 10.10.1.11, roles: [etcd, control_plane], size: {cpu: 16, memory_gib: 64}}
          - {name: m2, address: 10.10.1.12, roles: [etcd, control_plane], size: {cpu: 16, memory_gib: 64}}
          - {name: m3, address: 10.10.1.13, roles: [etcd, control_plane], size: {cpu: 16, memory_gib: 64}}
          - {name: lb1, address: 10.10.1.21, roles: [lb], size: {cpu: 4, memory_gib: 8}}
          - {name: lb2, address: 10.10.1.22, roles: [lb], size: {cpu: 4, memory_gib: 8}}
          - name: w1
            address: 10.10.1.21
            roles: [worker]
            size: {cpu: 64, memory_gib: 256}
            vars:
              node_labels: {disk: nvme}

# The constructed options work as in ansible.builtin.constructed:
# a group per ToR AS and a variable computed from the size.
keyed_groups:
  - key: idc_tor_as | string
    prefix: tor_as
compose:
  big_node: idc_memory_gib >= 256
"""

from collections.abc import Mapping

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable
from ansible.template import trust_as_template
from ansible.utils.vars import combine_vars

from ansible_collections.idcloud.platform.plugins.module_utils.idc.idc import (
    ALL_VAR_NAMES,
    HOST_VAR_NAMES,
    IdcValidationError,
    inventory_layout,
    parse_description,
)
from ansible_collections.idcloud.platform.plugins.module_utils.idc.source import source_errors


def _trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, Mapping):
        return {key: _trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_trusted(item) for item in value]
    return value


def _computed(name, value, computed_names, own_vars):
    # derived from the (trusted) description file; untagged, ansible-inventory --list would
    # print {"__ansible_unsafe": ...} for them. The file's own vars keep their tags (!unsafe too).
    if name in computed_names and name not in own_vars:
        return _trusted(value)
    return value


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "idcloud.platform.idc"

    def verify_file(self, path):
        # the name decides, so plain YAML inventories in the same tree stay with the yaml plugin
        return super().verify_file(path) and path.endswith(("idc.yml", "idc.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache=cache)
        source, text_errors = self._load_source(path)
        errors = list(text_errors)
        try:
            description = parse_description(source)
        except IdcValidationError as exc:
            errors += exc.errors
        if errors:
            # a key written twice and the description's own errors, all at once
            raise AnsibleParserError(f"{path}: {IdcValidationError(errors)}") from None
        for warning in description.warnings:
            self.display.warning(f"{path}: {warning}")
        self.set_options(direct=source, var_options=self._vars)
        self._populate(description, inventory_layout(description))

    def _load_source(self, path):
        """The loaded description and the problems of its YAML text the loader hides (source_errors)."""
        # no loader cache, so meta: refresh_inventory sees edits; trusted like any inventory file
        try:
            source = self.loader.load_from_file(path, cache="none", trusted_as_template=True)
            # the text again (decrypted when the file is vaulted): the loader keeps the last of two equal keys
            text_errors = source_errors(self.loader.get_text_file_contents(path))
        except Exception as exc:
            raise AnsibleParserError(f"{path}: cannot read the IDC description: {exc}") from exc
        if source is None and text_errors:
            # an empty file: not a description of nothing (ansible.cfg: enable_plugins, docs/idc-description.md)
            raise AnsibleParserError(f"{path}: {IdcValidationError(text_errors)}")
        if not isinstance(source, Mapping):
            raise AnsibleParserError(
                f"{path}: expected a mapping with plugin: {self.NAME}, got {type(source).__name__}"
            )
        if source.get("plugin") != self.NAME:
            # not ours: let the next enabled inventory plugin try this file
            raise AnsibleParserError(
                f"{path}: plugin is {source.get('plugin')!r}, not {self.NAME}; fix: set plugin: {self.NAME}"
            )
        return source, text_errors

    def _populate(self, description, layout):
        for group in layout["groups"]:
            self.inventory.add_group(group)
        for parent, children in layout["children"].items():
            for child in children:
                self.inventory.add_child(parent, child)
        for name, value in layout["all_vars"].items():
            self.inventory.set_variable("all", name, _computed(name, value, ALL_VAR_NAMES, description.vars))
        # hosts first, in description order, so "all" lists them as ops wrote them
        for host in layout["hostvars"]:
            self.inventory.add_host(host)
        for group, hosts in layout["groups"].items():
            for host in hosts:
                self.inventory.add_child(group, host)
        strict = self.get_option("strict")
        for host in description.iter_hosts():
            hostvars = layout["hostvars"][host.name]
            for name, value in hostvars.items():
                self.inventory.set_variable(host.name, name, _computed(name, value, HOST_VAR_NAMES, host.vars))
            self._construct(host.name, combine_vars(layout["all_vars"], hostvars), strict)

    def _construct(self, host, variables, strict):
        self._set_composite_vars(self.get_option("compose"), variables, host, strict=strict)
        self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
        self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)
