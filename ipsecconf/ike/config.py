"""What the engine tells an IKE SA: plain dataclasses, no I/O, no secrets in reprs.

An :class:`IkeConfig` describes one peer relationship: addresses and ports, identities,
how to find the pre-shared key, the IKE proposals, and the children (each a mirrored
policy pair of DESIGN.md: selectors in the ``out`` direction, ESP or AH proposals, mode).
The engine fills these from the desired state; the seed's psk.txt (one ``address key``
per line) becomes a :class:`PskTable`.

Identities (RFC 7296 3.5): IPv4 and IPv6 addresses, FQDNs and RFC 822 addresses; a DN or
key id received from a peer is kept as raw bytes so that the certificate issue can check
it.
"""

from __future__ import annotations

import datetime
import enum
import functools
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ipsecconf.ike.constants import IdType, ProtocolId
from ipsecconf.ike.credentials import (
    METHOD_NAMES,
    SIGNATURE_METHODS,
    SIGNATURE_MODES,
    Credentials,
    TrustAnchors,
)
from ipsecconf.ike.errors import LocalProtocolError
from ipsecconf.ike.memo import Memo, recall, remember
from ipsecconf.ike.payloads import IdPayload
from ipsecconf.model.proposals import Proposal, default_ike
from ipsecconf.model.selectors import Selector

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
T = TypeVar("T")


class Mode(enum.StrEnum):
    """IPsec mode of a child SA."""

    TUNNEL = "tunnel"
    TRANSPORT = "transport"


@dataclass(frozen=True, slots=True)
class Identity(Memo):
    """An IKE identity: a type and its data (text for addresses, FQDN and email).  Its
    text is memoised: PSK lookups ask for it in every IKE_AUTH."""

    id_type: IdType
    data: bytes

    @classmethod
    def address(cls, value: str | IPAddress) -> Identity:
        """An ID_IPV4_ADDR or ID_IPV6_ADDR identity."""
        # An address object is taken as it is: ip_address() would re-parse its text.
        addr = value if not isinstance(value, str) else ipaddress.ip_address(value)
        kind = IdType.IPV4_ADDR if addr.version == 4 else IdType.IPV6_ADDR
        return cls(kind, addr.packed)

    @classmethod
    def fqdn(cls, name: str) -> Identity:
        """An ID_FQDN identity (no trailing dot, ASCII)."""
        return cls(IdType.FQDN, name.rstrip(".").encode("ascii"))

    @classmethod
    def rfc822(cls, mailbox: str) -> Identity:
        """An ID_RFC822_ADDR identity."""
        return cls(IdType.RFC822_ADDR, mailbox.encode("ascii"))

    @classmethod
    def parse(cls, text: str) -> Identity:
        """strongSwan's shorthand: an address, ``user@host`` (RFC 822), else an FQDN
        (a leading ``@`` forces FQDN)."""
        if text.startswith("@"):
            return cls.fqdn(text[1:])
        try:
            return cls.address(text)
        except ValueError:
            pass
        if "@" in text:
            return cls.rfc822(text)
        return cls.fqdn(text)

    @classmethod
    def from_payload(cls, payload: IdPayload) -> Identity:
        """The identity an IDi/IDr payload carries (unknown types kept raw); one shared
        value per distinct payload content (peers prove the same identity in every
        IKE_AUTH, and its text, which PSK lookups ask for, is then memoised already)."""
        return _received_identity(payload.id_type, payload.data)

    def to_payload(self, initiator: bool) -> IdPayload:
        """This identity as IDi (``initiator``) or IDr."""
        return IdPayload(initiator, int(self.id_type), self.data)

    def matches(self, other: Identity) -> bool:
        """Same type and data (FQDN and email compared without case)."""
        if self.id_type != other.id_type:
            return False
        if self.id_type in (IdType.FQDN, IdType.RFC822_ADDR):
            return self.data.lower() == other.data.lower()
        return self.data == other.data

    def __str__(self) -> str:
        text: str | None = recall(self)
        if text is None:
            text = self._format()
            remember(self, text)
        return text

    def _format(self) -> str:
        return _identity_text(self.id_type, self.data)


@dataclass(slots=True, unsafe_hash=True)
class PskQuery:
    """What a PSK lookup is asked: which peer (by address and, once known, identity).
    A value that nothing changes, hashable, but not ``frozen``: a frozen dataclass costs
    a call per field to build, and each handshake asks three times."""

    remote_address: IPAddress
    remote_id: Identity | None
    local_id: Identity


PskLookup = Callable[[PskQuery], bytes | None]
"""Returns the pre-shared key for a peer, or ``None`` when there is none."""


