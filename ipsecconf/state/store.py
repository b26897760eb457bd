"""The SQLite state store: opening it safely, reading it, and its one-writer transactions.

Opening creates the file 0600 before SQLite touches it (and keeps the process umask at
0077 meanwhile, so the ``-wal``/``-shm`` files are private too), sets WAL mode and
``secure_delete`` (deleted secrets are overwritten, not left in free pages), and runs the
forward migrations of :mod:`.schema`.  A new store gets a random lineage and salt; the
serial counts configuration changes (the SAD and counters, which the engine touches all
the time, do not move it, so saved plans stay valid while SAs come and go).

Writes go through :meth:`Store.transaction`, which opens ``BEGIN IMMEDIATE`` (SQLite's
own writer lock), checks the expected lineage/serial, and commits everything or nothing.
Secret values are fingerprinted with HMAC-SHA256 under the store's salt and, when a
key-encryption key is configured, sealed with it (:mod:`ipsecconf.crypto.seal`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator

from ipsecconf.crypto import seal
from ipsecconf.errors import StateError
from ipsecconf.state import schema
from ipsecconf.state.records import (
    COUNTER_NAMES,
    HistoryEntry,
    SaRecord,
    Snapshot,
    StoredPolicy,
    StoredResource,
    StoredSecret,
)
from ipsecconf.state.writer import Writer

_SA_COLUMNS = (
    "id, spi, protocol, source, destination, state, manual, policy, peer, encryption, "
    "authentication, created, updated, bytes, packets, data"
)


class StaleStateError(StateError):
    """The store moved on since the plan was made (lineage or serial differ)."""


def _create_private(path: str) -> None:
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create {directory}: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StateError(f"cannot create the state file {path}: {exc.strerror}") from None
    os.close(fd)


def row_to_sa(r: tuple[object, ...]) -> SaRecord:
    """An :class:`SaRecord` from a ``SELECT {_SA_COLUMNS}`` row."""
    return SaRecord(
        id=int(r[0]),  # type: ignore[call-overload]
        spi=int(r[1]),  # type: ignore[call-overload]
        protocol=str(r[2]),
        source=str(r[3]),
        destination=str(r[4]),
        state=str(r[5]),
        manual=None if r[6] is None else str(r[6]),
        policy=None if r[7] is None else str(r[7]),
        peer=None if r[8] is None else str(r[8]),
        encryption=str(r[9]),
        authentication=str(r[10]),
        created=float(r[11]),  # type: ignore[arg-type]
        updated=float(r[12]),  # type: ignore[arg-type]
        bytes=int(r[13]),  # type: ignore[call-overload]
        packets=int(r[14]),  # type: ignore[call-overload]
        data=json.loads(str(r[15])),
    )


class Store:
    """An open state database."""

    def __init__(self, path: str, conn: sqlite3.Connection, kek: bytes | None) -> None:
        self.path = path
        self.conn = conn
        self._salt = bytes.fromhex(self._meta("salt"))
        self._kek = seal.derive_key(kek, self._salt) if kek is not None else None
        self._check_kek()

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    # -- opening -------------------------------------------------------------------

    @classmethod
    def open(cls, path: str, *, create: bool = True, kek: bytes | None = None) -> Store:
        """Open (and, with ``create``, initialise or migrate) the store at ``path``."""
        if not os.path.exists(path):
            if not create:
                raise StateError(f"no state at {path} (nothing has been applied yet)")
            _create_private(path)
        elif os.path.isdir(path):
            raise StateError(f"{path} is a directory, not a state file")
        old_umask = os.umask(0o077)
        try:
            conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA secure_delete = ON")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                cls._initialise(conn, path)
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise StateError(f"{path} is not a usable state database: {exc}") from None
        finally:
            os.umask(old_umask)
        with contextlib.suppress(OSError):
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
        return cls(path, conn, kek)

    @classmethod
    def empty(cls, path: str, *, kek: bytes | None = None) -> Store:
        """An in-memory, empty store standing for the state at ``path`` that does not
        exist yet: what ``plan`` compares against without creating the file."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        cls._initialise(conn, path)
        return cls(path, conn, kek)

    @staticmethod
    def _initialise(conn: sqlite3.Connection, path: str) -> None:
        current = schema.version(conn)
        if current > schema.SCHEMA_VERSION:
            raise StateError(
                f"{path} has schema version {current}, newer than this ipsecconf understands "
                f"({schema.SCHEMA_VERSION}); upgrade ipsecconf"
            )
        if current == schema.SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = schema.version(conn)  # another process may have migrated meanwhile
            if current < schema.SCHEMA_VERSION:
                schema.migrate(conn, current)
                if current == 0:
                    conn.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [
                            ("lineage", str(uuid.uuid4())),
                            ("serial", "0"),
                            ("salt", os.urandom(32).hex()),
                        ],
                    )
                    conn.executemany(
                        "INSERT INTO counters (name, value) VALUES (?, 0)",
                        [(n,) for n in COUNTER_NAMES],
                    )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta ----------------------------------------------------------------------

    def _meta(self, key: str, default: str | None = None) -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            if default is not None:
                return default
            raise StateError(f"{self.path}: the store has no {key} (damaged?)")
        return str(row[0])

    @property
    def lineage(self) -> str:
        """Fixed at creation: which store this is."""
        return self._meta("lineage")

    @property
    def serial(self) -> int:
        """Bumped by every transaction that changes the configuration."""
        return int(self._meta("serial"))

    def _check_kek(self) -> None:
        stored = self._meta("kek_check", "")
        if self._kek is None or not stored:
            return
        if not hmac.compare_digest(stored, self.kek_check()):
            raise StateError(
                "the key-encryption key does not match the one this store's secrets are sealed with"
            )

    def kek_check(self) -> str:
        """A value that identifies the KEK in use without revealing it."""
        assert self._kek is not None
        return hmac.new(self._kek, b"ipsecconf kek check", hashlib.sha256).hexdigest()

    # -- secrets -------------------------------------------------------------------

    def fingerprint(self, address: str, value: bytes) -> str:
        """Salted fingerprint of a secret: HMAC-SHA256(salt, address NUL value).

        The address is included so that two resources sharing a key do not show it.
        """
        msg = address.encode("utf-8") + b"\0" + value
        return hmac.new(self._salt, msg, hashlib.sha256).hexdigest()

    def digest(self, items: list[str]) -> str:
        """Salted digest of a list of fingerprints (saved plans record only this)."""
        return hmac.new(self._salt, "\n".join(items).encode(), hashlib.sha256).hexdigest()

    def sealed(self) -> bool:
        """True when this store's secrets are sealed with a KEK."""
        return bool(self._meta("kek_check", ""))

    def encode_secret(self, address: str, value: bytes) -> tuple[bytes, bool]:
        """The bytes to store for a secret, and whether they are sealed."""
        if self._kek is None:
            if self.sealed():
                raise StateError(
                    "this store's secrets are sealed with a key-encryption key; set "
                    "IPSECCONF_KEK_FILE (or IPSECCONF_KEK) to write secrets"
                )
            return value, False
        blob = seal.seal(self._kek, value, address.encode("utf-8"), os.urandom(seal.NONCE_BYTES))
        return blob, True

    def secret_value(self, address: str) -> bytes | None:
        """A stored secret's value (for the engine); None when there is none."""
        row = self.conn.execute(
            "SELECT value, sealed FROM secrets WHERE address = ?", (address,)
        ).fetchone()
        if row is None:
            return None
        value, is_sealed = bytes(row[0]), bool(row[1])
        if not is_sealed:
            return value
        if self._kek is None:
            raise StateError(
                f"the secret {address} is sealed; set IPSECCONF_KEK_FILE (or IPSECCONF_KEK)"
            )
        try:
            return seal.unseal(self._kek, value, address.encode("utf-8"))
        except seal.SealError as exc:
            raise StateError(f"the secret {address} cannot be opened: {exc}") from None

    # -- reads ---------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The configuration and SAD, read in one transaction."""
        c = self.conn
        c.execute("BEGIN")
        try:
            lineage, serial = self.lineage, self.serial
            policies = {
                r[1]: StoredPolicy(r[0], r[1], r[2], r[3], bool(r[4]), r[5])
                for r in c.execute(
                    "SELECT idx, name, policy, direction, managed, data FROM policies"
                )
            }
            resources = {
                (r[0], r[1]): StoredResource(r[0], r[1], bool(r[2]), r[3])
                for r in c.execute("SELECT kind, name, managed, data FROM resources")
            }
            secrets = {
                r[0]: StoredSecret(r[0], r[1], r[2], bool(r[3]))
                for r in c.execute("SELECT address, fingerprint, reference, sealed FROM secrets")
            }
            sas = [row_to_sa(r) for r in c.execute(f"SELECT {_SA_COLUMNS} FROM sas ORDER BY id")]
        finally:
            c.execute("COMMIT")
        return Snapshot(lineage, serial, policies, resources, secrets, sas)

    def policies(self) -> list[StoredPolicy]:
        """Every SPD row, by index number."""
        return [
            StoredPolicy(r[0], r[1], r[2], r[3], bool(r[4]), r[5])
            for r in self.conn.execute(
                "SELECT idx, name, policy, direction, managed, data FROM policies ORDER BY idx"
            )
        ]

    def sas(self) -> list[SaRecord]:
        """Every SAD entry, oldest first."""
        return [
            row_to_sa(r) for r in self.conn.execute(f"SELECT {_SA_COLUMNS} FROM sas ORDER BY id")
        ]

    def resources(self, kind: str) -> list[StoredResource]:
        """Resources of one kind, by name."""
        return [
            StoredResource(r[0], r[1], bool(r[2]), r[3])
            for r in self.conn.execute(
                "SELECT kind, name, managed, data FROM resources WHERE kind = ? ORDER BY name",
                (kind,),
            )
        ]

    def counters(self) -> dict[str, int]:
        """The global counters."""
        return {str(r[0]): int(r[1]) for r in self.conn.execute("SELECT name, value FROM counters")}

    def history(self, limit: int | None = None) -> list[HistoryEntry]:
        """Applies, newest first."""
        sql = (
            "SELECT id, at, who, command, serial, plan_digest, summary FROM history "
            "ORDER BY id DESC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [HistoryEntry(*r) for r in self.conn.execute(sql)]

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: ``ok`` or the problems found."""
        return "\n".join(str(r[0]) for r in self.conn.execute("PRAGMA integrity_check"))

    # -- writes --------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, expect: tuple[str, int] | None = None) -> Iterator[Writer]:
        """One all-or-nothing write; ``expect`` = (lineage, serial) the caller planned against."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            if expect is not None:
                lineage, serial = self.lineage, self.serial
                if lineage != expect[0]:
                    raise StaleStateError(
                        f"the plan was made for another state (lineage {expect[0]}), not this "
                        f"one ({lineage}); run plan again against {self.path}"
                    )
                if serial != expect[1]:
                    raise StaleStateError(
                        f"saved plan is stale: it was made at serial {expect[1]}, the state is "
                        f"now at serial {serial} (changed since); run plan again"
                    )
            writer = Writer(self)
            yield writer
            writer.finish()
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
