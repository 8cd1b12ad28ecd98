# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Action of idcloud.platform.file_set: render every template and read every copied file on the
controller, then run the module once with all the text in its arguments.

The list's checks, the tag selection and everything the host does live in
module_utils/node/file_set.py; this file only does what needs the controller (the search
path, the templar, the task's tags).
"""

from __future__ import annotations

import datetime
import os
import pwd
import time

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template

from ansible_collections.idcloud.platform.plugins.module_utils.node.file_set import (
    FileSetError,
    check_entries,
    selected_entries,
)

MODULE = "idcloud.platform.file_set"
# what the module gets of an entry: its text instead of where the text came from
SENT_KEYS = ("dest", "state", "content", "src", "owner", "group", "mode", "diff")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def _template_vars(self, task_vars, name, fullpath, dest):
        """The variables ansible.builtin.template adds: template_* and, unless set, ansible_managed."""
        st = os.stat(fullpath)
        try:
            uid = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            uid = st.st_uid
        added = dict(
            template_host=os.uname()[1],
            template_path=name,
            template_mtime=datetime.datetime.fromtimestamp(st.st_mtime),
            template_uid=uid,
            template_run_date=datetime.datetime.now(),
            template_destpath=dest,
            template_fullpath=fullpath,
        )
        if "ansible_managed" not in task_vars:
            managed = C.config.get_config_value("DEFAULT_MANAGED_STR").format(
                host="{{ template_host }}", uid="{{ template_uid }}", file="{{ template_path }}"
            )
            added["ansible_managed"] = trust_as_template(time.strftime(managed, time.localtime(st.st_mtime)))
        return added

    def _render(self, name, dest, task_vars):
        fullpath = self._find_needle("templates", name)
        source = trust_as_template(self._loader.get_text_file_contents(fullpath))
        # includes and imports inside the template: the same search path as ansible.builtin.template
        searchpath = []
        for path in list(task_vars.get("ansible_search_path", [])) + [self._loader._basedir, os.path.dirname(fullpath)]:
            searchpath.extend([os.path.join(path, "templates"), path])
        variables = dict(task_vars)
        variables.update(self._template_vars(task_vars, name, fullpath, dest))
        templar = self._templar.copy_with_new_env(searchpath=searchpath, available_variables=variables)
        rendered = templar.template(
            source,
            escape_backslashes=False,
            overrides=dict(trim_blocks=True, lstrip_blocks=False, newline_sequence="\n"),
        )
        return "" if rendered is None else str(rendered)

    def _read(self, name):
        return str(self._loader.get_text_file_contents(self._find_needle("files", name)))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        try:
            entries = check_entries(
                args.get("files"), args.get("owner"), args.get("group"), args.get("directory_mode", "0755")
            )
        except FileSetError as exc:
            return dict(result, failed=True, msg=str(exc))
        chosen, left_out = selected_entries(
            entries, self._task.tags, task_vars.get("ansible_run_tags"), task_vars.get("ansible_skip_tags")
        )
        files = []
        for entry in chosen:
            try:
                if entry["template"] is not None:
                    entry["content"] = self._render(entry["template"], entry["dest"], task_vars)
                elif entry["copy"] is not None:
                    entry["content"] = self._read(entry["copy"])
            except (AnsibleError, UnicodeError) as exc:
                source = "template %s" % entry["template"] if entry["template"] else "copy %s" % entry["copy"]
                return dict(result, failed=True, msg="file_set: %s (%s): %s" % (entry["dest"], source, exc))
            sent = dict((key, entry[key]) for key in SENT_KEYS if entry[key] is not None)
            if "mode" in sent:
                sent["mode"] = "0%03o" % sent["mode"]
            files.append(sent)
        module_args = dict(files=files, directory_mode=args.get("directory_mode", "0755"))
        if not files:
            return dict(result, changed=False, changed_paths=[], made_directories=[], files=[], left_out=left_out)
        result.update(self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars))
        # the module echoes its arguments: keep every file's text out of the result and the logs
        result["invocation"] = dict(
            module_args=dict(
                files=[dict((k, v) for k, v in f.items() if k != "content") for f in files],
                directory_mode=module_args["directory_mode"],
            )
        )
        result["left_out"] = left_out
        return result
