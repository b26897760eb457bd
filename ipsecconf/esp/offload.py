"""TUN offloads, sans-IO: the packet logic behind a TUN device opened with
``IFF_VNET_HDR`` and ``TUNSETOFFLOAD`` (checksum and TCP segmentation offload).

With offloads on, every packet crossing the TUN carries a ``virtio_net_hdr`` (10 bytes,
little-endian) in front of it.  Reading, the kernel may hand over

* a TCP "super-packet" of up to 64 KB (``gso_type`` TCPV4/TCPV6, ``gso_size`` the MSS):
  :func:`split` cuts it into the MSS-sized segments the kernel would have sent, each with
  its own IP length, identification and checksum and TCP sequence number, flags (CWR only
  on the first, FIN and PSH only on the last) and a complete checksum;
* a packet whose transport checksum is left for the device to finish
  (``VIRTIO_NET_HDR_F_NEEDS_CSUM``: the field holds the pseudo-header sum, the ones'-
  complement sum from ``csum_start`` to the end goes into it): :func:`split` finishes it.

Writing, :func:`coalesce` does what GRO does on a NIC: consecutive in-order TCP segments
of one flow (same addresses, ports, ACK, window, options, IP TOS/TTL; contiguous sequence
numbers; full-sized but for the last; only ACK and PSH set) become one packet with a
header saying GSO TCPV4/TCPV6, so the kernel's stack handles 64 KB at once instead of
1400 bytes.  The kernel's own GRO checks each segment's checksum before merging; so does
:func:`coalesce`, with one reduction per run (a run that fails is written segment by
segment, for the kernel to drop and count the bad ones).  The merged packet is written
with ``NEEDS_CSUM`` and its checksum field set to the pseudo-header sum: the kernel takes
it as ``CHECKSUM_PARTIAL``, which its TCP accepts as verified and which a forwarded
packet keeps until a device or the software fallback fills it in.  Everything else is
written behind an empty header (``CHECKSUM_NONE``: the kernel verifies as it always did).

Wire packets are unchanged: ESP protects the segments, never a super-packet.

Checksums use the identity behind :func:`ipsecconf.esp.ip.internet_checksum`: the big-
endian integer of an even-length buffer is congruent, modulo 0xFFFF, to the ones'-
complement sum of its 16-bit words (2**16 = 1 modulo 0xFFFF).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

VNET_HDR = struct.Struct("<BBHHHH")
"""``struct virtio_net_hdr``: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset."""
VNET_HDR_LEN = VNET_HDR.size
F_NEEDS_CSUM = 1
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_TCPV6 = 4
GSO_ECN = 0x80
EMPTY_HDR = bytes(VNET_HDR_LEN)
"""The header of a packet that needs nothing from the kernel."""
MAX_IP_LEN = 0xFFFF
"""A coalesced packet's IP length (IPv4 total, IPv6 payload) stays below this."""

_TCP_FIN, _TCP_SYN, _TCP_RST, _TCP_PSH, _TCP_ACK, _TCP_URG = 1, 2, 4, 8, 16, 32
_TCP_CWR = 0x80
_TCP_LAST_ONLY = _TCP_FIN | _TCP_PSH
"""Flags that only the last segment of a super-packet keeps."""
_TCP_MERGEABLE = _TCP_ACK | _TCP_PSH
"""Segments carrying any other flag are never merged (as Linux's GRO)."""
_UDP_CSUM_OFFSET = 6
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_SEQ_FLAGS = struct.Struct("!I5xB")  # TCP sequence number (offset 4) ... flags (offset 13)


class OffloadError(ValueError):
    """A packet from the TUN that cannot be segmented or finished as its header asks."""


def ones_sum(data: bytes | bytearray | memoryview) -> int:
    """The ones'-complement sum of ``data`` as 16-bit big-endian words (an odd last byte
    padded with zero), reduced modulo 0xFFFF (so 0 stands for both zeros)."""
    value = int.from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8
    return value % 0xFFFF


def fold(total: int) -> int:
    """The checksum (RFC 1071) from a sum of :func:`ones_sum` parts that is not all zero
    (a pseudo-header or an IPv4 header is part of it): the complement of the folded sum,
    where a sum congruent to 0 folds to 0xFFFF, so its checksum is 0."""
    return (0xFFFF - total % 0xFFFF) % 0xFFFF


