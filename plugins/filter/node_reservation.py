"""Filter node_reservation: the Ansible side only; the logic is module_utils/node/node_reservation.py."""

from ansible.errors import AnsibleFilterError

from ansible_collections.idcloud.platform.plugins.module_utils.node.node_reservation import NodeReservationError
from ansible_collections.idcloud.platform.plugins.module_utils.node.node_reservation import (
    node_reservation as _node_reservation,
)


def node_reservation(*args, **kwargs):
    try:
        return _node_reservation(*args, **kwargs)
    except NodeReservationError as exc:
        raise AnsibleFilterError(f"node_reservation: {exc}") from None


class FilterModule:
    def filters(self):
        return {"node_reservation": node_reservation}
