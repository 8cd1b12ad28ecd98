# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The idcloud.platform.idc inventory plugin, run for real on description files.

In-process through Ansible's plugin loader and InventoryManager, and as the
ansible-inventory / ansible-doc CLIs the way ops and AWX run them.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultLib, VaultSecret
from ansible.plugins.loader import inventory_loader
from ansible.template import Templar
from ansible.vars.manager import VariableManager
from conftest import ansible_command

REPO = Path(__file__).resolve().parents[2]

DESCRIPTION = """\
plugin: idcloud.platform.idc
cluster: {name: t1, pod_cidr: 10.244.0.0/16, service_cidr: 10.96.0.0/16, node_as: 64512}
vars:
  ntp_servers: [10.0.0.123]
rooms:
  - name: Room-A
    racks:
      - name: a01
        subnet: 10.10.1.0/24
        gateway: 10.10.1.1
        tor: {as: 65101, peer: 10.10.1.254}
        hosts:
          - {name: m1, address: 10.10.1.11, roles: [etcd, control_plane], size: {cpu: 16, memory_gib: 64}}
          - name: w1
            address: 10.10.1.21
            roles: [worker]
            size: {cpu: 64, memory_gib: 256}
            vars: {node_labels: {disk: nvme}, greeting: "{{ idc_rack }}-hello"}
  - name: room-b
    racks:
      - name: b01
        subnet: 10.10.2.0/24
        gateway: 10.10.2.1
        tor: {name: tor-b1, as: 65102, peer: 10.10.2.254}
        hosts:
          - {name: m2, address: 10.10.2.11, roles: [etcd, control_plane], size: {cpu: 16, memory_gib: 64}}
          - name: m3
            address: 10.10.2.12
            roles: [etcd, control_plane, ceph_mon, ceph_mgr, ceph_osd]
            size: {cpu: 16, memory_gib: 64}
            osd_devices: [/dev/sdb, {file: /var/lib/ceph-osd/m3-1.img, size_gib: 2}]
      - name: b02
        subnet: 10.10.3.0/24
        gateway: 10.10.3.1
        tor: {as: 65103, peer: 10.10.3.254}
        hosts: []
# one OSD host: one replica (a warning, like its single mon)
ceph: {pool_size: 1}
"""

BROKEN = DESCRIPTION.replace("10.10.2.12", "10.10.9.12").replace("roles: [worker]", "roles: [wroker]")


@pytest.fixture
def write(tmp_path):
    def write(text: str, name: str = "idc.yml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def plugin():
    found = inventory_loader.get("idcloud.platform.idc")
    assert found is not None, "the plugin did not load"
    return found


def parse(path: Path, loader: DataLoader | None = None) -> InventoryData:
    inventory = InventoryData()
    plugin().parse(inventory, loader or DataLoader(), str(path), cache=False)
    inventory.reconcile_inventory()
    return inventory


def members(inventory: InventoryData, group: str) -> list[str]:
    return [h.name for h in inventory.groups[group].hosts]


def child_groups(inventory: InventoryData, group: str) -> list[str]:
    return [g.name for g in inventory.groups[group].child_groups]


# -- verify_file ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, ours",
    [
        ("idc.yml", True),
        ("idc.yaml", True),
        ("bj1.idc.yml", True),
        ("bj1.idc.yaml", True),
        ("hosts.yml", False),
        ("idc.json", False),
        ("idc.yml.bak", False),
    ],
)
def test_verify_file_goes_by_name(write, name, ours):
    assert plugin().verify_file(str(write(DESCRIPTION, name))) is ours


def test_verify_file_refuses_missing_files(tmp_path):
    assert plugin().verify_file(str(tmp_path / "idc.yml")) is False


# -- groups, children and variables ---------------------------------------------------------


def test_groups_and_children(write):
    inventory = parse(write(DESCRIPTION))
    assert members(inventory, "etcd") == ["m1", "m2", "m3"]
    assert members(inventory, "kube_control_plane") == ["m1", "m2", "m3"]
    assert members(inventory, "kube_node") == ["w1"]
    for ceph in ("ceph_mon", "ceph_mgr", "ceph_osd"):
        assert members(inventory, ceph) == ["m3"], ceph
    for empty in ("etcd_spare", "lb", "ceph_mds", "gluster", "kafka"):
        assert members(inventory, empty) == [], empty
    assert sorted(child_groups(inventory, "k8s_cluster")) == ["kube_control_plane", "kube_node"]
    assert sorted(child_groups(inventory, "storage")) == ["ceph_mds", "ceph_mgr", "ceph_mon", "ceph_osd", "gluster"]
    assert child_groups(inventory, "room_room_a") == ["rack_a01"]
    assert sorted(child_groups(inventory, "room_room_b")) == ["rack_b01", "rack_b02"]
    assert members(inventory, "rack_a01") == ["m1", "w1"]
    assert members(inventory, "rack_b02") == []
    assert members(inventory, "ungrouped") == []
    assert list(inventory.hosts) == ["m1", "w1", "m2", "m3"]
    assert {h.name for h in inventory.groups["room_room_b"].get_hosts()} == {"m2", "m3"}


