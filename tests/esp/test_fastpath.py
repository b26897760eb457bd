"""The AEAD tunnel fast paths (single packet and burst) emit exactly what the general
path emits, and keep the same counters, for every packet shape (fast or not)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsecconf.esp import ip
from ipsecconf.esp.errors import SaStateError
from ipsecconf.esp.sa import Lifetimes, Protocol, SaEventKind, SaState, UdpEncap
from ipsecconf.esp.sad import SaTable

from .helpers import ESP_SUITES, packet_for, sa_pair


@pytest.mark.parametrize("udp", [False, True])
def test_burst_and_single_fast_paths_equal_the_general_path(udp: bool) -> None:
    for suite in ESP_SUITES[:3]:
        for esn in (False, True):
            a, _ = sa_pair(suite, "tunnel", 4, esn=esn, udp=udp)
            b, _ = sa_pair(suite, "tunnel", 4, esn=esn, udp=udp, enc_key=a.config.enc_key)
            c, _ = sa_pair(suite, "tunnel", 4, esn=esn, udp=udp, enc_key=a.config.enc_key)
            tos = [packet_for("tunnel", 4, os.urandom(n), df=True) for n in range(1, 5)]
            for k, p in enumerate(tos):  # DSCP/ECN copied to the outer header and its checksum
                tos[k] = ip.ipv4_header(p[12:16], p[16:20], 17, len(p) - 20, tos=k * 67, df=True)
                tos[k] += p[20:]
            pkts = (
                [packet_for("tunnel", 4, os.urandom(n), df=n % 2 == 0) for n in range(0, 90, 7)]
                + [packet_for("tunnel", 6, b"v6 inner")]
                + tos
            )
            general = [a.encapsulate_general(p, 0.0) for p in pkts]
            assert [b.encapsulate(p, 0.0) for p in pkts] == general
            assert c.encapsulate_batch(pkts, 0.0) == general
            assert a.counters.as_dict() == b.counters.as_dict() == c.counters.as_dict()
            fast = [p for p in pkts if p[0] == 0x45 and p[6] & 0x40]
            d, _ = sa_pair(suite, "tunnel", 4, esn=esn, udp=udp, enc_key=a.config.enc_key)
            e, _ = sa_pair(suite, "tunnel", 4, esn=esn, udp=udp, enc_key=a.config.enc_key)
            # An all-fast burst (the up-front checked loop) equals the general path too.
            assert d.encapsulate_batch(fast, 0.0) == [e.encapsulate_general(p, 0.0) for p in fast]
            assert d.counters.as_dict() == e.counters.as_dict() and d.ctx.seq == e.ctx.seq


def test_fast_paths_are_taken_for_tunnel_ipv4_with_and_without_udp() -> None:
    for udp in (False, True):
        out, _ = sa_pair(ESP_SUITES[0], "tunnel", 4, udp=udp)
        assert out.encapsulate != out.encapsulate_general
        assert out.decapsulate != out.decapsulate_general
    out, _ = sa_pair(ESP_SUITES[0], "tunnel", 4, esn=True)
    assert out.encapsulate == out.encapsulate_general
    out, _ = sa_pair(ESP_SUITES[3], "tunnel", 4)  # CBC + HMAC: its own fast paths
    assert out.encapsulate != out.encapsulate_general
    assert out.decapsulate != out.decapsulate_general
    out, _ = sa_pair(ESP_SUITES[3], "tunnel", 6)  # inbound only for an IPv6 outer header
    assert out.encapsulate == out.encapsulate_general
    assert out.decapsulate != out.decapsulate_general
    out, _ = sa_pair(ESP_SUITES[8], "tunnel", 4)  # NULL + HMAC: none
    assert out.encapsulate == out.encapsulate_general
    assert out.decapsulate == out.decapsulate_general
    out, _ = sa_pair(ESP_SUITES[0], "transport", 4)
    assert out.encapsulate == out.encapsulate_general


def test_state_change_sends_the_next_packet_to_the_general_path() -> None:
    out, _ = sa_pair(ESP_SUITES[0], "tunnel", 4)
    pkt = packet_for("tunnel", 4, b"x", df=True)
    out.encapsulate(pkt, 0.0)
    out.kill(0.0)
    with pytest.raises(SaStateError):
        out.encapsulate(pkt, 0.0)
    with pytest.raises(SaStateError):
        out.encapsulate_batch([pkt, pkt], 0.0)
    assert out.ctx.seq == 1 and out.counters.packets == 1


def test_update_keeps_sequence_numbers_no_nonce_reuse() -> None:
    # SaTable.update() (new hosts or NAT-T) must continue the sequence numbers: an AEAD
    # nonce is the sequence number, so restarting them would reuse nonces under one key.
    for lifetimes in (Lifetimes(), Lifetimes(soft_packets=3)):
        sad = SaTable(os.urandom)
        out, _ = sa_pair(ESP_SUITES[0], "tunnel", 4, lifetimes=lifetimes)
        sa = sad.add(out.config, 0.0)
        pkt = packet_for("tunnel", 4, b"payload", df=True)
        ivs = [sa.encapsulate(pkt, 0.0)[28:36] for _ in range(5)]
        fresh = sad.update(sa.config.spi, sa.config.dst, Protocol.ESP, encap=UdpEncap())
        assert fresh.ctx is sa.ctx and fresh.counters is sa.counters
        ivs += [fresh.encapsulate(pkt, 0.0)[36:44] for _ in range(3)]
        ivs += [w[36:44] for w in fresh.encapsulate_batch([pkt] * 3, 0.0)]
        assert [int.from_bytes(iv, "big") for iv in ivs] == list(range(1, 12))
        assert fresh.counters.packets == 11
        if lifetimes.soft_packets:  # the soft expiry fired once and is not forgotten
            assert fresh.state is SaState.DYING
            assert [e.kind for e in sad.events] == [SaEventKind.SOFT_EXPIRE]
        else:
            assert fresh.state is SaState.MATURE and fresh.encapsulate != fresh.encapsulate_general


def test_burst_stops_at_lifetime_marks() -> None:
    lt = Lifetimes(soft_packets=5, hard_packets=9)
    a, _ = sa_pair(ESP_SUITES[0], "tunnel", 4, lifetimes=lt)
    pkts = [packet_for("tunnel", 4, b"q", df=True)] * 8
    a.encapsulate_batch(pkts, 0.0)
    assert a.state is SaState.DYING and a.counters.packets == 8
    assert [e.kind for e in a.events] == [SaEventKind.SOFT_EXPIRE]
    a.encapsulate_batch(pkts[:1], 0.0)
    assert a.state is SaState.DEAD and a.events[-1].kind is SaEventKind.HARD_EXPIRE


def _run(enc, pkts):
    out = []
    for p in pkts:
        try:
            out.append(enc(p, 0.0))
        except Exception as exc:  # compare the failure itself across paths
            out.append(repr(exc))
    return out


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 200), st.booleans()), min_size=1, max_size=30),
    st.integers(0, 12),
    st.integers(0, 20),
    st.integers(0, 3000),
    st.integers(0, 6000),
)
def test_fast_paths_equal_general_under_lifetimes(shapes, soft_p, hard_p, soft_b, hard_b):
    lt = Lifetimes(
        soft_packets=soft_p,
        hard_packets=soft_p + hard_p if hard_p else 0,
        soft_bytes=soft_b,
        hard_bytes=soft_b + hard_b if hard_b else 0,
    )
    pkts = [packet_for("tunnel", 4, bytes(n), df=df) for n, df in shapes]
    g, _ = sa_pair(ESP_SUITES[0], "tunnel", 4, lifetimes=lt)
    f, _ = sa_pair(ESP_SUITES[0], "tunnel", 4, lifetimes=lt, enc_key=g.config.enc_key)
    expected = _run(g.encapsulate_general, pkts)
    assert _run(f.encapsulate, pkts) == expected
    assert (f.state, f.events, f.counters.as_dict()) == (g.state, g.events, g.counters.as_dict())
    if not any(isinstance(e, str) for e in expected):
        b, _ = sa_pair(ESP_SUITES[0], "tunnel", 4, lifetimes=lt, enc_key=g.config.enc_key)
        half = len(pkts) // 2
        assert (
            b.encapsulate_batch(pkts[:half], 0.0) + b.encapsulate_batch(pkts[half:], 0.0)
            == expected
        )
        assert (b.state, b.events, b.counters.as_dict()) == (
            g.state,
            g.events,
            g.counters.as_dict(),
        )


def _counting_rng() -> Callable[[int], bytes]:
    state = [0]

    def rng(n: int) -> bytes:
        state[0] += 1
        return hashlib.shake_256(state[0].to_bytes(8, "big")).digest(n)

    return rng


@pytest.mark.parametrize("udp", [False, True])
@pytest.mark.parametrize("suite", ESP_SUITES[3:8])
def test_cbc_fast_path_equals_the_general_path(suite, udp: bool) -> None:
    # Same keys and the same (deterministic) RNG: the same random blocks, so the same bytes.
    a, inn = sa_pair(suite, "tunnel", 4, udp=udp, rng=_counting_rng())
    keys = dict(enc_key=a.config.enc_key, integ_key=a.config.integ_key)
    b, _ = sa_pair(suite, "tunnel", 4, udp=udp, rng=_counting_rng(), **keys)
    c, _ = sa_pair(suite, "tunnel", 4, udp=udp, rng=_counting_rng(), **keys)
    assert b.encapsulate != b.encapsulate_general
    pkts = [packet_for("tunnel", 4, os.urandom(n), df=n % 3 != 0) for n in range(0, 300, 7)] + [
        packet_for("tunnel", 6, b"v6 inner")
    ]
    general = [a.encapsulate_general(p, 0.0) for p in pkts]
    assert [b.encapsulate(p, 0.0) for p in pkts] == general
    assert c.encapsulate_batch(pkts, 0.0) == general
    assert a.counters.as_dict() == b.counters.as_dict() == c.counters.as_dict()
    assert [inn.decapsulate(w, ip.parse(w), 0.0) for w in general] == pkts


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 200), st.booleans()), min_size=1, max_size=20),
    st.integers(0, 8),
    st.integers(0, 12),
)
def test_cbc_fast_path_equals_general_under_lifetimes(shapes, soft_p, hard_p):
    lt = Lifetimes(soft_packets=soft_p, hard_packets=soft_p + hard_p if hard_p else 0)
    pkts = [packet_for("tunnel", 4, bytes(n), df=df) for n, df in shapes]
    suite = ESP_SUITES[3]
    g, _ = sa_pair(suite, "tunnel", 4, lifetimes=lt, rng=_counting_rng())
    keys = dict(enc_key=g.config.enc_key, integ_key=g.config.integ_key)
    f, _ = sa_pair(suite, "tunnel", 4, lifetimes=lt, rng=_counting_rng(), **keys)
    assert _run(f.encapsulate, pkts) == _run(g.encapsulate_general, pkts)
    assert (f.state, f.events, f.counters.as_dict()) == (g.state, g.events, g.counters.as_dict())
