"""Minimal IPv4/IPv6 header parse and build for the dataplane (strongSwan ``ip_packet.c``).

:func:`parse` reads just what IPsec needs from a packet: addresses, the upper-layer
protocol and ports for SPD selectors (RFC 4301 section 4.4.1.1; a non-initial fragment has
*opaque* ports, written -1, which only an ANY port range matches), and the transport-mode
split point: ESP/AH go after the IPv4 header with its options, or after the IPv6 Hop-by-Hop,
Routing and Destination Options headers that precede the payload (a Destination Options
header after a Routing header stays inside, as Linux and scapy do).  Builders produce outer
headers for tunnel mode with the checksum computed incrementally from a per-SA template.
Every malformed input raises :class:`~ipsecconf.esp.errors.DecodeError`.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ipsecconf.esp.errors import DecodeError, DropReason

PROTO_HOPOPTS = 0
PROTO_ICMP = 1
PROTO_IPV4 = 4
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_IPV6 = 41
PROTO_ROUTING = 43
PROTO_FRAGMENT = 44
PROTO_ESP = 50
PROTO_AH = 51
PROTO_NONE = 59
PROTO_DSTOPTS = 60
PORT_PROTOCOLS = frozenset({6, 17, 33, 132, 136})
OPAQUE_PORT = -1
"""Port value of packets whose ports are unknown (non-initial fragments) or absent."""


def flow_key(packet: bytes) -> bytes | None:
    """What the SPD, the SAD and an SA's selectors look at -- protocol, addresses and
    ports -- as one key, for a packet of a protocol with ports over IPv4 without options
    or fragmentation (the common case, and the one caches of their decisions keep);
    ``None`` for any other packet."""
    if (
        len(packet) >= 24
        and packet[0] == 0x45
        and packet[9] in PORT_PROTOCOLS
        and not (packet[6] & 0x3F or packet[7])
    ):
        return packet[9:10] + packet[12:24]
    return None


_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_PORTS = struct.Struct("!HH")
_V6_EXT = frozenset({PROTO_HOPOPTS, PROTO_ROUTING, PROTO_DSTOPTS})
# Total length, flags + fragment offset, protocol, addresses of an IPv4 header.
_IPV4_FAST = struct.Struct("!2xH2xHxB2x4s4s")


class IpInfo(NamedTuple):
    """What the dataplane needs from one IP packet."""

    version: int
    """4 or 6."""
    src: bytes
    """Source address, 4 or 16 bytes."""
    dst: bytes
    """Destination address, 4 or 16 bytes."""
    proto: int
    """Upper-layer protocol after the extension headers (ESP is 50, AH 51)."""
    l4: int
    """Offset of the upper-layer header."""
    split: int
    """Transport-mode split point: where ESP/AH is inserted or found."""
    nh_offset: int
    """Offset of the Protocol/Next Header byte that names what starts at ``split``."""
    length: int
    """Total packet length claimed by the header (trailing bytes beyond are ignored)."""
    sport: int
    """Source port, or :data:`OPAQUE_PORT`."""
    dport: int
    """Destination port, or :data:`OPAQUE_PORT`."""


# IpInfo from a tuple without the generated keyword __new__ (NamedTuple._make, minus the
# length check): parse() runs twice per packet.
_new_info = tuple.__new__


def _bad(msg: str, reason: DropReason = DropReason.MALFORMED) -> DecodeError:
    return DecodeError(reason, msg)


def parse(packet: bytes | memoryview) -> IpInfo:
    """Parse an IPv4 or IPv6 packet; raises :class:`DecodeError` when malformed/truncated."""
    n = len(packet)
    if n >= 20 and packet[0] == 0x45:
        # The common packet, in one unpack: IPv4 without options, not a later fragment.
        total, frag, proto, src, dst = _IPV4_FAST.unpack_from(packet)
        if 20 <= total <= n and not frag & 0x1FFF:
            sport = dport = OPAQUE_PORT
            if proto in PORT_PROTOCOLS and total >= 24:
                sport, dport = _PORTS.unpack_from(packet, 20)
            return _new_info(IpInfo, (4, src, dst, proto, 20, 20, 9, total, sport, dport))
    return parse_general(packet)


def parse_general(packet: bytes | memoryview) -> IpInfo:
    """:func:`parse` for every packet shape (``parse`` itself takes a shortcut for IPv4
    without options; the tests compare both)."""
    n = len(packet)
    if n < 20:
        raise _bad(f"packet of {n} bytes is shorter than an IP header", DropReason.TRUNCATED)
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        total = (packet[2] << 8) | packet[3]
        if ihl < 20 or total < ihl:
            raise _bad(f"IPv4 header length {ihl} / total length {total} inconsistent")
        if total > n:
            raise _bad(f"IPv4 total length {total} exceeds {n} bytes", DropReason.TRUNCATED)
        proto = packet[9]
        src = bytes(packet[12:16])
        dst = bytes(packet[16:20])
        opaque = ((packet[6] & 0x1F) << 8 | packet[7]) != 0
        return _ports(4, src, dst, proto, ihl, ihl, 9, total, packet, opaque)
    if version == 6:
        if n < 40:
            raise _bad(f"packet of {n} bytes is shorter than an IPv6 header", DropReason.TRUNCATED)
        plen = (packet[4] << 8) | packet[5]
        total = 40 + plen
        if plen == 0:
            raise _bad("IPv6 jumbograms and empty payloads are not supported")
        if total > n:
            raise _bad(f"IPv6 payload length {plen} exceeds {n - 40} bytes", DropReason.TRUNCATED)
        src = bytes(packet[8:24])
        dst = bytes(packet[24:40])
        nh = packet[6]
        off = 40
        nh_off = 6
        split = -1
        split_nh = -1
        seen_routing = False
        opaque = False
        while True:
            if split < 0 and not (
                nh in (PROTO_HOPOPTS, PROTO_ROUTING) or (nh == PROTO_DSTOPTS and not seen_routing)
            ):
                split, split_nh = off, nh_off
            if nh in _V6_EXT:
                if off + 2 > total:
                    raise _bad("IPv6 extension header truncated", DropReason.TRUNCATED)
                if nh == PROTO_ROUTING:
                    seen_routing = True
                nh_off = off
                nh, off = packet[off], off + (packet[off + 1] + 1) * 8
            elif nh == PROTO_FRAGMENT:
                if off + 8 > total:
                    raise _bad("IPv6 fragment header truncated", DropReason.TRUNCATED)
                opaque = opaque or (((packet[off + 2] << 8) | packet[off + 3]) & 0xFFF8) != 0
                nh_off = off
                nh, off = packet[off], off + 8
            else:
                break
            if off > total:
                raise _bad("IPv6 extension header runs past the payload", DropReason.TRUNCATED)
        return _ports(6, src, dst, nh, off, split, split_nh, total, packet, opaque)
    raise _bad(f"IP version {version} is neither 4 nor 6")


def _ports(
    version: int,
    src: bytes,
    dst: bytes,
    proto: int,
    l4: int,
    split: int,
    nh_offset: int,
    total: int,
    packet: bytes | memoryview,
    opaque: bool,
) -> IpInfo:
    sport = dport = OPAQUE_PORT
    if not opaque and proto in PORT_PROTOCOLS and l4 + 4 <= total:
        sport, dport = _PORTS.unpack_from(packet, l4)
    return IpInfo(version, src, dst, proto, l4, split, nh_offset, total, sport, dport)


def internet_checksum(data: bytes | bytearray | memoryview) -> int:
    """RFC 1071 checksum.  The ones'-complement sum of 16-bit words equals the big-endian
    integer of the data modulo 0xFFFF (2**16 = 1 mod 0xFFFF), which C computes fast."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    if not data:
        return 0xFFFF
    total = int.from_bytes(data, "big")
    s = total % 0xFFFF
    if s == 0 and total:
        s = 0xFFFF
    return ~s & 0xFFFF