def test_host_and_group_variables(write):
    inventory = parse(write(DESCRIPTION))
    w1 = inventory.get_host("w1").get_vars()
    expected = {
        "ansible_host": "10.10.1.21",
        "idc_room": "Room-A",
        "idc_rack": "a01",
        "idc_rack_subnet": "10.10.1.0/24",
        "idc_rack_gateway": "10.10.1.1",
        "idc_tor_name": "tor-a01",
        "idc_tor_as": 65101,
        "idc_tor_peer": "10.10.1.254",
        "idc_tor_uplink": None,
        "idc_address": "10.10.1.21",
        "idc_node_as": 64512,
        "idc_roles": ["worker"],
        "idc_cpu": 64,
        "idc_memory_gib": 256,
        "node_labels": {"disk": "nvme"},
        "greeting": "{{ idc_rack }}-hello",
    }
    assert {k: w1[k] for k in expected} == expected
    assert inventory.get_host("m2").get_vars()["idc_tor_name"] == "tor-b1"
    assert inventory.groups["all"].get_vars() == {
        "idc_cluster_name": "t1",
        "idc_pod_cidr": "10.244.0.0/16",
        "idc_service_cidr": "10.96.0.0/16",
        "idc_node_as": 64512,
        "idc_cluster_domain": "cluster.local",
        "idc_apiserver_vip": "",
        "idc_apiserver_port": 6443,
        "idc_apiserver_url": "https://10.10.1.11:6443",
        "idc_pod_block_size": 27,
        "idc_fixed_ip_cidr": None,
        "idc_advertise_service_cidr": False,
        "idc_ceph": {
            "mode": "internal",
            "pool_size": 1,
            "failure_domain": "rack",
            "mons": ["10.10.2.12"],
            "crush_tree": [{"room": "room-b", "rack": "b01", "host": "m3"}],
        },
        "ntp_servers": ["10.0.0.123"],
    }


def test_ceph_devices_become_host_variables(write):
    inventory = parse(write(DESCRIPTION))
    assert inventory.get_host("m3").get_vars()["idc_ceph_osd_devices"] == [
        {"path": "/dev/sdb", "file": False, "size_gib": None},
        {"path": "/var/lib/ceph-osd/m3-1.img", "file": True, "size_gib": 2},
    ]
    assert inventory.get_host("w1").get_vars()["idc_ceph_osd_devices"] == []


def test_warnings_are_shown_with_the_file_and_the_inventory_is_made(write, monkeypatch):
    found = plugin()
    shown = []
    monkeypatch.setattr(found.display, "warning", shown.append)
    path = write(DESCRIPTION)
    inventory = InventoryData()
    found.parse(inventory, DataLoader(), str(path), cache=False)
    assert shown == [
        f"{path}: role ceph_mon: 1 host has it (m3): the cluster stops whenever that host does; fix: give ceph_mon to "
        "3 hosts in 3 racks for a cluster that outlives a host; one mon is for a lab or a test",
        f"{path}: ceph.pool_size: 1 keeps a single copy of every object: losing one OSD loses data; fix: use 3 (2 at "
        "the least) for data that matters; a pool size of 1 is for a lab, and Ceph accepts it only with "
        "mon_allow_pool_size_one",
    ]
    assert list(inventory.hosts) == ["m1", "w1", "m2", "m3"]


def test_a_ceph_error_fails_the_inventory(write):
    path = write(DESCRIPTION.replace("osd_devices: [/dev/sdb, ", "osd_devices: [sdb, "))
    with pytest.raises(AnsibleParserError) as info:
        parse(path)
    assert (
        "rooms[room-b].racks[b01].hosts[m3].osd_devices[0]: 'sdb' is not an absolute path; fix: write the whole "
        "path, e.g. /dev/sdb"
    ) in str(info.value)


