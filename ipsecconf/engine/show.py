"""What ``ipsecconf show`` reports, as JSON-friendly data (the CLI formats it).

Never includes secret values: certificates show their public facts, secrets are not
read at all.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from ipsecconf.errors import UsageError
from ipsecconf.model.spd import PolicyRow
from ipsecconf.state.records import HistoryEntry, SaRecord, StoredPolicy, StoredResource

WHAT = ("policies", "sas", "certs", "stats", "history")


class _Source(Protocol):
    def policies(self) -> list[StoredPolicy]: ...
    def sas(self) -> list[SaRecord]: ...
    def resources(self, kind: str) -> list[StoredResource]: ...
    def counters(self) -> dict[str, int]: ...
    def history(self, limit: int | None = None) -> list[HistoryEntry]: ...


def policies(src: _Source) -> list[dict[str, Any]]:
    """SPD rows in SPD order, with index numbers and the managed flag."""
    rows = []
    for sp in src.policies():
        d = json.loads(sp.data)
        rows.append((PolicyRow.from_dict(d).order_key(), sp, d))
    rows.sort(key=lambda t: t[0])
    return [{"index": sp.idx, "name": sp.name, "managed": sp.managed, **d} for _, sp, d in rows]


def certs(src: _Source) -> list[dict[str, Any]]:
    """Certificates: node first, then intermediates and roots."""
    out = []
    for r in src.resources("cert"):
        d = json.loads(r.data)
        role = r.name.split(".", 1)[0]
        out.append(
            {
                "name": r.name,
                "role": role,
                "own": role == "node",
                "managed": r.managed,
                "source": d.get("_source"),
                **{k: v for k, v in d.items() if not k.startswith("_")},
            }
        )
    order = {"node": 0, "intermediate": 1, "root": 2}
    out.sort(key=lambda c: (order.get(c["role"], 3), c["name"]))
    return out


def stats(src: _Source) -> dict[str, Any]:
    """Global counters and SA counts by state."""
    sas = src.sas()
    by_state: dict[str, int] = {}
    for sa in sas:
        by_state[sa.state] = by_state.get(sa.state, 0) + 1
    return {"counters": src.counters(), "sas": len(sas), "sas_by_state": by_state}


def history(src: _Source) -> list[dict[str, Any]]:
    """Applies, newest first."""
    return [
        {
            "id": h.id,
            "at": h.at,
            "who": h.who,
            "command": h.command,
            "serial": h.serial,
            "plan_digest": h.plan_digest,
            "summary": h.summary,
        }
        for h in src.history()
    ]


def collect(src: _Source, what: str) -> Any:
    """The data of one ``show`` subject."""
    if what == "policies":
        return policies(src)
    if what == "sas":
        return [sa.as_dict() for sa in src.sas()]
    if what == "certs":
        return certs(src)
    if what == "stats":
        return stats(src)
    if what == "history":
        return history(src)
    raise UsageError(f"show: unknown subject {what!r}; use one of {', '.join(WHAT)}")