class PskTable:
    """A PSK lookup by peer address or identity text (the seed's psk.txt semantics)."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._keys = {self._norm(k): v for k, v in keys.items()}

    @staticmethod
    def _norm(key: str) -> str:
        return _norm_key(key)

    @classmethod
    def parse(cls, text: str) -> PskTable:
        """Parse psk.txt: ``address key`` per line; ``#`` starts a comment line."""
        keys: dict[str, bytes] = {}
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            parts = stripped.split(None, 1)
            if len(parts) != 2:
                raise LocalProtocolError(f"psk.txt line {number}: expected 'address key'")
            keys[parts[0]] = parts[1].strip().encode("utf-8")
        return cls(keys)

    def __call__(self, query: PskQuery) -> bytes | None:
        if query.remote_id is not None:
            by_id = self._keys.get(_norm_key(str(query.remote_id)))
            if by_id is not None:
                return by_id
        return self._keys.get(_address_text(query.remote_address))

    def __repr__(self) -> str:
        return f"PskTable({len(self._keys)} entries)"

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True, slots=True)
class TriggerPacket:
    """The packet that started a negotiation, for populate-from-packet (RFC 4301 4.4.1)."""

    source: IPAddress
    destination: IPAddress
    protocol: int = 0
    source_port: int = 0
    destination_port: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildConfig(Memo):
    """One child SA: a mirrored policy pair (selectors in the ``out`` direction)."""

    name: str
    selectors: tuple[Selector, ...]
    """Source = local side, destination = remote side; several become one TS payload."""
    proposals: tuple[Proposal, ...]
    """ESP or AH proposals (``ipsecconf.model.proposals.child_proposals``)."""
    mode: Mode = Mode.TRANSPORT
    populate_from_packet: bool = False
    """Host policy over a range: one child SA per remote host, selectors from the packet."""

    @property
    def protocol(self) -> ProtocolId:
        """ESP or AH, from the proposals."""
        return (
            ProtocolId.AH
            if self.proposals and self.proposals[0].protocol == "ah"
            else (ProtocolId.ESP)
        )

    def __post_init__(self) -> None:
        if not self.selectors:
            raise LocalProtocolError(f"child {self.name!r} has no selectors")
        if not self.proposals:
            raise LocalProtocolError(f"child {self.name!r} has no proposals")
        if len({p.protocol for p in self.proposals}) != 1 or self.proposals[0].protocol not in (
            "esp",
            "ah",
        ):
            raise LocalProtocolError(f"child {self.name!r}: proposals must be all ESP or all AH")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetransmitPolicy:
    """Retransmission schedule: ``timeout * base**n`` for try ``n`` (strongSwan's defaults)."""

    timeout: float = 4.0
    base: float = 1.8
    tries: int = 5
    jitter: float = 0.0
    """Fraction (0..1) by which each wait may be shortened at random, from the injected rng."""


def _default_ike() -> tuple[Proposal, ...]:
    return tuple(default_ike())


