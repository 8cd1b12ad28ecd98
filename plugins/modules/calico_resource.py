#!/usr/bin/python
# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

DOCUMENTATION = r"""
module: calico_resource
short_description: Create, update, delete and prune Calico resources stored as Kubernetes CRDs
version_added: 0.1.0
description:
  - Manages cluster-scoped Calico resources of one O(kind) (BGP configuration, peers, filters, IP pools, ...)
    as the C(crd.projectcalico.org/v1) objects of Calico's Kubernetes datastore, through the Kubernetes API.
    No Calico API server and no calicoctl are needed.
  - O(resources[].spec) is the whole desired spec. Fields left out of it are removed from the live object;
    a field set to C(null) counts as left out. Values are compared as given (C(64512) and C("64512") differ).
    With O(merge_spec=true) only the fields given are set, and fields others write are kept.
  - Labels and annotations given are merged into the live ones; keys not given are left alone.
  - Every create and update is first sent as a server-side dry run with strict field validation, for all
    resources before the first write. A misspelt field or a value the CRD schema rejects fails the task before
    anything is written, and a spec that differs from the live one only by the defaults the server fills in
    (for example C(serviceLoadBalancerAggregation) of BGPConfiguration) is not a change.
  - Updates replace the object at the C(resourceVersion) read; when another writer got in between
    (HTTP 409), the object is read again, the comparison is made again and the write retried, up to 5 times.
  - The O(resources[].spec.cidr) and O(resources[].spec.blockSize) of an existing IPPool are never changed;
    such a request fails and names the pool (make a new pool, migrate the pods, delete the old one).
author:
  - idcloud developers
extends_documentation_fragment:
  - idcloud.platform.kube_client
attributes:
  check_mode:
    support: full
    description: Reads the live objects and sends only server-side dry runs; reports what would change.
  diff_mode:
    support: full
    description: YAML of the live and the desired objects that change (created, updated, deleted).
options:
  kind:
    description:
      - Calico kind of every resource of this task. All are cluster-scoped.
      - Not handled on purpose, IPAM bookkeeping (Calico writes it) and namespaced kinds.
      - A GlobalNetworkPolicy is written under its datastore name, C(<tier>.<name>) (C(default.<name>) in the
        default tier), with its O(resources[].spec.tier) given, as Calico's own client stores it.
    type: str
    required: true
    choices: [BGPConfiguration, BGPFilter, BGPPeer, FelixConfiguration, GlobalNetworkPolicy, GlobalNetworkSet,
              HostEndpoint, IPPool, IPReservation, KubeControllersConfiguration, Tier]
  resources:
    description:
      - The resources of O(kind) to manage. Mutually exclusive with O(name).
      - With O(prune=true), an empty list deletes every object carrying O(prune_label).
    type: list
    elements: dict
    suboptions:
      name:
        description: Object name (lowercase letters, digits, C(-) and C(.)).
        type: str
        required: true
      spec:
        description:
          - The whole desired spec, in the CRD's field names (C(asNumber), C(peerIP), C(cidr), ...).
          - Required with O(state=present); ignored with O(state=absent). C({}) is an empty spec.
        type: dict
      labels:
        description: Labels merged into the live labels of this object (values are strings).
        type: dict
      annotations:
        description: Annotations merged into the live annotations of this object (values are strings).
        type: dict
  name:
    description:
      - Shorthand for one resource, O(resources=[{name, spec}]), with O(spec). Mutually exclusive with O(resources).
    type: str
  spec:
    description:
      - The whole desired spec of O(name) (see O(resources[].spec)).
    type: dict
  labels:
    description:
      - Labels merged into the labels of every resource, for example C(app.kubernetes.io/managed-by).
      - A resource's own O(resources[].labels) win over these.
    type: dict
    default: {}
  state:
    description:
      - V(present) creates or updates the resources; V(absent) deletes them (a missing object is fine).
    type: str
    choices: [present, absent]
    default: present
  prune:
    description:
      - Also delete the objects of O(kind) that carry O(prune_label) and are not named in O(resources).
      - Needs O(prune_label) and O(state=present). O(prune_label) is added to every resource, so what this task
        creates is what a later run may prune, and objects without the label are never touched.
    type: bool
    default: false
  prune_label:
    description:
      - One label as C(key=value) that marks the objects this task owns, for example
        C(app.kubernetes.io/managed-by=idcloud.platform). Required with O(prune=true).
    type: str
  merge_spec:
    description:
      - Set only the spec fields given (mappings merge key by key, lists and values replace) and keep the
        live object's other fields, instead of replacing the whole spec.
      - For objects other writers change too. calico-node fills in C(reportingInterval) and
        C(logSeverityScreen) of FelixConfiguration C(default) when they are absent; with V(true) a task
        that sets C(usageReportingEnabled) leaves them alone, so a second run changes nothing.
      - A field can then no longer be removed by leaving it out; set it to the value wanted instead.
        Cannot be combined with O(prune).
    type: bool
    default: false
notes:
  - Writes go through the Kubernetes API with the field manager C(idcloud.platform.calico_resource).
  - Deleting an IPPool that still has allocations leaves those addresses in use; drain it first
    (set C(disabled=true) in its spec, recreate the pods).
seealso:
  - name: Calico resource reference
    description: The fields of each kind's spec.
    link: https://docs.tigera.io/calico/latest/reference/resources/overview
"""

