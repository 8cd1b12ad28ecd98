# Copyright: idcloud developers
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Logic of the etcd_member module: plan first, then act in one place.

plan_member() is pure (members + health in, decision out) and unit-tested;
run_member() reads the live state through an EtcdClient, plans, and only
outside check mode calls the one write the plan asks for.
"""

from ansible_collections.idcloud.platform.plugins.module_utils.etcd.client import (
    EtcdError,
    etcd_connection_argument_spec,
)

STATES = ("present", "absent", "promoted", "list")

# the module's options (DOCUMENTATION in plugins/modules/etcd_member.py)
ARGUMENT_SPEC = dict(
    etcd_connection_argument_spec(),
    name=dict(type="str"),
    peer_urls=dict(type="list", elements="str", default=[]),
    state=dict(type="str", default="present", choices=list(STATES)),
    learner=dict(type="bool", default=True),
    check_health=dict(type="bool", default=False),
)
ARGUMENT_CONSTRAINTS = dict(supports_check_mode=True, required_together=[("cert_file", "key_file")])


class EtcdMemberError(Exception):
    """A request this module refuses; the message names the field, the value and the fix."""

    def __init__(self, message, member=None, members=None):
        super().__init__(message)
        self.member = member
        self.members = members


class Plan:
    """What to do: action in (none, add, remove, promote) and on which member."""

    def __init__(self, action="none", member=None, reason=""):
        self.action = action
        self.member = member
        self.reason = reason

    def __repr__(self):
        return "Plan(%r, %r, %r)" % (self.action, self.member and self.member.get("name"), self.reason)


def _norm_urls(urls):
    return sorted(set(u.strip().rstrip("/") for u in (urls or []) if u and u.strip()))


def member_label(member):
    """How a member shows in diffs: name, '(learner)' if so; unstarted ones by peer URL."""
    label = member.get("name") or "<unstarted %s>" % ",".join(member.get("peer_urls") or ["?"])
    if member.get("is_learner"):
        label += " (learner)"
    return label


def find_member(members, name=None, peer_urls=None):
    """-> (by_name, by_peer): the member called name, and the member owning any of peer_urls.

    Raises EtcdMemberError when the peer URLs are spread over several members.
    """
    by_name = None
    if name:
        named = [m for m in members if m.get("name") == name]
        if len(named) > 1:
            raise EtcdMemberError(
                "name %r matches %d members (%s); remove the stale one by peer_urls first"
                % (name, len(named), ", ".join(m["id"] for m in named))
            )
        by_name = named[0] if named else None
    by_peer = None
    wanted = set(_norm_urls(peer_urls))
    if wanted:
        owners = [m for m in members if wanted & set(_norm_urls(m.get("peer_urls")))]
        if len(owners) > 1:
            raise EtcdMemberError(
                "peer_urls %s belong to several members (%s); give each member its own peer URLs"
                % (",".join(sorted(wanted)), ", ".join(member_label(m) for m in owners))
            )
        by_peer = owners[0] if owners else None
    return by_name, by_peer


def quorum(voters):
    return voters // 2 + 1


def plan_member(members, state, name=None, peer_urls=None, learner=True, health=None):
    """Decide what state asks for. health: {member id: bool} (needed for absent only).

    Returns a Plan; raises EtcdMemberError for a request the module refuses.
    """
    if state not in STATES:
        raise EtcdMemberError("state must be one of %s, got %r" % (", ".join(STATES), state))
    if state == "list":
        return Plan("none", reason="list never changes anything")
    if not name and not peer_urls:
        raise EtcdMemberError("state=%s needs name or peer_urls to find the member" % state)
    by_name, by_peer = find_member(members, name, peer_urls)

    if state == "present":
        if not peer_urls:
            if by_name:
                return Plan("none", by_name, "member %s exists" % name)
            raise EtcdMemberError("member %r does not exist and peer_urls is empty: give peer_urls to add it" % name)
        wanted = _norm_urls(peer_urls)
        if by_name is not None:
            if _norm_urls(by_name["peer_urls"]) != wanted:
                raise EtcdMemberError(
                    "member %r exists with peer URLs %s, but peer_urls is %s. Changing the peer URLs of a "
                    "member is not supported by this module; set peer_urls to %s, or remove the member "
                    "(state=absent) and add it again"
                    % (name, ",".join(by_name["peer_urls"]), ",".join(wanted), ",".join(by_name["peer_urls"])),
                    member=by_name,
                )
            return Plan("none", by_name, "member %s exists with these peer URLs" % name)
        if by_peer is not None:
            if by_peer.get("name") and name and by_peer["name"] != name:
                raise EtcdMemberError(
                    "peer_urls %s already belong to member %r, not %r; fix name or peer_urls"
                    % (",".join(by_peer["peer_urls"]), by_peer["name"], name),
                    member=by_peer,
                )
            if _norm_urls(by_peer["peer_urls"]) != wanted:
                raise EtcdMemberError(
                    "member %s has peer URLs %s, not exactly peer_urls %s; changing peer URLs "
                    "is not supported by this module"
                    % (member_label(by_peer), ",".join(by_peer["peer_urls"]), ",".join(wanted)),
                    member=by_peer,
                )
            # An added but unstarted member has no name yet: the peer URLs identify it.
            return Plan("none", by_peer, "a member with these peer URLs exists")
        kind = "learner" if learner else "voting member"
        return Plan(
            "add",
            {
                "id": None,
                "id_hex": None,
                "name": "",
                "peer_urls": list(peer_urls),
                "client_urls": [],
                "is_learner": bool(learner),
            },
            "no member has name %r or peer URLs %s: add as %s" % (name, ",".join(wanted), kind),
        )

    if by_name is not None and by_peer is not None and by_name["id"] != by_peer["id"]:
        raise EtcdMemberError(
            "name %r is member %s but peer_urls %s belong to %s; give only one of them or fix it"
            % (name, by_name["id"], ",".join(_norm_urls(peer_urls)), member_label(by_peer))
        )
    target = by_name or by_peer
    if state == "promoted":
        if target is None:
            raise EtcdMemberError(
                "no member matches name %r / peer_urls %s; add it first with state=present"
                % (name, ",".join(_norm_urls(peer_urls)) or "-")
            )
        if not target["is_learner"]:
            return Plan("none", target, "already a voting member")
        return Plan("promote", target, "learner %s is promoted to a voting member" % member_label(target))

    # absent
    if target is None:
        return Plan("none", None, "no member matches: nothing to remove")
    if len(members) <= 1:
        raise EtcdMemberError(
            "refusing to remove %s: it is the last member of the cluster; removing it would "
            "destroy the cluster. Restore from a snapshot instead if that is the aim" % member_label(target),
            member=target,
        )
    if target["is_learner"]:
        return Plan("remove", target, "learners do not vote: removing one never affects quorum")
    health = health or {}
    voters = [m for m in members if not m["is_learner"]]
    healthy_now = [m for m in voters if health.get(m["id"])]
    if len(healthy_now) < quorum(len(voters)):
        raise EtcdMemberError(
            "refusing to remove %s: the cluster has no quorum now (%d of %d voting members healthy, %d needed; "
            "unhealthy: %s), so the removal cannot be committed. Bring members back first"
            % (
                member_label(target),
                len(healthy_now),
                len(voters),
                quorum(len(voters)),
                ", ".join(member_label(m) for m in voters if not health.get(m["id"])),
            ),
            member=target,
        )
    rest = [m for m in voters if m["id"] != target["id"]]
    healthy_after = [m for m in rest if health.get(m["id"])]
    if len(healthy_after) < quorum(len(rest)):
        raise EtcdMemberError(
            "refusing to remove %s: %d voting members would remain, needing %d for quorum, but only %d of them "
            "are healthy (unhealthy: %s). Bring the unhealthy members back, or remove them first, then retry"
            % (
                member_label(target),
                len(rest),
                quorum(len(rest)),
                len(healthy_after),
                ", ".join(member_label(m) for m in rest if not health.get(m["id"])),
            ),
            member=target,
        )
    return Plan(
        "remove",
        target,
        "remove %s: %d voting members remain, %d healthy, quorum %d"
        % (member_label(target), len(rest), len(healthy_after), quorum(len(rest))),
    )


def member_health(client, member):
    """-> (healthy, reason) of a member: GET /health on its client URLs, first healthy wins."""
    urls = member.get("client_urls") or []
    if not urls:
        return False, "no client URL (added but not started)"
    reasons = []
    for url in urls:
        ok, reason = client.health(url)
        if ok:
            return True, ""
        reasons.append("%s: %s" % (url, reason))
    return False, "; ".join(reasons)


def initial_cluster_for(members, name, peer_urls):
    """The --initial-cluster a newly added member starts with (as etcdctl member add prints)."""
    wanted = set(_norm_urls(peer_urls))
    parts = []
    for m in members:
        mine = wanted and wanted & set(_norm_urls(m["peer_urls"]))
        member_name = name if mine else m.get("name")
        for url in m["peer_urls"]:
            parts.append("%s=%s" % (member_name or "", url))
    return ",".join(parts)


def run_member(client, params, check_mode=False, diff=False):
    """Run the etcd_member module logic -> result dict. Raises EtcdMemberError / EtcdError."""
    state = params.get("state") or "present"
    name = params.get("name")
    peer_urls = params.get("peer_urls") or []
    learner = params.get("learner", True)
    check_health = params.get("check_health", False)

    before = client.member_list()
    health = {}
    reasons = {}
    if check_health or state == "absent":
        for m in before:
            health[m["id"]], reasons[m["id"]] = member_health(client, m)

    plan = plan_member(before, state, name, peer_urls, learner, health)
    after = before
    member = plan.member
    if plan.action != "none" and not check_mode:
        try:
            if plan.action == "add":
                member, after = client.member_add(peer_urls, is_learner=learner)
            elif plan.action == "remove":
                after = client.member_remove(plan.member["id"])
            elif plan.action == "promote":
                after = client.member_promote(plan.member["id"])
                member = next((m for m in after if m["id"] == plan.member["id"]), plan.member)
        except EtcdError as exc:
            if plan.action == "promote" and "in sync" in exc.message:
                raise EtcdMemberError(
                    "cannot promote %s yet: %s (server %s). The learner has not caught up "
                    "with the leader; retry (until: result is succeeded)"
                    % (member_label(plan.member), exc.message, exc.endpoint),
                    member=plan.member,
                    members=before,
                )
            raise
    elif plan.action != "none":
        after = _simulate(before, plan)
        if plan.action == "promote":
            member = dict(plan.member, is_learner=False)

    if check_health:
        # Health is re-read only for members that appeared; others keep the pre-change answer.
        for m in after:
            if m["id"] not in health and m["id"] is not None:
                health[m["id"]], reasons[m["id"]] = member_health(client, m)
        after = [dict(m, healthy=health.get(m["id"], False), health_reason=reasons.get(m["id"], "")) for m in after]
        if member is not None:
            member = dict(member, healthy=health.get(member["id"], False), health_reason=reasons.get(member["id"], ""))

    result = {
        "changed": plan.action != "none",
        "action": plan.action,
        "msg": plan.reason,
        "members": after,
        "member": member,
    }
    if state == "present" and name:
        result["initial_cluster"] = initial_cluster_for(after, name, peer_urls or (member or {}).get("peer_urls"))
    if diff:
        result["diff"] = {
            "before": {"members": [member_label(m) for m in before]},
            "after": {"members": [member_label(m) for m in after]},
        }
    return result


def _simulate(before, plan):
    """The member list a write would produce, for check mode."""
    if plan.action == "add":
        return list(before) + [plan.member]
    if plan.action == "remove":
        return [m for m in before if m["id"] != plan.member["id"]]
    if plan.action == "promote":
        return [dict(m, is_learner=False) if m["id"] == plan.member["id"] else m for m in before]
    return before
