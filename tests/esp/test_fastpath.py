"""The AEAD tunnel fast paths (single packet and burst) emit exactly what the general
path emits, and keep the same counters, for every packet shape (fast or not)."""

from __future__ import annotations

import os

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
