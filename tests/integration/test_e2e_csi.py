"""End to end, the collection's CSI driver (csi.idcloud.io, roles/csi_ceph) on the e2e cluster's
Ceph (test_e2e_storage.py): PersistentVolumeClaims of its StorageClasses bind, carry a pod's
files from a worker in one rack to a worker in another, grow, and go or stay as the class says.

What is read is real: the CSINode objects the kubelets write when the node plugin registers, the
PVs the provisioner makes, the subvolumes and images on Ceph (`ceph fs subvolume info`, `rbd
info` on a mon host), files written and read by busybox pods of the lab's web image (as user
65534: the CSIDriver's fsGroupPolicy gives the volume to the pod's fsGroup). The lab's kernel has
no rbd, nbd or ceph module, so the nodes run the driver's FUSE paths (ceph-fuse; rbd-fuse and a
loop device: inventories/lab/group_vars/all/ceph.yml), and the RBD pod's file system is made by
the driver. PVC create -> Bound times go to FIGURES. The drill stops every Ceph daemon of one
OSD host while a pod keeps writing to its CephFS volume, then waits for HEALTH_OK.
"""

import json
import time
import urllib.parse
import uuid

import pytest
from kubernetes import client

from e2e import FIGURES, ctr, hosts_with, pod_exec, rack_of, wait_for
from lab_helpers import playbook, podman_exec

pytestmark = pytest.mark.storage

DRIVER = "csi.idcloud.io"
NS = "csi-e2e"
GIB = 1024**3
USER = 65534


def ceph_json(cluster, *args, host=None):
    """`ceph`/`rbd` ... --format json on a mon host, parsed (args[0] is the command)."""
    host = host or hosts_with(cluster["desc"], "ceph_mon")[0]["name"]
    return json.loads(podman_exec(ctr(host), *args, "--format", "json").stdout)


def volume_of(cluster, pvc_name):
    """(backend, pool or fs, namespace or group, name) of a bound PVC's volume, from its PV."""
    core = cluster["core"]
    pvc = core.read_namespaced_persistent_volume_claim(pvc_name, NS)
    pv = core.read_persistent_volume(pvc.spec.volume_name)
    version, *fields = pv.spec.csi.volume_handle.split(":")
    assert version == "v1" and pv.spec.csi.driver == DRIVER, pv.spec.csi
    return tuple(urllib.parse.unquote(f) for f in fields)


def workers_in_two_racks(desc):
    """A worker of one rack and a worker of another (w1 in r1, w2 in r2 in the lab)."""
    by_rack = {}
    for host in hosts_with(desc, "worker"):
        by_rack.setdefault(rack_of(desc, host["name"])["name"], host["name"])
    assert len(by_rack) >= 2, f"the e2e cluster needs workers in two racks, has {by_rack}"
    first, second = sorted(by_rack)[:2]
    return by_rack[first], by_rack[second]


