# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Unit tests for idcloud.platform.sysctl_profile, against a fake /proc/sys in a temp dir."""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import pytest

# The repository root is the collection; collections/ansible_collections/idcloud/platform links to it.
_COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"
if _COLLECTIONS.is_dir() and str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.idcloud.platform.plugins.module_utils.node import sysctl_profile as sp  # noqa: E402
from ansible_collections.idcloud.platform.plugins.modules import sysctl_profile as sp_module  # noqa: E402

# What a fresh Debian kernel shows, including the tab the kernel prints in multi-value keys.
KERNEL = {
    "fs/file-max": "2466170\n",
    "net/core/somaxconn": "4096\n",
    "net/ipv4/ip_local_port_range": "32768\t60999\n",
    "net/ipv4/ip_forward": "0\n",
    "net/netfilter/nf_conntrack_max": "262144\n",
    "net/ipv4/conf/eth0.100/rp_filter": "2\n",
    "vm/swappiness": "60\n",
}

PROFILE = {
    "fs.file-max": 2097152,
    "net.core.somaxconn": 32768,
    "net.ipv4.ip_local_port_range": "32768   65535",
    "net.ipv4.ip_forward": True,
    "vm.swappiness": 0,
}


@pytest.fixture
def proc(tmp_path):
    root = tmp_path / "proc-sys"
    for key, value in KERNEL.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    return root


@pytest.fixture
def conf(tmp_path):
    return tmp_path / "etc" / "sysctl.d" / "90-idcloud.conf"


def live(proc, key):
    return (proc / key).read_text()


def run(proc, check_mode=False, diff=False, **params):
    args = dict(params)
    args["_ansible_check_mode"] = check_mode
    args["_ansible_diff"] = diff
    with patch_module_args(args):
        module = AnsibleModule(argument_spec=sp.ARGUMENT_SPEC, supports_check_mode=True)
        return sp.SysctlProfileRunner(module, proc_root=str(proc)).run()


def run_failing(capsys, proc, **params):
    with pytest.raises(SystemExit):
        run(proc, **params)
    return json.loads(capsys.readouterr().out)


# --- pure helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected",
    [
        ("1024\t65535\n", "1024 65535"),
        ("  1024    65535 ", "1024 65535"),
        (32768, "32768"),
        (True, "1"),
        (False, "0"),
        ([4096, 87380, 6291456], "4096 87380 6291456"),
        (None, None),
    ],
)
def test_normalize_value(value, expected):
    assert sp.normalize_value(value) == expected


def test_key_to_path_dots_and_slashes():
    assert sp.key_to_path("net.ipv4.ip_forward", "/p") == "/p/net/ipv4/ip_forward"
    assert sp.key_to_path("net/ipv4/conf/eth0.100/rp_filter", "/p") == "/p/net/ipv4/conf/eth0.100/rp_filter"


@pytest.mark.parametrize("key", ["../../etc/passwd", "net/../../x", "/net/ipv4", "net ipv4", "a//b", ""])
def test_key_to_path_rejects_bad_names(key):
    with pytest.raises(sp.SysctlProfileError, match="not a valid name"):
        sp.key_to_path(key, "/p")


def test_render_file_is_sorted_with_header():
    text = sp.render_file({"vm.swappiness": "0", "fs.file-max": "2097152"})
    assert text.startswith("# Managed by idcloud")
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == ["fs.file-max = 2097152", "vm.swappiness = 0"]


def test_plan_changes_nothing(proc, conf):
    plan = sp.plan_profile(PROFILE, str(conf), proc_root=str(proc))
    assert plan.changed and plan.file_changed and plan.file_before is None
    assert sorted(plan.to_set) == [
        "fs.file-max",
        "net.core.somaxconn",
        "net.ipv4.ip_forward",
        "net.ipv4.ip_local_port_range",
        "vm.swappiness",
    ]
    assert not conf.exists()
    assert live(proc, "net/core/somaxconn") == "4096\n"


