# Copyright: ipsecconf contributors
# SPDX-License-Identifier: Apache-2.0
"""Turn ipsecconf's JSON plan into Ansible's ``diff`` and into readable messages.

Pure functions over plain dicts (the JSON plan of ``ipsecconf.plan.render_json`` and the
``Diagnostic.as_dict()`` form), so that this file imports nothing but the standard
library and the module alone decides how ipsecconf is reached.

Secrets: the JSON plan never holds a secret value, only the names of secret fields whose
fingerprint changed (``before_sensitive``/``after_sensitive``).  The diff shows those
fields as ``(sensitive value)`` before and ``(sensitive value changed)`` after, so that a
rotated pre-shared key is a visible ``-``/``+`` line without its value.
"""

from __future__ import annotations

import json
from typing import Any

SENSITIVE = "(sensitive value)"
SENSITIVE_CHANGED = "(sensitive value changed)"


def _scalar(value: Any) -> str:
    if isinstance(value, str) and value in (SENSITIVE, SENSITIVE_CHANGED):
        return value
    return json.dumps(value, sort_keys=True)


def _lines(value: Any, indent: int) -> list[str]:
    pad = "  " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for key in sorted(value):
            item = value[key]
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{key}:")
                out.extend(_lines(item, indent + 1))
            else:
                out.append(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)) and item:
                nested = _lines(item, indent + 1)
                out.append(f"{pad}- {nested[0].lstrip()}")
                out.extend(nested[1:])
            else:
                out.append(f"{pad}- {_scalar(item)}")
    else:
        out.append(pad + _scalar(value))
    return out


def render_resource(data: dict[str, Any] | None) -> str:
    """A resource as YAML-like text, keys sorted (what a unified diff compares)."""
    if data is None:
        return ""
    return "\n".join(_lines(data, 0)) + "\n"


def _masked(
    data: dict[str, Any] | None, sensitive: dict[str, Any], marker: str
) -> dict[str, Any] | None:
    if data is None:
        return None
    out = dict(data)
    for name in sensitive:
        out[name] = marker
    return out


def _header(address: str, actions: list[str], change: dict[str, Any]) -> str:
    action = "replace" if actions == ["delete", "create"] else actions[0]
    text = f"{address} ({action})"
    paths = [".".join(str(p) for p in path) for path in change.get("replace_paths") or []]
    if paths:
        text += f", forced by: {', '.join(paths)}"
    return text


def diff_entries(plan: dict[str, Any]) -> list[dict[str, str]]:
    """One Ansible diff dict (``before``/``after`` text with headers) per changed resource."""
    entries: list[dict[str, str]] = []
    for rc in plan.get("resource_changes", []):
        change = rc["change"]
        actions = list(change["actions"])
        before = _masked(change.get("before"), change.get("before_sensitive") or {}, SENSITIVE)
        after_marker = SENSITIVE if actions == ["create"] else SENSITIVE_CHANGED
        after = _masked(change.get("after"), change.get("after_sensitive") or {}, after_marker)
        header = _header(rc["address"], actions, change)
        previous = rc.get("previous_address")
        if previous:
            header += f", adopts {previous}"
        for sa in rc.get("affected_sas") or []:
            header += (
                f"; tears down SA {sa['protocol']} spi 0x{int(sa['spi']):08x} "
                f"{sa['source']} -> {sa['destination']}"
            )
        entries.append(
            {
                "before_header": header,
                "after_header": header,
                "before": render_resource(before),
                "after": render_resource(after),
            }
        )
    return entries


def summary_line(summary: dict[str, Any]) -> str:
    """``N to add, N to change, N to destroy, N SAs affected`` (as ipsecconf prints it)."""
    text = (
        f"{summary['add']} to add, {summary['change']} to change, "
        f"{summary['destroy']} to destroy, {summary['sas_affected']} SAs affected"
    )
    if summary.get("adopt"):
        text += f", {summary['adopt']} to adopt"
    return text


def diagnostic_text(diag: dict[str, Any]) -> str:
    """``file:line:col: severity: message`` for one diagnostic in its JSON form."""
    where = diag.get("path") or "<input>"
    if diag.get("line") is not None:
        where += f":{diag['line']}"
        if diag.get("column") is not None:
            where += f":{diag['column']}"
    return f"{where}: {diag['severity']}: {diag['message']}"


def rename_path(diags: list[dict[str, Any]], old: str, new: str) -> list[dict[str, Any]]:
    """The diagnostics with the file ``old`` shown as ``new`` (the inline config's temp file)."""
    return [dict(d, path=new) if d.get("path") == old else d for d in diags]
