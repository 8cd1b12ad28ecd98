"""The only module of the lab that imports the collection's own code (plugins/module_utils).

The lab reads the same IDC description as the idcloud.platform.idc inventory plugin, through
the same model and validation, and runs on its ToRs the FRR files the collection renders.
When plugins/module_utils moves, only the imports below change.
"""

import os
import sys

from .common import REPO

sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible_collections.idcloud.platform.plugins.module_utils.calico.calico_network_plan import (  # noqa: E402
    CalicoPlanError,
)
from ansible_collections.idcloud.platform.plugins.module_utils.idc.idc import (  # noqa: E402
    IdcValidationError,
    parse_description,
)
from ansible_collections.idcloud.platform.plugins.module_utils.idc.source import source_errors  # noqa: E402
from ansible_collections.idcloud.platform.plugins.module_utils.tor.tor_frr_config import (  # noqa: E402
    render_tor_frr,
    tor_frr_configs,
)

__all__ = [
    "CalicoPlanError",
    "IdcValidationError",
    "parse_description",
    "render_tor_frr",
    "source_errors",
    "tor_frr_configs",
]
