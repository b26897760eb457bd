"""The engine's record of its SAs and counters in the store (``ipsec sa show``, ``stats``).

Every negotiated SA gets a store row: Larval when its SPI is reserved, Mature once
installed, Dying while its rekey runs, Dead when deleted or expired -- and Dead rows are
removed 60 seconds later, as the SAD forgets them.  Traffic counts are copied from the
dataplane's counters about once a second as deltas (so ``ipsec stats -z`` can zero the
store without touching the dataplane), global counters likewise.  Store writes are
small transactions; the SAD and counters never move the store's serial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ipsecconf.esp.errors import DropReason
from ipsecconf.esp.sa import SaState, SecurityAssociation
from ipsecconf.esp.sad import DEAD_VISIBLE_SECONDS, LarvalSa, SaKey, SaTable, sa_key
from ipsecconf.esp.spd import Direction
from ipsecconf.state.store import Store
from ipsecconf.state.writer import canonical

_DROP_COUNTERS: dict[DropReason, str] = {
    DropReason.INTEGRITY_FAILED: "integrity_failures",
    DropReason.REPLAYED: "replay_failures",
    DropReason.TOO_OLD: "replay_failures",
    DropReason.POLICY_DISCARD: "policy_drops",
    DropReason.POLICY_MISMATCH: "policy_drops",
    DropReason.CLEAR_PROTECTED: "policy_drops",
    DropReason.NAT_KEEPALIVE: "",
}


@dataclass(slots=True)
class _Row:
    id: int
    state: str
    packets: int = 0
    bytes: int = 0
    outbound: bool = False


class SaBook:
    """Store rows of the live SAs, and the counters' last copied values."""

    def __init__(self, store: Store, wall: Callable[[], float]) -> None:
        self.store = store
        self._wall = wall
        self._rows: dict[SaKey, _Row] = {}
        self._drops: dict[DropReason, int] = {}
        self._pending: dict[str, int] = {}

    def forget_previous(self) -> int:
        """At start: SAs of an earlier run are gone (SAs are renegotiated after a restart);
        they turn Dead and stay visible 60 s.  Returns how many were live."""
        now = self._wall()
        with self.store.transaction() as w:
            rows = self.store.conn.execute(
                "SELECT id FROM sas WHERE manual IS NULL AND state != 'D'"
            ).fetchall()
            w.set_sa_state([int(r[0]) for r in rows], "D", now=now)
        return len(rows)

    def larval(self, larval: LarvalSa, source: str, policy: str, peer: str) -> None:
        """A reserved SPI (state L)."""
        with self.store.transaction() as w:
            sid = w.add_sa(
                spi=larval.spi,
                protocol=larval.protocol.name.lower(),
                source=source,
                destination=larval.dst,
                state="L",
                policy=policy,
                peer=peer,
                now=self._wall(),
            )
        self._rows[sa_key(larval.spi, larval.dst, larval.protocol)] = _Row(sid, "L")

    def installed(self, sa: SecurityAssociation, policy: str, peer: str) -> None:
        """An installed SA (state M): the Larval row of its SPI becomes it, or a new row."""
        c = sa.config
        key = sa_key(c.spi, c.dst, c.protocol)
        details: dict[str, Any] = {
            "direction": str(c.direction),
            "mode": str(c.mode),
            "reqid": c.reqid,
            "replay_window": c.replay_window,
            "esn": c.esn,
            "udp_encapsulation": c.encap is not None,
            "lifetime": {
                "soft_seconds": c.lifetimes.soft_seconds,
                "hard_seconds": c.lifetimes.hard_seconds,
                "hard_bytes": c.lifetimes.hard_bytes,
            },
        }
        enc = c.cipher.name if c.cipher is not None else "null"
        auth = c.integrity.name
        now = self._wall()
        old = self._rows.get(key)
        with self.store.transaction() as w:
            if old is not None:
                self.store.conn.execute(
                    "UPDATE sas SET state = 'M', source = ?, encryption = ?, authentication = ?,"
                    " data = ?, updated = ?, policy = ?, peer = ? WHERE id = ?",
                    (c.src, enc, auth, _json(details), now, policy, peer, old.id),
                )
                sid = old.id
            else:
                sid = w.add_sa(
                    spi=c.spi,
                    protocol=c.protocol.name.lower(),
                    source=c.src,
                    destination=c.dst,
                    state="M",
                    policy=policy,
                    peer=peer,
                    encryption=enc,
                    authentication=auth,
                    data=details,
                    now=now,
                )
        self._rows[key] = _Row(sid, "M", outbound=c.direction is Direction.OUT)

    def adopt_manual(self, sa: SecurityAssociation, name: str) -> None:
        """A manual SA installed in the dataplane: its row (written by apply, Mature) gets
        the traffic counts from now on."""
        found = self.store.conn.execute("SELECT id FROM sas WHERE manual = ?", (name,)).fetchone()
        if found is not None:
            c = sa.config
            self._rows[sa_key(c.spi, c.dst, c.protocol)] = _Row(
                int(found[0]), "M", outbound=c.direction is Direction.OUT
            )

    def set_state(self, keys: Iterable[SaKey], state: str) -> None:
        """Move SAs to ``state`` (``d`` when a rekey starts, ``D`` when deleted)."""
        ids = []
        for key in keys:
            row = self._rows.get(key)
            if row is not None and row.state != state:
                row.state = state
                ids.append(row.id)
        if ids:
            with self.store.transaction() as w:
                w.set_sa_state(ids, state, now=self._wall())

    def release(self, key: SaKey) -> None:
        """A reservation that never became an SA: its row goes."""
        row = self._rows.pop(key, None)
        if row is not None:
            with self.store.transaction() as w:
                w.delete_sas([row.id])

    def count(self, name: str, n: int = 1) -> None:
        """Add to a global counter at the next :meth:`sync`."""
        self._pending[name] = self._pending.get(name, 0) + n

    def sync(self, sad: SaTable, drops: dict[DropReason, int]) -> None:
        """Copy states and counter deltas into the store; purge Dead rows after 60 s."""
        deltas = dict(self._pending)
        self._pending.clear()
        traffic: list[tuple[int, int, int]] = []
        states: dict[str, list[int]] = {}
        live: set[SaKey] = set()
        for sa in sad:
            if isinstance(sa, LarvalSa):
                live.add(sa_key(sa.spi, sa.dst, sa.protocol))
                continue
            key = sa_key(sa.config.spi, sa.config.dst, sa.config.protocol)
            live.add(key)
            row = self._rows.get(key)
            if row is None:
                continue
            letter = sa.state.value
            if letter != row.state and not (row.state == "d" and sa.state is SaState.MATURE):
                row.state = letter
                states.setdefault(letter, []).append(row.id)
            c = sa.counters
            dp, db = c.packets - row.packets, c.bytes - row.bytes
            if dp or db:
                row.packets, row.bytes = c.packets, c.bytes
                traffic.append((row.id, db, dp))
                side = "out" if row.outbound else "in"
                deltas[f"packets_{side}"] = deltas.get(f"packets_{side}", 0) + dp
                deltas[f"bytes_{side}"] = deltas.get(f"bytes_{side}", 0) + db
        for reason, value in drops.items():
            d = value - self._drops.get(reason, 0)
            if d:
                self._drops[reason] = value
                name = _DROP_COUNTERS.get(reason, "esp_errors")
                if name:
                    deltas[name] = deltas.get(name, 0) + d
        gone = [k for k in self._rows if k not in live]
        now = self._wall()
        with self.store.transaction() as w:
            for letter, ids in states.items():
                w.set_sa_state(ids, letter, now=now)
            for sid, db, dp in traffic:
                w.add_sa_traffic(sid, db, dp)
            if deltas := {k: v for k, v in deltas.items() if v}:
                w.add_counters(deltas)
            for key in gone:
                row = self._rows.pop(key)
                if row.state != "D":
                    w.set_sa_state([row.id], "D", now=now)
            self.store.conn.execute(
                "DELETE FROM sas WHERE manual IS NULL AND state = 'D' AND updated < ?",
                (now - DEAD_VISIBLE_SECONDS,),
            )

    def zero(self) -> None:
        """``ipsec stats -z``: the store's counters to zero (deltas continue from here)."""
        with self.store.transaction() as w:
            w.zero_counters()


def _json(data: dict[str, Any]) -> str:
    return canonical(data)
