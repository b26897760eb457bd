"""Typed dataplane errors and the closed set of reasons a packet is dropped.

Every error the ESP/AH core raises carries a :class:`DropReason`; the processor turns it
into a ``Drop`` result value, so a peer's malformed packet never escapes as an exception.
Messages name what was wrong with the packet (lengths, SPI), never key material.
"""

from __future__ import annotations

import enum

from ipsecconf.errors import ProtocolError


class DropReason(enum.Enum):
    """Why the dataplane dropped a packet; counted per reason by the processor."""

    MALFORMED = "malformed"
    """The IP, ESP or AH framing is inconsistent (lengths, versions, header chain)."""
    TRUNCATED = "truncated"
    """Shorter than the headers, IV and ICV it must carry."""
    UNKNOWN_SPI = "unknown-spi"
    """No SA for (SPI, destination, protocol)."""
    INTEGRITY_FAILED = "integrity-failed"
    """The ICV (HMAC or AEAD tag) did not verify."""
    REPLAYED = "replayed"
    """The sequence number was already received (RFC 4303 section 3.4.3)."""
    TOO_OLD = "too-old"
    """The sequence number is left of the anti-replay window."""
    BAD_PADDING = "bad-padding"
    """Pad length beyond the payload or padding bytes not 1, 2, 3, ... (RFC 4303 2.4)."""
    BAD_NEXT_HEADER = "bad-next-header"
    """The next header does not fit the SA's mode (tunnel carries IPv4/IPv6 only)."""
    DUMMY_PACKET = "dummy-packet"
    """Next header 59: a traffic-flow-confidentiality dummy, discarded by design."""
    POLICY_DISCARD = "policy-discard"
    """A discard entry of the SPD matched."""
    POLICY_MISMATCH = "policy-mismatch"
    """A decapsulated packet is outside its SA's selectors (RFC 4301 section 5.2)."""
    CLEAR_PROTECTED = "clear-text-on-protected-flow"
    """A clear packet arrived on a flow the SPD protects."""
    NO_SA = "no-sa"
    """Protect policy, no usable SA, restrict level: dropped while negotiating."""
    SA_NOT_MATURE = "sa-not-mature"
    """The SA is Larval (no keys yet) or Dead."""
    SA_EXPIRED = "sa-expired"
    """The SA reached a hard lifetime."""
    SEQUENCE_EXHAUSTED = "sequence-exhausted"
    """The outbound sequence number space is used up; the SA must be rekeyed, never wrap."""
    NAT_KEEPALIVE = "nat-keepalive"
    """A one-byte 0xFF NAT-keepalive (RFC 3948 section 2.3), consumed silently."""
    UNSUPPORTED = "unsupported"
    """A valid packet the dataplane does not handle (e.g. a fragment of an ESP packet)."""
    TOO_BIG = "too-big-for-path"
    """Protected, the packet would exceed the learned path MTU to the peer; its sender got
    an ICMP "fragmentation needed" / "packet too big" instead."""


class EspError(ProtocolError):
    """A dataplane error with its typed drop reason."""

    def __init__(self, reason: DropReason, message: str = "") -> None:
        self.reason = reason
        super().__init__(message or reason.value)


class DecodeError(EspError):
    """Malformed or truncated IP/ESP/AH framing."""


class IntegrityError(EspError):
    """The ICV did not verify."""

    def __init__(self, message: str = "ICV check failed") -> None:
        super().__init__(DropReason.INTEGRITY_FAILED, message)


class ReplayError(EspError):
    """A replayed or too-old sequence number."""


class UnknownSpiError(EspError):
    """No SA matches the packet's SPI."""

    def __init__(self, message: str = "unknown SPI") -> None:
        super().__init__(DropReason.UNKNOWN_SPI, message)


class PolicyViolation(EspError):
    """The SPD forbids the packet."""


class SaStateError(EspError):
    """The SA cannot process packets in its current state (Larval, Dead, exhausted)."""


class SaConfigError(ProtocolError):
    """A local misuse: an SA or policy built with inconsistent parameters."""