# --- module runs ----------------------------------------------------------------------------


def test_first_run_writes_file_and_live_values(proc, conf):
    result = run(proc, values=PROFILE, path=str(conf))
    assert result["changed"] and result["file_changed"]
    assert result["drift"]["net.ipv4.ip_local_port_range"] == {"live": "32768 60999", "desired": "32768 65535"}
    assert result["unsupported"] == []
    assert live(proc, "net/core/somaxconn") == "32768"
    assert live(proc, "net/ipv4/ip_forward") == "1"
    assert live(proc, "net/ipv4/ip_local_port_range") == "32768 65535"
    text = conf.read_text()
    assert text.startswith(sp.HEADER)
    assert "net.ipv4.ip_local_port_range = 32768 65535\n" in text
    assert "net.ipv4.ip_forward = 1\n" in text
    assert oct(conf.stat().st_mode & 0o777) == "0o644"
    assert not [p for p in conf.parent.iterdir() if p.name.startswith(".idcloud-sysctl-")]


def test_second_run_is_unchanged_even_with_kernel_tabs(proc, conf):
    run(proc, values=PROFILE, path=str(conf))
    # The kernel prints multi-value keys with a tab; that is not drift.
    (proc / "net/ipv4/ip_local_port_range").write_text("32768\t65535\n")
    result = run(proc, values=PROFILE, path=str(conf))
    assert not result["changed"]
    assert result["changed_keys"] == [] and result["drift"] == {}


def test_check_mode_reports_drift_and_diff_without_changing(proc, conf):
    run(proc, values=PROFILE, path=str(conf))
    before = conf.read_text()
    (proc / "net/core/somaxconn").write_text("1024\n")
    result = run(proc, check_mode=True, diff=True, values=PROFILE, path=str(conf))
    assert result["changed"] and not result["file_changed"]
    assert result["changed_keys"] == ["net.core.somaxconn"]
    assert result["drift"] == {"net.core.somaxconn": {"live": "1024", "desired": "32768"}}
    file_diff, live_diff = result["diff"]
    assert file_diff["before"] == file_diff["after"] == before
    assert "net.core.somaxconn = 1024\n" in live_diff["before"]
    assert "net.core.somaxconn = 32768\n" in live_diff["after"]
    assert live(proc, "net/core/somaxconn") == "1024\n"
    assert conf.read_text() == before


def test_check_mode_on_fresh_host_diffs_whole_file(proc, conf):
    result = run(proc, check_mode=True, diff=True, values=PROFILE, path=str(conf))
    assert result["changed"] and result["file_changed"]
    assert result["diff"][0]["before"] == ""
    assert "vm.swappiness = 0" in result["diff"][0]["after"]
    assert not conf.exists()


def test_hand_edited_file_is_changed_back(proc, conf):
    run(proc, values=PROFILE, path=str(conf))
    conf.write_text(conf.read_text() + "kernel.panic = 10\n")
    result = run(proc, values=PROFILE, path=str(conf))
    assert result["changed"] and result["file_changed"] and result["changed_keys"] == []
    assert "kernel.panic" not in conf.read_text()


def test_null_values_are_left_out(proc, conf):
    values = dict(PROFILE, **{"vm.swappiness": None})
    result = run(proc, values=values, path=str(conf))
    assert "vm.swappiness" not in result["values"]
    assert "vm.swappiness" not in conf.read_text()
    assert live(proc, "vm/swappiness") == "60\n"


def test_empty_value_fails_naming_the_key(capsys, proc, conf):
    out = run_failing(capsys, proc, values={"vm.swappiness": " "}, path=str(conf))
    assert "vm.swappiness" in out["msg"] and "null" in out["msg"]


def test_slashed_key_with_dotted_device(proc, conf):
    result = run(proc, values={"net/ipv4/conf/eth0.100/rp_filter": 1}, path=str(conf))
    assert result["changed_keys"] == ["net/ipv4/conf/eth0.100/rp_filter"]
    assert live(proc, "net/ipv4/conf/eth0.100/rp_filter") == "1"


