"""The engine's path MTU bookkeeping and its ICMP answers, checked with scapy as the
oracle of the ICMP/ICMPv6 formats and checksums (no network needed)."""

from __future__ import annotations

import pytest

from ipsecconf.engine import pmtu

scapy = pytest.importorskip("scapy.all")
IP, IPv6, TCP, ICMP = scapy.IP, scapy.IPv6, scapy.TCP, scapy.ICMP
ICMPv6PacketTooBig, UDP, raw = scapy.ICMPv6PacketTooBig, scapy.UDP, scapy.raw

C4, F4 = "198.51.100.21", "203.0.113.10"
C6, F6 = "2001:db8:1::21", "2001:db8:2::10"


def _esp4(size: int = 1436) -> bytes:
    return bytes(raw(IP(src=C4, dst=F4, proto=50, flags="DF") / (b"\x00" * (size - 20))))


def test_learns_only_too_big_about_our_packets() -> None:
    p = pmtu.PathMtu()
    assert not p.active()
    frag = raw(
        IP(src="198.51.100.1", dst=C4) / ICMP(type=3, code=4, nexthopmtu=1400) / _esp4()[:28]
    )
    assert p.learn_icmp4(frag, 0.0) == (F4, 1400)
    assert p.learn_icmp4(frag, 1.0) is None  # no news
    assert p.get(F4, 1.0) == 1400 and p.active()
    assert p.get(F4, pmtu.EXPIRY + 1.0) is None  # expired
    # About someone else's TCP: not ours, ignored; other ICMP types too.
    tcp = raw(IP(src=C4, dst=F4) / TCP(dport=139))[:28]
    other = raw(IP(src="198.51.100.1", dst=C4) / ICMP(type=3, code=4, nexthopmtu=1300) / tcp)
    assert p.learn_icmp4(other, 0.0) is None
    echo = raw(IP(src=F4, dst=C4) / ICMP(type=0))
    assert p.learn_icmp4(echo, 0.0) is None
    # ESP-in-UDP on 4500 is ours; a silly MTU is raised to the IPv4 minimum.
    natt = raw(IP(src=C4, dst=F4) / UDP(sport=4500, dport=4500) / (b"x" * 30))[:28]
    low = raw(IP(src="198.51.100.1", dst=C4) / ICMP(type=3, code=4, nexthopmtu=300) / natt)
    assert p.learn_icmp4(low, 0.0) == (F4, pmtu.MIN_V4)


def test_learns_ipv6_packet_too_big() -> None:
    p = pmtu.PathMtu()
    ah = raw(IPv6(src=C6, dst=F6, nh=51) / (b"\x00" * 1400))
    msg = raw(ICMPv6PacketTooBig(mtu=1400) / ah[:1232])
    assert p.learn_icmp6(msg, 0.0) == (F6, 1400)


def test_answer_to_a_df_tcp_segment_is_a_valid_frag_needed() -> None:
    inner = raw(IP(src=C4, dst=F4, flags="DF") / TCP(sport=40000, dport=139, seq=7) / (b"d" * 1360))
    answer = pmtu.too_big(inner, 1348)
    assert answer is not None
    pkt = IP(answer)
    assert (pkt.src, pkt.dst) == (F4, C4)  # from the destination's side, to the sender
    assert pkt[ICMP].type == 3 and pkt[ICMP].code == 4 and pkt[ICMP].nexthopmtu == 1348
    again = IP(raw(pkt.__class__(answer)))
    del again.chksum
    del again[ICMP].chksum
    rebuilt = IP(raw(again))
    assert rebuilt.chksum == pkt.chksum and rebuilt[ICMP].chksum == pkt[ICMP].chksum
    assert bytes(pkt[ICMP].payload)[:28] == inner[:28]  # the quoted header and ports
    no_df = raw(IP(src=C4, dst=F4) / TCP() / b"d")
    assert pmtu.too_big(no_df, 1348) is None


def test_answer_to_an_ipv6_segment_is_a_valid_packet_too_big() -> None:
    inner = raw(IPv6(src=C6, dst=F6) / TCP(sport=40000, dport=139) / (b"d" * 1400))
    answer = pmtu.too_big(inner, 1300)
    assert answer is not None
    pkt = IPv6(answer)
    assert (pkt.src, pkt.dst) == (F6, C6)
    ptb = pkt[ICMPv6PacketTooBig]
    assert ptb.mtu == 1300 and len(answer) <= 1280
    check = ptb.cksum
    del ptb.cksum
    assert IPv6(raw(pkt))[ICMPv6PacketTooBig].cksum == check


def test_inner_mtu_leaves_room_for_this_overhead() -> None:
    assert pmtu.inner_mtu(1400, 1400, 1436) == 1400 - 36 - pmtu.SLACK
