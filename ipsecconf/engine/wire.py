"""JSON forms of what crosses the control socket: snapshots, SA records, plans, desired
states (with resolved secret values, base64), apply outcomes.

Both ends use these functions, so each value has one encoder and one decoder.  Secret
values appear only in :func:`desired_to_json` output, which goes only over the engine's
0600 control socket; nothing here logs or formats them.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from ipsecconf.engine.apply import ApplyOutcome
from ipsecconf.plan.desired import DesiredState, Resource, SecretValue
from ipsecconf.plan.model import Action, AffectedSa, Change, FieldChange, Plan
from ipsecconf.state.records import (
    HistoryEntry,
    SaRecord,
    Snapshot,
    StoredPolicy,
    StoredResource,
    StoredSecret,
)


def b64(data: bytes) -> str:
    """Bytes as base64 text."""
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    """Inverse of :func:`b64`."""
    return base64.b64decode(text.encode("ascii"), validate=True)


def as_json(value: Any) -> Any:
    """A dataclass (or list of them) as plain JSON data."""
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def policies_from(data: list[dict[str, Any]]) -> list[StoredPolicy]:
    """SPD rows."""
    return [StoredPolicy(**d) for d in data]


def sas_from(data: list[dict[str, Any]]) -> list[SaRecord]:
    """SAD rows."""
    return [SaRecord(**d) for d in data]


def resources_from(data: list[dict[str, Any]]) -> list[StoredResource]:
    """Resources."""
    return [StoredResource(**d) for d in data]


def history_from(data: list[dict[str, Any]]) -> list[HistoryEntry]:
    """Apply history."""
    return [HistoryEntry(**d) for d in data]


def snapshot_to_json(s: Snapshot) -> dict[str, Any]:
    """A snapshot (no secret values: secrets carry fingerprints)."""
    return {
        "lineage": s.lineage,
        "serial": s.serial,
        "policies": [dataclasses.asdict(p) for p in s.policies.values()],
        "resources": [dataclasses.asdict(r) for r in s.resources.values()],
        "secrets": [dataclasses.asdict(x) for x in s.secrets.values()],
        "sas": [dataclasses.asdict(x) for x in s.sas],
    }


def snapshot_from_json(d: dict[str, Any]) -> Snapshot:
    """Inverse of :func:`snapshot_to_json`."""
    return Snapshot(
        lineage=d["lineage"],
        serial=int(d["serial"]),
        policies={p["name"]: StoredPolicy(**p) for p in d["policies"]},
        resources={(r["kind"], r["name"]): StoredResource(**r) for r in d["resources"]},
        secrets={x["address"]: StoredSecret(**x) for x in d["secrets"]},
        sas=sas_from(d["sas"]),
    )


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """A plan (it holds fingerprints and public data only)."""
    return dataclasses.asdict(plan)


def _change(d: dict[str, Any]) -> Change:
    return Change(
        **{
            **d,
            "action": Action(d["action"]),
            "fields": [FieldChange(**f) for f in d["fields"]],
            "affected_sas": [AffectedSa(**a) for a in d["affected_sas"]],
        }
    )


def plan_from_json(d: dict[str, Any]) -> Plan:
    """Inverse of :func:`plan_to_json`."""
    return Plan(
        **{
            **d,
            "changes": [_change(c) for c in d["changes"]],
            "drift": [_change(c) for c in d["drift"]],
        }
    )


def desired_to_json(desired: DesiredState) -> dict[str, Any]:
    """A desired state *with its secret values*: only for the control socket."""
    return {
        "policies": desired.policies,
        "resources": [
            {
                "kind": r.kind,
                "name": r.name,
                "data": r.data,
                "secrets": {
                    f: {"value": b64(v.value), "reference": v.reference}
                    for f, v in r.secrets.items()
                },
            }
            for r in desired.resources.values()
        ],
    }


def desired_from_json(d: dict[str, Any]) -> DesiredState:
    """Inverse of :func:`desired_to_json`."""
    resources: dict[str, Resource] = {}
    for r in d["resources"]:
        res = Resource(
            r["kind"],
            r["name"],
            r["data"],
            {f: SecretValue(unb64(v["value"]), v["reference"]) for f, v in r["secrets"].items()},
        )
        resources[res.address] = res
    return DesiredState(dict(d["policies"]), resources)


def outcome_from_json(d: dict[str, Any]) -> ApplyOutcome:
    """An apply outcome."""
    return ApplyOutcome(**d)