def test_missing_key_warns_and_is_still_written(proc, conf):
    values = dict(PROFILE, **{"net.bridge.bridge-nf-call-iptables": 1})
    result = run(proc, values=values, path=str(conf))
    assert result["unsupported"] == ["net.bridge.bridge-nf-call-iptables"]
    assert "absent" in result["unsupported_reasons"]["net.bridge.bridge-nf-call-iptables"]
    assert "net.bridge.bridge-nf-call-iptables = 1\n" in conf.read_text()
    assert "net.bridge.bridge-nf-call-iptables" not in result["drift"]
    assert not run(proc, values=values, path=str(conf))["changed"]


def test_missing_key_fails_before_changing_anything(capsys, proc, conf):
    values = dict(PROFILE, **{"net.bridge.bridge-nf-call-iptables": 1})
    out = run_failing(capsys, proc, values=values, path=str(conf), unsupported="fail")
    assert out["failed"] and not out["changed"]
    assert "net.bridge.bridge-nf-call-iptables" in out["msg"]
    assert out["unsupported"] == ["net.bridge.bridge-nf-call-iptables"]
    assert not conf.exists()
    assert live(proc, "net/core/somaxconn") == "4096\n"


def test_read_only_key_warns_and_never_reports_changed(monkeypatch, proc, conf):
    ro = str(proc / "net/netfilter/nf_conntrack_max")
    monkeypatch.setattr(sp, "_writable", lambda path: path != ro)
    values = dict(PROFILE, **{"net.netfilter.nf_conntrack_max": 1048576})
    for check_mode in (True, False):
        result = run(proc, check_mode=check_mode, values=values, path=str(conf))
        assert result["unsupported"] == ["net.netfilter.nf_conntrack_max"]
        assert result["unsupported_reasons"]["net.netfilter.nf_conntrack_max"] == sp.READ_ONLY
        assert "net.netfilter.nf_conntrack_max" not in result["changed_keys"]
    assert live(proc, "net/netfilter/nf_conntrack_max") == "262144\n"
    assert "net.netfilter.nf_conntrack_max = 1048576\n" in conf.read_text()
    again = run(proc, values=values, path=str(conf))
    assert not again["changed"]


def test_read_only_key_already_right_is_fine(monkeypatch, proc, conf):
    monkeypatch.setattr(sp, "_writable", lambda path: False)
    result = run(proc, values={"net.netfilter.nf_conntrack_max": 262144}, path=str(conf))
    assert result["unsupported"] == [] and result["changed_keys"] == []


def test_kernel_refusing_a_write_is_unsupported(monkeypatch, proc, conf):
    def refuse(path, value):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(sp, "_write_proc", refuse)
    result = run(proc, values={"vm.swappiness": 0}, path=str(conf))
    assert result["unsupported"] == ["vm.swappiness"]
    assert "refused" in result["unsupported_reasons"]["vm.swappiness"]
    assert result["changed"] and result["file_changed"] and result["changed_keys"] == []


def test_kernel_rejecting_a_value_fails_naming_it(capsys, monkeypatch, proc, conf):
    def reject(path, value):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(sp, "_write_proc", reject)
    out = run_failing(capsys, proc, values={"vm.swappiness": "lots"}, path=str(conf))
    assert "vm.swappiness = lots" in out["msg"] and "Invalid argument" in out["msg"]


def test_raise_only_keeps_a_higher_live_value(proc, conf):
    values = {"fs.file-max": 2097152, "net.core.somaxconn": 32768}
    result = run(proc, values=values, path=str(conf), raise_only=["fs.file-max", "net.core.somaxconn"])
    assert result["changed_keys"] == ["net.core.somaxconn"]  # raised 4096 -> 32768
    assert result["values"]["fs.file-max"] == "2466170"  # kept, not lowered
    assert live(proc, "fs/file-max") == "2466170\n"
    assert "fs.file-max = 2466170\n" in conf.read_text()
    assert not run(proc, values=values, path=str(conf), raise_only=["fs.file-max", "net.core.somaxconn"])["changed"]