def pseudo_sum(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """The pseudo-header's contribution (RFC 793 / RFC 8200 section 8.1): the addresses,
    the protocol and the transport length (their word layout differs between IPv4 and
    IPv6, their sum does not)."""
    return (int.from_bytes(src + dst, "big") + proto + length) % 0xFFFF


def transport_ok(packet: bytes | memoryview, l4: int, src: bytes, dst: bytes, proto: int) -> bool:
    """Whether the TCP/UDP checksum of ``packet`` (transport header at ``l4``) verifies."""
    total = pseudo_sum(src, dst, proto, len(packet) - l4) + ones_sum(packet[l4:])
    return total % 0xFFFF == 0


# -- reading: super-packets and partial checksums ------------------------------------
def split(frame: bytes) -> list[bytes]:
    """The packets a frame read from the TUN (virtio header + packet) stands for: the
    packet itself, its checksum finished when asked, or the segments of a TCP super-
    packet.  Raises :class:`OffloadError` for what cannot be done as asked."""
    if len(frame) < VNET_HDR_LEN:
        raise OffloadError("frame shorter than its virtio header")
    flags, gso_type, _hdr_len, gso_size, csum_start, csum_offset = VNET_HDR.unpack_from(frame)
    gso = gso_type & ~GSO_ECN
    if gso == GSO_NONE:
        if flags & F_NEEDS_CSUM:
            return [finish_checksum(frame, VNET_HDR_LEN, csum_start, csum_offset)]
        return [frame[VNET_HDR_LEN:]]
    if gso == GSO_TCPV4:
        return segment_tcp4(memoryview(frame)[VNET_HDR_LEN:], gso_size)
    if gso == GSO_TCPV6:
        return segment_tcp6(memoryview(frame)[VNET_HDR_LEN:], gso_size)
    raise OffloadError(f"unsupported GSO type {gso_type}")


def finish_checksum(frame: bytes, at: int, csum_start: int, csum_offset: int) -> bytes:
    """The packet at ``frame[at:]`` with the checksum the kernel left to the device
    filled in: the field at ``csum_start + csum_offset`` already holds the pseudo-header
    sum, so the checksum is the complement of the sum from ``csum_start`` to the end."""
    packet = bytearray(frame[at:]) if at else bytearray(frame)
    field = csum_start + csum_offset
    if csum_start >= len(packet) or field + 2 > len(packet):
        raise OffloadError("checksum offsets beyond the packet")
    csum = fold(ones_sum(memoryview(packet)[csum_start:]))
    if csum == 0 and csum_offset == _UDP_CSUM_OFFSET:
        csum = 0xFFFF  # UDP's 0 means "no checksum": a computed 0 is sent as 0xFFFF
    _U16.pack_into(packet, field, csum)
    return bytes(packet)


def segment_tcp4(packet: memoryview, mss: int) -> list[bytes]:
    """The MSS-sized TCP/IPv4 segments of a super-packet."""
    if len(packet) < 40 or packet[0] >> 4 != 4 or packet[9] != 6:
        raise OffloadError("GSO TCPV4 frame without an IPv4 TCP packet")
    ihl = (packet[0] & 15) * 4
    total = _U16.unpack_from(packet, 2)[0]
    if total > len(packet) or ihl < 20:
        raise OffloadError("IPv4 header length or total length out of range")
    thl = (packet[ihl + 12] >> 4) * 4
    hlen = ihl + thl
    if thl < 20 or hlen > total:
        raise OffloadError("TCP header length out of range")
    ip_hdr = bytearray(packet[:ihl])
    ip_hdr[10:12] = b"\0\0"
    ident = _U16.unpack_from(ip_hdr, 4)[0]
    ip_base = ones_sum(ip_hdr) - _U16.unpack_from(ip_hdr, 2)[0] - ident
    src, dst = bytes(packet[12:16]), bytes(packet[16:20])
    return _segments(packet, ihl, thl, total, mss, src, dst, ip_hdr, ident, ip_base)


def segment_tcp6(packet: memoryview, mss: int) -> list[bytes]:
    """The MSS-sized TCP/IPv6 segments of a super-packet (no extension headers)."""
    if len(packet) < 60 or packet[0] >> 4 != 6 or packet[6] != 6:
        raise OffloadError("GSO TCPV6 frame without an IPv6 TCP packet")
    total = 40 + _U16.unpack_from(packet, 4)[0]
    if total > len(packet):
        raise OffloadError("IPv6 payload length beyond the frame")
    thl = (packet[52] >> 4) * 4
    if thl < 20 or 40 + thl > total:
        raise OffloadError("TCP header length out of range")
    src, dst = bytes(packet[8:24]), bytes(packet[24:40])
    return _segments(packet, 40, thl, total, mss, src, dst, bytearray(packet[:40]), -1, 0)


def _segments(
    packet: memoryview,
    ihl: int,
    thl: int,
    total: int,
    mss: int,
    src: bytes,
    dst: bytes,
    ip_hdr: bytearray,
    ident: int,
    ip_base: int,
) -> list[bytes]:
    # ``ident`` is -1 for IPv6.  For IPv4 each segment's identification is the super-
    # packet's plus its index (as the kernel's tcp4_gso_segment), and the header checksum
    # is ``ip_base`` (the header's sum without length and identification) plus those two.
    hlen = ihl + thl
    if mss <= 0 or total <= hlen:
        raise OffloadError("GSO frame without a segment size or without payload")
    tcp_hdr = bytearray(packet[ihl:hlen])
    tcp_hdr[16:18] = b"\0\0"
    seq0, flags = _SEQ_FLAGS.unpack_from(tcp_hdr, 4)
    # The header's sum without sequence number and flags: those change per segment.
    tcp_base = ones_sum(tcp_hdr) - (seq0 >> 16) - (seq0 & 0xFFFF) - flags
    pseudo = pseudo_sum(src, dst, 6, 0)
    out: list[bytes] = []
    append = out.append
    v4 = ident >= 0
    starts = range(hlen, total, mss)
    last = len(starts) - 1
    for i, start in enumerate(starts):
        payload = packet[start : min(start + mss, total)]
        n = len(payload)
        seq = (seq0 + start - hlen) & 0xFFFFFFFF
        f = flags
        if i:
            f &= ~_TCP_CWR
        if i != last:
            f &= ~_TCP_LAST_ONLY
        _U32.pack_into(tcp_hdr, 4, seq)  # (struct's pad bytes would zero the ACK number)
        tcp_hdr[13] = f
        sums = pseudo + thl + n + tcp_base + (seq >> 16) + (seq & 0xFFFF) + f
        _U16.pack_into(tcp_hdr, 16, fold(sums + ones_sum(payload)))
        if v4:
            length, idn = hlen + n, (ident + i) & 0xFFFF
            _U16.pack_into(ip_hdr, 2, length)
            _U16.pack_into(ip_hdr, 4, idn)
            _U16.pack_into(ip_hdr, 10, fold(ip_base + length + idn))
        else:
            _U16.pack_into(ip_hdr, 4, thl + n)
        append(b"".join((ip_hdr, tcp_hdr, payload)))
    return out


# -- writing: coalescing decapsulated segments ---------------------------------------
Frame = list[bytes | memoryview]
"""Buffers of one TUN write (``writev``): the virtio header, then the packet in pieces."""


class _Segment:
    """A TCP segment that may be merged, parsed; and, once others join it, the run."""

    __slots__ = ("closed", "first", "hlen", "ihl", "limit", "mss", "next_seq", "packets",
                 "parts", "psh", "seq", "size", "sums")  # fmt: skip

    def __init__(self, first: bytes, ihl: int, hlen: int, seq: int, psh: bool) -> None:
        n = len(first) - hlen
        self.first = first
        self.ihl = ihl
        self.hlen = hlen
        self.seq = seq
        self.mss = n
        self.next_seq = (seq + n) & 0xFFFFFFFF
        self.packets = [first]
        self.parts: list[bytes | memoryview] = [memoryview(first)[hlen:]]
        self.psh = psh
        self.size = len(first)
        self.closed = psh
        # IPv4 total length, IPv6 payload length: 16 bits.
        self.limit = MAX_IP_LEN if ihl == 20 else MAX_IP_LEN + 40
        self.sums = _tcp_value(first, ihl)


def _tcp_value(p: bytes, ihl: int) -> int:
    """The TCP segment as an integer congruent to its words' sum, without reducing it:
    a run's segments are verified with one reduction (see :func:`_frames`)."""
    value = int.from_bytes(memoryview(p)[ihl:], "big")
    return value << 8 if (len(p) - ihl) & 1 else value


def coalesce(packets: Sequence[bytes]) -> list[Frame]:
    """The TUN writes for a burst of decapsulated packets, in order within each flow:
    runs of mergeable TCP segments of one flow become one GSO packet, the rest go alone
    behind an empty header."""
    frames: list[Frame | _Segment] = []
    runs: dict[bytes, _Segment] = {}
    for p in packets:
        key, seg = _parse(p)
        if seg is None:
            frames.append([EMPTY_HDR, p])
            if key:  # the flow's later segments must not merge ahead of ``p``
                runs.pop(key, None)
            continue
        run = runs.get(key)
        if run is not None and _append(run, seg):
            continue
        runs[key] = seg
        frames.append(seg)
    out: list[Frame] = []
    for f in frames:
        if isinstance(f, list):
            out.append(f)
        else:
            out.extend(_frames(f))
    return out


def _parse(p: bytes) -> tuple[bytes, _Segment | None]:
    """A TCP segment's flow key (addresses and ports) and, when it may be merged, the
    segment parsed; (b"", None) for what is not TCP over IPv4/IPv6 without options or
    extension headers."""
    n = len(p)
    if n < 40:
        return b"", None
    if p[0] == 0x45:
        if p[9] != 6 or _U16.unpack_from(p, 2)[0] != n or p[6] & 0x3F or p[7]:
            return b"", None
        ihl = 20
        key = p[12:24]
        if not p[6] & 0x40:
            return key, None  # without DF the identification would have to be kept
    elif p[0] >> 4 == 6:
        if n < 60 or p[6] != 6 or 40 + _U16.unpack_from(p, 4)[0] != n:
            return b"", None
        ihl = 40
        key = p[8:44]
    else:
        return b"", None
    hlen = ihl + (p[ihl + 12] >> 4) * 4
    flags = p[ihl + 13]
    if hlen < ihl + 20 or hlen >= n or flags & ~_TCP_MERGEABLE or not flags & _TCP_ACK:
        return key, None
    seq = _U32.unpack_from(p, ihl + 4)[0]
    return key, _Segment(p, ihl, hlen, seq, bool(flags & _TCP_PSH))


def _append(run: _Segment, seg: _Segment) -> bool:
    """Add ``seg`` to ``run`` if it continues it (else the caller starts a new run)."""
    first, ihl, hlen = run.first, run.ihl, run.hlen
    p, n = seg.first, seg.mss
    if (
        run.closed
        or seg.hlen != hlen
        or seg.seq != run.next_seq
        or n > run.mss
        or run.size + n > run.limit
        # IPv4 TOS and TTL; IPv6 class, flow label and hop limit.
        or (
            p[1] != first[1] or p[8] != first[8]
            if ihl == 20
            else p[:4] != first[:4] or p[7] != first[7]
        )
        # The same ACK number, window, urgent pointer and options (flags: ACK, maybe
        # PSH; the checksum at offset 16 differs).
        or p[ihl + 8 : ihl + 12] != first[ihl + 8 : ihl + 12]
        or p[ihl + 14 : ihl + 16] != first[ihl + 14 : ihl + 16]
        or p[ihl + 18 : hlen] != first[ihl + 18 : hlen]
    ):
        return False
    run.packets.append(p)
    run.parts.append(memoryview(p)[hlen:])
    run.sums += seg.sums
    run.next_seq = seg.next_seq
    run.size += n
    run.psh = seg.psh
    # A short segment or one with PSH ends the run (as Linux's GRO flushes it).
    run.closed = seg.psh or n < run.mss
    return True


def _frames(run: _Segment) -> list[Frame]:
    """The TUN write for a run: one GSO packet when its segments' checksums verify."""
    first, ihl, hlen, packets = run.first, run.ihl, run.hlen, run.packets
    count = len(packets)
    if count == 1:
        return [[EMPTY_HDR, first]]
    src, dst = (first[12:16], first[16:20]) if ihl == 20 else (first[8:24], first[24:40])
    # Every segment's checksum holds iff each sum is 0 modulo 0xFFFF; their total being 0
    # is the same test for one bad segment (the checksum's own strength), and a run that
    # fails goes out segment by segment, for the kernel to check and drop what is bad.
    addresses = int.from_bytes(src + dst, "big") + 6
    tcp_lengths = run.size - hlen + count * (hlen - ihl)
    if (run.sums + count * addresses + tcp_lengths) % 0xFFFF:
        return [[EMPTY_HDR, p] for p in packets]
    head = bytearray(first[:hlen])
    size = run.size
    if ihl == 20:
        _U16.pack_into(head, 2, size)
        head[10:12] = b"\0\0"
        _U16.pack_into(head, 10, fold(ones_sum(head[:20])))
        gso = GSO_TCPV4
    else:
        _U16.pack_into(head, 4, size - 40)
        gso = GSO_TCPV6
    if run.psh:
        head[ihl + 13] |= _TCP_PSH
    # CHECKSUM_PARTIAL: the field holds the pseudo-header sum, not its complement.
    _U16.pack_into(head, ihl + 16, pseudo_sum(src, dst, 6, size - ihl))
    vnet = VNET_HDR.pack(F_NEEDS_CSUM, gso, hlen, run.mss, ihl, 16)
    return [[vnet, bytes(head), *run.parts]]
