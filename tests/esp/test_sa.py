"""SA-level properties over every suite x mode x IP version (hypothesis), lifetimes,
states and key hiding."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipsecconf.esp import ip
from ipsecconf.esp.api import make_sa
from ipsecconf.esp.errors import DropReason, EspError
from ipsecconf.esp.sa import (
    Lifetimes,
    LimitKind,
    SaEventKind,
    SaState,
)
from ipsecconf.model.algorithms import integrity
from ipsecconf.model.selectors import Endpoint, Selector

from .helpers import ALL_SUITES, ESP_SUITES, clear_packet, packet_for, sa_pair

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
suites = st.sampled_from(ALL_SUITES)
modes = st.sampled_from(["tunnel", "transport"])
versions = st.sampled_from([4, 6])


@SETTINGS
@given(suites, modes, versions, st.booleans(), st.booleans(), st.binary(max_size=300))
def test_decapsulate_inverts_encapsulate(suite, mode, version, esn, udp, payload) -> None:
    out, inn = sa_pair(suite, mode, version, esn=esn, udp=udp)
    clear = packet_for(mode, version, payload)
    for _ in range(2):
        wire = out.encapsulate(clear, 1.0)
        assert wire != clear
        assert inn.decapsulate(wire, ip.parse(wire), 1.0) == clear


def _covered_range(wire: bytes, proto: str, udp: bool, icv_bytes: int = 0) -> list[tuple[int, int]]:
    """Byte ranges the ICV covers: ESP from its header to the end; AH the addresses and
    everything from the AH header on except the padding that ends its ICV field (RFC 4302
    section 2.6: that padding is part of the ICV field, zeroed for the computation)."""
    info = ip.parse(wire)
    start = info.l4 + (8 if udp and proto == "esp" else 0)
    if proto != "ah":
        return [(start, len(wire))]
    ah_len = (wire[start + 1] + 2) * 4
    ranges = [(start, start + 12 + icv_bytes), (start + ah_len, len(wire))]
    ranges += [(12, 20)] if info.version == 4 else [(8, 40)]
    return ranges


@SETTINGS
@given(suites, modes, versions, st.booleans(), st.booleans(), st.data())
def test_any_flipped_bit_in_icv_covered_bytes_is_rejected(suite, mode, version, esn, udp, data):
    out, inn = sa_pair(suite, mode, version, esn=esn, udp=udp)
    clear = packet_for(mode, version, data.draw(st.binary(max_size=64)))
    wire = out.encapsulate(clear, 1.0)
    icv = integrity(suite[2]).icv_bytes if suite[0] == "ah" else 0
    ranges = _covered_range(wire, suite[0], udp and suite[0] == "esp", icv)
    lo, hi = data.draw(st.sampled_from(ranges))
    pos = data.draw(st.integers(lo, hi - 1))
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(wire)
    bad[pos] ^= 1 << bit
    with pytest.raises(EspError):
        inn.decapsulate(bytes(bad), ip.parse(bytes(bad)), 1.0)
    # The failed attempt moved nothing: the genuine packet still gets through.
    assert inn.decapsulate(wire, ip.parse(wire), 1.0) == clear


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(ESP_SUITES + ALL_SUITES[-1:]), versions, st.booleans(), st.data())
def test_replayed_and_too_old_sequence_numbers_are_rejected(suite, version, esn, data) -> None:
    out, inn = sa_pair(suite, "tunnel", version, esn=esn, replay_window=32)
    wires = [out.encapsulate(packet_for("tunnel", version, bytes([i])), 1.0) for i in range(70)]
    order = data.draw(st.permutations(range(70)))
    accepted: set[int] = set()
    top = 0
    for i in order:
        seq = i + 1
        try:
            inn.decapsulate(wires[i], ip.parse(wires[i]), 1.0)
        except EspError as exc:
            # With ESN, a number left of the window is read as belonging to the next 2**32
            # block (RFC 4303 Appendix A.2.2), so the ICV check is what rejects it.
            allowed = (
                {DropReason.TOO_OLD, DropReason.INTEGRITY_FAILED} if esn else {DropReason.TOO_OLD}
            )
            assert exc.reason in allowed
            assert seq <= top - 32
            continue
        assert seq > top - 32
        accepted.add(i)
        top = max(top, seq)
    for i in accepted:
        with pytest.raises(EspError) as exc:
            inn.decapsulate(wires[i], ip.parse(wires[i]), 1.0)
        assert exc.value.reason in (
            DropReason.REPLAYED,
            DropReason.TOO_OLD,
            DropReason.INTEGRITY_FAILED if esn else DropReason.REPLAYED,
        )


def test_lifetimes_raise_soft_then_hard_events_once() -> None:
    lt = Lifetimes(soft_packets=3, hard_packets=5, soft_bytes=10**9, hard_seconds=100.0)
    out, _ = sa_pair(ESP_SUITES[0], "tunnel", 4, lifetimes=lt)
    pkt = packet_for("tunnel", 4, b"x")
    for _ in range(3):
        out.encapsulate(pkt, 1.0)
    assert out.state is SaState.DYING
    assert [(e.kind, e.limit) for e in out.events] == [(SaEventKind.SOFT_EXPIRE, LimitKind.PACKETS)]
    out.encapsulate(pkt, 2.0)
    out.encapsulate(pkt, 2.0)
    assert out.state is SaState.DEAD
    assert out.events[-1].kind is SaEventKind.HARD_EXPIRE
    with pytest.raises(EspError) as exc:
        out.encapsulate(pkt, 2.0)
    assert exc.value.reason is DropReason.SA_EXPIRED
    assert len(out.events) == 2


def test_time_and_byte_lifetimes_use_the_injected_clock() -> None:
    lt = Lifetimes(soft_seconds=10.0, hard_seconds=20.0, hard_bytes=10_000)
    out, _ = sa_pair(ESP_SUITES[3], "transport", 6, lifetimes=lt, now=100.0)
    pkt = packet_for("transport", 6, b"y" * 100)
    out.encapsulate(pkt, 105.0)
    assert out.state is SaState.MATURE
    out.encapsulate(pkt, 110.0)
    assert out.state is SaState.DYING and out.events[0].limit is LimitKind.SECONDS
    out.expire(125.0)
    assert out.state is SaState.DEAD and out.events[-1].limit is LimitKind.SECONDS
    out2, _ = sa_pair(ESP_SUITES[3], "transport", 6, lifetimes=lt)
    with pytest.raises(EspError):
        for _ in range(200):
            out2.encapsulate(pkt, 0.0)
    assert out2.events[-1].limit is LimitKind.BYTES


@pytest.mark.parametrize("esn", [False, True])
def test_sequence_exhaustion_raises_rekey_then_kills_never_wraps(esn: bool) -> None:
    out, _ = sa_pair(ESP_SUITES[0], "tunnel", 4, esn=esn)
    pkt = packet_for("tunnel", 4, b"z")
    out.ctx.seq = out.ctx.seq_max - (1 << 16) - 1
    out.encapsulate(pkt, 0.0)
    assert out.state is SaState.DYING
    assert out.events[0].limit is LimitKind.SEQUENCE
    out.ctx.seq = out.ctx.seq_max - 1
    out.encapsulate(pkt, 0.0)
    with pytest.raises(EspError) as exc:
        out.encapsulate(pkt, 0.0)
    assert exc.value.reason is DropReason.SEQUENCE_EXHAUSTED
    assert out.state is SaState.DEAD
    assert out.events[-1].kind is SaEventKind.HARD_EXPIRE
    assert out.ctx.seq == out.ctx.seq_max


def test_reprs_and_messages_never_show_keys() -> None:
    out, _ = sa_pair(ESP_SUITES[3], "tunnel", 4)
    for text in (repr(out), repr(out.config), repr(out.ctx), str(out.config)):
        assert out.config.enc_key.hex() not in text and out.config.integ_key.hex() not in text
        assert repr(out.config.enc_key) not in text


def test_tunnel_mode_refuses_a_non_ip_inner_next_header() -> None:
    out, inn = sa_pair(ESP_SUITES[0], "tunnel", 4)
    esp = out.esp_context.seal(b"not an ip packet", 6)  # next header TCP in tunnel mode
    outer = out.outer_header.build(len(esp), 0, 1, False)
    wire = outer + esp
    with pytest.raises(EspError) as exc:
        inn.decapsulate(wire, ip.parse(wire), 0.0)
    assert exc.value.reason is DropReason.BAD_NEXT_HEADER
    dummy = out.esp_context.seal(b"", 59)
    wire = out.outer_header.build(len(dummy), 0, 2, False) + dummy
    with pytest.raises(EspError) as exc:
        inn.decapsulate(wire, ip.parse(wire), 0.0)
    assert exc.value.reason is DropReason.DUMMY_PACKET


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(suites, modes, versions, st.booleans(), st.booleans(), st.data())
def test_malformed_or_truncated_packets_raise_only_typed_errors(
    suite, mode, version, esn, udp, data
) -> None:
    """Every suite x mode x IP version: a truncated or mangled packet is refused with an
    EspError (whose typed reason the processor turns into a Drop), nothing else."""
    out, inn = sa_pair(suite, mode, version, esn=esn, udp=udp)
    wire = bytearray(
        out.encapsulate(packet_for(mode, version, data.draw(st.binary(max_size=40))), 0.0)
    )
    how = data.draw(st.sampled_from(["truncate", "mangle", "length"]))
    if how == "truncate":
        wire = wire[: data.draw(st.integers(0, len(wire) - 1))]
    elif how == "mangle":
        for _ in range(data.draw(st.integers(1, 6))):
            wire[data.draw(st.integers(0, len(wire) - 1))] = data.draw(st.integers(0, 255))
    else:
        at = 2 if version == 4 else 4
        wire[at : at + 2] = data.draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
    pkt = bytes(wire)
    try:
        info = ip.parse(pkt)
        inn.decapsulate(pkt, info, 0.0)
    except EspError as exc:
        assert isinstance(exc.reason, DropReason)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flows=st.lists(
        st.tuples(
            st.sampled_from(["10.1.0.5", "10.1.0.200", "10.9.0.1"]),
            st.sampled_from([6, 17, 1, 50]),
            st.integers(0, 65535),
            st.sampled_from([80, 443, 5001]),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_admits_agrees_with_the_selectors_for_every_packet_of_every_flow(flows) -> None:
    # The per-flow memory of admits() must never let a packet through that allows() refuses,
    # whatever came first: the same flow again, another flow, a fragment, IPv6.
    sel = Selector(Endpoint.parse("10.1.0.0/25[443]"), Endpoint.parse("10.2.0.0/24"), 6)
    sa = make_sa(
        direction="in", spi=0x200, src="203.0.113.1", dst="203.0.113.2", protocol="esp",
        encryption="aes128gcm", authentication="none", enc_key=bytes(20), integ_key=b"",
        mode="tunnel", selectors=(sel,),
    )  # fmt: skip
    for src, proto, sport, dport, fragment in flows:
        packet = bytearray(clear_packet(4, src, "10.2.0.9", b"data", proto, sport, dport))
        if fragment:
            packet[6] |= 0x20  # more fragments: no memory for it
        for _ in range(2):
            i = ip.parse(bytes(packet))
            expected = sa.allows(
                4, int.from_bytes(i.src, "big"), int.from_bytes(i.dst, "big"), i.proto, i.sport,
                i.dport,
            )  # fmt: skip
            assert sa.admits(bytes(packet)) is expected
    for junk in (b"", b"\x45", b"\x45" + bytes(3)):  # an empty inner packet is possible
        with pytest.raises(EspError):
            sa.admits(junk)
