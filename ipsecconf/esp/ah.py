"""AH (RFC 4302): header codec and the ICV over the IP header's immutable fields.

The ICV covers the whole IP packet with the fields that routers may change zeroed
(RFC 4302 section 3.3.3.1 and Appendix A): IPv4 TOS, flags and fragment offset, TTL and
header checksum, and every option not in the immutable set (EOL, NOP, the security options,
Router Alert, SDMDD) is zeroed in full; IPv6 traffic class, flow label and hop limit, and in
Hop-by-Hop and Destination Options headers the data of options whose type has the
"may change en route" bit (0x20).  The AH header itself is covered with its ICV zeroed, and
with ESN the high 32 bits of the sequence number are appended (RFC 4302 section 3.3.3.1).
AH is padded to a multiple of 8 bytes on IPv6 and 4 on IPv4 (section 3.3.3.2.1).

A Routing header is covered as received; this sender never emits one with segments left,
so the "predictable at the receiver" reordering is not needed.  As for ESP, the replay
window moves only after the ICV verified.
"""

from __future__ import annotations

import struct

from ipsecconf.crypto.transforms import Hmac
from ipsecconf.esp.errors import (
    DecodeError,
    DropReason,
    IntegrityError,
    ReplayError,
    SaConfigError,
    SaStateError,
)
from ipsecconf.esp.ip import PROTO_DSTOPTS, PROTO_HOPOPTS, PROTO_ROUTING
from ipsecconf.esp.replay import REPLAYED, ReplayWindow
from ipsecconf.model.algorithms import Integrity

AH_FIXED = struct.Struct("!BBHII")
"""Next header, payload length, reserved, SPI, sequence number."""
_I = struct.Struct("!I")
_M32 = 0xFFFFFFFF
IMMUTABLE_IPV4_OPTIONS = frozenset({0, 1, 2, 5, 6, 20, 21})
"""IPv4 option numbers (low 5 bits of the type) that are immutable (RFC 4302 Appendix A)."""


def ah_length(icv_bytes: int, version: int) -> int:
    """Bytes of the AH header with its ICV, padded to 8 (IPv6) or 4 (IPv4) bytes."""
    n = 12 + icv_bytes
    return n + (-n % (8 if version == 6 else 4))


def zero_mutable(header: bytes | memoryview) -> bytearray:
    """A copy of the IP header part before AH (IPv4 header or IPv6 header plus extension
    headers) with its mutable fields zeroed."""
    hdr = bytearray(header)
    if hdr[0] >> 4 == 4:
        hdr[1] = 0
        hdr[6] = hdr[7] = hdr[8] = 0
        hdr[10] = hdr[11] = 0
        ihl = (hdr[0] & 0x0F) * 4
        i = 20
        while i < ihl:
            opt = hdr[i]
            if opt & 0x1F == 0:  # End of option list: the rest is padding.
                break
            if opt & 0x1F == 1:  # NOP
                i += 1
                continue
            if i + 1 >= ihl or hdr[i + 1] < 2 or i + hdr[i + 1] > ihl:
                raise DecodeError(DropReason.MALFORMED, "bad IPv4 option length")
            olen = hdr[i + 1]
            if opt & 0x1F not in IMMUTABLE_IPV4_OPTIONS:
                hdr[i : i + olen] = bytes(olen)
            i += olen
        return hdr
    hdr[0] = 0x60
    hdr[1] = hdr[2] = hdr[3] = 0
    hdr[7] = 0
    nh = hdr[6]
    off = 40
    while off < len(hdr) and nh in (PROTO_HOPOPTS, PROTO_DSTOPTS, PROTO_ROUTING):
        if off + 2 > len(hdr):
            raise DecodeError(DropReason.TRUNCATED, "IPv6 extension header truncated")
        end = off + (hdr[off + 1] + 1) * 8
        if nh != PROTO_ROUTING:
            i = off + 2
            while i < end:
                otype = hdr[i]
                if otype == 0:  # Pad1
                    i += 1
                    continue
                if i + 1 >= end or i + 2 + hdr[i + 1] > end or end > len(hdr):
                    raise DecodeError(DropReason.MALFORMED, "bad IPv6 option length")
                olen = hdr[i + 1]
                if otype & 0x20:
                    hdr[i + 2 : i + 2 + olen] = bytes(olen)
                i += 2 + olen
        nh = hdr[off]
        off = end
    return hdr


