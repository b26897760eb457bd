"""SA value types: modes, states, lifetimes, UDP encapsulation, the SA configuration with
its validation, expiry events and counters.

:class:`SaConfig` is what the engine (or a manual SA) installs; its keys are secrets and
never appear in its repr.  Validation follows RFC 4303/4302 and DESIGN.md: SPIs 1-255 are
reserved, only manual SAs may turn the anti-replay window off, AH never crosses NAT and
always has an integrity algorithm, ESP always names a cipher (``null`` included).
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field

from ipsecconf.esp.errors import DropReason, SaConfigError
from ipsecconf.esp.replay import DEFAULT_WINDOW
from ipsecconf.esp.spd import Direction
from ipsecconf.model.algorithms import INTEGRITIES, Cipher, Integrity
from ipsecconf.model.selectors import Selector


class Mode(enum.StrEnum):
    """IPsec mode."""

    TRANSPORT = "transport"
    TUNNEL = "tunnel"


class Protocol(enum.IntEnum):
    """IPsec protocol, by IP protocol number."""

    ESP = 50
    AH = 51


class SaState(enum.StrEnum):
    """SA states; the values are the seed's ``sa show`` letters."""

    LARVAL = "L"
    MATURE = "M"
    DYING = "d"
    DEAD = "D"


class LimitKind(enum.StrEnum):
    """What a lifetime counts."""

    BYTES = "bytes"
    PACKETS = "packets"
    SECONDS = "seconds"
    SEQUENCE = "sequence"


class SaEventKind(enum.StrEnum):
    """Soft expiry asks for a rekey; hard expiry means the SA is dead."""

    SOFT_EXPIRE = "soft-expire"
    HARD_EXPIRE = "hard-expire"


@dataclass(frozen=True, slots=True)
class SaEvent:
    """An expiry event for the engine (strongSwan ``ipsec_event_relay``)."""

    kind: SaEventKind
    limit: LimitKind
    spi: int
    dst: str
    protocol: Protocol
    reqid: int
    direction: Direction


@dataclass(frozen=True, slots=True, kw_only=True)
class Lifetimes:
    """Soft and hard limits; 0 means unlimited."""

    soft_bytes: int = 0
    hard_bytes: int = 0
    soft_packets: int = 0
    hard_packets: int = 0
    soft_seconds: float = 0.0
    hard_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class UdpEncap:
    """RFC 3948 UDP encapsulation ports (ESP only)."""

    sport: int = 4500
    dport: int = 4500


@dataclass(frozen=True, slots=True, kw_only=True)
class SaConfig:
    """Everything needed to install an SA.  ``src``/``dst`` are the tunnel endpoints in
    tunnel mode and the two hosts in transport mode."""

    spi: int
    direction: Direction
    src: str
    dst: str
    protocol: Protocol = Protocol.ESP
    mode: Mode = Mode.TUNNEL
    cipher: Cipher | None = None
    """ESP encryption; ``None`` for AH."""
    enc_key: bytes = field(default=b"", repr=False)
    """Cipher key plus salt for AEAD.  Secret: hidden from repr."""
    integrity: Integrity = INTEGRITIES["none"]
    integ_key: bytes = field(default=b"", repr=False)
    """Integrity key.  Secret: hidden from repr."""
    esn: bool = False
    replay_window: int = DEFAULT_WINDOW
    manual: bool = False
    """Manually keyed (only these may turn the replay window off)."""
    encap: UdpEncap | None = None
    lifetimes: Lifetimes = Lifetimes()
    reqid: int = 0
    selectors: tuple[Selector, ...] = ()
    """Inbound: decapsulated packets must match one (empty = any)."""

    def __post_init__(self) -> None:
        if not 0 < self.spi <= 0xFFFFFFFF or self.spi < 256:
            raise SaConfigError(f"SPI 0x{self.spi:x} is reserved or out of range (RFC 4303 2.1)")
        if self.replay_window == 0 and not self.manual:
            raise SaConfigError("only manual SAs may turn the anti-replay window off")
        s, d = ipaddress.ip_address(self.src), ipaddress.ip_address(self.dst)
        if s.version != d.version:
            raise SaConfigError("SA endpoints must be of the same IP version")
        if self.protocol is Protocol.AH:
            if self.encap is not None:
                raise SaConfigError("AH cannot cross NAT: no UDP encapsulation for AH")
            if self.integrity.icv_bytes == 0:
                raise SaConfigError("AH needs an integrity algorithm")
        elif self.cipher is None:
            raise SaConfigError("ESP needs an encryption algorithm (null is 'null')")


class Counters:
    """Per-SA or global traffic counters."""

    __slots__ = (
        "bytes",
        "integrity_failures",
        "other_drops",
        "packets",
        "policy_drops",
        "replay_drops",
    )

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.integrity_failures = 0
        self.replay_drops = 0
        self.policy_drops = 0
        self.other_drops = 0

    def count_drop(self, reason: DropReason) -> None:
        """Count a drop under its counter."""
        if reason is DropReason.INTEGRITY_FAILED:
            self.integrity_failures += 1
        elif reason in (DropReason.REPLAYED, DropReason.TOO_OLD):
            self.replay_drops += 1
        elif reason in (DropReason.POLICY_MISMATCH, DropReason.POLICY_DISCARD):
            self.policy_drops += 1
        else:
            self.other_drops += 1

    def as_dict(self) -> dict[str, int]:
        """The counters by name (for ``ipsec stats`` and JSON)."""
        return {k: getattr(self, k) for k in self.__slots__}
