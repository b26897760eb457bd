"""The plan for people, in the style Terraform users know: ``+``, ``~``, ``-/+``, ``-``.

Secrets appear only as "(sensitive value changed)".  Colour is the caller's decision
(only on a terminal); this module returns text and never prints.
"""

from __future__ import annotations

import json
from typing import Any

from ipsecconf.plan.model import Action, Change, FieldChange, Plan

SENSITIVE = "(sensitive value changed)"
_ANSI = {"green": "32", "yellow": "33", "red": "31", "cyan": "36", "bold": "1", "dim": "2"}
_COLOUR = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.REPLACE: "red",
    Action.DELETE: "red",
    Action.NOOP: "cyan",
}
_VERB = {
    Action.CREATE: "will be created",
    Action.UPDATE: "will be updated in place",
    Action.REPLACE: "must be replaced",
    Action.DELETE: "will be destroyed",
    Action.NOOP: "will be adopted",
}


class _Out:
    def __init__(self, colour: bool) -> None:
        self.colour = colour
        self.lines: list[str] = []

    def paint(self, text: str, colour: str) -> str:
        return f"\x1b[{_ANSI[colour]}m{text}\x1b[0m" if self.colour else text

    def add(self, text: str = "") -> None:
        self.lines.append(text)


def _value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if v is None:
        return "null"
    return json.dumps(v, sort_keys=True, separators=(", ", ": "))


def _selectors(sel: list[dict[str, Any]]) -> str:
    parts = []
    for s in sel:
        src = s["source"] + ("" if s["source_ports"] == "any" else f"[{s['source_ports']}]")
        dst = s["destination"] + (
            "" if s["destination_ports"] == "any" else f"[{s['destination_ports']}]"
        )
        parts.append(f"{src} -> {dst} proto {s['protocol']}")
    return "; ".join(parts)


def _attributes(o: _Out, data: dict[str, Any], sign: str, colour: str) -> None:
    for key in sorted(data):
        value = data[key]
        if value is None:
            continue
        shown = _selectors(value) if key == "selectors" else _value(value)
        o.add(f"      {o.paint(sign, colour)} {key}: {shown}")


def _field(o: _Out, f: FieldChange) -> None:
    tail = o.paint("  # forces replacement", "red") if f.forces_replacement else ""
    if f.added:
        o.add(f"      {o.paint('+', 'green')} {f.path}: {_value(f.after)}{tail}")
    elif f.removed:
        o.add(f"      {o.paint('-', 'red')} {f.path}: {_value(f.before)}{tail}")
    else:
        o.add(
            f"      {o.paint('~', 'yellow')} {f.path}: {_value(f.before)} -> "
            f"{_value(f.after)}{tail}"
        )


def _change(o: _Out, c: Change) -> None:
    colour = _COLOUR[c.action]
    verb = _VERB[c.action]
    if c.adopted and c.action is not Action.NOOP:
        verb += ", adopting an unmanaged entry"
    extra = []
    if c.index is not None:
        extra.append(f"index {c.index}")
    if c.previous_address and c.previous_address != c.address:
        extra.append(f"was {c.previous_address}")
    if c.reason and c.action in (Action.REPLACE, Action.NOOP):
        extra.append(c.reason)
    note = f" ({'; '.join(extra)})" if extra else ""
    o.add(o.paint(f"  # {c.address} {verb}{note}", "bold"))
    o.add(f"{o.paint(c.action.symbol.rjust(3), colour)} {c.address}")
    if c.action is Action.CREATE and c.after is not None:
        _attributes(o, c.after, "+", "green")
    elif c.action is Action.DELETE and c.before is not None:
        key = "selectors" if "selectors" in c.before else None
        if key:
            o.add(f"      {o.paint('-', 'red')} selectors: {_selectors(c.before[key])}")
    else:
        for f in c.fields:
            _field(o, f)
    for name in c.sensitive:
        if c.action is Action.CREATE:
            o.add(f"      {o.paint('+', 'green')} {name}: (sensitive value)")
        elif c.action is Action.DELETE:
            o.add(f"      {o.paint('-', 'red')} {name}: (sensitive value)")
        else:
            o.add(f"      {o.paint('~', 'yellow')} {name}: {SENSITIVE}")
    for sa in c.affected_sas:
        o.add(f"      {o.paint('!', 'red')} tears down {sa.describe()}")
    o.add()


def render(plan: Plan, *, colour: bool = False) -> str:
    """The whole plan as text, ending with the summary line."""
    o = _Out(colour)
    if plan.changes:
        o.add("ipsecconf will perform the following actions:")
        o.add()
        for c in plan.changes:
            _change(o, c)
    if plan.drift:
        o.add(
            o.paint(
                f"Drift: {len(plan.drift)} entr{'y' if len(plan.drift) == 1 else 'ies'} "
                "not managed by ipsecconf (kept; plan with --prune to delete):",
                "yellow",
            )
        )
        for c in plan.drift:
            idx = f" (index {c.index})" if c.index is not None else ""
            o.add(f"    {c.address}{idx}")
        o.add()
    summary = plan.summary()
    if not plan.changes:
        o.add(o.paint("No changes. The state matches the configuration.", "green"))
    o.add(o.paint("Plan:", "bold") + f" {summary.line()}.")
    return "\n".join(o.lines) + "\n"
