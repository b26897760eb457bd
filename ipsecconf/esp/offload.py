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

_TCP_FIN, _TCP_PSH, _TCP_ACK = 1, 8, 16
_TCP_CWR = 0x80
_TCP_LAST_ONLY = _TCP_FIN | _TCP_PSH
"""Flags that only the last segment of a super-packet keeps."""
_TCP_MERGEABLE = _TCP_ACK | _TCP_PSH
"""Segments carrying any other flag are never merged (as Linux's GRO)."""
_UDP_CSUM_OFFSET = 6
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


class OffloadError(ValueError):
    """A packet from the TUN that cannot be segmented or finished as its header asks."""


def ones_sum(data: bytes | bytearray | memoryview) -> int:
    """The ones'-complement sum of ``data`` as 16-bit big-endian words (an odd last byte
    padded with zero), reduced modulo 0xFFFF (so 0 stands for both zeros)."""
    n = len(data)
    value = int.from_bytes(data, "big")
    if n & 1:
        value <<= 8
        n += 1
    return reduce(value, n >> 1)


_FOLDS: dict[int, tuple[tuple[int, int], ...]] = {}
_FOLDS_MAX = 1024
"""Plans kept, one per length seen, for lengths up to :data:`_FOLDS_WORDS` words (a plan
holds about as many bytes of masks as the length: at most about 8 MB in all)."""
_FOLDS_WORDS = 4096


def reduce(value: int, words: int) -> int:
    """``value`` (at most ``words`` 16-bit words) modulo 0xFFFF.  Dividing a long integer
    by a small one costs a machine division per 30 bits; adding its halves first (2**16
    is 1 modulo 0xFFFF, so high * 2**(16 h) + low is congruent to high + low) costs a
    shift and a mask, so the division is left for the last few words -- about twice as
    fast for a 1400-byte segment."""
    plan = _FOLDS.get(words)
    if plan is None:
        steps = []
        left = words
        while left > 24:
            half = (left + 1) >> 1
            steps.append((half << 4, (1 << (half << 4)) - 1))
            left = half + 1  # the sum of the halves may carry into one more word
        plan = tuple(steps)
        if words <= _FOLDS_WORDS:
            if len(_FOLDS) >= _FOLDS_MAX:
                _FOLDS.clear()
            _FOLDS[words] = plan
    for shift, mask in plan:
        value = (value >> shift) + (value & mask)
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
    if total > len(packet) or ihl < 20 or ihl + 20 > total:
        raise OffloadError("IPv4 header length or total length out of range")
    return _segments(packet[:total], ihl, mss)


def segment_tcp6(packet: memoryview, mss: int) -> list[bytes]:
    """The MSS-sized TCP/IPv6 segments of a super-packet (no extension headers)."""
    if len(packet) < 60 or packet[0] >> 4 != 6 or packet[6] != 6:
        raise OffloadError("GSO TCPV6 frame without an IPv6 TCP packet")
    total = 40 + _U16.unpack_from(packet, 4)[0]
    if total > len(packet):
        raise OffloadError("IPv6 payload length beyond the frame")
    return _segments(packet[:total], 40, mss)


_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!4sIIBBHHH")
"""TCP header: ports, sequence, ACK, data offset, flags, window, checksum, urgent."""