def ipv4_header(
    src: bytes,
    dst: bytes,
    proto: int,
    payload_len: int,
    *,
    tos: int = 0,
    ttl: int = 64,
    ident: int = 0,
    df: bool = False,
) -> bytes:
    """A 20-byte IPv4 header with a correct checksum."""
    hdr = bytearray(
        _IPV4.pack(0x45, tos, 20 + payload_len, ident, 0x4000 if df else 0, ttl, proto, 0, src, dst)
    )
    struct.pack_into("!H", hdr, 10, internet_checksum(hdr))
    return bytes(hdr)


def ipv6_header(
    src: bytes, dst: bytes, nh: int, payload_len: int, *, tc: int = 0, flow: int = 0, hlim: int = 64
) -> bytes:
    """A 40-byte IPv6 header."""
    return _IPV6.pack((6 << 28) | (tc << 20) | flow, payload_len, nh, hlim, src, dst)


class OuterHeader:
    """A per-SA template for tunnel-mode outer headers: only length, DSCP/ECN, DF and the
    IPv4 identification change per packet, so the checksum is finished incrementally."""

    __slots__ = ("_base", "_dst", "_proto", "_src", "_ttl", "atomic_cache", "caching", "version")

    def __init__(self, src: bytes, dst: bytes, proto: int, ttl: int = 64) -> None:
        if len(src) != len(dst) or len(src) not in (4, 16):
            raise ValueError("tunnel endpoints must both be IPv4 or both IPv6")
        self.version = 4 if len(src) == 4 else 6
        self._src, self._dst, self._proto, self._ttl = src, dst, proto, ttl
        # Sum of the constant IPv4 words: TTL/protocol and both addresses.
        words = struct.unpack("!4H", src + dst) if self.version == 4 else ()
        self._base = ((ttl << 8) | proto) + sum(words)
        self.atomic_cache: dict[int, bytes] = {}
        self.caching = True
        """Cache atomic IPv4 headers; the benchmark turns this off ("caches off")."""

    def build(self, payload_len: int, tos: int, ident: int, df: bool) -> bytes:
        """The outer header for a payload of ``payload_len`` bytes.  An IPv4 header with DF
        set is an atomic datagram whose identification may be zero (RFC 6864 section 4.1),
        so those headers are cached per (length, TOS)."""
        if df and self.version == 4:
            key = (payload_len << 8) | tos
            hdr = self.atomic_cache.get(key)
            if hdr is None:
                hdr = self._build(payload_len, tos, 0, True)
                if self.caching:
                    if len(self.atomic_cache) > 4096:
                        self.atomic_cache.clear()
                    self.atomic_cache[key] = hdr
            return hdr
        return self._build(payload_len, tos, ident, df)

    def _build(self, payload_len: int, tos: int, ident: int, df: bool) -> bytes:
        if self.version == 6:
            return _IPV6.pack(
                (6 << 28) | (tos << 20), payload_len, self._proto, self._ttl, self._src, self._dst
            )
        total = 20 + payload_len
        flags = 0x4000 if df else 0
        # The ones'-complement sum is the plain sum modulo 0xFFFF (see internet_checksum);
        # the outer "% 0xFFFF" maps a sum of 0xFFFF to the checksum 0, as folding does.
        s = self._base + 0x4500 + tos + total + ident + flags
        return _IPV4.pack(
            0x45,
            tos,
            total,
            ident,
            flags,
            self._ttl,
            self._proto,
            (0xFFFF - s % 0xFFFF) % 0xFFFF,
            self._src,
            self._dst,
        )

    def atomic_v4(self) -> tuple[int, int, int, bytes, bytes]:
        """Constants for an inlined IPv4 atomic (DF, identification 0) header: the checksum
        base for ``base + tos + payload_len``, TTL, protocol, source and destination."""
        return self._base + 0x4500 + 20 + 0x4000, self._ttl, self._proto, self._src, self._dst


