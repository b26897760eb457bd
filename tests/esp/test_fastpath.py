"""The AEAD tunnel fast paths (single packet and burst) emit exactly what the general
path emits, and keep the same counters, for every packet shape (fast or not)."""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from ipsecconf.esp.sa import Lifetimes, SaEventKind, SaState

from .helpers import ESP_SUITES, packet_for, sa_pair


def test_burst_and_single_fast_paths_equal_the_general_path() -> None:
    for suite in ESP_SUITES[:3]:
        for esn in (False, True):
            a, _ = sa_pair(suite, "tunnel", 4, esn=esn)
            b, _ = sa_pair(suite, "tunnel", 4, esn=esn, enc_key=a.config.enc_key)
            c, _ = sa_pair(suite, "tunnel", 4, esn=esn, enc_key=a.config.enc_key)
            pkts = [
                packet_for("tunnel", 4, os.urandom(n), df=n % 2 == 0) for n in range(0, 90, 7)
            ] + [packet_for("tunnel", 6, b"v6 inner")]
            general = [a.encapsulate_general(p, 0.0) for p in pkts]
            assert [b.encapsulate(p, 0.0) for p in pkts] == general
            assert c.encapsulate_batch(pkts, 0.0) == general
            assert a.counters.as_dict() == b.counters.as_dict() == c.counters.as_dict()


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
