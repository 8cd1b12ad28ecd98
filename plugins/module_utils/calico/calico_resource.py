# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Calico resources stored as CRDs (crd.projectcalico.org/v1, Kubernetes datastore).

Two layers, so the planning is unit-tested with a fake API:
- ``CrdApi``: the few calls the module makes (list, get, create, replace,
  delete, each with server-side dry run) over the ``kubernetes`` client's
  CustomObjectsApi; every failure becomes a ``KubeApiError`` with the HTTP
  status and the apiserver's own message.
- ``run_calico_resource(api, params, check_mode, diff)``: reads the live
  objects of one kind, plans every resource first (a server-side dry run of
  each create/update validates it against the CRD schema and shows what the
  server would store, defaults included), and only then writes.

All the kinds handled here are cluster-scoped. There is no Calico API server:
the module writes the v1 CRD objects that calico-node and calicoctl (KDD) read.
"""

import copy
import ipaddress
import json
import re

GROUP = "crd.projectcalico.org"
VERSION = "v1"
API_VERSION = GROUP + "/" + VERSION
FIELD_MANAGER = "idcloud.platform.calico_resource"

# Cluster-scoped kinds this module manages. Left out on purpose: IPAM bookkeeping
# (IPAMBlock, IPAMHandle, BlockAffinity, IPAMConfig) that Calico writes itself. A
# GlobalNetworkPolicy is stored under its datastore name, "<tier>.<name>" ("default.<name>"
# in the default tier), with spec.tier; this module writes the name as given.
KIND_PLURALS = {
    "BGPConfiguration": "bgpconfigurations",
    "BGPFilter": "bgpfilters",
    "BGPPeer": "bgppeers",
    "FelixConfiguration": "felixconfigurations",
    "GlobalNetworkPolicy": "globalnetworkpolicies",
    "GlobalNetworkSet": "globalnetworksets",
    "HostEndpoint": "hostendpoints",
    "IPPool": "ippools",
    "IPReservation": "ipreservations",
    "KubeControllersConfiguration": "kubecontrollersconfigurations",
    "Tier": "tiers",
}

# Spec fields that cannot change in place: IPAM has carved blocks out of the pool.
IMMUTABLE_FIELDS = {"IPPool": ("cidr", "blockSize")}

CONFLICT_RETRIES = 5

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class CalicoResourceError(Exception):
    """A request the module refuses or cannot carry out; the message names field, value and fix."""

    def __init__(self, message, name=None):
        super().__init__(message)
        self.name = name


class KubeApiError(Exception):
    """The Kubernetes API answered with an error, or could not be reached (status None)."""

    def __init__(self, message, status=None, reason=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason

    def to_dict(self):
        return {"status": self.status, "reason": self.reason, "message": self.message}


# -- the API -----------------------------------------------------------------------------
def kube_argument_spec():
    """Connection options (doc fragment idcloud.platform.kube_client)."""
    return dict(
        kubeconfig=dict(type="path"),
        context=dict(type="str"),
        validate_certs=dict(type="bool", default=True),
    )


# the module's options (DOCUMENTATION in plugins/modules/calico_resource.py)
ARGUMENT_SPEC = dict(
    kube_argument_spec(),
    kind=dict(type="str", required=True, choices=sorted(KIND_PLURALS)),
    resources=dict(
        type="list",
        elements="dict",
        options=dict(
            name=dict(type="str", required=True),
            spec=dict(type="dict"),
            labels=dict(type="dict"),
            annotations=dict(type="dict"),
        ),
    ),
    name=dict(type="str"),
    spec=dict(type="dict"),
    labels=dict(type="dict", default={}),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    prune=dict(type="bool", default=False),
    prune_label=dict(type="str"),
    merge_spec=dict(type="bool", default=False),
)
ARGUMENT_CONSTRAINTS = dict(
    supports_check_mode=True,
    mutually_exclusive=[("resources", "name"), ("resources", "spec")],
    required_one_of=[("resources", "name")],
    required_if=[("prune", True, ["prune_label"])],
    required_by={"spec": "name"},
)


class CrdApi:
    """Cluster-scoped custom objects of crd.projectcalico.org/v1 through CustomObjectsApi."""

    def __init__(self, custom_objects_api, host=None):
        self.api = custom_objects_api
        self.host = host

    def _call(self, what, func, *args, **kwargs):
        try:
            from kubernetes.client.exceptions import ApiException
        except ImportError:  # pragma: no cover - checked when the client is built
            ApiException = ()
        try:
            return func(GROUP, VERSION, *args, **kwargs)
        except ApiException as exc:
            raise _api_error(what, exc)
        except Exception as exc:  # urllib3 / ssl / socket errors: no HTTP answer at all
            if type(exc).__module__.startswith(("urllib3", "ssl", "socket")) or isinstance(exc, OSError):
                raise KubeApiError(
                    "%s: cannot reach the Kubernetes API%s: %s" % (what, " at %s" % self.host if self.host else "", exc)
                )
            raise

    def list(self, plural, label_selector=None):
        kwargs = {"label_selector": label_selector} if label_selector else {}
        resp = self._call("list %s" % plural, self.api.list_cluster_custom_object, plural, **kwargs)
        return list(resp.get("items") or [])

    def get(self, plural, name):
        """-> the object, or None when it does not exist."""
        try:
            return self._call("get %s/%s" % (plural, name), self.api.get_cluster_custom_object, plural, name)
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, plural, body, dry_run=False):
        return self._call(
            "create %s/%s" % (plural, body["metadata"]["name"]),
            self.api.create_cluster_custom_object,
            plural,
            body,
            **_write_opts(dry_run),
        )

    def replace(self, plural, name, body, dry_run=False):
        return self._call(
            "replace %s/%s" % (plural, name),
            self.api.replace_cluster_custom_object,
            plural,
            name,
            body,
            **_write_opts(dry_run),
        )

    def delete(self, plural, name, resource_version=None, dry_run=False):
        """Delete, only if still at resource_version when given. -> False when already gone."""
        kwargs = {}
        if dry_run:
            kwargs["dry_run"] = "All"
        if resource_version:
            from kubernetes.client import V1DeleteOptions, V1Preconditions

            kwargs["body"] = V1DeleteOptions(preconditions=V1Preconditions(resource_version=resource_version))
        try:
            self._call("delete %s/%s" % (plural, name), self.api.delete_cluster_custom_object, plural, name, **kwargs)
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True


def _write_opts(dry_run):
    # Strict: a misspelt spec field is an error instead of being dropped silently.
    opts = {"field_manager": FIELD_MANAGER, "field_validation": "Strict"}
    if dry_run:
        opts["dry_run"] = "All"
    return opts


def _api_error(what, exc):
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    message = None
    body = getattr(exc, "body", None)
    if body:
        try:
            doc = json.loads(body)
            message = doc.get("message")
            reason = doc.get("reason") or reason
        except (ValueError, AttributeError):
            message = str(body)[:500]
    return KubeApiError("%s: HTTP %s %s" % (what, status, message or reason or ""), status=status, reason=reason)


def api_from_params(params):
    """CrdApi from kubeconfig/context/validate_certs (in-cluster config when run in a pod)."""
    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise CalicoResourceError(
            "the kubernetes Python library is missing on the host that runs this module; "
            "install it there (pip install kubernetes) or delegate the task to a host that has it"
        )
    import os

    configuration = client.Configuration()
    kubeconfig = params.get("kubeconfig")
    default_kubeconfig = os.path.expanduser(os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)[0])
    try:
        if (
            kubeconfig
            or params.get("context")
            or os.path.exists(default_kubeconfig)
            or not os.environ.get("KUBERNETES_SERVICE_HOST")
        ):
            config.load_kube_config(
                config_file=kubeconfig, context=params.get("context"), client_configuration=configuration
            )
        else:
            config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        raise CalicoResourceError(
            "cannot load kubeconfig %s (option kubeconfig, context %s): %s"
            % (kubeconfig or default_kubeconfig, params.get("context") or "current", exc)
        )
    configuration.verify_ssl = params.get("validate_certs", True)
    return CrdApi(client.CustomObjectsApi(client.ApiClient(configuration)), host=configuration.host)


# -- values ------------------------------------------------------------------------------
def strip_none(value):
    """Drop None-valued keys at every depth: an absent field and a null one are the same."""
    if isinstance(value, dict):
        return dict((k, strip_none(v)) for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return [strip_none(v) for v in value]
    return value


def specs_equal(a, b):
    return strip_none(a or {}) == strip_none(b or {})


def changed_keys(before, after):
    """Top-level spec keys whose values differ (sorted)."""
    before, after = strip_none(before or {}), strip_none(after or {})
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def parse_label(text, field="prune_label"):
    """'key=value' -> (key, value)."""
    if not isinstance(text, str) or text.count("=") != 1 or not text.split("=")[0].strip():
        raise CalicoResourceError(
            "%s must be one label as key=value (for example "
            "app.kubernetes.io/managed-by=idcloud.platform), got %r" % (field, text)
        )
    key, value = text.split("=")
    return key.strip(), value.strip()


def _string_map(value, field):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CalicoResourceError("%s must be a mapping of strings, got %r" % (field, value))
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise CalicoResourceError(
                "%s: key %r has value %r; label and annotation values must be strings "
                '(quote them in YAML: "%s")' % (field, k, v, v)
            )
    return dict(value)


def desired_resources(params):
    """Validate and normalise the requested resources -> list of dict(name, spec, labels, annotations)."""
    state = params.get("state") or "present"
    resources = params.get("resources")
    if resources is not None and params.get("name"):
        raise CalicoResourceError("give either resources or name (+ spec), not both")
    if resources is None:
        if not params.get("name"):
            raise CalicoResourceError("give resources (a list of {name, spec}) or name + spec")
        resources = [{"name": params["name"], "spec": params.get("spec")}]
    common = _string_map(params.get("labels"), "labels")
    owner = parse_label(params.get("prune_label")) if params.get("prune") else None
    out, seen = [], set()
    for index, item in enumerate(resources):
        where = "resources[%d]" % index
        if not isinstance(item, dict):
            raise CalicoResourceError("%s must be a mapping with name and spec, got %r" % (where, item))
        name = item.get("name")
        if not isinstance(name, str) or len(name) > 253 or not _NAME_RE.match(name):
            raise CalicoResourceError(
                '%s.name %r is not a valid object name (lowercase letters, digits, "-" and '
                '"."; starts and ends with a letter or digit)' % (where, name)
            )
        where = "%s (%s)" % (where, name)
        if name in seen:
            raise CalicoResourceError("%s: the name %s is given twice" % (where, name))
        seen.add(name)
        spec = item.get("spec")
        if state == "present":
            if spec is None:
                raise CalicoResourceError(
                    "%s: spec is required with state=present (the whole desired spec; use {} for an empty one)" % where,
                    name,
                )
            if not isinstance(spec, dict):
                raise CalicoResourceError("%s: spec must be a mapping, got %r" % (where, spec), name)
        labels = dict(common)
        labels.update(_string_map(item.get("labels"), where + ".labels"))
        if owner:  # the prune label always holds, or a later run could not find what this one made
            labels[owner[0]] = owner[1]
        out.append(
            {
                "name": name,
                "spec": strip_none(spec) if spec is not None else None,
                "labels": labels,
                "annotations": _string_map(item.get("annotations"), where + ".annotations"),
            }
        )
    return out


# -- planning ----------------------------------------------------------------------------
def _same_network(a, b):
    try:
        return ipaddress.ip_network(str(a), strict=False) == ipaddress.ip_network(str(b), strict=False)
    except ValueError:
        return a == b


def check_immutable(kind, name, live_spec, spec):
    for field in IMMUTABLE_FIELDS.get(kind, ()):
        live_value, new_value = (live_spec or {}).get(field), spec.get(field)
        same = (
            _same_network(live_value, new_value)
            if field == "cidr" and live_value and new_value
            else live_value == new_value
        )
        if not same:
            live, new = _show(live_value), _show(new_value)
            raise CalicoResourceError(
                f"{kind} {name!r}: spec.{field} cannot change in place (live {live}, given {new}): Calico has already "
                f"carved address blocks out of this pool. To keep the pool, give {field}: {live}. To move to other "
                f"addresses: create a new {kind} with the new cidr/blockSize, set disabled: true on {name!r}, recreate "
                f"the pods that use it, then delete {name!r}.",
                name,
            )


def _show(value):
    return "nothing" if value is None else json.dumps(value)


def _metadata(obj):
    return (obj or {}).get("metadata") or {}


def merged_map(live, given):
    merged = dict(live or {})
    merged.update(given or {})
    return merged


def build_body(kind, want, live=None):
    """The object to send: live metadata (resourceVersion kept) with the given labels and annotations merged in."""
    if live is not None:
        meta = dict((k, v) for k, v in copy.deepcopy(_metadata(live)).items() if k != "managedFields")
    else:
        meta = {"name": want["name"]}
    labels = merged_map(meta.get("labels"), want["labels"])
    annotations = merged_map(meta.get("annotations"), want["annotations"])
    meta.pop("labels", None)
    meta.pop("annotations", None)
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "spec": copy.deepcopy(want["spec"])}


def merge_specs(live, given):
    """``given`` laid over ``live``: mappings merge key by key at every depth, anything else replaces."""
    merged = copy.deepcopy(live or {})
    for key, value in (given or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_specs(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def plan_resource(kind, want, live, state, merge=False):
    """-> dict(name, action, before, after, changed_keys, body) without calling the API.

    ``after`` is the desired spec; the runner replaces it with the server's dry-run answer.
    With ``merge`` the desired spec is the live one with the given fields laid over it, so
    fields another writer owns (calico-node's in FelixConfiguration default) are kept.
    """
    name = want["name"]
    before = strip_none(live.get("spec") or {}) if live is not None else None
    if merge and live is not None and want["spec"] is not None:
        want = dict(want, spec=merge_specs(before, want["spec"]))
    plan = {"name": name, "action": "none", "before": before, "after": before, "changed_keys": [], "body": None}
    if state == "absent":
        if live is not None:
            plan.update(action="delete", after=None, changed_keys=sorted(before or {}))
        return plan
    if live is None:
        body = build_body(kind, want)
        plan.update(action="create", after=want["spec"], changed_keys=sorted(want["spec"]), body=body)
        return plan
    check_immutable(kind, name, before, want["spec"])
    meta = _metadata(live)
    keys = changed_keys(before, want["spec"])
    if merged_map(meta.get("labels"), want["labels"]) != (meta.get("labels") or {}):
        keys.append("metadata.labels")
    if merged_map(meta.get("annotations"), want["annotations"]) != (meta.get("annotations") or {}):
        keys.append("metadata.annotations")
    if keys:
        plan.update(action="update", after=want["spec"], changed_keys=keys, body=build_body(kind, want, live))
    return plan


def prune_plans(live_items, keep_names):
    """Delete plans for live objects (already selected by the prune label) not in keep_names."""
    plans = []
    for obj in sorted(live_items, key=lambda o: _metadata(o).get("name", "")):
        name = _metadata(obj).get("name")
        if name and name not in keep_names:
            before = strip_none(obj.get("spec") or {})
            plans.append(
                {
                    "name": name,
                    "action": "delete",
                    "before": before,
                    "after": None,
                    "changed_keys": sorted(before),
                    "body": None,
                    "pruned": True,
                    "live": obj,
                    "resource_version": _metadata(obj).get("resourceVersion"),
                }
            )
    return plans


# -- diff --------------------------------------------------------------------------------
def _view(kind, name, meta, spec):
    view = {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}}
    for key in ("labels", "annotations"):
        if meta.get(key):
            view["metadata"][key] = dict(sorted(meta[key].items()))
    view["spec"] = spec
    return view


def _yaml_docs(docs):
    if not docs:
        return ""
    try:
        import yaml

        return yaml.safe_dump_all(docs, default_flow_style=False, sort_keys=True, explicit_start=True)
    except ImportError:  # pragma: no cover - PyYAML comes with the kubernetes client
        return "".join("---\n" + json.dumps(d, indent=2, sort_keys=True) + "\n" for d in docs)


def build_diff(kind, entries):
    """Ansible diff (before/after YAML texts) of the resources that change."""
    before, after = [], []
    for entry in entries:
        if entry["action"] == "none":
            continue
        if entry["live"] is not None:
            before.append(_view(kind, entry["name"], _metadata(entry["live"]), entry["before"]))
        if entry["action"] != "delete":
            meta = _metadata(entry["body"])
            after.append(_view(kind, entry["name"], meta, entry["after"]))
    return {
        "before": _yaml_docs(before),
        "after": _yaml_docs(after),
        "before_header": "%s (live)" % kind,
        "after_header": "%s (desired)" % kind,
    }


# -- the runner --------------------------------------------------------------------------
def _plural(kind):
    try:
        return KIND_PLURALS[kind]
    except KeyError:
        raise CalicoResourceError("kind %r is not handled; choose one of %s" % (kind, ", ".join(sorted(KIND_PLURALS))))


def _list_live(api, kind, plural, label_selector=None):
    try:
        return api.list(plural, label_selector=label_selector)
    except KubeApiError as exc:
        if exc.status == 404:
            raise CalicoResourceError(
                "the Calico CRDs are not installed: %s.%s/%s is unknown to the Kubernetes API (HTTP 404 on list). "
                "Install the Calico CRDs (the calico role, or kubectl apply --server-side -f the crd.projectcalico.org "
                "manifests of your Calico release) before managing %s objects." % (plural, GROUP, VERSION, kind)
            )
        raise


def _dry_run(api, plural, plan):
    """Ask the server what it would store; turn an update that only restates server defaults into none."""
    if plan["action"] == "create":
        stored = api.create(plural, plan["body"], dry_run=True)
    elif plan["action"] == "update":
        stored = api.replace(plural, plan["name"], plan["body"], dry_run=True)
    else:
        return plan
    after = strip_none((stored or {}).get("spec") or {})
    plan["after"] = after
    if plan["action"] == "update":
        meta_keys = [k for k in plan["changed_keys"] if k.startswith("metadata.")]
        spec_keys = changed_keys(plan["before"], after)
        if not spec_keys and not meta_keys:
            # the spec differs only by what the server fills in itself (CRD defaults)
            plan.update(action="none", after=plan["before"], changed_keys=[], body=None)
        else:
            plan["changed_keys"] = spec_keys + meta_keys
    return plan


def _write(api, plural, plan):
    """Carry out one plan -> the stored object (None for a delete)."""
    if plan["action"] == "create":
        return api.create(plural, plan["body"])
    if plan["action"] == "update":
        return api.replace(plural, plan["name"], plan["body"])
    if plan["action"] == "delete":
        api.delete(plural, plan["name"], resource_version=plan.get("resource_version"))
    return None


def _plan_with_live(api, kind, plural, want, live, state, merge=False):
    plan = plan_resource(kind, want, live, state, merge=merge)
    plan["resource_version"] = _metadata(live).get("resourceVersion") if live is not None else None
    plan["live"] = live
    return _dry_run(api, plural, plan)


def run_calico_resource(api, params, check_mode=False, diff=False):
    """Plan, then (unless check_mode) apply. -> module result dict."""
    kind = params["kind"]
    state = params.get("state") or "present"
    plural = _plural(kind)
    if params.get("prune") and state != "present":
        raise CalicoResourceError("prune works with state=present only (it deletes what is not listed)")
    if params.get("prune_label") and not params.get("prune"):
        parse_label(params["prune_label"])
    wanted = desired_resources(params)
    merge = bool(params.get("merge_spec"))
    if merge and params.get("prune"):
        raise CalicoResourceError(
            "merge_spec and prune do not go together: prune owns whole objects, "
            "merge_spec only some fields of objects others write too; use one of them"
        )

    live_by_name = dict((_metadata(o).get("name"), o) for o in _list_live(api, kind, plural))
    plans = []
    for want in wanted:
        plans.append((want, _plan_with_live(api, kind, plural, want, live_by_name.get(want["name"]), state, merge)))
    if params.get("prune"):
        selector = "%s=%s" % parse_label(params["prune_label"])
        for plan in prune_plans(_list_live(api, kind, plural, label_selector=selector), set(w["name"] for w in wanted)):
            plans.append((None, plan))

    if not check_mode:
        for index, (want, plan) in enumerate(plans):
            plans[index] = (want, _apply_with_retry(api, kind, plural, want, plan, state, merge))

    entries = [plan for _, plan in plans]
    result = {
        "changed": any(p["action"] != "none" for p in entries),
        "kind": kind,
        "resources": [
            dict((k, p.get(k)) for k in ("name", "action", "before", "after", "changed_keys")) for p in entries
        ],
    }
    for entry, plan in zip(result["resources"], entries):
        entry["pruned"] = bool(plan.get("pruned"))
    if diff:
        result["diff"] = build_diff(kind, entries)
    return result


def _apply_with_retry(api, kind, plural, want, plan, state, merge=False):
    """Write one plan; on a conflict (someone else wrote in between) re-read, re-plan and retry."""
    for attempt in range(CONFLICT_RETRIES + 1):
        if plan["action"] == "none":
            return plan
        try:
            stored = _write(api, plural, plan)
            if stored is not None:
                plan["after"] = strip_none(stored.get("spec") or {})
            return plan
        except KubeApiError as exc:
            if exc.status != 409 or attempt == CONFLICT_RETRIES:
                if exc.status == 409:
                    raise CalicoResourceError(
                        "%s %r kept changing under us: %d conflicts in a row (%s); "
                        "find the other writer and retry" % (kind, plan["name"], attempt + 1, exc.message),
                        plan["name"],
                    )
                raise
        live = api.get(plural, plan["name"])
        if want is None:  # a pruned object was changed by someone else: delete the new version
            if live is None:
                plan.update(action="none", after=None)
                return plan
            plan.update(resource_version=_metadata(live).get("resourceVersion"), live=live)
            continue
        # re-plan on the fresh object: the IPPool check and the comparison run again
        plan = _plan_with_live(api, kind, plural, want, live, state, merge)
    return plan  # pragma: no cover - the loop returns or raises