def test_apiserver_vip_becomes_group_all_variables(write):
    text = DESCRIPTION.replace("node_as: 64512}", "node_as: 64512, apiserver_vip: 10.10.1.10, apiserver_port: 8443}")
    text = text.replace(
        "          - name: w1\n",
        "          - {name: lb1, address: 10.10.1.31, roles: [lb], size: {cpu: 4, memory_gib: 8}}\n"
        "          - {name: lb2, address: 10.10.1.32, roles: [lb], size: {cpu: 4, memory_gib: 8}}\n"
        "          - name: w1\n",
    )
    inventory = parse(write(text))
    assert members(inventory, "lb") == ["lb1", "lb2"]
    group_all = inventory.groups["all"].get_vars()
    assert (group_all["idc_apiserver_vip"], group_all["idc_apiserver_port"], group_all["idc_apiserver_url"]) == (
        "10.10.1.10",
        8443,
        "https://10.10.1.10:8443",
    )


def test_lab_section_is_ignored(write):
    text = DESCRIPTION + "lab:\n  name: whatever\n  mirror: {rack: nowhere, address: not-an-address, extra: [1]}\n"
    assert members(parse(write(text)), "etcd") == ["m1", "m2", "m3"]


def test_constructed_options(write):
    text = DESCRIPTION + (
        "keyed_groups:\n"
        "  - {key: idc_tor_as | string, prefix: tor_as}\n"
        "groups:\n"
        "  big: idc_memory_gib >= 256\n"
        "compose:\n"
        "  node_name: idc_cluster_name ~ '-' ~ idc_rack\n"
        "  half_memory: idc_memory_gib // 2\n"
        "strict: true\n"
    )
    inventory = parse(write(text))
    assert members(inventory, "tor_as_65102") == ["m2", "m3"]
    assert members(inventory, "big") == ["w1"]
    assert inventory.get_host("m1").get_vars()["node_name"] == "t1-a01"
    assert inventory.get_host("w1").get_vars()["half_memory"] == 128


def test_strict_constructed_errors_surface(write):
    text = DESCRIPTION + "compose:\n  broken: no_such_variable + 1\nstrict: true\n"
    with pytest.raises(Exception, match="no_such_variable"):
        parse(write(text))


# -- refusing bad input ---------------------------------------------------------------------


def test_invalid_description_raises_with_every_error(write):
    path = write(BROKEN)
    with pytest.raises(AnsibleParserError) as info:
        parse(path)
    message = str(info.value)
    assert message.startswith(f"{path}: the IDC description has 2 errors:")
    assert (
        "rooms[room-b].racks[b01].hosts[m3].address: 10.10.9.12 is outside rack b01's subnet 10.10.2.0/24; "
        "fix: use an address in 10.10.2.0/24 or move m3 to the rack whose subnet holds it"
    ) in message
    assert "rooms[Room-A].racks[a01].hosts[w1].roles: unknown role 'wroker'; fix: did you mean worker?" in message