def make_pvc(cluster, name, storage_class, size="1Gi", mode="ReadWriteOnce"):
    """Create a PVC, wait until it is Bound, record create -> Bound in seconds."""
    core = cluster["core"]
    started = time.monotonic()
    core.create_namespaced_persistent_volume_claim(
        NS,
        client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PersistentVolumeClaimSpec(
                access_modes=[mode],
                storage_class_name=storage_class,
                resources=client.V1VolumeResourceRequirements(requests={"storage": size}),
            ),
        ),
    )
    try:
        wait_for(
            f"PVC {name} ({storage_class}) to be Bound",
            lambda: core.read_namespaced_persistent_volume_claim(name, NS).status.phase == "Bound",
            timeout=180,
            interval=0.5,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{diagnostics(cluster, name)}") from None
    return round(time.monotonic() - started, 1)


def diagnostics(cluster, name):
    """The object's events and the last lines of the controller's containers, for a failure."""
    core = cluster["core"]
    events = core.list_namespaced_event(NS, field_selector=f"involvedObject.name={name}").items
    lines = [f"events of {name}: {[(e.reason, e.message) for e in events]}"]
    for pod in core.list_namespaced_pod("idcloud-csi").items:
        for container in pod.spec.containers:
            if pod.metadata.name.startswith("idcloud-csi-controller"):
                log = core.read_namespaced_pod_log(
                    pod.metadata.name, "idcloud-csi", container=container.name, tail_lines=15
                )
                lines.append(f"--- {pod.metadata.name}/{container.name}:\n{log}")
    return "\n".join(lines)


def run_pod(cluster, name, node, pvc, script):
    """A busybox pod on `node` (nodeName: no scheduler in the way) with the PVC at /data, running
    `script` as user 65534 with fsGroup 65534; returns it once Running."""
    core = cluster["core"]
    image = f"{cluster['desc']['vars']['idcloud_registry']}/idcloud/web:1.0.0"
    core.create_namespaced_pod(
        NS,
        client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels={"app": "csi-e2e"}),
            spec=client.V1PodSpec(
                node_name=node,
                enable_service_links=False,
                termination_grace_period_seconds=1,
                security_context=client.V1PodSecurityContext(run_as_user=USER, run_as_group=USER, fs_group=USER),
                containers=[
                    client.V1Container(
                        name="app",
                        image=image,
                        command=["sh", "-c", script],
                        volume_mounts=[client.V1VolumeMount(name="data", mount_path="/data")],
                    )
                ],
                volumes=[
                    client.V1Volume(
                        name="data",
                        persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name=pvc),
                    )
                ],
            ),
        ),
    )

    def running():
        pod = core.read_namespaced_pod(name, NS)
        if pod.status.phase in ("Failed", "Succeeded"):
            raise AssertionError(f"pod {name} on {node} ended: {pod.status}")
        return pod if pod.status.phase == "Running" else None

    try:
        return wait_for(f"pod {name} with PVC {pvc} to run on {node}", running, timeout=240)
    except AssertionError:
        node_plugin = [p for p in core.list_namespaced_pod("idcloud-csi").items if p.spec.node_name == node]
        logs = [
            core.read_namespaced_pod_log(p.metadata.name, "idcloud-csi", container="driver", tail_lines=20)
            for p in node_plugin
            if p.metadata.name.startswith("idcloud-csi-node")
        ]
        raise AssertionError(
            f"pod {name} did not run on {node}: {diagnostics(cluster, name)}\nnode plugin: {logs}"
        ) from None


def delete_pod(cluster, name):
    """Delete a pod and wait until it is gone."""
    core = cluster["core"]
    core.delete_namespaced_pod(name, NS, grace_period_seconds=1)
    wait_for(
        f"pod {name} to go",
        lambda: not core.list_namespaced_pod(NS, field_selector=f"metadata.name={name}").items,
        180,
    )


def wait_unwatched(cluster, pool, image):
    """Until no client has the image open (its node unstaged it: rbd-fuse closed it, with a
    flush of what librbd held), read from Ceph's watchers of the image."""
    wait_for(
        f"{pool}/{image} to have no watcher",
        lambda: not ceph_json(cluster, "rbd", "status", f"{pool}/{image}").get("watchers"),
        180,
        interval=2,
    )


def delete_pvc(cluster, name):
    """Delete a PVC; return its PV's name."""
    core = cluster["core"]
    pv = core.read_namespaced_persistent_volume_claim(name, NS).spec.volume_name
    core.delete_namespaced_persistent_volume_claim(name, NS)
    wait_for(
        f"PVC {name} to go",
        lambda: not core.list_namespaced_persistent_volume_claim(NS, field_selector=f"metadata.name={name}").items,
        120,
    )
    return pv


def pv_gone(core, name):
    return name not in [p.metadata.name for p in core.list_persistent_volume().items]


def subvolumes(cluster, fs, group):
    return [s["name"] for s in ceph_json(cluster, "ceph", "fs", "subvolume", "ls", fs, group)]


