"""The store's SQL schema and its forward migrations.

``PRAGMA user_version`` holds the schema version.  Opening a store runs every migration
above its version, in one transaction, so a store is never left half-migrated.  A store
written by a newer ipsecconf (a version above :data:`SCHEMA_VERSION`) is refused rather
than guessed at.  Migrations are append-only: never edit a released one, add the next.

Tables
------
``meta``        key/value: lineage, serial, salt (for secret fingerprints), kek_check.
``policies``    SPD rows.  ``idx`` is the seed's index number (``-i``): AUTOINCREMENT, so an
                index is never handed out twice, and it stays with the row's name across
                applies.  ``managed`` is 0 for rows made imperatively (``ipsec policy add``).
                ``data`` is the canonical JSON of :class:`~ipsecconf.model.spd.PolicyRow`.
``resources``   peers, PSKs, certificates, manual SA definitions and settings, by
                ``(kind, name)`` with canonical JSON ``data`` (never a secret value).
``secrets``     secret values by address, with their salted fingerprint and, for export,
                the reference they came from (``env:NAME`` / ``file:PATH``).
``sas``         the SAD: manual SAs (``manual`` = name) and negotiated SAs (``policy`` =
                owner), with state L/M/d/D, algorithms, lifetimes and per-SA counters.
``counters``    global counters (``ipsec stats``).
``history``     one row per apply: when, who, serial, plan digest, summary.
"""

from __future__ import annotations

import sqlite3

_V1 = [
    """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE policies (
        idx INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        policy TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        managed INTEGER NOT NULL CHECK (managed IN (0, 1)),
        data TEXT NOT NULL
    )""",
    """CREATE TABLE resources (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        managed INTEGER NOT NULL DEFAULT 1,
        data TEXT NOT NULL,
        PRIMARY KEY (kind, name)
    )""",
    """CREATE TABLE secrets (
        address TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        value BLOB NOT NULL,
        sealed INTEGER NOT NULL DEFAULT 0,
        reference TEXT
    )""",
    """CREATE TABLE sas (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        spi INTEGER NOT NULL,
        protocol TEXT NOT NULL CHECK (protocol IN ('esp', 'ah')),
        source TEXT NOT NULL,
        destination TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('L', 'M', 'd', 'D')),
        manual TEXT UNIQUE,
        policy TEXT,
        peer TEXT,
        encryption TEXT NOT NULL DEFAULT 'null',
        authentication TEXT NOT NULL DEFAULT 'none',
        created REAL NOT NULL,
        updated REAL NOT NULL,
        bytes INTEGER NOT NULL DEFAULT 0,
        packets INTEGER NOT NULL DEFAULT 0,
        data TEXT NOT NULL DEFAULT '{}'
    )""",
    """CREATE INDEX sas_policy ON sas (policy)""",
    """CREATE INDEX sas_peer ON sas (peer)""",
    """CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE history (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        who TEXT NOT NULL,
        command TEXT NOT NULL,
        serial INTEGER NOT NULL,
        plan_digest TEXT NOT NULL,
        summary TEXT NOT NULL
    )""",
]

MIGRATIONS: list[list[str]] = [_V1]
"""``MIGRATIONS[n]`` takes a store from version ``n`` to ``n + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)


def version(conn: sqlite3.Connection) -> int:
    """The schema version of an open database (0 for a new, empty one)."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, current: int) -> None:
    """Run the migrations from ``current`` up, inside the caller's transaction."""
    for statements in MIGRATIONS[current:]:
        for sql in statements:
            conn.execute(sql)
    # PRAGMA user_version is transactional in SQLite: it commits or rolls back with the rest.
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
