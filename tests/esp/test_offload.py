"""TUN offloads (ipsecconf.esp.offload): segmenting super-packets, finishing partial
checksums and coalescing segments, checked against a straightforward word-by-word
checksum and by round trips (segment, coalesce, segment again)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsecconf.esp import offload

SRC4, DST4 = bytes([198, 51, 100, 10]), bytes([198, 51, 100, 130])
SRC6 = bytes.fromhex("20010db8000a00000000000000000010")
DST6 = bytes.fromhex("20010db8000b00000000000000000130")
ACK, PSH, FIN, CWR, SYN = 0x10, 0x08, 0x01, 0x80, 0x02


def ref_sum(data: bytes) -> int:
    """Ones'-complement sum of 16-bit words, the end-around carry folded each step."""
    if len(data) % 2:
        data += b"\0"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ref_checksum(data: bytes) -> int:
    return ~ref_sum(data) & 0xFFFF


def pseudo(src: bytes, dst: bytes, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, 6, length)
    return src + dst + struct.pack("!IxxxB", length, 6)


def tcp_verifies(packet: bytes) -> bool:
    ihl, src, dst = _addrs(packet)
    return ref_sum(pseudo(src, dst, len(packet) - ihl) + packet[ihl:]) == 0xFFFF


def _addrs(packet: bytes) -> tuple[int, bytes, bytes]:
    if packet[0] >> 4 == 4:
        return (packet[0] & 15) * 4, packet[12:16], packet[16:20]
    return 40, packet[8:24], packet[24:40]


def tcp_packet(
    v6: bool,
    payload: bytes,
    *,
    seq: int = 1000,
    flags: int = ACK,
    options: bytes = b"",
    ident: int = 7,
    tos: int = 0,
    ack: int = 5555,
    window: int = 500,
    sport: int = 40000,
) -> bytes:
    """A TCP/IP packet with correct checksums (the reference ones)."""
    doff = (20 + len(options)) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, 5201, seq, ack, doff << 4, flags, window, 0, 0)
    tcp += options
    src, dst = (SRC6, DST6) if v6 else (SRC4, DST4)
    csum = ref_checksum(pseudo(src, dst, len(tcp) + len(payload)) + tcp + payload)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    if v6:
        ip = struct.pack("!IHBB16s16s", (6 << 28) | (tos << 20), len(tcp) + len(payload), 6,
                         64, SRC6, DST6)  # fmt: skip
    else:
        total = 20 + len(tcp) + len(payload)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, tos, total, ident, 0x4000, 64, 6, 0, SRC4, DST4)
        ip = ip[:10] + struct.pack("!H", ref_checksum(ip)) + ip[12:]
    return ip + tcp + payload


def gso_frame(packet: bytes, mss: int) -> bytes:
    """``packet`` as the kernel hands a super-packet over: NEEDS_CSUM, the TCP checksum
    field holding the pseudo-header sum of the whole length."""
    ihl, src, dst = _addrs(packet)
    field = ref_sum(pseudo(src, dst, len(packet) - ihl))
    packet = packet[: ihl + 16] + struct.pack("!H", field) + packet[ihl + 18 :]
    gso = offload.GSO_TCPV6 if packet[0] >> 4 == 6 else offload.GSO_TCPV4
    thl = (packet[ihl + 12] >> 4) * 4
    return offload.VNET_HDR.pack(offload.F_NEEDS_CSUM, gso, ihl + thl, mss, ihl, 16) + packet


def joined(frame: offload.Frame) -> bytes:
    return b"".join(bytes(b) for b in frame)