def test_without_raise_only_the_value_is_exact(proc, conf):
    result = run(proc, values={"fs.file-max": 2097152}, path=str(conf))
    assert result["changed_keys"] == ["fs.file-max"]
    assert live(proc, "fs/file-max") == "2097152"


def test_apply_false_writes_only_the_file(proc, conf):
    result = run(proc, values=PROFILE, path=str(conf), apply=False)
    assert result["changed"] and result["file_changed"] and result["changed_keys"] == []
    assert "net.core.somaxconn" in result["drift"]
    assert live(proc, "net/core/somaxconn") == "4096\n"
    assert not run(proc, values=PROFILE, path=str(conf), apply=False)["changed"]


def test_unsupported_keys_give_one_warning_grouped_by_reason(monkeypatch, proc, conf):
    ro = str(proc / "net/netfilter/nf_conntrack_max")
    monkeypatch.setattr(sp, "_writable", lambda path: path != ro)
    warnings = []
    args = dict(
        path=str(conf),
        values={
            "net.netfilter.nf_conntrack_max": 1048576,
            "net.bridge.bridge-nf-call-iptables": 1,
            "net.core.netdev_max_backlog": 16384,
            "vm.swappiness": 0,
        },
    )
    with patch_module_args(args):
        module = AnsibleModule(argument_spec=sp.ARGUMENT_SPEC, supports_check_mode=True)
        monkeypatch.setattr(module, "warn", warnings.append)
        sp.SysctlProfileRunner(module, proc_root=str(proc)).run()
    assert len(warnings) == 1
    assert "Absent from the running kernel" in warnings[0]
    assert "net.bridge.bridge-nf-call-iptables=1, net.core.netdev_max_backlog=16384." in warnings[0]
    assert "Read-only here" in warnings[0] and "net.netfilter.nf_conntrack_max=1048576 (live 262144)" in warnings[0]
    assert str(conf) in warnings[0] and "vm.swappiness" not in warnings[0]


def test_readback_mismatch_warns(monkeypatch, proc, conf):
    def clamp(path, value):
        with open(path, "w") as handle:
            handle.write("65535")

    monkeypatch.setattr(sp, "_write_proc", clamp)
    warnings = []
    args = dict(values={"net.core.somaxconn": 100000}, path=str(conf))
    with patch_module_args(args):
        module = AnsibleModule(argument_spec=sp.ARGUMENT_SPEC, supports_check_mode=True)
    monkeypatch.setattr(module, "warn", warnings.append)
    sp.SysctlProfileRunner(module, proc_root=str(proc)).run()
    assert any("reads back 65535" in w for w in warnings)


def test_module_main_exits_with_result(capsys, monkeypatch, proc, conf):
    monkeypatch.setattr(
        sp_module, "SysctlProfileRunner", lambda module: sp.SysctlProfileRunner(module, proc_root=str(proc))
    )
    with patch_module_args(dict(values={"vm.swappiness": 0}, path=str(conf))):
        with pytest.raises(SystemExit) as exc:
            sp_module.main()
    assert exc.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] and out["changed_keys"] == ["vm.swappiness"]
    assert live(proc, "vm/swappiness") == "0"


def test_documentation_matches_argument_spec():
    import yaml

    doc = yaml.safe_load(sp_module.DOCUMENTATION)
    assert set(doc["options"]) == set(sp.ARGUMENT_SPEC)
    for name, spec in sp.ARGUMENT_SPEC.items():
        assert doc["options"][name]["type"] == spec["type"]
        assert doc["options"][name].get("default") == spec.get("default")
        assert doc["options"][name].get("choices") == spec.get("choices")
    assert os.path.basename(sp_module.__file__) == "sysctl_profile.py"
