"""Traffic selector payloads TSi/TSr (RFC 7296 section 3.13).

A :class:`TsEntry` is one address range with a protocol and a port range, the wire form
of a selector.  Conversions to and from :mod:`ipsecconf.model.selectors` and the narrowing
arithmetic live in :mod:`ipsecconf.ike.selectors`.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from ipsecconf.codec import Buffer
from ipsecconf.ike.constants import TsType
from ipsecconf.ike.errors import DropReason, RemoteProtocolError, malformed
from ipsecconf.ike.memo import Memo, remember

MAX_SELECTORS = 32
_SELECTOR = struct.Struct("!BBHHH")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class TsEntry:
    """One traffic selector: inclusive address and port ranges and an IP protocol (0 = any)."""

    start_addr: IPAddress
    end_addr: IPAddress
    ip_protocol: int = 0
    start_port: int = 0
    end_port: int = 65535

    @property
    def ts_type(self) -> TsType:
        """IPv4 or IPv6 range."""
        return TsType.IPV4_ADDR_RANGE if self.start_addr.version == 4 else TsType.IPV6_ADDR_RANGE

    def __str__(self) -> str:
        addr = (
            str(self.start_addr)
            if self.start_addr == self.end_addr
            else f"{self.start_addr}-{self.end_addr}"
        )
        ports = (
            ""
            if (self.start_port, self.end_port) == (0, 65535)
            else (
                f"[{self.start_port}]"
                if self.start_port == self.end_port
                else f"[{self.start_port}-{self.end_port}]"
            )
        )
        proto = f"/{self.ip_protocol}" if self.ip_protocol else ""
        return f"{addr}{ports}{proto}"


@dataclass(frozen=True, slots=True)
class TsPayload(Memo):
    """TSi (``initiator=True``) or TSr: one or more selectors, any of which may match.
    Its encoded body is memoised by :func:`ts_body`."""

    initiator: bool
    selectors: tuple[TsEntry, ...]


def pull_ts(buf: Buffer, initiator: bool) -> TsPayload:
    """Parse a TS payload body; unknown selector types are malformed (RFC 7296 3.13.1)."""
    count = buf.pull_uint8()
    buf.pull_bytes(3)
    if count == 0:
        raise malformed("traffic selector payload with no selector")
    if count > MAX_SELECTORS:
        raise RemoteProtocolError(DropReason.TOO_LARGE, f"{count} traffic selectors")
    entries = []
    for _ in range(count):
        ts_type = buf.pull_uint8()
        protocol = buf.pull_uint8()
        length = buf.pull_uint16()
        if ts_type == TsType.IPV4_ADDR_RANGE:
            size = 4
        elif ts_type == TsType.IPV6_ADDR_RANGE:
            size = 16
        else:
            raise malformed(f"unknown traffic selector type {ts_type}")
        if length != 8 + 2 * size:
            raise malformed(f"traffic selector length {length} for type {ts_type}")
        start_port = buf.pull_uint16()
        end_port = buf.pull_uint16()
        family = ipaddress.IPv4Address if size == 4 else ipaddress.IPv6Address
        start: IPAddress = family(buf.pull_bytes(size))
        end: IPAddress = family(buf.pull_bytes(size))
        if start > end or start_port > end_port:  # type: ignore[operator]
            raise malformed("traffic selector range is reversed")
        entries.append(TsEntry(start, end, protocol, start_port, end_port))
    if not buf.eof():
        raise malformed("data after the last traffic selector")
    return TsPayload(initiator, tuple(entries))


def push_ts(buf: Buffer, ts: TsPayload) -> None:
    """Serialise a TS payload body."""
    buf.push_bytes(ts_body(ts))


def ts_body(ts: TsPayload) -> bytes:
    """The encoded body of ``ts``, computed once per object (a child's configured
    selectors are sent in every negotiation)."""
    known: bytes | None = getattr(ts, "_memo", None)  # recall(), inlined: hot
    if known is not None:
        return known
    parts = [bytes((len(ts.selectors), 0, 0, 0))]
    for entry in ts.selectors:
        v4 = entry.start_addr.version == 4
        parts.append(
            _SELECTOR.pack(
                TsType.IPV4_ADDR_RANGE if v4 else TsType.IPV6_ADDR_RANGE,
                entry.ip_protocol,
                16 if v4 else 40,
                entry.start_port,
                entry.end_port,
            )
        )
        parts.append(entry.start_addr.packed)
        parts.append(entry.end_addr.packed)
    wire = b"".join(parts)
    remember(ts, wire)
    return wire
