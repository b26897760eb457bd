"""Plain values read from the store: what plan, show, export and the engine see.

None of these holds secret material: a :class:`StoredSecret` carries the fingerprint and
the reference it came from, never the value (read values with
:meth:`~ipsecconf.state.store.Store.secret_value`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SA_STATES = {"L": "Larval", "M": "Mature", "d": "Dying", "D": "Dead"}

COUNTER_NAMES = (
    "packets_in",
    "packets_out",
    "bytes_in",
    "bytes_out",
    "esp_errors",
    "ah_errors",
    "integrity_failures",
    "replay_failures",
    "policy_drops",
    "ike_started",
    "ike_succeeded",
    "ike_failed",
)
"""Global counters of ``ipsec stats`` (zeroed by ``ipsec stats -z``)."""


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    """One SPD row in the store."""

    idx: int
    """The seed's index number (``-i``)."""
    name: str
    policy: str
    direction: str
    managed: bool
    data: str
    """Canonical JSON of :class:`~ipsecconf.model.spd.PolicyRow`."""


@dataclass(frozen=True, slots=True)
class StoredResource:
    """A peer, PSK, certificate, manual SA definition or setting."""

    kind: str
    name: str
    managed: bool
    data: str


@dataclass(frozen=True, slots=True)
class StoredSecret:
    """A secret's identity without its value."""

    address: str
    fingerprint: str
    reference: str | None
    sealed: bool


@dataclass(slots=True)
class SaRecord:
    """One SAD entry (manual or negotiated)."""

    id: int
    spi: int
    protocol: str
    source: str
    destination: str
    state: str
    """``L``, ``M``, ``d`` or ``D``."""
    manual: str | None
    """Name of the manual SA definition, or None for a negotiated SA."""
    policy: str | None
    """Owning policy (pair) name of a negotiated SA."""
    peer: str | None
    encryption: str
    authentication: str
    created: float
    updated: float
    bytes: int = 0
    packets: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    """Lifetimes, replay window and other non-secret details."""

    def as_dict(self) -> dict[str, Any]:
        """JSON form for ``show sas --json``."""
        return {
            "id": self.id,
            "spi": self.spi,
            "spi_hex": f"0x{self.spi:08x}",
            "protocol": self.protocol,
            "source": self.source,
            "destination": self.destination,
            "state": self.state,
            "state_name": SA_STATES.get(self.state, self.state),
            "manual": self.manual,
            "policy": self.policy,
            "peer": self.peer,
            "encryption": self.encryption,
            "authentication": self.authentication,
            "created": self.created,
            "updated": self.updated,
            "bytes": self.bytes,
            "packets": self.packets,
            "details": self.data,
        }


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One apply."""

    id: int
    at: str
    who: str
    command: str
    serial: int
    plan_digest: str
    summary: str


@dataclass(slots=True)
class Snapshot:
    """A consistent read of the configuration part of the store."""

    lineage: str
    serial: int
    policies: dict[str, StoredPolicy]
    resources: dict[tuple[str, str], StoredResource]
    secrets: dict[str, StoredSecret]
    sas: list[SaRecord]

    def __repr__(self) -> str:
        return (
            f"Snapshot(lineage={self.lineage}, serial={self.serial}, "
            f"{len(self.policies)} policies, {len(self.resources)} resources, {len(self.sas)} SAs)"
        )