def test_invalid_description_adds_nothing(write):
    inventory = InventoryData()
    with pytest.raises(AnsibleParserError):
        plugin().parse(inventory, DataLoader(), str(write(BROKEN)), cache=False)
    assert set(inventory.hosts) == set()
    assert set(inventory.groups) == {"all", "ungrouped"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("plugin: ansible.builtin.constructed\n", "plugin is 'ansible.builtin.constructed', not idcloud.platform.idc"),
        ("all:\n  hosts: {a: {}}\n", "plugin is None, not idcloud.platform.idc"),
        ("- plugin: idcloud.platform.idc\n", "expected a mapping with plugin: idcloud.platform.idc, got"),
        ("", "(file): is empty (no YAML document, or only comments)"),
    ],
)
def test_files_that_are_not_descriptions(write, text, expected):
    with pytest.raises(AnsibleParserError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse(write(text))


@pytest.mark.parametrize(
    "text", ["", "\n\n", "# the description of bj1, to be written\n", "---\n", "---\n# nothing yet\n", "~\n"]
)
def test_an_empty_file_is_an_error_naming_the_file(write, text):
    path = write(text)
    with pytest.raises(AnsibleParserError) as info:
        parse(path)
    assert str(info.value.message) == (
        f"{path}: the IDC description has 1 error:\n"
        "  - (file): is empty (no YAML document, or only comments); fix: write the IDC description in it, starting "
        "with plugin: idcloud.platform.idc, cluster: and rooms:, or remove the file from the inventory sources"
    )


def test_a_key_written_twice_is_an_error_naming_the_key_and_its_lines(write):
    text = DESCRIPTION.replace(
        "          - {name: m2, address: 10.10.2.11,",
        "          - {name: m2, address: 10.10.2.99, address: 10.10.2.11,",
    )
    text = text.replace("cluster: {name: t1,", "cluster: {name: t0, name: t1,")
    with pytest.raises(AnsibleParserError) as info:
        parse(write(text))
    message = str(info.value.message)
    assert "the IDC description has 2 errors:" in message
    assert (
        "  - cluster.name: key 'name' is written twice in one mapping (lines 2 and 2); fix: keep one of them: "
        "YAML keeps only the last value and silently drops the first"
    ) in message
    assert (
        "  - rooms[room-b].racks[b01].hosts[m2].address: key 'address' is written twice in one mapping (lines 26 and 26)"
        in message
    )


def test_duplicate_keys_and_description_errors_are_reported_together(write):
    text = BROKEN.replace("plugin: idcloud.platform.idc\n", "plugin: idcloud.platform.idc\nvars: {}\n")
    with pytest.raises(AnsibleParserError) as info:
        parse(write(text))
    message = str(info.value.message)
    assert "the IDC description has 3 errors:" in message
    assert "  - vars: key 'vars' is written twice in one mapping (lines 2 and 4)" in message
    assert "unknown role 'wroker'" in message


def test_a_duplicate_key_in_a_vault_encrypted_description(write):
    secret = VaultSecret(b"s3cret")
    text = DESCRIPTION.replace("  ntp_servers: [10.0.0.123]\n", "  ntp_servers: [10.0.0.123]\n  ntp_servers: []\n")
    path = write(VaultLib([("default", secret)]).encrypt(text.encode()).decode(), "bj1.idc.yml")
    loader = DataLoader()
    loader.set_vault_secrets([("default", secret)])
    with pytest.raises(
        AnsibleParserError, match=r"vars\.ntp_servers: key 'ntp_servers' is written twice in one mapping"
    ):
        parse(path, loader)


def test_the_repository_ansible_cfg_fails_on_an_empty_description(repo_root, ansible_env, tmp_path):
    # ansible.builtin.ini, were it enabled, would take the file the idc plugin refuses as an empty inventory
    env = {k: v for k, v in ansible_env.items() if k not in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH")}
    if not (repo_root / "collections" / "ansible_collections" / "idcloud" / "platform").exists():
        pytest.skip("collections/ansible_collections/idcloud/platform is made by scripts/bootstrap")
    empty = tmp_path / "idc.yml"
    empty.write_text("# nothing yet\n")
    result = subprocess.run(
        [ansible_command("ansible-inventory"), "-i", str(empty), "--list"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0, result.stdout
    assert "(file): is empty" in result.stderr


def test_unknown_keys_are_errors_but_plugin_options_are_not(write):
    with pytest.raises(AnsibleParserError, match=r"unknown key 'keyed_group'; fix: did you mean keyed_groups\?"):
        parse(write(DESCRIPTION + "keyed_group: []\n"))


# -- the manager: vault, group_vars, the shipped files ---------------------------------------


def test_vault_encrypted_description(write):
    secret = VaultSecret(b"s3cret")
    encrypted = VaultLib([("default", secret)]).encrypt(DESCRIPTION.encode())
    path = write(encrypted.decode(), "bj1.idc.yml")
    loader = DataLoader()
    loader.set_vault_secrets([("default", secret)])
    assert members(parse(path, loader), "etcd") == ["m1", "m2", "m3"]


def test_inventory_manager_applies_adjacent_group_vars(write, tmp_path):
    path = write(DESCRIPTION)
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "etcd.yml").write_text("etcd_version: v9.9.9\n")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "m1.yml").write_text("idc_cpu: 99\n")
    manager = InventoryManager(loader=DataLoader(), sources=[str(path)])
    assert [h.name for h in manager.get_hosts("etcd")] == ["m1", "m2", "m3"]
    assert [h.name for h in manager.get_hosts("k8s_cluster:&rack_a01")] == ["m1", "w1"]
    variables = VariableManager(loader=DataLoader(), inventory=manager)
    m1 = variables.get_vars(host=manager.get_host("m1"))
    assert m1["etcd_version"] == "v9.9.9"
    # host_vars files outrank the plugin's host variables, as for any inventory source
    assert m1["idc_cpu"] == 99
    # the file is trusted like any inventory file: its vars template, as in a YAML inventory
    w1 = variables.get_vars(host=manager.get_host("w1"))
    assert Templar(loader=DataLoader(), variables=w1).template(w1["greeting"]) == "a01-hello"


@pytest.mark.parametrize("path", ["inventories/lab/idc.yml", "inventories/sample/idc.yml"])
def test_shipped_descriptions_load(path):
    data = yaml.safe_load((REPO / path).read_text())
    inventory = parse(REPO / path)
    hosts = [h["name"] for room in data["rooms"] for rack in room["racks"] for h in rack.get("hosts") or []]
    assert list(inventory.hosts) == hosts
    assert len(members(inventory, "etcd")) == 3


# -- the CLIs, as ops and AWX run them ------------------------------------------------------


def test_ansible_inventory_list_from_any_directory(write, tmp_path, run_ansible):
    unsafe = '  raw_text: !unsafe "{{ not a template }}"\n'
    text = DESCRIPTION.replace("  ntp_servers: [10.0.0.123]\n", "  ntp_servers: [10.0.0.123]\n" + unsafe)
    text = text.replace(
        "tor: {name: tor-b1, as: 65102, peer: 10.10.2.254}",
        "tor: {name: tor-b1, as: 65102, peer: 10.10.2.254, uplink: {address: 10.10.0.12/24, peer: 10.10.0.1, as: 65000}}",
    )
    path = write(text, "bj1.idc.yml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_ansible(
        "ansible-inventory",
        "-i",
        str(path),
        "--list",
        cwd=elsewhere,
        env={"ANSIBLE_INVENTORY_ENABLED": "idcloud.platform.idc", "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true"},
    )
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert listing["etcd"]["hosts"] == ["m1", "m2", "m3"]
    assert sorted(listing["k8s_cluster"]["children"]) == ["kube_control_plane", "kube_node"]
    assert listing["_meta"]["hostvars"]["m3"]["idc_roles"] == [
        "etcd",
        "control_plane",
        "ceph_mon",
        "ceph_mgr",
        "ceph_osd",
    ]
    m3 = listing["_meta"]["hostvars"]["m3"]
    assert m3["ansible_host"] == "10.10.2.12" and m3["idc_rack_subnet"] == "10.10.2.0/24"
    assert m3["idc_tor_uplink"] == {"address": "10.10.0.12/24", "peer": "10.10.0.1", "as": 65000}
    assert listing["_meta"]["hostvars"]["m1"]["idc_tor_uplink"] is None
    assert listing["_meta"]["hostvars"]["m1"]["idc_fixed_ip_cidr"] is None
    # computed values print as plain strings; a value the file marks !unsafe stays unsafe
    assert m3["raw_text"] == {"__ansible_unsafe": "{{ not a template }}"}
    assert result.stdout.count("__ansible_unsafe") == len(listing["_meta"]["hostvars"])


def test_ansible_inventory_fails_on_an_invalid_description(write, run_ansible):
    path = write(BROKEN)
    result = run_ansible(
        "ansible-inventory",
        "-i",
        str(path),
        "--list",
        env={"ANSIBLE_INVENTORY_ENABLED": "idcloud.platform.idc", "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "true"},
    )
    assert result.returncode != 0
    assert "the IDC description has 2 errors" in result.stderr
    assert "unknown role 'wroker'" in result.stderr


def test_repository_ansible_cfg_reads_the_lab(repo_root, ansible_env):
    # only the repo's ansible.cfg: its default inventory, enabled plugins and collections path
    env = {k: v for k, v in ansible_env.items() if k not in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH")}
    if not (repo_root / "collections" / "ansible_collections" / "idcloud" / "platform").exists():
        pytest.skip("collections/ansible_collections/idcloud/platform is made by scripts/bootstrap")
    result = subprocess.run(
        [ansible_command("ansible-inventory"), "--graph"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "@rack_r1:" in result.stdout and "@room_room2:" in result.stdout


def test_ansible_doc_documents_the_plugin(run_ansible):
    result = run_ansible("ansible-doc", "-t", "inventory", "--json", "idcloud.platform.idc")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)["idcloud.platform.idc"]["doc"]
    assert doc["options"]["plugin"]["choices"] == ["idcloud.platform.idc"]
    assert {"cluster", "rooms", "vars", "lab", "ceph", "compose", "groups", "keyed_groups", "strict"} <= set(
        doc["options"]
    )
    host_options = doc["options"]["rooms"]["suboptions"]["racks"]["suboptions"]["hosts"]["suboptions"]
    assert set(host_options) == {"name", "address", "roles", "size", "osd_devices", "vars"}
    assert set(doc["options"]["ceph"]["suboptions"]) == {"mode", "pool_size", "failure_domain", "external"}