IPV4_PACK = _IPV4.pack
"""``struct.pack`` of an IPv4 header without options (for the fast path)."""


def traffic_class(packet: bytes | memoryview) -> int:
    """IPv4 TOS or IPv6 traffic class (DSCP + ECN), copied to the outer header."""
    if packet[0] >> 4 == 4:
        return packet[1]
    return ((packet[0] & 0x0F) << 4) | (packet[1] >> 4)


def rewrite_header(header: bytes | memoryview, info: IpInfo, proto: int, payload_len: int) -> bytes:
    """The transport-mode header ``header`` (``info.split`` bytes) with the next-header byte
    at ``info.nh_offset`` set to ``proto`` and lengths/checksum fixed for ``payload_len``
    bytes after it."""
    hdr = bytearray(header)
    hdr[info.nh_offset] = proto
    if info.version == 4:
        struct.pack_into("!H", hdr, 2, len(hdr) + payload_len)
        hdr[10] = hdr[11] = 0
        struct.pack_into("!H", hdr, 10, internet_checksum(hdr))
    else:
        struct.pack_into("!H", hdr, 4, len(hdr) - 40 + payload_len)
    return bytes(hdr)


def udp_checksum_v6(src: bytes, dst: bytes, segment: bytes | memoryview) -> int:
    """The UDP checksum over the IPv6 pseudo-header (mandatory for UDP over IPv6)."""
    pseudo = src + dst + struct.pack("!II", len(segment), PROTO_UDP)
    c = internet_checksum(pseudo + bytes(segment))
    return c or 0xFFFF
