"""Minimal IP parse/build, checked against scapy where it can serve as an oracle."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsecconf.esp import ip
from ipsecconf.esp.errors import DecodeError

from .helpers import clear_packet, packed

scapy_inet = pytest.importorskip("scapy.layers.inet", reason="scapy is not installed")
from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import (  # noqa: E402
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.packet import raw  # noqa: E402


@given(st.binary(max_size=60), st.integers(0, 255), st.booleans())
def test_ipv4_header_checksum_matches_scapy(payload: bytes, tos: int, df: bool) -> None:
    hdr = ip.ipv4_header(
        packed("198.51.100.1"), packed("203.0.113.2"), 17, len(payload), tos=tos, df=df, ident=7
    )
    assert hdr == _scapy_rechecksum(hdr + payload)


def _scapy_rechecksum(packet: bytes) -> bytes:
    """The IPv4 header as scapy builds it with the checksum recomputed."""
    p = IP(packet)
    del p.chksum
    return raw(p)[:20]


@settings(max_examples=50, deadline=None)
@given(
    st.sampled_from([4, 6]),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 63),
    st.binary(max_size=40),
)
def test_outer_header_template_equals_a_fresh_header(version, plen, ident, tos, _):
    src, dst = (
        (packed("198.51.100.1"), packed("203.0.113.2"))
        if version == 4
        else (packed("2001:db8::1"), packed("2001:db8::2"))
    )
    t = ip.OuterHeader(src, dst, 50)
    plen = min(plen, 0xFFFF - 20)
    if version == 4:
        assert t.build(plen, tos, ident, False) == ip.ipv4_header(
            src, dst, 50, plen, tos=tos, ident=ident
        )
        assert t.build(plen, tos, ident, True) == ip.ipv4_header(
            src, dst, 50, plen, tos=tos, df=True
        )
    else:
        assert t.build(plen, tos, ident, False) == ip.ipv6_header(src, dst, 50, plen, tc=tos)


def test_parse_ports_and_split_ipv4() -> None:
    pkt = raw(
        IP(src="198.51.100.1", dst="203.0.113.2", options=b"\x01\x01\x01\x00")
        / TCP(sport=1234, dport=443)
    )
    info = ip.parse(pkt)
    assert (info.version, info.proto, info.sport, info.dport, info.split, info.nh_offset) == (
        4,
        6,
        1234,
        443,
        24,
        9,
    )
    frag = raw(IP(src="198.51.100.1", dst="203.0.113.2", frag=10) / UDP(sport=1, dport=2))
    assert ip.parse(frag).sport == ip.OPAQUE_PORT


def test_parse_ipv6_extension_headers_split_like_scapy() -> None:
    base = IPv6(src="2001:db8::1", dst="2001:db8::2")
    cases = [
        (base / UDP(sport=1, dport=2), 40, 17),
        (base / IPv6ExtHdrHopByHop() / UDP(sport=1, dport=2), 48, 17),
        (base / IPv6ExtHdrDestOpt() / UDP(sport=1, dport=2), 48, 17),
        (
            base
            / IPv6ExtHdrRouting(addresses=["2001:db8::9"])
            / IPv6ExtHdrDestOpt()
            / UDP(sport=1, dport=2),
            64,
            17,
        ),
        (base / IPv6ExtHdrFragment(offset=0) / UDP(sport=1, dport=2), 40, 17),
    ]
    for pkt, split, proto in cases:
        info = ip.parse(raw(pkt))
        assert (info.split, info.proto, info.sport, info.dport) == (split, proto, 1, 2), (
            pkt.summary()
        )
    later_fragment = raw(base / IPv6ExtHdrFragment(offset=8) / UDP(sport=1, dport=2))
    assert ip.parse(later_fragment).sport == ip.OPAQUE_PORT


def test_rewrite_header_fixes_lengths_and_checksum() -> None:
    pkt = clear_packet(4, "198.51.100.1", "203.0.113.2", b"abc")
    info = ip.parse(pkt)
    new = ip.rewrite_header(pkt[: info.split], info, 50, 100)
    assert new == _scapy_rechecksum(new + bytes(100))
    assert IP(new).len == 120 and IP(new).proto == 50
    assert ip.internet_checksum(new) == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_parse_raises_only_decode_errors(data: bytes) -> None:
    try:
        info = ip.parse(data)
    except DecodeError:
        return
    assert info.version in (4, 6) and info.length <= len(data)


def _outcome(parse, data: bytes) -> object:
    try:
        return parse(data)
    except DecodeError as exc:
        return (exc.reason, str(exc))


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([0x45, 0x46, 0x44, 0x65]),
    st.integers(0, 255),
    st.integers(0, 120),
    st.integers(0, 0xFFFF),
    st.sampled_from([0, 1, 6, 17, 50, 132]),
    st.binary(min_size=0, max_size=100),
)
def test_parse_shortcut_equals_the_general_parse(first, tos, total, frag, proto, rest) -> None:
    # parse() reads IPv4 without options in one unpack; parse_general() handles all.
    header = bytes((first, tos)) + total.to_bytes(2, "big") + b"\x12\x34"
    header += frag.to_bytes(2, "big") + bytes((64, proto)) + b"\x00\x00" + bytes(range(8))
    for data in (header + rest, (header + rest)[: total or 20], memoryview(header + rest)):
        assert _outcome(ip.parse, data) == _outcome(ip.parse_general, data)  # type: ignore[arg-type]