def _segments(packet: memoryview, ihl: int, mss: int) -> list[bytes]:
    total = len(packet)
    thl = (packet[ihl + 12] >> 4) * 4
    hlen = ihl + thl
    if thl < 20 or hlen >= total or mss <= 0:
        raise OffloadError("TCP header length out of range, no payload or no segment size")
    ports, seq0, ack, doff, flags, window, _csum, urg = _TCP.unpack_from(packet, ihl)
    options = bytes(packet[ihl + 20 : hlen])
    v4 = packet[0] >> 4 == 4
    src, dst = (bytes(packet[12:16]), bytes(packet[16:20])) if v4 else (
        bytes(packet[8:24]), bytes(packet[24:40]))  # fmt: skip
    # What every segment's TCP checksum shares: pseudo-header addresses and protocol,
    # header words but the sequence number, flags and checksum (its own length, sequence
    # number, flags and payload are added per segment).
    base = (
        int.from_bytes(src + dst, "big") + 6 + ones_sum(packet[ihl : ihl + 4])
        + ones_sum(packet[ihl + 8 : ihl + 13]) + window + urg + ones_sum(options)
    )  # fmt: skip
    if v4:
        # Each segment's identification is the super-packet's plus its index (as the
        # kernel's tcp4_gso_segment); the header's checksum is finished per segment.
        tos, ident, frag, ttl = packet[1], _U16.unpack_from(packet, 4)[0], _U16.unpack_from(
            packet, 6)[0], packet[8]  # fmt: skip
        ip_opts = bytes(packet[20:ihl])
        ip_base = ((0x4500 | tos) + frag + (ttl << 8) + 6 + int.from_bytes(src + dst, "big")
                   + ones_sum(ip_opts) + ((ihl - 20) << 6))  # fmt: skip
        vihl = 0x40 | ihl >> 2
    else:
        head6 = _U32.unpack_from(packet, 0)[0]
        hops = packet[7]
    osum = ones_sum
    tcp_pack = _TCP.pack
    starts = range(hlen, total, mss)
    last = starts[-1]
    # CWR on the first segment only, FIN and PSH on the last only.
    first = flags & ~_TCP_LAST_ONLY
    mid = first & ~_TCP_CWR
    final = flags if last == hlen else flags & ~_TCP_CWR
    out: list[bytes] = []
    append = out.append
    for start in starts:
        payload = packet[start : start + mss]
        n = len(payload)
        seq = (seq0 + start - hlen) & 0xFFFFFFFF
        f = final if start == last else first if start == hlen else mid
        s = (base + thl + n + (seq >> 16) + (seq & 0xFFFF) + f + osum(payload)) % 0xFFFF
        tcp = tcp_pack(ports, seq, ack, doff, f, window, (0xFFFF - s) % 0xFFFF, urg)
        if v4:
            idn = (ident + (start - hlen) // mss) & 0xFFFF
            length = hlen + n
            c = (ip_base + length + idn) % 0xFFFF
            ip = _IP4.pack(vihl, tos, length, idn, frag, ttl, 6, (0xFFFF - c) % 0xFFFF, src, dst)
            append(b"".join((ip, ip_opts, tcp, options, payload)))
        else:
            ip = _IP6.pack(head6, thl + n, 6, hops, src, dst)
            append(b"".join((ip, tcp, options, payload)))
    return out


# -- writing: coalescing decapsulated segments ---------------------------------------
Frame = list[bytes | memoryview]
"""Buffers of one TUN write (``writev``): the virtio header, then the packet in pieces."""


_V4_TCP = struct.Struct("!BBHxxHBBxx12xIIBBHxxH")
"""IPv4 (no options) + TCP: version/IHL, TOS, total length, fragment word, TTL, protocol,
sequence, ACK, data offset, flags, window, urgent pointer."""
_V6_TCP = struct.Struct("!IHBB32x4xIIBBHxxH")
"""IPv6 + TCP: version/class/flow, payload length, next header, hop limit, then as above."""


class _Run:
    """Consecutive segments of one flow being merged."""

    __slots__ = ("closed", "first", "hlen", "ihl", "limit", "mss", "next_seq", "packets",
                 "psh", "sig", "size")  # fmt: skip

    def __init__(
        self,
        p: bytes,
        ihl: int,
        hlen: int,
        n: int,
        next_seq: int,
        psh: bool,
        sig: tuple[object, ...],
    ) -> None:
        self.first = p
        self.ihl = ihl
        self.hlen = hlen
        self.mss = n
        self.next_seq = next_seq
        self.packets = [p]
        self.psh = self.closed = psh
        self.size = len(p)
        # IPv4 total length, IPv6 payload length: 16 bits.
        self.limit = MAX_IP_LEN if ihl == 20 else MAX_IP_LEN + 40
        self.sig = sig


def coalesce(packets: Sequence[bytes]) -> list[Frame]:
    """The TUN writes for a burst of decapsulated packets, in order within each flow:
    runs of mergeable TCP segments of one flow become one GSO packet, the rest go alone
    behind an empty header."""
    frames: list[Frame | _Run] = []
    runs: dict[bytes, _Run] = {}
    v4_tcp, v6_tcp = _V4_TCP.unpack_from, _V6_TCP.unpack_from
    for p in packets:
        n = len(p)
        if n >= 40 and p[0] == 0x45:
            ver, tos, length, frag, hops, proto, seq, ack, doff, flags, window, urg = v4_tcp(p)
            if proto != 6 or length != n or frag & 0x3FFF:
                frames.append([EMPTY_HDR, p])
                continue
            key = p[12:24]
            ihl = 20
            # Without DF the identification would matter, so such segments go alone.
            mergeable = frag == 0x4000
        elif n >= 60 and p[0] >> 4 == 6 and p[6] == 6:
            ver, length, proto, hops, seq, ack, doff, flags, window, urg = v6_tcp(p)
            if length + 40 != n:
                frames.append([EMPTY_HDR, p])
                continue
            key = p[8:44]
            ihl, tos = 40, 0
            mergeable = True
        else:
            frames.append([EMPTY_HDR, p])
            continue
        hlen = ihl + (doff >> 4) * 4
        payload = n - hlen
        if (
            not mergeable
            or payload <= 0
            or hlen < ihl + 20
            or flags & ~_TCP_MERGEABLE
            or not flags & _TCP_ACK
        ):
            frames.append([EMPTY_HDR, p])
            runs.pop(key, None)  # the flow's later segments must not merge ahead of ``p``
            continue
        # What must be equal across a run: IP TOS/TTL (IPv6: class, flow label, hop
        # limit), ACK number, data offset, window, urgent pointer and the options.
        sig = (ver, tos, hops, ack, doff, window, urg, p[ihl + 20 : hlen])
        psh = bool(flags & _TCP_PSH)
        run = runs.get(key)
        if (
            run is not None
            and not run.closed
            and seq == run.next_seq
            and payload <= run.mss
            and run.size + payload <= run.limit
            and sig == run.sig
        ):
            run.packets.append(p)
            run.size += payload
            run.next_seq = (seq + payload) & 0xFFFFFFFF
            run.psh = psh
            # A short segment or one with PSH ends the run (as Linux's GRO flushes it).
            run.closed = psh or payload < run.mss
        else:
            run = runs[key] = _Run(p, ihl, hlen, payload, (seq + payload) & 0xFFFFFFFF, psh, sig)
            frames.append(run)
    out: list[Frame] = []
    for f in frames:
        if isinstance(f, list):
            out.append(f)
        else:
            out.extend(_frames(f))
    return out


_CHUNK = 8000
"""Bytes per conversion when summing a run: even, so that 2**(8 * _CHUNK) is 1 modulo
0xFFFF and the chunks' integers add up to a value congruent to the whole."""
_CHUNK_WORDS = _CHUNK // 2 + 2
"""A bound on the words of a sum of chunks (a run has under 10: they carry into one more)."""


def _segments_sum(packets: list[bytes], ihl: int) -> int:
    """The TCP segments of a run as an integer of at most :data:`_CHUNK_WORDS` words,
    congruent to the sum of their words.  They are joined, each padded to an even length,
    and converted a chunk at a time: converting costs the same per byte whatever the
    size, while adding or folding an integer per segment costs more than that."""
    pieces: list[bytes | memoryview] = [memoryview(p)[ihl:] for p in packets]
    # All but the last have the first one's length (a shorter segment ends a run).
    if (len(packets[0]) - ihl) & 1 or (len(packets[-1]) - ihl) & 1:
        pieces = [x for piece in pieces for x in (piece, b"\0"[: len(piece) & 1])]
    view = memoryview(b"".join(pieces))
    return sum(int.from_bytes(view[i : i + _CHUNK], "big") for i in range(0, len(view), _CHUNK))


def _frames(run: _Run) -> list[Frame]:
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
    # (The pseudo-headers' terms add less than a word to the segments' sum.)
    if reduce(_segments_sum(packets, ihl) + count * addresses + tcp_lengths, _CHUNK_WORDS):
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
    return [[vnet, bytes(head), *[memoryview(p)[hlen:] for p in packets]]]