EXAMPLES = r"""
- name: Felix never reports usage (only this field; calico-node's own fields stay)
  idcloud.platform.calico_resource:
    kind: FelixConfiguration
    name: default
    spec:
      usageReportingEnabled: false
    merge_spec: true

- name: Cluster-wide BGP settings (no full mesh, nodes peer with their ToR)
  idcloud.platform.calico_resource:
    kind: BGPConfiguration
    name: default
    spec:
      asNumber: 64512
      nodeToNodeMeshEnabled: false
      logSeverityScreen: Info
    labels:
      app.kubernetes.io/managed-by: idcloud.platform

- name: One ToR peer per rack, removing peers of racks that are gone
  idcloud.platform.calico_resource:
    kind: BGPPeer
    resources:
      - name: rack-a01-tor
        spec: {peerIP: 10.10.1.254, asNumber: 65101, nodeSelector: "rack == 'a01'", filters: [no-import]}
      - name: rack-b01-tor
        spec: {peerIP: 10.10.2.254, asNumber: 65102, nodeSelector: "rack == 'b01'", filters: [no-import]}
    prune: true
    prune_label: app.kubernetes.io/managed-by=idcloud.platform
    kubeconfig: /etc/kubernetes/admin.kubeconfig

- name: The pod pool, /27 blocks, routed natively
  idcloud.platform.calico_resource:
    kind: IPPool
    name: pods-v4
    spec:
      cidr: 10.233.0.0/19
      blockSize: 27
      ipipMode: Never
      vxlanMode: Never
      natOutgoing: true
      nodeSelector: all()
      allowedUses: [Workload, Tunnel]
  register: calico_pool
  # Shown with --diff; a dry run with --check.

- name: Remove a filter
  idcloud.platform.calico_resource:
    kind: BGPFilter
    name: old-filter
    state: absent
"""

RETURN = r"""
kind:
  description: The O(kind) managed.
  returned: always
  type: str
  sample: BGPPeer
resources:
  description:
    - One entry per resource of O(resources) (in order), then one per pruned object.
    - In check mode, what would be done.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Object name.
      type: str
      sample: rack-a01-tor
    action:
      description: What was done (or would be done in check mode).
      type: str
      choices: [create, update, delete, none]
    before:
      description: Live spec before the task (nulls dropped); C(null) when the object did not exist.
      type: dict
      sample: {"asNumber": 65101, "peerIP": "10.10.1.254"}
    after:
      description:
        - Spec as the server stored it (or would store it, in check mode), server defaults included;
          C(null) when deleted or absent.
      type: dict
      sample: {"asNumber": 65102, "peerIP": "10.10.1.254"}
    changed_keys:
      description: Top-level spec keys that change, and C(metadata.labels) / C(metadata.annotations) when those do.
      type: list
      elements: str
      sample: [asNumber]
    pruned:
      description: Whether the object is deleted by O(prune) (not listed in O(resources)).
      type: bool
diff:
  description: YAML of the objects that change, live (C(before)) and desired (C(after)).
  returned: in diff mode
  type: dict
error:
  description: HTTP status, reason and message of a failed Kubernetes API call.
  returned: on a Kubernetes API failure
  type: dict
  sample: {"status": 422, "reason": "Invalid", "message": "..."}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.idcloud.platform.plugins.module_utils.calico.calico_resource import (
    ARGUMENT_CONSTRAINTS,
    ARGUMENT_SPEC,
    CalicoResourceError,
    KubeApiError,
    api_from_params,
    run_calico_resource,
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, **ARGUMENT_CONSTRAINTS)
    try:
        api = api_from_params(module.params)
        result = run_calico_resource(api, module.params, check_mode=module.check_mode, diff=module._diff)
    except CalicoResourceError as exc:
        module.fail_json(msg=str(exc), name=exc.name)
    except KubeApiError as exc:
        module.fail_json(msg="Kubernetes API call failed: %s" % exc.message, error=exc.to_dict())
    module.exit_json(**result)


if __name__ == "__main__":
    main()
