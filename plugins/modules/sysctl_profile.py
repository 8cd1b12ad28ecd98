#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sysctl_profile
short_description: Keep a whole sysctl profile in one sysctl.d file and in the running kernel
version_added: 0.1.0
description:
  - Writes a set of kernel parameters to one C(sysctl.d) file, owned by idcloud, so they
    survive a reboot, and sets the live values through C(/proc/sys) so they apply now.
  - Plans first (reads the file and every live value), then acts in one place. Check mode
    changes nothing and reports the same C(changed), C(drift) and C(diff) a real run would.
  - The task is changed when the file content changes or a live value differs from the
    profile. A second run with the same values reports no change.
  - Values are compared with whitespace normalised, so C("1024 65535") matches the kernel's
    C("1024<TAB>65535").
  - A key the running kernel does not have (for example C(net.bridge.*) without
    C(br_netfilter)) or cannot set here (a global key inside a network namespace or a
    container, a read-only C(/proc/sys)) is reported in RV(unsupported) and, with
    O(unsupported=warn), as a warning naming the key and why. It is still written to the file
    so the next boot applies it. Such keys never make the task changed.
author:
  - idcloud developers (@idcloud)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
options:
  values:
    description:
      - The profile, as a mapping of sysctl key to value.
      - Keys use dots (C(net.ipv4.ip_forward)), or slashes when a component holds a dot
        (C(net/ipv4/conf/eth0.100/rp_filter)), exactly as C(sysctl) accepts them.
      - Values may be strings, integers or booleans (written as C(1)/C(0)); a list is joined
        with spaces. A key whose value is V(null) is left out of the profile.
      - The file holds exactly these keys; keys removed from the profile disappear from the
        file, but their live values are left as they are until the next boot.
    type: dict
    required: true
  path:
    description:
      - The C(sysctl.d) file that holds the profile. It is written atomically with a header
        saying idcloud manages it.
    type: path
    default: /etc/sysctl.d/90-idcloud.conf
  apply:
    description:
      - Also set the live values through C(/proc/sys).
      - With V(false) only the file is written; RV(drift) still lists the live values that
        differ, but they do not make the task changed.
    type: bool
    default: true
  unsupported:
    description:
      - What to do with a key the kernel lacks or will not let this host set.
      - V(warn) warns, naming the key and the reason, and writes the key to the file anyway.
      - V(fail) fails before changing anything and lists every such key.
    type: str
    choices: [warn, fail]
    default: warn
  raise_only:
    description:
      - Keys whose profile value is a floor, not an exact value. When the live value is a
        higher integer (a memory-scaled kernel default such as C(fs.file-max) on a large
        server, or C(net.netfilter.nf_conntrack_max) raised by kube-proxy) it is kept, and
        written to the file so the next boot keeps it too.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - Two diffs, the file and the live values of the keys this host can read.
  platform:
    platforms: [posix]
notes:
  - Keys are not reloaded with C(sysctl --system); each live value is written to its
    C(/proc/sys) file directly, so nothing else in C(/etc/sysctl.d) is re-applied.
  - A later file in C(/etc/sysctl.d) (sorted by name) wins at boot; keep the profile file last
    or alone for the keys it sets.
seealso:
  - module: ansible.posix.sysctl
  - name: sysctl.d(5)
    description: Format and order of sysctl.d files.
    link: https://manpages.debian.org/bookworm/systemd/sysctl.d.5.en.html
"""

EXAMPLES = r"""
- name: Apply the dense container host profile
  idcloud.platform.sysctl_profile:
    values:
      fs.file-max: 2097152
      net.core.somaxconn: 32768
      net.ipv4.ip_local_port_range: "32768 65535"
      net.ipv4.ip_forward: true
      net.bridge.bridge-nf-call-iptables: 1
    raise_only:
      - fs.file-max
      - net.core.somaxconn

- name: Report drift without changing anything
  idcloud.platform.sysctl_profile:
    values: "{{ node_tuning_sysctl }}"
  check_mode: true
  diff: true
  register: sysctl_drift

- name: Refuse to run on a kernel that lacks a key
  idcloud.platform.sysctl_profile:
    values:
      net.bridge.bridge-nf-call-iptables: 1
    unsupported: fail
"""

RETURN = r"""
path:
  description: The sysctl.d file.
  returned: always
  type: str
  sample: /etc/sysctl.d/90-idcloud.conf
values:
  description: The values written to the file, after O(raise_only) and normalisation.
  returned: always
  type: dict
  sample: {"net.ipv4.ip_local_port_range": "32768 65535", "net.ipv4.ip_forward": "1"}
changed_keys:
  description: Keys whose live value was set (in check mode, would be set).
  returned: always
  type: list
  elements: str
  sample: [net.core.somaxconn]
file_changed:
  description: Whether the file content changed (in check mode, would change).
  returned: always
  type: bool
drift:
  description: Live values that differ from the profile, as found before acting. Keys that
    cannot be set here are in RV(unsupported) instead.
  returned: always
  type: dict
  sample: {"net.core.somaxconn": {"live": "4096", "desired": "32768"}}
unsupported:
  description: Keys the kernel lacks or will not let this host set; written to the file only.
  returned: always
  type: list
  elements: str
  sample: [net.core.netdev_max_backlog]
unsupported_reasons:
  description: Why each key in RV(unsupported) was not applied live.
  returned: always
  type: dict
  sample: {"net.core.netdev_max_backlog": "absent from the running kernel (module not loaded, or not in this network namespace)"}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idcloud.platform.plugins.module_utils.node.sysctl_profile import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    SysctlProfileRunner,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    module.exit_json(**SysctlProfileRunner(module).run())


if __name__ == "__main__":
    main()
