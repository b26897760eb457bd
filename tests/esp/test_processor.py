"""The processor: SPD decisions, acquire, permit/restrict, NAT-T demultiplexing, inbound
selector checks, counters, and no exception for any input (hypothesis)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipsecconf.esp import ip
from ipsecconf.esp.errors import DropReason
from ipsecconf.esp.packet import push_udp_header
from ipsecconf.esp.processor import Acquire, Deliver, Drop, IkeDatagram, Processor, Send
from ipsecconf.esp.sa import Mode, Protocol, SaConfig, SaState, UdpEncap
from ipsecconf.esp.sad import SaTable
from ipsecconf.esp.spd import Action, Direction, Level, Policy, PolicyTable
from ipsecconf.model.algorithms import cipher
from ipsecconf.model.selectors import Endpoint, Selector

from .helpers import clear_packet, packed, packet_for, sa_pair

A, B = "198.51.100.10", "203.0.113.20"
KEY = bytes(range(20))


def _sel(src: str, dst: str, proto: int = 0) -> Selector:
    return Selector(Endpoint.parse(src), Endpoint.parse(dst), proto)


def _node(
    local: str, remote: str, *, level: Level = Level.RESTRICT, encap: bool = False
) -> Processor:
    """A node with a mirrored protect pair for local<->remote and a bypass for ICMP."""
    spd = PolicyTable(
        [
            Policy(
                name="p.out",
                direction=Direction.OUT,
                action=Action.PROTECT,
                selectors=(_sel(local, remote, 17),),
                reqid=1,
                level=level,
            ),
            Policy(
                name="p.in",
                direction=Direction.IN,
                action=Action.PROTECT,
                selectors=(_sel(remote, local, 17),),
                reqid=1,
                level=level,
            ),
            Policy(
                name="icmp",
                direction=Direction.OUT,
                action=Action.BYPASS,
                selectors=(_sel(local, remote, 1),),
                priority=1,
            ),
            Policy(
                name="nope",
                direction=Direction.OUT,
                action=Action.DISCARD,
                selectors=(_sel(local, "203.0.113.99", 0),),
                priority=1,
            ),
        ]
    )
    return Processor(SaTable(os.urandom), spd)


def _install(node: Processor, local: str, remote: str, spi_out: int, spi_in: int, **kw) -> None:
    common = dict(
        protocol=Protocol.ESP,
        mode=Mode.TRANSPORT,
        cipher=cipher("aes128gcm"),
        enc_key=KEY,
        reqid=1,
        **kw,
    )
    node.sad.add(
        SaConfig(
            spi=spi_out,
            direction=Direction.OUT,
            src=local,
            dst=remote,
            selectors=(_sel(local, remote, 17),),
            **common,
        ),
        0.0,
    )
    node.sad.add(
        SaConfig(
            spi=spi_in,
            direction=Direction.IN,
            src=remote,
            dst=local,
            selectors=(_sel(remote, local, 17),),
            **common,
        ),
        0.0,
    )


def _pair(**kw):
    a, b = _node(A, B, **kw), _node(B, A, **kw)
    _install(a, A, B, 0x1001, 0x2002, **({"encap": UdpEncap()} if kw.get("encap") else {}))
    _install(b, B, A, 0x2002, 0x1001, **({"encap": UdpEncap()} if kw.get("encap") else {}))
    return a, b


def test_protect_roundtrip_and_counters() -> None:
    a, b = _pair()
    pkt = clear_packet(4, A, B, b"hello")
    sent = a.outbound(pkt, 1.0)
    assert isinstance(sent, Send) and sent.spi == 0x1001 and sent.packet != pkt
    got = b.inbound(sent.packet, 1.0)
    assert got == Deliver(pkt, 0x1001)
    replay = b.inbound(sent.packet, 1.0)
    assert replay == Drop(DropReason.REPLAYED, replay.detail)  # type: ignore[union-attr]
    assert b.counters.replay_drops == 1 and b.drops[DropReason.REPLAYED] == 1
    sa = b.sad.get((0x1001, packed(B), 50))
    assert sa is not None and sa.counters.replay_drops == 1  # type: ignore[union-attr]
    assert a.counters.packets == 1 and b.counters.packets == 1


def test_batches_match_single_calls() -> None:
    a, b = _pair()
    pkts = [clear_packet(4, A, B, bytes([i])) for i in range(5)]
    sent = a.outbound_batch(pkts, 1.0)
    assert all(isinstance(s, Send) for s in sent)
    assert b.inbound_batch([s.packet for s in sent], 1.0) == [  # type: ignore[union-attr]
        Deliver(p, 0x1001) for p in pkts
    ]


def test_bypass_discard_default_and_acquire() -> None:
    a = _node(A, B)
    icmp = clear_packet(4, A, B, b"ping", proto=1)
    assert a.outbound(icmp, 0.0) == Send(icmp)
    assert isinstance(a.outbound(clear_packet(4, A, "203.0.113.99", b""), 0.0), Drop)
    other = clear_packet(4, A, "198.51.100.200", b"")
    assert a.outbound(other, 0.0) == Send(other)  # no policy: bypass (the seed's default)
    acq = a.outbound(clear_packet(4, A, B, b"x"), 0.0)
    assert isinstance(acq, Acquire) and acq.policy == "p.out" and not acq.pending
    a.sad.reserve(0x5555, A, Protocol.ESP, 0.0, reqid=1)
    acq = a.outbound(clear_packet(4, A, B, b"x"), 0.0)
    assert isinstance(acq, Acquire) and acq.pending
    a.spd.default_action = Action.DISCARD
    assert a.outbound(other, 0.0) == Drop(DropReason.POLICY_DISCARD)


def test_restrict_drops_clear_inbound_permit_allows_after_failure() -> None:
    restrict = _node(A, B)
    clear = clear_packet(4, B, A, b"in clear")
    assert restrict.inbound(clear, 0.0).reason is DropReason.CLEAR_PROTECTED  # type: ignore[union-attr]
    permit = _node(A, B, level=Level.PERMIT)
    out = clear_packet(4, A, B, b"x")
    assert isinstance(permit.outbound(out, 0.0), Acquire)
    assert isinstance(permit.inbound(clear, 0.0), Drop)
    permit.negotiation_failed("p.out", packed(B))
    permit.negotiation_failed("p.in", packed(B))
    assert permit.outbound(out, 0.0) == Send(out)
    assert permit.inbound(clear, 0.0) == Deliver(clear)
    permit.negotiation_failed("p.out", packed(B), failed=False)
    assert isinstance(permit.outbound(out, 0.0), Acquire)


def test_decapsulated_packet_outside_the_sa_selectors_is_dropped() -> None:
    a, b = _pair()
    sa_out = a.sad.outbound(
        1, 4, int.from_bytes(packed(A), "big"), int.from_bytes(packed(B), "big"), 17, 1, 2
    )
    assert sa_out is not None
    tcp = clear_packet(4, A, B, b"tcp is not in the selectors", proto=6)
    wire = sa_out.encapsulate(tcp, 0.0)
    res = b.inbound(wire, 0.0)
    assert isinstance(res, Drop) and res.reason is DropReason.POLICY_MISMATCH
    assert b.counters.policy_drops == 1


def test_nat_t_esp_ike_and_keepalive_on_port_4500() -> None:
    a, b = _pair(encap=True)
    sent = a.outbound(clear_packet(4, A, B, b"natted"), 0.0)
    assert isinstance(sent, Send)
    assert ip.parse(sent.packet).proto == 17
    assert isinstance(b.inbound(sent.packet, 0.0), Deliver)
    ike_payload = b"\x00\x00\x00\x00" + b"IKE message"
    udp = push_udp_header(4500, 4500, len(ike_payload)) + ike_payload
    ike = ip.ipv4_header(packed(A), packed(B), 17, len(udp)) + udp
    assert b.inbound(ike, 0.0) == IkeDatagram(b"IKE message", packed(A), packed(B), 4500)
    ka = push_udp_header(4500, 4500, 1) + b"\xff"
    keepalive = ip.ipv4_header(packed(A), packed(B), 17, len(ka)) + ka
    assert b.inbound(keepalive, 0.0) == Drop(DropReason.NAT_KEEPALIVE)


def test_unknown_spi_and_larval_sa() -> None:
    a, _ = _pair()
    sent = a.outbound(clear_packet(4, A, B, b"x"), 0.0)
    c = _node(B, A)
    assert c.inbound(sent.packet, 0.0).reason is DropReason.UNKNOWN_SPI  # type: ignore[union-attr]
    c.sad.reserve(0x1001, B, Protocol.ESP, 0.0)
    assert c.inbound(sent.packet, 0.0).reason is DropReason.UNKNOWN_SPI  # type: ignore[union-attr]


def _protected_wire() -> tuple[Processor, list[bytes]]:
    """A receiver with SAs of several kinds, and genuine packets for each."""
    a, b = _pair()
    wires = [a.outbound(clear_packet(4, A, B, bytes(n)), 0.0).packet for n in (0, 9, 40)]  # type: ignore[union-attr]
    for suite, mode, version, udp in (
        (("ah", None, "sha256"), "transport", 6, False),
        (("esp", "aes128", "sha1"), "tunnel", 6, True),
        (("ah", None, "sha1"), "tunnel", 4, False),
    ):
        out, inn = sa_pair(suite, mode, version, udp=udp, spi=0x7000 + len(wires))
        b.sad.add(inn.config, 0.0)
        wires.append(out.encapsulate(packet_for(mode, version, b"fuzz me"), 0.0))
    return b, wires


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_malformed_or_truncated_input_gives_a_typed_drop_never_an_exception(data) -> None:
    b, wires = _protected_wire()
    base = data.draw(st.sampled_from(wires))
    choice = data.draw(st.sampled_from(["truncate", "mutate", "random", "length"]))
    if choice == "truncate":
        pkt = base[: data.draw(st.integers(0, len(base) - 1))]
    elif choice == "mutate":
        pkt = bytearray(base)
        for _ in range(data.draw(st.integers(1, 4))):
            pkt[data.draw(st.integers(0, len(pkt) - 1))] = data.draw(st.integers(0, 255))
        pkt = bytes(pkt)
    elif choice == "length":
        pkt = bytearray(base)
        pkt[2:4] = data.draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
        pkt = bytes(pkt)
    else:
        pkt = data.draw(st.binary(max_size=120))
    for result in (b.inbound(pkt, 0.0), b.outbound(pkt, 0.0)):
        assert isinstance(result, (Drop, Deliver, Send, Acquire, IkeDatagram))
        if isinstance(result, Drop):
            assert isinstance(result.reason, DropReason)


def test_fuzz_corpus_packets_are_genuine() -> None:
    """The fuzz test starts from packets the receiver really accepts."""
    b, wires = _protected_wire()
    assert all(isinstance(b.inbound(w, 0.0), Deliver) for w in wires)


def test_remembered_outbound_decisions_follow_every_change() -> None:
    # Each packet of one UDP flow must take exactly the path a fresh lookup would take,
    # across a rekey, the old SA's death, a policy change and an SPD replaced.
    a, _ = _pair()
    pkt = clear_packet(4, A, B, b"flow")
    assert a.outbound(pkt, 0.0).spi == 0x1001  # type: ignore[union-attr]
    assert a.outbound(pkt, 0.0).spi == 0x1001  # type: ignore[union-attr]
    # A rekey: the newer Mature SA takes over at once.
    a.sad.add(
        SaConfig(
            spi=0x3003, direction=Direction.OUT, src=A, dst=B, protocol=Protocol.ESP,
            mode=Mode.TRANSPORT, cipher=cipher("aes128gcm"), enc_key=KEY, reqid=1,
            selectors=(_sel(A, B, 17),),
        ),
        0.0,
    )  # fmt: skip
    assert a.outbound(pkt, 0.0).spi == 0x3003  # type: ignore[union-attr]
    # The new SA dies: the old one, still Mature, is used again; then none is left.
    a.sad.delete(0x3003, B, Protocol.ESP, 1.0)
    assert a.outbound(pkt, 1.0).spi == 0x1001  # type: ignore[union-attr]
    old = a.sad.get((0x1001, packed(B), 50))
    assert old is not None
    old.state = SaState.DYING  # type: ignore[union-attr]
    assert a.outbound(pkt, 1.0).spi == 0x1001  # a Dying SA still serves when it is the last
    a.sad.delete(0x1001, B, Protocol.ESP, 2.0)
    assert isinstance(a.outbound(pkt, 2.0), Acquire)
    # Policies: a bypass decision is forgotten when the policy or the SPD changes.
    other = clear_packet(4, A, "198.51.100.200", b"")
    assert a.outbound(other, 2.0) == Send(other)
    a.spd.add(
        Policy(name="block", direction=Direction.OUT, action=Action.DISCARD,
               selectors=(_sel(A, "198.51.100.200", 0),))
    )  # fmt: skip
    assert isinstance(a.outbound(other, 2.0), Drop)
    a.spd.remove("block")
    assert a.outbound(other, 2.0) == Send(other)
    a.spd = PolicyTable([], default_action=Action.DISCARD)
    assert isinstance(a.outbound(other, 2.0), Drop)
    a.spd = PolicyTable([])
    assert a.outbound(other, 2.0) == Send(other)
    a.spd.default_action = Action.DISCARD
    assert isinstance(a.outbound(other, 2.0), Drop)