def rbd_images(cluster, pool):
    return ceph_json(cluster, "rbd", "ls", "-p", pool)


# session-wide: the drill runs after other modules' tests (conftest.py), a module fixture would be
# torn down and made again while its namespace is still terminating
@pytest.fixture(scope="session")
def ns(cluster):
    core = cluster["core"]
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    yield NS
    core.delete_namespace(NS)


def test_the_node_plugin_is_registered_on_every_node(cluster):
    core, storage = cluster["core"], client.StorageV1Api(cluster["api"])
    driver = storage.read_csi_driver(DRIVER)
    assert driver.spec.attach_required is False and driver.spec.fs_group_policy == "File", driver.spec
    nodes = sorted(n.metadata.name for n in core.list_node().items)

    def registered():
        found = {
            n: [d.name for d in storage.read_csi_node(n).spec.drivers or []]
            for n in nodes
            if n in [c.metadata.name for c in storage.list_csi_node().items]
        }
        return found if len(found) == len(nodes) and all(DRIVER in d for d in found.values()) else None

    found = wait_for("every node's CSINode to list the driver", registered, 180)
    assert sorted(found) == nodes
    ds = cluster["apps"].read_namespaced_daemon_set("idcloud-csi-node", "idcloud-csi")
    assert ds.status.number_ready == ds.status.desired_number_scheduled == len(nodes), ds.status
    controller = cluster["apps"].read_namespaced_deployment("idcloud-csi-controller", "idcloud-csi")
    assert controller.status.ready_replicas == controller.spec.replicas, controller.status


