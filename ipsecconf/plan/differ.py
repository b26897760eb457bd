"""The differ: desired resources vs a store snapshot gives a :class:`Plan`.

Keyed by address first: an unchanged resource costs one decode and one dict comparison;
only the resources that differ get field-level detail (:mod:`.fields`).

Policies follow DESIGN.md: fields that cannot change in place plan as replace; rows not
made by ipsecconf (unmanaged) are drift, deleted only with ``prune``; an unmanaged row
whose selectors and direction equal a desired row's is adopted (renamed and marked
managed, keeping its index) instead of deleted and created again.  Every update,
replace or delete lists the live SAs it tears down.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from ipsecconf.plan.desired import DesiredState, Fingerprinter, Resource, secret_address
from ipsecconf.plan.fields import SECRET_REPLACES, field_changes, public
from ipsecconf.plan.model import Action, AffectedSa, Change, Plan
from ipsecconf.state.records import SaRecord, Snapshot, StoredPolicy
from ipsecconf.state.writer import canonical

KIND_ORDER = {"setting": 0, "cert": 1, "psk": 2, "peer": 3, "policy": 4, "sa": 5}


class _SaIndex:
    """Live (not Dead) SAs by owning policy, peer, address and manual SA name."""

    def __init__(self, sas: list[SaRecord]) -> None:
        self.by_policy: dict[str, list[SaRecord]] = defaultdict(list)
        self.by_peer: dict[str, list[SaRecord]] = defaultdict(list)
        self.by_address: dict[str, list[SaRecord]] = defaultdict(list)
        self.by_manual: dict[str, list[SaRecord]] = defaultdict(list)
        for sa in sas:
            if sa.state == "D":
                continue
            if sa.manual is not None:
                self.by_manual[sa.manual].append(sa)
                continue
            if sa.policy:
                self.by_policy[sa.policy].append(sa)
            if sa.peer:
                self.by_peer[sa.peer].append(sa)
            self.by_address[sa.destination].append(sa)
            self.by_address[sa.source].append(sa)

    @staticmethod
    def refs(sas: list[SaRecord]) -> list[AffectedSa]:
        seen: dict[int, AffectedSa] = {}
        for s in sas:
            seen[s.id] = AffectedSa(s.id, s.spi, s.protocol, s.source, s.destination, s.state)
        return sorted(seen.values(), key=lambda a: a.id)


def _adoption_key(d: dict[str, Any]) -> str:
    return canonical({"direction": d["direction"], "selectors": d["selectors"]})


def _compare(kind: str, before: dict[str, Any], after: dict[str, Any], change: Change) -> None:
    change.fields = field_changes(kind, before, after)
    change.replace_fields = sorted(
        {f.path.split(".")[0].split("[")[0] for f in change.fields if f.forces_replacement}
    )


def _diff_policies(
    desired: DesiredState, snap: Snapshot, prune: bool, sas: _SaIndex
) -> tuple[list[Change], list[Change], int]:
    changes: list[Change] = []
    drift: list[Change] = []
    unchanged = 0
    stored = snap.policies
    missing = [n for n in desired.policies if n not in stored]
    # Adoption candidates: unmanaged rows whose names the desired state does not use.
    adoptable: dict[str, StoredPolicy] = {}
    if missing:
        for cand in stored.values():
            if not cand.managed and cand.name not in desired.policies:
                adoptable.setdefault(_adoption_key(json.loads(cand.data)), cand)
    adopted: set[str] = set()
    for name, after in desired.policies.items():
        sp = stored.get(name)
        address = f"policy.{name}"
        if sp is None:
            old = adoptable.pop(_adoption_key(after), None)
            if old is None:
                changes.append(
                    Change(
                        address,
                        "policy",
                        name,
                        Action.CREATE,
                        after=after,
                        reason="not in the state",
                    )
                )
                continue
            adopted.add(old.name)
            before = json.loads(old.data)
            change = Change(
                address,
                "policy",
                name,
                Action.NOOP,
                before=before,
                after=after,
                previous_address=f"policy.{old.name}",
                index=old.idx,
                reason="adopts an unmanaged entry with the same selectors",
            )
            ignore = {"name", "policy"}
            b = {k: v for k, v in before.items() if k not in ignore}
            a = {k: v for k, v in after.items() if k not in ignore}
            if a != b:
                _compare("policy", b, a, change)
                change.action = Action.REPLACE if change.replace_fields else Action.UPDATE
                change.affected_sas = sas.refs(sas.by_policy.get(old.policy, []))
            changes.append(change)
            continue
        before = json.loads(sp.data)
        if before == after:
            if sp.managed:
                unchanged += 1
            else:
                changes.append(
                    Change(
                        address,
                        "policy",
                        name,
                        Action.NOOP,
                        before=after,
                        after=after,
                        previous_address=address,
                        index=sp.idx,
                        reason="adopts an unmanaged entry",
                    )
                )
            continue
        change = Change(
            address,
            "policy",
            name,
            Action.UPDATE,
            before=before,
            after=after,
            index=sp.idx,
            previous_address=None if sp.managed else address,
        )
        _compare("policy", before, after, change)
        if change.replace_fields:
            change.action = Action.REPLACE
            change.reason = f"{', '.join(change.replace_fields)} cannot change in place"
        change.affected_sas = sas.refs(sas.by_policy.get(sp.policy, []))
        changes.append(change)
    for name, sp in stored.items():
        if name in desired.policies or name in adopted:
            continue
        before = json.loads(sp.data)
        change = Change(
            f"policy.{name}",
            "policy",
            name,
            Action.DELETE,
            before=before,
            index=sp.idx,
            affected_sas=sas.refs(sas.by_policy.get(sp.policy, [])),
        )
        if sp.managed:
            change.reason = "no longer in the configuration"
            changes.append(change)
        elif prune:
            change.reason = "not managed by ipsecconf (--prune)"
            changes.append(change)
        else:
            change.action = Action.NOOP
            change.reason = "not managed by ipsecconf; kept (use --prune to delete)"
            drift.append(change)
    return changes, drift, unchanged


def _affected(
    kind: str, name: str, data: dict[str, Any] | None, sas: _SaIndex, cert_peers: list[str]
) -> list[AffectedSa]:
    if kind == "peer":
        return sas.refs(sas.by_peer.get(name, []))
    if kind == "psk":
        return sas.refs(sas.by_address.get(name, []))
    if kind == "sa":
        return sas.refs(sas.by_manual.get(name, []))
    if kind == "cert":
        return sas.refs([s for p in cert_peers for s in sas.by_peer.get(p, [])])
    return []


def _diff_resources(
    desired: DesiredState, snap: Snapshot, fingerprint: Fingerprinter, prune: bool, sas: _SaIndex
) -> tuple[list[Change], list[Change], int]:
    changes: list[Change] = []
    drift: list[Change] = []
    unchanged = 0
    cert_peers = [
        r.name
        for r in desired.resources.values()
        if r.kind == "peer" and r.data.get("auth") == "certificate"
    ]
    stored = {f"{k}.{n}": r for (k, n), r in snap.resources.items()}
    for address, res in desired.resources.items():
        sr = stored.get(address)
        after = public(res.data)
        sensitive = _sensitive(res, snap, fingerprint)
        if sr is None:
            changes.append(
                Change(
                    address,
                    res.kind,
                    res.name,
                    Action.CREATE,
                    after=after,
                    sensitive=sensitive,
                    reason="not in the state",
                )
            )
            continue
        before = public(json.loads(sr.data))
        assert before is not None and after is not None
        if before == after and not sensitive and sr.managed:
            unchanged += 1
            continue
        change = Change(
            address,
            res.kind,
            res.name,
            Action.UPDATE,
            before=before,
            after=after,
            sensitive=sensitive,
            previous_address=None if sr.managed else address,
        )
        if before != after:
            _compare(res.kind, before, after, change)
        if change.replace_fields or (sensitive and res.kind in SECRET_REPLACES):
            change.action = Action.REPLACE
            change.reason = "cannot change in place"
        elif not change.fields and not sensitive:
            change.action = Action.NOOP
            change.reason = "adopts an unmanaged entry"
        if change.action is not Action.NOOP:
            change.affected_sas = _affected(res.kind, res.name, before, sas, cert_peers)
        changes.append(change)
    for address, sr in stored.items():
        if address in desired.resources:
            continue
        before = public(json.loads(sr.data))
        change = Change(
            address,
            sr.kind,
            sr.name,
            Action.DELETE,
            before=before,
            sensitive=[a.rsplit("#", 1)[1] for a in snap.secrets if a.startswith(address + "#")],
            affected_sas=_affected(sr.kind, sr.name, before, sas, cert_peers),
        )
        if sr.managed or prune:
            change.reason = "no longer in the configuration" if sr.managed else "--prune"
            changes.append(change)
        else:
            change.action = Action.NOOP
            change.reason = "not managed by ipsecconf; kept (use --prune to delete)"
            drift.append(change)
    return changes, drift, unchanged


def _sensitive(res: Resource, snap: Snapshot, fingerprint: Fingerprinter) -> list[str]:
    out = []
    for fname, value in res.secrets.items():
        key = secret_address(res.address, fname)
        stored = snap.secrets.get(key)
        if stored is None or stored.fingerprint != fingerprint(key, value.value):
            out.append(fname)
    prefix = res.address + "#"
    for address in snap.secrets:
        if address.startswith(prefix) and address[len(prefix) :] not in res.secrets:
            out.append(address[len(prefix) :])
    return sorted(out)


def diff(
    desired: DesiredState, snap: Snapshot, fingerprint: Fingerprinter, *, prune: bool = False
) -> Plan:
    """The plan that takes the stored state to the desired one."""
    sas = _SaIndex(snap.sas)
    pc, pd, pu = _diff_policies(desired, snap, prune, sas)
    rc, rd, ru = _diff_resources(desired, snap, fingerprint, prune, sas)
    changes = rc + pc
    changes.sort(key=lambda c: (KIND_ORDER.get(c.kind, 9), c.address))
    drift = sorted(rd + pd, key=lambda c: c.address)
    return Plan(snap.lineage, snap.serial, changes, drift, pu + ru, prune=prune)
