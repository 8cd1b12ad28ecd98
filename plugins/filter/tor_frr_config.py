"""BGP with top-of-rack routers: each rack's ToR configuration in FRR syntax (filter tor_frr_config).

Takes the hosts as the inventory has them: plain dicts ({name, address, rack, tor_name,
tor_as, tor_peer, tor_uplink, node}) or hostvars (`groups['all'] | map('extract', hostvars)`),
read through their idc_* variables. The work is in module_utils/tor/tor_frr_config.py;
docs/calico-bgp.md has the design, playbooks/tor_config.yml writes the files.
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.module_utils.calico.calico_network_plan import CalicoPlanError
from ansible_collections.idcloud.platform.plugins.module_utils.common.fields import DEFAULT_BLOCK_SIZE
from ansible_collections.idcloud.platform.plugins.module_utils.idc.idc import hosts_from_hostvars
from ansible_collections.idcloud.platform.plugins.module_utils.tor.tor_frr_config import tor_frr_configs_for_hosts


def tor_frr_config(
    hosts,
    pod_cidr,
    node_as,
    block_size=DEFAULT_BLOCK_SIZE,
    fixed_ip_cidr=None,
    service_cidr=None,
    advertise_service_cidr=False,
):
    try:
        read = hosts_from_hostvars(hosts)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None
    # hosts from other inventory sources have no rack: no ToR to configure for them
    located = [host for host in read if host.get("rack") not in (None, "")]
    try:
        return tor_frr_configs_for_hosts(
            located,
            pod_cidr,
            node_as,
            block_size=block_size,
            fixed_ip_cidr=fixed_ip_cidr,
            service_cidr=service_cidr,
            advertise_service_cidr=advertise_service_cidr,
        )
    except (CalicoPlanError, KeyError) as exc:
        raise AnsibleFilterError(f"tor_frr_config: {exc}") from None


class FilterModule:
    def filters(self):
        return {"tor_frr_config": tor_frr_config}
