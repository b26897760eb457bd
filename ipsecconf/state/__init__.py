"""State layer: the persistent SQLite store (SPD, SAD, certificates, secrets, history).

Entry points: :class:`Store` (open, read, :meth:`Store.transaction`), :class:`Writer`
(the writes of one transaction), :class:`StateLock` (the apply lock) and
:func:`state_path` (where the store lives).
"""

from ipsecconf.state.lock import LockError, LockInfo, StateLock, force_unlock
from ipsecconf.state.paths import kek_material, state_path
from ipsecconf.state.records import (
    COUNTER_NAMES,
    SA_STATES,
    HistoryEntry,
    SaRecord,
    Snapshot,
    StoredPolicy,
    StoredResource,
    StoredSecret,
)
from ipsecconf.state.store import StaleStateError, Store
from ipsecconf.state.writer import Writer, canonical

__all__ = [
    "COUNTER_NAMES",
    "SA_STATES",
    "HistoryEntry",
    "LockError",
    "LockInfo",
    "SaRecord",
    "Snapshot",
    "StaleStateError",
    "StateLock",
    "Store",
    "StoredPolicy",
    "StoredResource",
    "StoredSecret",
    "Writer",
    "canonical",
    "force_unlock",
    "kek_material",
    "state_path",
]
