"""The plan for programs: JSON with ``format_version`` (schemas/plan.schema.json).

Shaped like Terraform's JSON plan: ``resource_changes[].change.actions`` is a list
(``["delete", "create"]`` for a replace), with ``before``/``after`` and sensitivity masks
``before_sensitive``/``after_sensitive`` naming secret fields whose values are never
included.  ``format_version`` is ``major.minor``: minor adds fields, major breaks.
"""

from __future__ import annotations

from typing import Any

from ipsecconf import __version__
from ipsecconf.plan.model import FORMAT_VERSION, Action, Change, Plan


def _change(c: Change) -> dict[str, Any]:
    mask = dict.fromkeys(c.sensitive, True)
    return {
        "address": c.address,
        "kind": c.kind,
        "name": c.name,
        "index": c.index,
        "previous_address": c.previous_address,
        "action_reason": c.reason,
        "change": {
            "actions": c.action.json_actions,
            "before": c.before,
            "after": c.after,
            "before_sensitive": mask if c.action is not Action.CREATE else {},
            "after_sensitive": mask if c.action is not Action.DELETE else {},
            "replace_paths": [[p] for p in c.replace_fields],
        },
        "fields": [
            {
                "path": f.path,
                "before": f.before,
                "after": f.after,
                "forces_replacement": f.forces_replacement,
            }
            for f in c.fields
        ],
        "affected_sas": [
            {
                "id": s.id,
                "spi": s.spi,
                "protocol": s.protocol,
                "source": s.source,
                "destination": s.destination,
                "state": s.state,
            }
            for s in c.affected_sas
        ],
    }


def render(plan: Plan) -> dict[str, Any]:
    """The JSON document (a dict ready for ``json.dump``)."""
    s = plan.summary()
    return {
        "format_version": FORMAT_VERSION,
        "ipsecconf_version": __version__,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "prune": plan.prune,
        "plan_digest": plan.digest(),
        "desired_digest": plan.desired_digest,
        "summary": {
            "add": s.add,
            "change": s.change,
            "destroy": s.destroy,
            "adopt": s.adopt,
            "sas_affected": s.sas_affected,
            "unchanged": s.unchanged,
        },
        "has_changes": plan.has_changes,
        "resource_changes": [_change(c) for c in plan.changes],
        "drift": [_change(c) for c in plan.drift],
    }
