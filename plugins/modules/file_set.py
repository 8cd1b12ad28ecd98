#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: file_set
short_description: Keep a role's files, directories and links on a host in one task
version_added: 0.1.0
description:
  - Manages a list of files (from a template, a file of the role or literal text), directories
    and symbolic links, each with its owner, group and mode, in one task and one module call per
    host. A role that installed its files with one M(ansible.builtin.template),
    M(ansible.builtin.copy) or M(ansible.builtin.file) task each pays the per-task cost once
    instead (25-40 ms per host per task in the lab's measurements, whatever the task does).
  - Templates are rendered on the controller with the task's variables, as
    M(ansible.builtin.template) renders them (the same search path, C(ansible_managed) and the
    C(template_*) variables, C(trim_blocks)), and O(files[].copy) files are read on the
    controller; their text travels to the host in the module's arguments, so the host gets one
    call whatever the number of files.
  - Plans first (reads every path), then acts. Check mode changes nothing and reports the
    same C(changed), RV(changed_paths) and diff a real run would; a missing parent directory on
    a fresh host is reported in RV(made_directories), not an error.
  - Files are written atomically (a temporary file in the same directory, then a rename), with
    their owner, group and mode set before the rename. Missing parent directories are made with
    O(directory_mode), owned by the user the module runs as.
  - The task is changed when any entry changes; RV(changed_paths) names them, so a role can
    restart a service only when one of its own files changed (see the examples).
  - Every problem of the list (a relative path, two entries for one path, a file without text,
    a path that is a directory on the host) is reported at once, before anything is changed.
author:
  - idcloud developers (@idcloud)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.files
options:
  files:
    description:
      - The entries, managed in this order (directories first, top-down; removals last).
    type: list
    elements: dict
    required: true
    suboptions:
      dest:
        description:
          - Absolute path of the file, directory or link on the host. Each path at most once.
        type: path
        required: true
      state:
        description:
          - V(file) a regular file with the text of O(files[].template), O(files[].content) or
            O(files[].copy). A symbolic link at O(files[].dest) is replaced by the file, never
            written through.
          - V(directory) a directory (not its content).
          - V(link) a symbolic link to O(files[].src).
          - V(absent) no such path (a file, a link or an empty directory is removed).
          - A path that is on the host as another kind (a directory where a file should be) is an
            error naming the path; nothing is replaced but a link by a file.
        type: str
        choices: [file, directory, link, absent]
        default: file
      template:
        description:
          - A Jinja2 template, found like M(ansible.builtin.template)'s C(src) (the role's
            C(templates/) first), rendered on the controller with the task's variables.
        type: str
      content:
        description:
          - The file's text, literally.
        type: str
      copy:
        description:
          - A file found like M(ansible.builtin.copy)'s C(src) (the role's C(files/) first), read
            on the controller. UTF-8 text only; use M(ansible.builtin.copy) for binary files.
        type: str
      src:
        description:
          - The target of a V(link), written as given (relative or absolute).
        type: str
      owner:
        description:
          - Owner of a file or directory, a name or a uid. Defaults to O(owner); when neither is
            set, an existing path keeps its owner and a new one gets the module's user.
        type: str
      group:
        description:
          - Group of a file or directory, a name or a gid. Defaults to O(group), as for owner.
        type: str
      mode:
        description:
          - Octal permissions of a file or directory, as a quoted string (V("0640")).
          - Defaults to V("0644") for a file and V("0755") for a directory, whatever the umask.
        type: raw
      diff:
        description:
          - With V(false), diff mode shows that the file's text changes but not the text (keys,
            tokens, passwords). The text is never in the task's result either way; the task's
            C(no_log) hides the list of paths as well.
        type: bool
        default: true
      tags:
        description:
          - Manage the entry only when the play's C(--tags) and C(--skip-tags) select it as they
            would select a task tagged with these tags plus the task's tags that no entry carries
            (those of the role or the import), C(always) excepted.
          - So one task tagged C(always) whose entries carry the tags of the role's sections
            manages, on C(--tags myrole_config) or C(--skip-tags myrole_logs), exactly the files
            that separate tasks per section would have. Without C(always) on the task, Ansible
            skips the whole task when C(--skip-tags) names any entry's tag.
        type: list
        elements: str
        default: []
      enabled:
        description:
          - With V(false) the entry is left out (not managed, listed in RV(left_out)); for a
            role whose list has entries that only some hosts need. Nothing else of a left-out
            entry is checked, so its O(files[].dest) may be empty.
        type: bool
        default: true
  owner:
    description:
      - Default owner of every file and directory entry.
    type: str
  group:
    description:
      - Default group of every file and directory entry.
    type: str
  directory_mode:
    description:
      - Mode of the missing parent directories the module makes. Directories that need another
        owner or mode are entries of their own (O(files[].state=directory)).
    type: raw
    default: "0755"
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - One text diff per file whose text changes (hidden with O(files[].diff=false)), one
        before/after of the attributes (state, mode, owner, group, link target) per other change.
  platform:
    platforms: [posix]
  safe_file_operations:
    support: none
    details:
      - Files are replaced with a rename in their directory; SELinux contexts are not managed.
  vault:
    support: full
    details:
      - Templates and copied files may be vault-encrypted on the controller.
