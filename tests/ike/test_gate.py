"""The responder's gate: cookies under a half-open flood, per-peer limits, expiry,
secret rotation and junk (RFC 7296 2.6)."""

from __future__ import annotations

import random
import time

from ipsecconf.ike.config import IkeConfig
from ipsecconf.ike.context import IkeState
from ipsecconf.ike.events import ChildSaEstablished, FailureReason, IkeSaEstablished, IkeSaFailed
from ipsecconf.ike.gate import IkeResponderGate
from ipsecconf.ike.routing import Datagram, route
from ipsecconf.ike.sa import IkeSa
from tests.ike.pair import ADDR_I, configs, seeded_rng


class Responder:
    """The engine's responder side in miniature: known SAs by initiator SPI, new ones
    only through the gate."""

    def __init__(self, config: IkeConfig, gate: IkeResponderGate) -> None:
        self.config = config
        self.gate = gate
        self.sas: dict[bytes, IkeSa] = {}
        self.out: list[Datagram] = []
        self.events: list[object] = []
        self._rng = seeded_rng(77)

    def receive(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        info = route(data)
        if info is None:
            return
        sa = self.sas.get(info.spi_i)
        if sa is None:
            if not info.is_new_sa:
                return
            decision = self.gate.check(data, addr, now)
            if decision.reply is not None:
                self.out.append(decision.reply)
            if not decision.admit:
                return
            sa = self.sas[info.spi_i] = IkeSa(self.config, initiator=False, rng=self._rng)
        sa.receive_datagram(data, addr, now)
        self.out += sa.datagrams_to_send(now)
        while (event := sa.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, IkeSaEstablished):
                self.gate.settled(event.spi_i)


def spoofed(template: bytes, count: int, seed: int = 9) -> list[tuple[bytes, tuple[str, int]]]:
    """``count`` IKE_SA_INIT requests with random SPIs from many forged addresses."""
    r = random.Random(seed)
    hosts = [f"203.0.113.{n}" for n in range(256)] + [f"198.51.100.{n}" for n in range(128, 256)]
    return [
        (r.randbytes(8) + template[8:], (r.choice(hosts), r.randrange(1024, 65536)))
        for _ in range(count)
    ]


def first_request(seed: int = 3) -> bytes:
    ci, _ = configs()
    sa = IkeSa(ci, initiator=True, rng=seeded_rng(seed))
    sa.connect(0.0)
    [datagram] = sa.datagrams_to_send(0.0)
    return datagram.data


def test_legitimate_sa_establishes_through_a_half_open_flood() -> None:
    ci, cr = configs()
    gate = IkeResponderGate(seeded_rng(5), cookie_threshold=20, per_peer_limit=5)
    responder = Responder(cr, gate)
    started = time.monotonic()
    for data, addr in spoofed(first_request(), 5000):
        responder.receive(data, addr, 1.0)
    flood_seconds = time.monotonic() - started
    # Only the threshold's worth of forged SAs got state; the rest got stateless cookies.
    assert len(responder.sas) == 20 and gate.half_open == 20
    assert gate.stats["cookies-sent"] + gate.stats["over-peer-limit"] == 4980
    assert gate.stats["cookies-sent"] > 4500
    assert all(len(d.data) < 100 for d in responder.out[-100:])  # cookie answers are small
    # The real initiator is asked for a cookie, returns it, and gets through.
    initiator = IkeSa(ci, initiator=True, rng=seeded_rng(11))
    initiator.connect(2.0)
    responder.out.clear()
    for _ in range(10):
        for d in initiator.datagrams_to_send(2.0):
            responder.receive(d.data, (str(ADDR_I), d.local_port), 2.0)
        for d in responder.out:
            initiator.receive_datagram(d.data, (str(cr.local_address), d.local_port), 2.0)
        responder.out.clear()
    events = []
    while (e := initiator.next_event()) is not None:
        events.append(e)
    assert [type(e) for e in events] == [IkeSaEstablished, ChildSaEstablished]
    assert initiator.state is IkeState.ESTABLISHED
    assert gate.stats["cookie-accepted"] == 1 and gate.half_open == 20  # settled
    assert flood_seconds < 20, flood_seconds


def test_per_peer_limit_applies_below_the_cookie_threshold() -> None:
    gate = IkeResponderGate(seeded_rng(5), cookie_threshold=100, per_peer_limit=3)
    template = first_request()
    decisions = [
        gate.check(bytes([n]) * 8 + template[8:], ("203.0.113.7", 500), 0.0) for n in range(1, 7)
    ]
    assert [d.admit for d in decisions] == [True, True, True, False, False, False]
    assert "too many half-open" in decisions[-1].detail
    assert gate.check(b"\x09" * 8 + template[8:], ("203.0.113.8", 500), 0.0).admit
    gate.settled(b"\x01" * 8)
    assert gate.check(b"\x0a" * 8 + template[8:], ("203.0.113.7", 500), 0.0).admit


def test_half_open_entries_expire() -> None:
    gate = IkeResponderGate(seeded_rng(5), cookie_threshold=2, half_open_timeout=30.0)
    template = first_request()
    for n in range(2):
        assert gate.check(bytes([n + 1]) * 8 + template[8:], (f"203.0.113.{n}", 500), 0.0).admit
    asked = gate.check(b"\x05" * 8 + template[8:], ("203.0.113.9", 500), 1.0)
    assert not asked.admit and asked.reply is not None
    assert gate.check(b"\x05" * 8 + template[8:], ("203.0.113.9", 500), 31.0).admit


def _with_cookie(request: bytes, reply: bytes) -> bytes:
    """The request retried with the cookie notify first, as an initiator does."""
    ci, _ = configs()
    sa = IkeSa(ci, initiator=True, rng=seeded_rng(3))
    sa.connect(0.0)
    sa.datagrams_to_send(0.0)
    sa.receive_datagram(reply, ("198.51.100.2", 500), 0.0)
    [retry] = sa.datagrams_to_send(0.0)
    return retry.data


def test_cookie_is_bound_to_address_and_survives_one_rotation() -> None:
    gate = IkeResponderGate(seeded_rng(5), cookie_threshold=0, secret_lifetime=60.0)
    request = first_request()
    decision = gate.check(request, ("198.51.100.1", 500), 0.0)
    assert decision.reply is not None and not decision.admit
    retry = _with_cookie(request, decision.reply.data)
    # From another address the cookie is worthless (and a fresh one is handed out).
    elsewhere = gate.check(retry, ("198.51.100.99", 500), 1.0)
    assert not elsewhere.admit and elsewhere.reply is not None
    assert gate.stats["bad-cookie"] == 1
    # After one rotation it still works; after two it does not.
    assert gate.check(retry, ("198.51.100.1", 500), 61.0).admit
    gate.settled(request[:8])
    assert not gate.check(retry, ("198.51.100.1", 500), 122.0).admit


def test_junk_is_dropped_and_counted() -> None:
    gate = IkeResponderGate(seeded_rng(5))
    r = random.Random(4)
    template = first_request()
    for _ in range(500):
        cut = r.randrange(len(template))
        junk = template[:cut] + r.randbytes(r.randrange(0, 40))
        decision = gate.check(junk, ("203.0.113.5", 500), 0.0)
        assert decision.reply is None
    assert gate.stats["malformed"] > 400


def test_half_open_responder_fails_after_its_timeout() -> None:
    _, cr = configs()
    responder = IkeSa(cr, initiator=False, rng=seeded_rng(8))
    responder.receive_datagram(first_request(), (str(ADDR_I), 500), 100.0)
    assert responder.datagrams_to_send(100.0)  # answered IKE_SA_INIT, waits for IKE_AUTH
    assert responder.get_timer() == 130.0
    responder.handle_timer(130.0)
    event = responder.next_event()
    assert isinstance(event, IkeSaFailed) and event.reason is FailureReason.TIMEOUT
    assert responder.state is IkeState.FAILED and responder.get_timer() is None
