"""SAD: Larval reservations, add/update/delete, outbound selection, Dead visibility."""

from __future__ import annotations

import os

import pytest

from ipsecconf.esp.errors import SaConfigError
from ipsecconf.esp.sa import Lifetimes, Mode, Protocol, SaConfig, SaEventKind, SaState, UdpEncap
from ipsecconf.esp.sad import DEAD_VISIBLE_SECONDS, LarvalSa, SaTable, sa_key
from ipsecconf.esp.spd import Direction
from ipsecconf.model.algorithms import cipher
from ipsecconf.model.selectors import Endpoint, Selector

A, B = "198.51.100.10", "203.0.113.20"


def _cfg(spi: int, direction: Direction = Direction.OUT, **kw) -> SaConfig:
    src, dst = (A, B) if direction is Direction.OUT else (B, A)
    return SaConfig(
        spi=spi,
        direction=direction,
        src=src,
        dst=dst,
        mode=Mode.TUNNEL,
        cipher=cipher("aes128gcm"),
        enc_key=os.urandom(20),
        reqid=7,
        **kw,
    )


def test_reserve_add_delete_and_dead_visibility() -> None:
    sad = SaTable(os.urandom)
    larval = sad.reserve(0x3000, A, Protocol.ESP, 0.0, reqid=7)
    assert isinstance(larval, LarvalSa) and larval.state is SaState.LARVAL and sad.pending(7)
    with pytest.raises(SaConfigError):
        sad.reserve(0x3000, A, Protocol.ESP, 0.0)
    sa = sad.add(_cfg(0x3000, Direction.IN), 1.0)
    assert sad.get(sa_key(0x3000, A, 50)) is sa and not sad.pending(7)
    with pytest.raises(SaConfigError):
        sad.add(_cfg(0x3000, Direction.IN), 1.0)
    sad.delete(0x3000, A, Protocol.ESP, 10.0)
    assert sa.state is SaState.DEAD and len(sad) == 1
    sad.expire(10.0 + DEAD_VISIBLE_SECONDS - 1)
    assert len(sad) == 1
    sad.expire(10.0 + DEAD_VISIBLE_SECONDS)
    assert len(sad) == 0


def test_outbound_prefers_newest_mature_then_dying() -> None:
    sad = SaTable(os.urandom)
    old = sad.add(_cfg(0x4001, lifetimes=Lifetimes(soft_seconds=5, hard_seconds=50)), 0.0)
    flow = (7, 4, 1, 2, 17, 1, 2)
    assert sad.outbound(*flow) is old
    sad.expire(6.0)
    assert old.state is SaState.DYING and sad.outbound(*flow) is old
    new = sad.add(_cfg(0x4002), 6.0)
    assert sad.outbound(*flow) is new
    events = sad.drain_events()
    assert [e.kind for e in events] == [SaEventKind.SOFT_EXPIRE] and sad.drain_events() == []
    sad.expire(60.0)
    assert old.state is SaState.DEAD and sad.drain_events()[0].kind is SaEventKind.HARD_EXPIRE


def test_outbound_respects_populated_selectors() -> None:
    sad = SaTable(os.urandom)
    host = Selector(Endpoint.parse("198.51.100.10"), Endpoint.parse("203.0.113.20"), 0)
    sa = sad.add(_cfg(0x5001, selectors=(host,)), 0.0)
    a, b = (
        int.from_bytes(bytes([198, 51, 100, 10]), "big"),
        int.from_bytes(bytes([203, 0, 113, 20]), "big"),
    )
    assert sad.outbound(7, 4, a, b, 6, 1, 2) is sa
    assert sad.outbound(7, 4, a, b + 1, 6, 1, 2) is None


def test_update_changes_only_hosts_and_encapsulation_keeping_state() -> None:
    sad = SaTable(os.urandom)
    sa = sad.add(_cfg(0x6001), 0.0)
    sa.ctx.seq = 41
    sa.counters.packets = 41
    fresh = sad.update(0x6001, B, Protocol.ESP, new_dst="203.0.113.21", encap=UdpEncap())
    assert fresh.config.dst == "203.0.113.21" and fresh.config.encap == UdpEncap()
    assert fresh.ctx.seq == 41 and fresh.counters.packets == 41
    assert sad.get(sa_key(0x6001, "203.0.113.21", 50)) is fresh
    assert sad.get(sa_key(0x6001, B, 50)) is None
    assert sad.outbound(7, 4, 1, 2, 17, 1, 2) is fresh
    assert sad.query(0x6001, "203.0.113.21", Protocol.ESP).packets == 41
    with pytest.raises(SaConfigError):
        sad.update(0x9999, B, Protocol.ESP, new_src=A)


def test_get_spi_reserves_random_unused_spis() -> None:
    draws = iter(
        [b"\x00\x00\x00\x07", b"\x00\x00\x10\x00", b"\x00\x00\x10\x00", b"\x00\x01\x00\x00"]
    )
    sad = SaTable(lambda n: next(draws))
    assert sad.get_spi(A, Protocol.ESP, 0.0, reqid=3) == 0x1000  # 7 is reserved by RFC 4303
    assert sad.get_spi(A, Protocol.ESP, 0.0) == 0x10000  # 0x1000 is taken
    assert isinstance(sad.get(sa_key(0x1000, A, 50)), LarvalSa) and sad.pending(3)
