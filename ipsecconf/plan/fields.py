"""Field-level detail of one changed resource, and which fields force a replacement.

Only resources whose canonical text differs get here, so deepdiff (thorough, slow) runs
on a handful of dicts, never on the whole SPD (DESIGN.md: 9.3 s for 10,000 policies).
"""

from __future__ import annotations

from typing import Any

from ipsecconf.plan.model import FieldChange

REPLACE_FIELDS: dict[str, frozenset[str]] = {
    # An SPD entry's match tuple and its kind of protection are its identity in the
    # dataplane (RFC 4301 SPD, Linux xfrm policy keys): change them and it is a new entry.
    "policy": frozenset({"selectors", "direction", "action", "protocol", "mode"}),
    # A manual SA is immutable once installed: any change is a new SA (delete first, the
    # SPI must stay unique).
    "sa": frozenset(
        {
            "spi",
            "source",
            "destination",
            "protocol",
            "mode",
            "encryption",
            "authentication",
            "replay_window",
            "esn",
            "udp_encapsulation",
        }
    ),
    # A certificate is its fingerprint.
    "cert": frozenset({"fingerprint"}),
}
"""Top-level fields that cannot change in place, by resource kind."""

SECRET_REPLACES = frozenset({"sa"})
"""Kinds whose secret change is a replacement (a manual SA's key cannot change in place)."""


def _path_text(path: list[Any]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def public(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """``data`` without bookkeeping keys (``_source``, ``_pem``): what is compared and shown."""
    if data is None:
        return None
    return {k: v for k, v in data.items() if not k.startswith("_")}


def field_changes(kind: str, before: dict[str, Any], after: dict[str, Any]) -> list[FieldChange]:
    """Every changed attribute path, marked when it forces a replacement."""
    from deepdiff import DeepDiff  # imported lazily: most plans never need it

    replace = REPLACE_FIELDS.get(kind, frozenset())
    tree = DeepDiff(before, after, view="tree")
    out: list[FieldChange] = []
    for report, levels in tree.items():
        for level in levels:
            path = level.path(output_format="list")
            top = str(path[0]) if path else ""
            added = report.endswith("_added")
            removed = report.endswith("_removed")
            out.append(
                FieldChange(
                    path=_path_text(path),
                    before=None if added else level.t1,
                    after=None if removed else level.t2,
                    forces_replacement=top in replace,
                    added=added,
                    removed=removed,
                )
            )
    out.sort(key=lambda f: f.path)
    return out