class AhContext:
    """Integrity state of one AH SA in one direction."""

    __slots__ = ("_hmac", "_seq_max", "esn", "icv_bytes", "replay", "seq", "spi")

    def __init__(
        self,
        spi: int,
        integrity: Integrity,
        key: bytes,
        *,
        esn: bool = False,
        replay_window: int = 64,
    ) -> None:
        if integrity.icv_bytes == 0:
            raise SaConfigError("AH needs an integrity algorithm")
        self.spi = spi
        self.esn = esn
        self._hmac = Hmac(integrity, key)
        self.icv_bytes = integrity.icv_bytes
        self.seq = 0
        self._seq_max = 0xFFFFFFFFFFFFFFFF if esn else _M32
        self.replay = ReplayWindow(replay_window, esn=esn)

    def length(self, version: int) -> int:
        """AH header length for an IP version."""
        return ah_length(self.icv_bytes, version)

    def protect(self, header: bytes, nh: int, payload: bytes) -> bytes:
        """The packet ``header | AH | payload``; ``header`` must already name AH (51) as
        next protocol and carry the final lengths (see :func:`ipsecconf.esp.ip.rewrite_header`)."""
        seq = self.seq + 1
        if seq > self._seq_max:
            raise SaStateError(DropReason.SEQUENCE_EXHAUSTED, "sequence number space exhausted")
        self.seq = seq
        return self.protect_with(seq, header, nh, payload)

    def protect_with(self, seq: int, header: bytes, nh: int, payload: bytes) -> bytes:
        """:meth:`protect` with a given sequence number (tests)."""
        total = ah_length(self.icv_bytes, header[0] >> 4)
        fixed = AH_FIXED.pack(nh, total // 4 - 2, 0, self.spi, seq & _M32)
        zeros = bytes(total - 12)
        tail = (_I.pack(seq >> 32),) if self.esn else ()
        icv = self._hmac.compute(zero_mutable(header), fixed, zeros, payload, *tail)
        return b"".join((header, fixed, icv, zeros[self.icv_bytes :], payload))

    def verify(self, packet: bytes | memoryview, offset: int, end: int) -> tuple[int, int, int]:
        """Check the AH at ``offset`` of an IP packet ending at ``end``; returns
        ``(next header, AH length, sequence number)``.  Replay check, ICV, then window."""
        view = memoryview(packet)
        if end - offset < 12:
            raise DecodeError(DropReason.TRUNCATED, "shorter than an AH header")
        nh, plen, _, _spi, seq_low = AH_FIXED.unpack_from(view, offset)
        total = (plen + 2) * 4
        version = view[0] >> 4
        if total < 12 + self.icv_bytes or total % (8 if version == 6 else 4):
            raise DecodeError(DropReason.MALFORMED, f"AH length {total} does not fit the ICV")
        if offset + total > end:
            raise DecodeError(DropReason.TRUNCATED, "AH runs past the packet")
        seq = self.replay.check(seq_low)
        if seq < 0:
            reason = DropReason.REPLAYED if seq == REPLAYED else DropReason.TOO_OLD
            raise ReplayError(reason, f"sequence number {seq_low} rejected ({reason.value})")
        icv = view[offset + 12 : offset + 12 + self.icv_bytes]
        tail = (_I.pack(seq >> 32),) if self.esn else ()
        ok = self._hmac.verify(
            icv,
            zero_mutable(view[:offset]),
            view[offset : offset + 12],
            bytes(total - 12),
            view[offset + total : end],
            *tail,
        )
        if not ok:
            raise IntegrityError()
        self.replay.accept(seq)
        return nh, total, seq

    def __repr__(self) -> str:
        return f"AhContext(spi=0x{self.spi:08x}, {self._hmac!r}, seq={self.seq})"