@dataclass(frozen=True, slots=True, kw_only=True)
class IkeConfig(Memo):
    """Everything one IKE SA needs to know about its peer."""

    local_address: IPAddress
    remote_address: IPAddress
    psk: PskLookup = field(repr=False, default=lambda query: None)
    """The pre-shared key lookup; not needed when this side signs with ``credentials``."""
    local_port: int = 500
    remote_port: int = 500
    local_id: Identity | None = None
    """Our identity; ``None`` means our address."""
    remote_id: Identity | None = None
    """The identity the peer must prove; ``None`` accepts any identity the PSK lookup knows."""
    proposals: tuple[Proposal, ...] = field(default_factory=_default_ike)
    children: tuple[ChildConfig, ...] = ()
    force_encap: bool = False
    """Pretend a NAT is present so that IKE and ESP move to UDP 4500 (RFC 3948)."""
    initial_contact: bool = True
    """Send INITIAL_CONTACT in IKE_AUTH: the engine sets it for its first IKE SA with a peer."""
    retransmit: RetransmitPolicy = field(default_factory=RetransmitPolicy)
    nonce_bytes: int = 32
    keepalive_interval: float = 20.0
    """Seconds between NAT-T keepalives while this side is behind a NAT (RFC 3948 2.3);
    0 turns them off."""
    half_open_timeout: float = 30.0
    """Seconds a responder SA may stay unauthenticated before it fails (peer-not-
    responding), freeing its half-open slot (RFC 7296 2.6)."""
    fragment_size: int = 1200
    """Encrypted messages larger than this many bytes are sent as RFC 7383 fragments when
    the peer supports them (1200 fits IPv6's minimum MTU with IP, UDP and the non-ESP
    marker); 0 turns IKE fragmentation off (not announced)."""
    liveness_interval: float = 0.0
    """Seconds of silence from the peer after which an empty INFORMATIONAL probes it
    (RFC 7296 2.4, dead peer detection); 0 turns the probes off.  Unanswered, the probe
    is retransmitted as ``retransmit`` says and then the SA fails (peer-not-responding)."""

    credentials: Credentials | None = None
    """Our certificate and private key: with them we authenticate by signature."""
    trust: TrustAnchors | None = None
    """The roots a peer's certificate chain must reach (needed to accept signatures)."""
    remote_auth: frozenset[str] = frozenset()
    """AUTH methods accepted from the peer: ``psk``, ``rsa`` (method 1), ``ecdsa``
    (9-11), ``digital-signature`` (RFC 7427).  Empty: the kind we use ourselves (``psk``,
    or the three signature methods when we have ``credentials``)."""
    signature: str = "auto"
    """How we sign (:data:`ipsecconf.ike.credentials.SIGNATURE_MODES`)."""
    clock: Callable[[], datetime.datetime] | None = field(default=None, repr=False)
    """Wall-clock time (timezone-aware) for certificate validity; required with ``trust``."""

    @property
    def effective_local_id(self) -> Identity:
        """Our identity, defaulting to our address."""
        return derived(self, "local-id", self._local_id)

    def _local_id(self) -> Identity:
        return self.local_id or Identity.address(self.local_address)

    @property
    def accepted_methods(self) -> frozenset[str]:
        """The AUTH method names accepted from the peer."""
        if self.remote_auth:
            return self.remote_auth
        return SIGNATURE_METHODS if self.credentials is not None else _PSK_ONLY

    @property
    def uses_signatures(self) -> bool:
        """True when signatures play a part on either side (hash algorithms announced)."""
        return self.credentials is not None or bool(self.accepted_methods & SIGNATURE_METHODS)

    def __post_init__(self) -> None:
        unknown = self.remote_auth - set(METHOD_NAMES.values())
        if unknown:
            raise LocalProtocolError(f"unknown remote auth method(s) {sorted(unknown)}")
        if self.signature not in SIGNATURE_MODES:
            raise LocalProtocolError(f"signature must be one of {', '.join(SIGNATURE_MODES)}")
        if self.accepted_methods & SIGNATURE_METHODS and (self.trust is None or not self.clock):
            raise LocalProtocolError("accepting signatures needs trust anchors and a clock")
        if not self.proposals or any(p.protocol != "ike" for p in self.proposals):
            raise LocalProtocolError("IKE proposals must be non-empty and of protocol ike")
        if not 16 <= self.nonce_bytes <= 256:
            raise LocalProtocolError("nonce size must be 16..256 bytes (RFC 7296 2.10)")
        if self.local_address.version != self.remote_address.version:
            raise LocalProtocolError("local and remote addresses are of different families")


_PSK_ONLY = frozenset({"psk"})


@functools.lru_cache(maxsize=1024)
def _address_text(address: IPAddress) -> str:
    """``str(address)``, cached: every PSK lookup by address asks for it."""
    return str(address)


_ID_TYPES = {int(t): t for t in IdType}


@functools.lru_cache(maxsize=1024)
def _received_identity(id_type: int, data: bytes) -> Identity:
    return Identity(_ID_TYPES.get(id_type, IdType.KEY_ID), data)


@functools.lru_cache(maxsize=1024)
def _identity_text(id_type: IdType, data: bytes) -> str:
    # Cached: an identity received in IKE_AUTH is a new object every time, and the PSK
    # lookup asks for its text.
    if id_type in (IdType.IPV4_ADDR, IdType.IPV6_ADDR):
        try:
            return str(ipaddress.ip_address(data))
        except ValueError:
            return data.hex()
    if id_type in (IdType.FQDN, IdType.RFC822_ADDR):
        return data.decode("ascii", "replace")
    return f"{id_type.name.lower()}:{data.hex()}"


def derived(config: IkeConfig | ChildConfig, key: str, make: Callable[[], T]) -> T:
    """``make()``, computed once per config and remembered in it under ``key``.

    Configs are immutable and one serves every SA with its peer, so what the core
    derives from one (encoded offers, proposal answers, traffic selectors, identities)
    is computed on the first handshake only.  ``make`` must be a pure function of the
    config; each ``key`` always maps to values of one type.
    """
    memo: dict[str, Any] | None = getattr(config, "_memo", None)  # recall(), inlined
    if memo is None:
        memo = {}
        remember(config, memo)
    found: T | None = memo.get(key)
    if found is None:
        found = memo[key] = make()
    return found


@functools.lru_cache(maxsize=4096)
def _norm_key(key: str) -> str:
    """An address in canonical text, anything else in lower case (cached: every IKE_AUTH
    looks keys up by identity and address text)."""
    try:
        return str(ipaddress.ip_address(key))
    except ValueError:
        return key.lower()


def psk_table(entries: Iterable[tuple[str, bytes]]) -> PskTable:
    """A :class:`PskTable` from (address or identity, key) pairs."""
    return PskTable(dict(entries))
