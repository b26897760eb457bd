"""AH: mutable-field zeroing against scapy's zero_mutable_fields, IPv4 options and IPv6
extension headers, 64-bit alignment on IPv6."""

from __future__ import annotations

import os

import pytest

from ipsecconf.esp import ip
from ipsecconf.esp.ah import AhContext, ah_length, zero_mutable
from ipsecconf.esp.errors import DropReason, EspError
from ipsecconf.model.algorithms import integrity

from .helpers import packed, sa_pair

scapy_ipsec = pytest.importorskip("scapy.layers.ipsec", reason="scapy is not installed")
from scapy.layers.inet import IP, UDP, IPOption_Router_Alert, IPOption_RR  # noqa: E402
from scapy.layers.inet6 import HBHOptUnknown, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, PadN  # noqa: E402  # noqa: E402
from scapy.packet import raw  # noqa: E402


def test_ah_length_alignment() -> None:
    assert ah_length(12, 4) == 24 and ah_length(12, 6) == 24
    assert ah_length(16, 4) == 28 and ah_length(16, 6) == 32
    assert ah_length(24, 6) == 40 and ah_length(32, 6) == 48


def test_ipv4_mutable_fields_and_options_zeroed_like_scapy() -> None:
    pkt = (
        IP(
            src="198.51.100.1",
            dst="203.0.113.2",
            tos=0xB8,
            ttl=17,
            flags="DF",
            options=[IPOption_Router_Alert(), IPOption_RR(routers=["198.51.100.9"])],
        )
        / scapy_ipsec.AH(spi=1, seq=1, icv=b"\x00" * 12)
        / UDP()
    )
    wire = raw(pkt)
    ihl = (wire[0] & 0x0F) * 4
    ours = bytes(zero_mutable(wire[:ihl]))
    theirs = raw(scapy_ipsec.zero_mutable_fields(IP(wire)))[:ihl]
    assert ours == theirs
    assert ours[1] == 0 and ours[8] == 0 and ours[10:12] == b"\x00\x00"
    assert ours[20:24] == wire[20:24]  # Router Alert is immutable and kept


def test_ipv6_mutable_fields_and_changing_options_zeroed_like_scapy() -> None:
    changing = HBHOptUnknown(otype=0x3E, optdata=b"abcd")  # 0x20 bit set: may change
    fixed = HBHOptUnknown(otype=0x1E, optdata=b"wxyz")
    pkt = (
        IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0x2E, fl=0x12345, hlim=3)
        / IPv6ExtHdrHopByHop(options=[changing, fixed, PadN(optdata=b"\x00\x00")])
        / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00\x00\x00\x00")])
        / scapy_ipsec.AH(spi=1, seq=1, icv=b"\x00" * 12)
        / UDP()
    )
    wire = raw(pkt)
    info = ip.parse(wire)
    assert info.proto == 51
    ours = bytes(zero_mutable(wire[: info.l4]))
    theirs = raw(scapy_ipsec.zero_mutable_fields(IPv6(wire)))[: info.l4]
    assert ours == theirs
    assert b"abcd" not in ours and b"wxyz" in ours


def test_ah_protects_addresses_and_payload_but_not_ttl() -> None:
    out, inn = sa_pair(("ah", None, "sha256"), "transport", 4)
    clear = ip.ipv4_header(packed("198.51.100.10"), packed("203.0.113.20"), 17, 8) + bytes(8)
    wire = bytearray(out.encapsulate(clear, 0.0))
    wire[8] -= 1  # a router decrements the TTL (and fixes the checksum; AH ignores both)
    got = inn.decapsulate(bytes(wire), ip.parse(bytes(wire)), 0.0)
    assert got[12:] == clear[12:] and got[8] == clear[8] - 1 and ip.internet_checksum(got[:20]) == 0
    wire = bytearray(out.encapsulate(clear, 0.0))
    wire[15] ^= 1  # the source address is immutable
    with pytest.raises(EspError) as exc:
        inn.decapsulate(bytes(wire), ip.parse(bytes(wire)), 0.0)
    assert exc.value.reason is DropReason.INTEGRITY_FAILED


def test_ah_rejects_lengths_that_do_not_fit_the_icv() -> None:
    ctx = AhContext(0x1234, integrity("sha256"), os.urandom(32))
    hdr = ip.ipv4_header(packed("198.51.100.10"), packed("203.0.113.20"), 51, 24 + 4)
    bad = (
        hdr
        + bytes([17, 4, 0, 0])
        + (0x1234).to_bytes(4, "big")
        + (1).to_bytes(4, "big")
        + bytes(16)
    )
    with pytest.raises(EspError) as exc:
        ctx.verify(bad, 20, len(bad))
    assert exc.value.reason is DropReason.MALFORMED