def payloads(max_size: int) -> st.SearchStrategy[bytes]:
    """Payloads of any length up to ``max_size`` (hypothesis alone favours short ones):
    a random pattern repeated, cut at a random length."""
    return st.builds(
        lambda seed, n: (seed * (n // len(seed) + 1))[:n],
        st.binary(min_size=1, max_size=64),
        st.integers(1, max_size),
    )


options_st = st.sampled_from([b"", b"\x01\x01\x08\x0a" + bytes(range(8)), b"\x02\x04\x05\x50"])


@given(st.binary(max_size=3001))
def test_ones_sum_matches_the_reference(data: bytes) -> None:
    assert offload.ones_sum(data) % 0xFFFF == ref_sum(data) % 0xFFFF
    if any(data):
        assert offload.fold(offload.ones_sum(data)) == ref_checksum(data)


@settings(max_examples=25, deadline=None)
@given(payloads(70000))
def test_ones_sum_of_long_buffers(data: bytes) -> None:
    # Past the lengths whose folding plans are kept, and back.
    assert offload.ones_sum(data) == ref_sum(data) % 0xFFFF
    assert offload.ones_sum(data[:1400]) == ref_sum(data[:1400]) % 0xFFFF


@settings(max_examples=150, deadline=None)
@given(
    v6=st.booleans(),
    payload=payloads(20000),
    mss=st.integers(40, 1460),
    seq=st.integers(0, 0xFFFFFFFF),
    last_flags=st.sampled_from([ACK, ACK | PSH, ACK | PSH | FIN, ACK | CWR, ACK | CWR | PSH]),
    options=options_st,
    ident=st.integers(0, 0xFFFF),
)
def test_segments_carry_the_payload_with_valid_headers(
    v6: bool, payload: bytes, mss: int, seq: int, last_flags: int, options: bytes, ident: int
) -> None:
    big = tcp_packet(v6, payload, seq=seq, flags=last_flags, options=options, ident=ident)
    segs = offload.split(gso_frame(big, mss))
    ihl = 40 if v6 else 20
    hlen = ihl + 20 + len(options)
    assert b"".join(s[hlen:] for s in segs) == payload
    assert len(segs) == -(-len(payload) // mss)
    for i, s in enumerate(segs):
        assert len(s) - hlen == min(mss, len(payload) - i * mss)
        assert tcp_verifies(s)
        assert struct.unpack_from("!I", s, ihl + 4)[0] == (seq + i * mss) & 0xFFFFFFFF
        flags = s[ihl + 13]
        expect = last_flags
        if i:
            expect &= ~CWR
        if i != len(segs) - 1:
            expect &= ~(PSH | FIN)
        assert flags == expect
        assert s[ihl + 8 : ihl + 12] == big[ihl + 8 : ihl + 12]  # ACK number
        assert s[ihl + 14 : ihl + 16] == big[ihl + 14 : ihl + 16]  # window
        assert s[ihl + 18 : hlen] == big[ihl + 18 : hlen]  # urgent pointer, options
        if v6:
            assert struct.unpack_from("!H", s, 4)[0] == len(s) - 40
            assert s[:4] == big[:4] and s[6:40] == big[6:40]
        else:
            assert ref_sum(s[:20]) == 0xFFFF
            assert struct.unpack_from("!HH", s, 2) == (len(s), (ident + i) & 0xFFFF)


@settings(max_examples=150, deadline=None)
@given(
    v6=st.booleans(),
    payload=payloads(60000),
    mss=st.integers(500, 1460),
    seq=st.integers(0, 0xFFFFFFFF),
    psh=st.booleans(),
    options=options_st,
)
def test_coalescing_segments_gives_back_the_super_packet(
    v6: bool, payload: bytes, mss: int, seq: int, psh: bool, options: bytes
) -> None:
    big = tcp_packet(v6, payload, seq=seq, flags=ACK | (PSH if psh else 0), options=options)
    segs = offload.split(gso_frame(big, mss))
    frames = offload.coalesce(segs)
    if len(segs) == 1:
        assert frames == [[offload.EMPTY_HDR, segs[0]]]
        return
    assert len(frames) == 1
    frame = joined(frames[0])
    flags, gso, hdr_len, gso_size, start, off = offload.VNET_HDR.unpack_from(frame)
    ihl = 40 if v6 else 20
    assert (flags, gso_size, start, off) == (offload.F_NEEDS_CSUM, mss, ihl, 16)
    assert gso == (offload.GSO_TCPV6 if v6 else offload.GSO_TCPV4)
    assert hdr_len == ihl + 20 + len(options)
    packet = frame[offload.VNET_HDR_LEN :]
    # The checksum field holds the pseudo-header sum (CHECKSUM_PARTIAL) ...
    _, src, dst = _addrs(packet)
    field = struct.unpack_from("!H", packet, ihl + 16)[0]
    assert field % 0xFFFF == ref_sum(pseudo(src, dst, len(packet) - ihl)) % 0xFFFF
    if not v6:
        assert ref_sum(packet[:20]) == 0xFFFF
    # ... and the kernel, segmenting it again, gets the very segments back.
    assert offload.split(frame) == segs


@given(v6=st.booleans(), n=st.integers(2, 40))
def test_runs_stop_at_the_64k_limit(v6: bool, n: int) -> None:
    payload = bytes(range(256)) * (n * 1400 // 256 + 1)
    segs = offload.split(gso_frame(tcp_packet(v6, payload[: n * 1400]), 1400))
    segs += offload.split(gso_frame(tcp_packet(v6, payload, seq=1000 + n * 1400), 1400))
    frames = offload.coalesce(segs)
    parts = [joined(f)[offload.VNET_HDR_LEN :] for f in frames]
    ihl = 40 if v6 else 20
    assert all(len(p) - (ihl - 20) <= 0xFFFF for p in parts)
    data = b"".join(p[ihl + 20 :] for p in parts)
    assert data == payload[: n * 1400] + payload


def test_a_run_with_a_bad_checksum_goes_segment_by_segment() -> None:
    a = [tcp_packet(False, bytes([i]) * 100, seq=1000 + 100 * i) for i in range(4)]
    other = [tcp_packet(False, b"x" * 100, seq=7 + 100 * i, sport=40001) for i in range(2)]
    bad = bytearray(a[2])
    bad[-1] ^= 1  # its checksum fails: the kernel must see it alone, to drop it
    udp = bytes(28)
    frames = offload.coalesce([a[0], other[0], a[1], other[1], bytes(bad), a[3], udp])
    singles = [[offload.EMPTY_HDR, p] for p in (a[0], a[1], bytes(bad), a[3])]
    assert frames[:4] == singles
    assert frames[4][0] != offload.EMPTY_HDR and len(frames[4]) == 4
    assert frames[5:] == [[offload.EMPTY_HDR, udp]]


def test_what_may_not_merge_splits_its_flow_in_order() -> None:
    a = [tcp_packet(False, bytes([i]) * 100, seq=1000 + 100 * i) for i in range(5)]
    fin = tcp_packet(False, b"f" * 100, seq=1200, flags=ACK | FIN)
    syn = tcp_packet(False, b"", seq=0, flags=SYN, sport=40002)
    frames = offload.coalesce([a[0], a[1], syn, fin, a[3], a[4]])
    assert [len(f) for f in frames] == [4, 2, 2, 4]
    assert frames[1:3] == [[offload.EMPTY_HDR, syn], [offload.EMPTY_HDR, fin]]
    assert bytes(frames[3][2]) == a[3][40:]


def test_a_gap_a_short_segment_or_psh_ends_a_run() -> None:
    seg = [tcp_packet(False, b"y" * 100, seq=1000 + 100 * i) for i in range(3)]
    gap = tcp_packet(False, b"y" * 100, seq=1500)
    short = tcp_packet(False, b"z" * 50, seq=1600)
    after_short = tcp_packet(False, b"z" * 50, seq=1650)
    frames = offload.coalesce([*seg, gap, short, after_short])
    # 3 merged; the gap starts a run that the short segment ends
    assert [len(f) for f in frames] == [5, 4, 2]
    psh = tcp_packet(False, b"p" * 100, seq=1300, flags=ACK | PSH)
    frames = offload.coalesce([*seg, psh, tcp_packet(False, b"q" * 100, seq=1400)])
    assert [len(f) for f in frames] == [6, 2]
    assert joined(frames[0])[offload.VNET_HDR_LEN + 33] & PSH


def test_different_tos_or_options_do_not_merge() -> None:
    a = tcp_packet(False, b"a" * 100, seq=1000)
    b = tcp_packet(False, b"b" * 100, seq=1100, tos=3)
    c = tcp_packet(False, b"c" * 100, seq=1100, options=b"\x01\x01\x01\x01")
    assert [len(f) for f in offload.coalesce([a, b])] == [2, 2]
    assert [len(f) for f in offload.coalesce([a, c])] == [2, 2]


@given(payload=st.binary(max_size=2000), v6=st.booleans())
def test_a_partial_udp_checksum_is_finished(payload: bytes, v6: bool) -> None:
    src, dst = (SRC6, DST6) if v6 else (SRC4, DST4)
    length = 8 + len(payload)
    part = ref_sum(src + dst + struct.pack("!HH", 17, length))
    udp = struct.pack("!HHHH", 5353, 53, length, part) + payload
    head = b"\0" * (40 if v6 else 20)
    frame = offload.VNET_HDR.pack(offload.F_NEEDS_CSUM, 0, 0, 0, len(head), 6) + head + udp
    (out,) = offload.split(frame)
    csum = struct.unpack_from("!H", out, len(head) + 6)[0]
    assert csum != 0
    full = src + dst + struct.pack("!HH", 17, length) + out[len(head) :]
    assert ref_sum(full) == 0xFFFF


def test_plain_frames_and_refusals() -> None:
    packet = tcp_packet(False, b"plain")
    assert offload.split(offload.EMPTY_HDR + packet) == [packet]
    with pytest.raises(offload.OffloadError):
        offload.split(b"\0" * 5)
    with pytest.raises(offload.OffloadError):
        offload.split(offload.VNET_HDR.pack(0, 3, 0, 1400, 0, 0) + packet)  # UFO
    with pytest.raises(offload.OffloadError):
        offload.split(offload.VNET_HDR.pack(0, offload.GSO_TCPV6, 0, 1400, 0, 0) + packet)
    with pytest.raises(offload.OffloadError):
        offload.split(offload.VNET_HDR.pack(1, 0, 0, 0, 20, 200) + packet)