def test_a_cephfs_volume_moves_racks_with_its_pod_grows_and_goes(cluster, ns):
    core = cluster["core"]
    first, second = workers_in_two_racks(cluster["desc"])
    FIGURES["pvc_bound_s_cephfs"] = make_pvc(cluster, "fs", "cephfs", "1Gi", "ReadWriteMany")
    backend, fs, group, name = volume_of(cluster, "fs")
    assert backend == "cephfs"
    info = ceph_json(cluster, "ceph", "fs", "subvolume", "info", fs, name, group)
    assert info["bytes_quota"] == GIB, info
    token = uuid.uuid4().hex
    run_pod(cluster, "fs-writer", first, "fs", f"echo {token} > /data/hello && sync && sleep 3600")
    assert pod_exec(cluster, core.read_namespaced_pod("fs-writer", NS), "cat", "/data/hello").strip() == token
    delete_pod(cluster, "fs-writer")
    reader = run_pod(cluster, "fs-reader", second, "fs", "sleep 3600")
    read_back = pod_exec(cluster, reader, "cat", "/data/hello").strip()
    assert read_back == token, (first, second, read_back)
    FIGURES["cephfs_file_read_on"] = {"written_on": first, "read_on": second}
    # grow the claim: the subvolume's quota follows, and the mounted file system shows it
    core.patch_namespaced_persistent_volume_claim("fs", NS, {"spec": {"resources": {"requests": {"storage": "2Gi"}}}})
    wait_for(
        "the PVC's capacity to be 2Gi",
        lambda: (core.read_namespaced_persistent_volume_claim("fs", NS).status.capacity or {}).get("storage") == "2Gi",
        180,
    )
    quota = ceph_json(cluster, "ceph", "fs", "subvolume", "info", fs, name, group)["bytes_quota"]
    assert quota == 2 * GIB, quota
    FIGURES["cephfs_quota_after_resize"] = quota
    # ceph-fuse shows the quota as the file system's size (client_quota_df)
    wait_for(
        "the mounted file system to show 2 GiB",
        lambda: pod_exec(cluster, reader, "df", "-k", "/data").split()[-5] == str(2 * GIB // 1024),
        60,
        interval=2,
    )
    delete_pod(cluster, "fs-reader")
    pv = delete_pvc(cluster, "fs")
    wait_for("the PV to go (reclaimPolicy Delete)", lambda: pv_gone(core, pv), 120)
    assert name not in subvolumes(cluster, fs, group)


def test_a_retain_class_keeps_the_subvolume_when_its_claim_goes(cluster, ns):
    core = cluster["core"]
    FIGURES["pvc_bound_s_cephfs_retain"] = make_pvc(cluster, "kept", "cephfs-retain", "1Gi", "ReadWriteMany")
    _, fs, group, name = volume_of(cluster, "kept")
    pv = delete_pvc(cluster, "kept")
    wait_for("the PV to be Released", lambda: core.read_persistent_volume(pv).status.phase == "Released", 60)
    assert core.read_persistent_volume(pv).spec.persistent_volume_reclaim_policy == "Retain"
    time.sleep(5)
    assert name in subvolumes(cluster, fs, group)
    # leave nothing behind: the PV, then the subvolume by hand (what an operator does with Retain)
    core.delete_persistent_volume(pv)
    podman_exec(
        ctr(hosts_with(cluster["desc"], "ceph_mon")[0]["name"]), "ceph", "fs", "subvolume", "rm", fs, name, group
    )
    assert name not in subvolumes(cluster, fs, group)


def test_an_rbd_volume_gets_a_file_system_and_moves_racks_with_its_pod(cluster, ns):
    core = cluster["core"]
    first, second = workers_in_two_racks(cluster["desc"])
    FIGURES["pvc_bound_s_rbd"] = make_pvc(cluster, "block", "ceph-rbd", "1Gi")
    backend, pool, _, image = volume_of(cluster, "block")
    assert backend == "rbd"
    info = ceph_json(cluster, "rbd", "info", f"{pool}/{image}")
    assert info["size"] == GIB, info
    token = uuid.uuid4().hex
    writer = run_pod(cluster, "rbd-writer", first, "block", f"echo {token} > /data/hello && sync && sleep 3600")
    mounts = pod_exec(cluster, writer, "cat", "/proc/mounts")
    data = [line for line in mounts.splitlines() if line.split()[1:2] == ["/data"]]
    assert data and data[0].split()[2] == "ext4", mounts
    assert pod_exec(cluster, writer, "cat", "/data/hello").strip() == token
    delete_pod(cluster, "rbd-writer")
    wait_unwatched(cluster, pool, image)
    reader = run_pod(cluster, "rbd-reader", second, "block", "sleep 3600")
    read_back = pod_exec(cluster, reader, "cat", "/data/hello").strip()
    assert read_back == token, (first, second, read_back)
    FIGURES["rbd_file_read_on"] = {"written_on": first, "read_on": second}
    delete_pod(cluster, "rbd-reader")
    wait_unwatched(cluster, pool, image)
    pv = delete_pvc(cluster, "block")
    wait_for("the PV to go (reclaimPolicy Delete)", lambda: pv_gone(core, pv), 120)
    assert image not in rbd_images(cluster, pool)


def defunct_processes(host):
    """(pid, name) of every zombie on a lab host, read from /proc (the pods' processes too)."""
    # grep -H: "/proc/<pid>/status:Name:\tceph-fuse" and "...:State:\tZ (zombie)"; a process
    # that exits meanwhile is skipped (-s)
    out = podman_exec(ctr(host), "sh", "-c", "grep -sH -E '^(Name|State):' /proc/[0-9]*/status", check=False).stdout
    fields = {}
    for line in out.splitlines():
        path, key, value = line.split(":", 2)
        fields.setdefault(path.split("/")[2], {})[key] = value.split()[0] if value.split() else ""
    return sorted((pid, f.get("Name", "")) for pid, f in fields.items() if f.get("State") == "Z")


def test_the_node_plugin_leaves_no_defunct_fuse_daemons(cluster):
    """The volumes above were staged and unstaged on two workers: the FUSE daemons that exited
    with their unmounts are reaped (the pod shares one PID namespace, the pause process is its
    PID 1), so none stays <defunct>."""
    first, second = workers_in_two_racks(cluster["desc"])
    core = cluster["core"]
    plugins = core.list_namespaced_pod("idcloud-csi", label_selector="app.kubernetes.io/name=idcloud-csi-node")
    assert plugins.items and all(pod.spec.share_process_namespace for pod in plugins.items), plugins.items
    zombies = {host: defunct_processes(host) for host in (first, second)}
    fuse = {host: [z for z in found if "fuse" in z[1]] for host, found in zombies.items()}
    assert fuse == {first: [], second: []}, zombies


def test_a_second_run_of_csi_ceph_changes_nothing(cluster, tmp_path):
    recap = playbook(cluster["idc"], "csi_ceph.yml", log=str(tmp_path / "noop-csi.log"))
    assert recap, recap
    changed = {host: r[1] for host, r in recap.items() if r[1]}
    assert changed == {}, f"a second run of csi_ceph.yml changed: {changed} (see {tmp_path}/noop-csi.log)"


def ceph_units(host):
    out = podman_exec(
        ctr(host), "systemctl", "list-units", "--plain", "--no-legend", "--state=active", "ceph-*@*"
    ).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.strip())


