"""Calico BGP with top-of-rack routers: the Calico resources and the ToRs' FRR configuration.

Both filters take the hosts as the inventory has them: either plain dicts
({name, address, rack, tor_as, tor_peer} and, for the ToRs, tor_name, tor_uplink, node) or
hostvars (`groups['kube_node'] | map('extract', hostvars)`), read through their idc_*
variables. The work is in module_utils/calico_plan.py; docs/calico-bgp.md has the design.
"""
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.module_utils.calico.calico_network_plan import (
    DEFAULT_BLOCK_SIZE,
    CalicoPlanError,
    plan_network,
    tor_frr_configs_for_hosts,
)


def _host(item, index):
    if not isinstance(item, Mapping):
        raise AnsibleFilterError(f"host {index}: expected a mapping (a host's vars), got {type(item).__name__}; "
                                 "fix: pass e.g. groups['kube_node'] | map('extract', hostvars)")
    if "idc_rack" not in item:
        # plain dicts as documented; copy so the caller's data stays as it was
        return dict(item)
    return {
        "name": item.get("inventory_hostname"),
        # the rack address: ansible_host may point at a management network
        "address": item.get("idc_address") or item.get("ansible_host"),
        "rack": item.get("idc_rack"),
        "tor_name": item.get("idc_tor_name"),
        "tor_as": item.get("idc_tor_as"),
        "tor_peer": item.get("idc_tor_peer"),
        "tor_uplink": item.get("idc_tor_uplink"),
        "node": "kube_node" in (item.get("group_names") or []),
    }


def _hosts(hosts):
    if isinstance(hosts, Mapping) or not hasattr(hosts, "__iter__"):
        raise AnsibleFilterError("expected a list of hosts; fix: pass e.g. groups['kube_node'] | map('extract', hostvars)")
    return [_host(item, index) for index, item in enumerate(hosts)]


def calico_network_plan(nodes, pod_cidr, node_as, block_size=DEFAULT_BLOCK_SIZE, fixed_ip_cidr=None, service_cidr=None,
                        advertise_service_cidr=False):
    try:
        return plan_network(_hosts(nodes), pod_cidr, node_as, block_size=block_size, fixed_ip_cidr=fixed_ip_cidr,
                            service_cidr=service_cidr, advertise_service_cidr=advertise_service_cidr)
    except CalicoPlanError as exc:
        raise AnsibleFilterError(f"calico_network_plan: {exc}") from None


def tor_frr_config(hosts, pod_cidr, node_as, block_size=DEFAULT_BLOCK_SIZE, fixed_ip_cidr=None, service_cidr=None,
                   advertise_service_cidr=False):
    # hosts from other inventory sources have no rack: no ToR to configure for them
    located = [host for host in _hosts(hosts) if host.get("rack") not in (None, "")]
    try:
        return tor_frr_configs_for_hosts(located, pod_cidr, node_as, block_size=block_size, fixed_ip_cidr=fixed_ip_cidr,
                                         service_cidr=service_cidr, advertise_service_cidr=advertise_service_cidr)
    except (CalicoPlanError, KeyError) as exc:
        raise AnsibleFilterError(f"tor_frr_config: {exc}") from None


class FilterModule:
    def filters(self):
        return {"calico_network_plan": calico_network_plan, "tor_frr_config": tor_frr_config}