notes:
  - The text of every file travels in the module's arguments, so keep this module to
    configuration files (kilobytes), not packages or images.
  - Entries never follow a link at O(files[].dest); parent directories that are links are followed.
seealso:
  - module: ansible.builtin.template
  - module: ansible.builtin.copy
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Install the service's files
  idcloud.platform.file_set:
    owner: root
    group: root
    files:
      - dest: /etc/myapp
        state: directory
      - dest: /etc/myapp/myapp.conf
        template: myapp.conf.j2
      - dest: /etc/myapp/token
        content: "{{ myapp_token }}"
        mode: "0600"
        diff: false
      - dest: /etc/systemd/system/myapp.service
        template: myapp.service.j2
      - dest: /usr/local/bin/myapp-ctl
        state: link
        src: /opt/myapp/bin/ctl
      - dest: /etc/myapp/legacy.conf
        state: absent
  register: myapp_files

# Restart only when the service's own files changed, not for the link or the removal.
- name: Restart myapp for its new configuration
  ansible.builtin.systemd_service:
    name: myapp
    state: restarted
    daemon_reload: "{{ '/etc/systemd/system/myapp.service' in myapp_files.changed_paths }}"
  when: myapp_files.changed_paths | intersect(['/etc/myapp/myapp.conf', '/etc/myapp/token',
        '/etc/systemd/system/myapp.service']) | length > 0

# One task for all of a role's sections, still honouring --tags myrole_config and
# --skip-tags myrole_logs (always: the entries' tags decide, not the task's).
- name: Install the role's files
  idcloud.platform.file_set:
    files:
      - dest: /etc/myapp/myapp.conf
        template: myapp.conf.j2
        tags: [myrole_config]
      - dest: /etc/logrotate.d/myapp
        copy: logrotate
        tags: [myrole_logs]
      - dest: /etc/myapp/tls.conf
        template: tls.conf.j2
        enabled: "{{ myapp_tls | bool }}"
        tags: [myrole_config]
  tags: [always]
"""

RETURN = r"""
changed_paths:
  description: The entries' paths that changed (in check mode, would change), in the order given.
  returned: always
  type: list
  elements: str
  sample: [/etc/myapp/myapp.conf]
made_directories:
  description: Missing parent directories that no entry names, made (in check mode, to be made) with O(directory_mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/myapp]
files:
  description: Every managed entry, in the order given, with what changed.
  returned: always
  type: list
  elements: dict
  contains:
    dest:
      description: The path.
      type: str
    state:
      description: The entry's state.
      type: str
    changed:
      description: Whether the entry changed (would change in check mode).
      type: bool
    changes:
      description: What changed, among V(state) (made, replaced or removed), V(content), V(mode),
        V(owner), V(group), V(target) (a link's).
      type: list
      elements: str
  sample: [{"dest": "/etc/myapp/myapp.conf", "state": "file", "changed": true, "changes": ["content"]}]
left_out:
  description: Paths of entries left out by O(files[].enabled) or O(files[].tags).
  returned: always
  type: list
  elements: str
  sample: [/etc/myapp/tls.conf]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idcloud.platform.plugins.module_utils.node.file_set import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    FileSetRunner,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    module.exit_json(**FileSetRunner(module).run())


if __name__ == "__main__":
    main()