@pytest.mark.drill
def test_a_pod_keeps_writing_to_cephfs_while_an_osd_host_is_down(cluster, ns):
    core, desc = cluster["core"], cluster["desc"]
    first, _ = workers_in_two_racks(desc)
    # an OSD host that runs no mgr or MDS: only its mon and OSD stop
    spare = {h["name"] for h in hosts_with(desc, "ceph_mgr")} | {h["name"] for h in hosts_with(desc, "ceph_mds")}
    host = next(h["name"] for h in hosts_with(desc, "ceph_osd") if h["name"] not in spare)
    asker = next(h["name"] for h in hosts_with(desc, "ceph_mon") if h["name"] != host)
    make_pvc(cluster, "drill", "cephfs", "1Gi", "ReadWriteMany")
    writer = run_pod(
        cluster,
        "drill-writer",
        first,
        "drill",
        "i=0; while true; do echo $i >> /data/log; i=$((i+1)); sleep 0.5; done",
    )

    def lines():
        return int(pod_exec(cluster, writer, "sh", "-c", "wc -l < /data/log").strip())

    wait_for("the writer to start", lambda: lines() > 4, 60)
    units = ceph_units(host)
    assert any(u.startswith("ceph-osd@") for u in units), units
    podman_exec(ctr(host), "systemctl", "stop", *units)
    try:
        wait_for(
            f"{host}'s OSD to be down",
            lambda: (
                ceph_json(cluster, "ceph", "osd", "stat", host=asker)["num_up_osds"]
                < ceph_json(cluster, "ceph", "osd", "stat", host=asker)["num_osds"]
            ),
            120,
        )
        before = lines()
        time.sleep(30)
        during = lines()
        FIGURES["drill_osd_host_down_lines_in_30s"] = during - before
        assert during - before >= 20, f"the writer wrote {during - before} lines in 30 s with {host} down"
    finally:
        podman_exec(ctr(host), "systemctl", "start", *units)
    wait_for(
        "HEALTH_OK with every OSD and mon back",
        lambda: (
            (s := ceph_json(cluster, "ceph", "status", host=asker))["health"]["status"] == "HEALTH_OK"
            and s["osdmap"]["num_up_osds"] == s["osdmap"]["num_osds"]
        ),
        timeout=300,
        interval=5,
    )
    numbers = [int(n) for n in pod_exec(cluster, writer, "cat", "/data/log").split()]
    assert numbers == list(range(len(numbers))), "the log has a gap or a repeat"
    delete_pod(cluster, "drill-writer")
    pv = delete_pvc(cluster, "drill")
    wait_for("the drill's PV to go", lambda: pv_gone(core, pv), 120)
