"""Write operations inside one store transaction (see :meth:`Store.transaction`).

Used by apply (the planner's changes), by the classic ``ipsec`` commands (imperative,
unmanaged entries) and by the engine (the SAD and counters).  Configuration writes mark
the transaction so that :meth:`finish` bumps the serial once; SAD and counter writes do
not, so that negotiated SAs coming and going never make a saved plan stale.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ipsecconf.errors import StateError
from ipsecconf.model.spd import PolicyRow
from ipsecconf.state.records import COUNTER_NAMES

if TYPE_CHECKING:
    from ipsecconf.state.store import Store


_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode


def canonical(data: dict[str, Any]) -> str:
    """The canonical JSON text the store keeps (sorted keys, no spaces)."""
    return _ENCODE(data)


class Writer:
    """Writes of one transaction.  Do not keep it past the ``with`` block."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.conn = store.conn
        self.config_changed = False

    def finish(self) -> None:
        """Bump the serial when the configuration changed (called before COMMIT)."""
        if self.config_changed:
            self.conn.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'serial'"
            )
            if self.store._kek is not None:
                self._seal_remaining()

    def _seal_remaining(self) -> None:
        # A KEK given to a store that had none: seal what was stored in clear (secure_delete
        # overwrites the old pages) and record which key the store is sealed with.
        plain = self.conn.execute("SELECT address, value FROM secrets WHERE sealed = 0").fetchall()
        for address, value in plain:
            blob, _ = self.store.encode_secret(str(address), bytes(value))
            self.conn.execute(
                "UPDATE secrets SET value = ?, sealed = 1 WHERE address = ?", (blob, address)
            )
        if not self.store.sealed():
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('kek_check', ?)", (self.store.kek_check(),)
            )

    # -- SPD -------------------------------------------------------------------------

    def put_policies(self, items: Iterable[tuple[str, str, str, bool, str]]) -> None:
        """Insert or update rows ``(name, policy, direction, managed, data)``.

        An existing name keeps its index number: that is what makes ``-i`` stable.
        """
        self.config_changed = True
        self.conn.executemany(
            "INSERT INTO policies (name, policy, direction, managed, data) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET policy = excluded.policy, "
            "direction = excluded.direction, managed = excluded.managed, data = excluded.data",
            ((n, p, d, int(m), data) for n, p, d, m, data in items),
        )

    def rename_policy(self, old: str, new: str, policy: str, *, managed: bool = True) -> None:
        """Adopt a row under a new name, keeping its index number."""
        self.config_changed = True
        cur = self.conn.execute(
            "UPDATE policies SET name = ?, policy = ?, managed = ? WHERE name = ?",
            (new, policy, int(managed), old),
        )
        if cur.rowcount != 1:
            raise StateError(f"no SPD entry named {old}")

    def delete_policies(self, names: Iterable[str]) -> None:
        """Remove rows by name."""
        self.config_changed = True
        self.conn.executemany("DELETE FROM policies WHERE name = ?", ((n,) for n in names))

    def add_policies(self, rows: Sequence[PolicyRow], *, managed: bool = False) -> list[int]:
        """Insert new rows (``ipsec policy add``); returns their index numbers.

        A name that exists already is an error: imperative adds never overwrite.
        """
        self.config_changed = True
        out = []
        for row in rows:
            try:
                cur = self.conn.execute(
                    "INSERT INTO policies (name, policy, direction, managed, data) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (row.name, row.policy, row.direction, int(managed), canonical(row.to_dict())),
                )
            except sqlite3.IntegrityError as exc:
                raise StateError(f"an SPD entry named {row.name} exists already") from exc
            out.append(int(cur.lastrowid or 0))
        return out

    def delete_policy_indexes(self, indexes: Iterable[int]) -> list[str]:
        """Remove rows by index number (``ipsec policy delete -i``); returns their names."""
        names = []
        for idx in indexes:
            row = self.conn.execute("SELECT name FROM policies WHERE idx = ?", (idx,)).fetchone()
            if row is None:
                raise StateError(f"no SPD entry with index {idx}")
            names.append(str(row[0]))
        self.delete_policies(names)
        return names

    def new_policy_name(self, prefix: str = "ipsec") -> str:
        """A fresh policy (pair) name for an imperative add, e.g. ``ipsec-7``."""
        row = self.conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'policies'"
        ).fetchone()
        n = (int(row[0]) if row else 0) + 1
        while self.conn.execute(
            "SELECT 1 FROM policies WHERE policy = ?", (f"{prefix}-{n}",)
        ).fetchone():
            n += 1
        return f"{prefix}-{n}"

    # -- other resources -------------------------------------------------------------

    def put_resources(self, items: Iterable[tuple[str, str, bool, str]]) -> None:
        """Insert or replace resources ``(kind, name, managed, data)``."""
        self.config_changed = True
        self.conn.executemany(
            "INSERT OR REPLACE INTO resources (kind, name, managed, data) VALUES (?, ?, ?, ?)",
            ((k, n, int(m), d) for k, n, m, d in items),
        )

    def delete_resources(self, keys: Iterable[tuple[str, str]]) -> None:
        """Remove resources by ``(kind, name)``."""
        self.config_changed = True
        self.conn.executemany("DELETE FROM resources WHERE kind = ? AND name = ?", keys)

    def put_secret(self, address: str, value: bytes, reference: str | None) -> str:
        """Store a secret (sealed when a KEK is set); returns its fingerprint."""
        self.config_changed = True
        fp = self.store.fingerprint(address, value)
        blob, is_sealed = self.store.encode_secret(address, value)
        self.conn.execute(
            "INSERT OR REPLACE INTO secrets (address, fingerprint, value, sealed, reference) "
            "VALUES (?, ?, ?, ?, ?)",
            (address, fp, blob, int(is_sealed), reference),
        )
        return fp

    def delete_secrets_of(self, address: str) -> None:
        """Remove every secret of one resource (``<address>#<field>``)."""
        self.config_changed = True
        prefix = address + "#"
        self.conn.execute(
            "DELETE FROM secrets WHERE substr(address, 1, ?) = ?", (len(prefix), prefix)
        )

    def delete_secrets(self, addresses: Iterable[str]) -> None:
        """Remove secrets (secure_delete overwrites their pages)."""
        self.config_changed = True
        self.conn.executemany("DELETE FROM secrets WHERE address = ?", ((a,) for a in addresses))

    # -- SAD and counters (runtime: no serial bump) ---------------------------------

    def add_sa(
        self,
        *,
        spi: int,
        protocol: str,
        source: str,
        destination: str,
        state: str = "L",
        manual: str | None = None,
        policy: str | None = None,
        peer: str | None = None,
        encryption: str = "null",
        authentication: str = "none",
        data: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> int:
        """Record an SA; returns its id."""
        t = time.time() if now is None else now
        cur = self.conn.execute(
            "INSERT INTO sas (spi, protocol, source, destination, state, manual, policy, peer, "
            "encryption, authentication, created, updated, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                spi,
                protocol,
                source,
                destination,
                state,
                manual,
                policy,
                peer,
                encryption,
                authentication,
                t,
                t,
                canonical(data or {}),
            ),
        )
        return int(cur.lastrowid or 0)

    def set_sa_state(self, sa_ids: Iterable[int], state: str, now: float | None = None) -> None:
        """Move SAs to L, M, d or D."""
        t = time.time() if now is None else now
        self.conn.executemany(
            "UPDATE sas SET state = ?, updated = ? WHERE id = ?", ((state, t, i) for i in sa_ids)
        )

    def delete_sas(self, sa_ids: Iterable[int]) -> None:
        """Remove SAs."""
        self.conn.executemany("DELETE FROM sas WHERE id = ?", ((i,) for i in sa_ids))

    def delete_manual_sa(self, name: str) -> None:
        """Remove the SAD entry of a manual SA definition."""
        self.conn.execute("DELETE FROM sas WHERE manual = ?", (name,))

    def add_sa_traffic(self, sa_id: int, nbytes: int, packets: int) -> None:
        """Add to an SA's byte and packet counts."""
        self.conn.execute(
            "UPDATE sas SET bytes = bytes + ?, packets = packets + ? WHERE id = ?",
            (nbytes, packets, sa_id),
        )

    def add_counters(self, deltas: dict[str, int]) -> None:
        """Add to global counters (names from :data:`COUNTER_NAMES`)."""
        unknown = set(deltas) - set(COUNTER_NAMES)
        if unknown:
            raise StateError(f"unknown counters: {', '.join(sorted(unknown))}")
        self.conn.executemany(
            "UPDATE counters SET value = value + ? WHERE name = ?",
            ((v, k) for k, v in deltas.items()),
        )

    def zero_counters(self) -> None:
        """``ipsec stats -z``: global counters and per-SA traffic back to zero."""
        self.conn.execute("UPDATE counters SET value = 0")
        self.conn.execute("UPDATE sas SET bytes = 0, packets = 0")

    # -- history ---------------------------------------------------------------------

    def add_history(self, *, who: str, command: str, plan_digest: str, summary: str) -> None:
        """Record an apply (serial as it will be after this transaction)."""
        serial = self.store.serial + (1 if self.config_changed else 0)
        at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.conn.execute(
            "INSERT INTO history (at, who, command, serial, plan_digest, summary) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (at, who, command, serial, plan_digest, summary),
        )
