"""Calico BGP with top-of-rack routers: the Calico resources (filter calico_network_plan).

Takes the hosts as the inventory has them: plain dicts ({name, address, rack, tor_as,
tor_peer}) or hostvars (`groups['kube_node'] | map('extract', hostvars)`), read through their
idc_* variables. The work is in module_utils/calico/calico_network_plan.py; docs/calico-bgp.md
has the design.
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.module_utils.calico.calico_network_plan import (
    CalicoPlanError,
    plan_network,
)
from ansible_collections.idcloud.platform.plugins.module_utils.common.fields import DEFAULT_BLOCK_SIZE
from ansible_collections.idcloud.platform.plugins.module_utils.idc.idc import hosts_from_hostvars


def calico_network_plan(
    nodes,
    pod_cidr,
    node_as,
    block_size=DEFAULT_BLOCK_SIZE,
    fixed_ip_cidr=None,
    service_cidr=None,
    advertise_service_cidr=False,
):
    try:
        hosts = hosts_from_hostvars(nodes)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None
    try:
        return plan_network(
            hosts,
            pod_cidr,
            node_as,
            block_size=block_size,
            fixed_ip_cidr=fixed_ip_cidr,
            service_cidr=service_cidr,
            advertise_service_cidr=advertise_service_cidr,
        )
    except CalicoPlanError as exc:
        raise AnsibleFilterError(f"calico_network_plan: {exc}") from None


class FilterModule:
    def filters(self):
        return {"calico_network_plan": calico_network_plan}
