"""Thousands of corrupted and truncated messages fed to both roles.

Every datagram that is refused is counted under a DropReason; no exception escapes; and
after the storm the same SAs still complete fresh exchanges.  A mutated IKE_SA_INIT can
still be a valid message (it is not integrity-protected), so those go to throw-away SAs
built from the same seeds, exactly as an engine creates a new SA per new request; every
mutation of a protected message must be refused.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from ipsecconf.ike.context import IkeState
from ipsecconf.ike.errors import DropReason
from ipsecconf.ike.events import ChildSaEstablished, IkeSaEstablished
from ipsecconf.ike.sa import IkeSa
from tests.ike.pair import ADDR_I, ADDR_R, configs, seeded_rng

PER_MESSAGE = 700


def mutations(data: bytes, rnd: random.Random, count: int) -> Iterator[bytes]:
    """Corrupted variants of ``data``: bit flips, byte overwrites, truncations,
    extensions, length-field lies and splices; never ``data`` itself."""
    made = 0
    while made < count:
        kind = rnd.randrange(7)
        buf = bytearray(data)
        if kind == 0:
            for _ in range(rnd.randint(1, 3)):
                pos = rnd.randrange(len(buf))
                buf[pos] ^= 1 << rnd.randrange(8)
        elif kind == 1:
            buf[rnd.randrange(len(buf))] = rnd.randrange(256)
        elif kind == 2:
            buf = buf[: rnd.randrange(len(buf))]
        elif kind == 3:
            buf += rnd.randbytes(rnd.randint(1, 64))
        elif kind == 4:  # lie in the header length or in a payload length field
            pos = rnd.choice([24, 26, 30, 28 + rnd.randrange(max(1, len(buf) - 30))])
            if pos + 2 <= len(buf):
                buf[pos : pos + 2] = rnd.randrange(65536).to_bytes(2, "big")
        elif kind == 5:
            start = rnd.randrange(len(buf))
            buf[start : start + 16] = rnd.randbytes(16)
        else:
            buf = bytearray(rnd.randbytes(rnd.randint(0, 80)))
        out = bytes(buf)
        if out != data:
            made += 1
            yield out


def record() -> list[bytes]:
    """The four datagrams of a clean exchange (init req/resp, auth req/resp)."""
    ci, cr = configs(ike="aes128-sha256-x25519")
    init = IkeSa(ci, initiator=True, rng=seeded_rng(11))
    resp = IkeSa(cr, initiator=False, rng=seeded_rng(12))
    init.connect(0.0)
    wire: list[bytes] = []
    for _ in range(4):
        for d in init.datagrams_to_send(0.0):
            wire.append(d.data)
            resp.receive_datagram(d.data, (str(ADDR_I), 500), 0.0)
        for d in resp.datagrams_to_send(0.0):
            wire.append(d.data)
            init.receive_datagram(d.data, (str(ADDR_R), 500), 0.0)
    assert len(wire) == 4
    return wire


def feed(sa: IkeSa, data: bytes, source: str) -> bool:
    """Feed one datagram; True when it was refused and counted, False when accepted."""
    before = sum(sa.drops.values())
    state = sa.state
    sa.receive_datagram(data, (source, 500), 0.0)
    out = sa.datagrams_to_send(0.0)
    counted = sum(sa.drops.values()) - before
    assert counted in (0, 1)
    if counted == 1:
        assert set(sa.drops) <= set(DropReason)
        return True
    assert out or sa.state is not state, "a datagram was neither counted nor acted on"
    return False


def storm(
    make: Callable[[], IkeSa], data: bytes, source: str, rnd: random.Random, fresh: bool
) -> tuple[int, int]:
    refused = accepted = 0
    sa = make()
    for bad in mutations(data, rnd, PER_MESSAGE):
        if fresh:
            sa = make()
        if feed(sa, bad, source):
            refused += 1
        else:
            accepted += 1
    return refused, accepted


def test_mutated_messages_are_counted_and_the_pair_still_works() -> None:
    rnd = random.Random(2024)
    init_req, init_resp, auth_req, auth_resp = record()
    ci, cr = configs(ike="aes128-sha256-x25519")

    def new_initiator() -> IkeSa:
        sa = IkeSa(ci, initiator=True, rng=seeded_rng(11))
        sa.connect(0.0)
        assert sa.datagrams_to_send(0.0)[0].data == init_req  # same seed, same request
        return sa

    def new_responder() -> IkeSa:
        return IkeSa(cr, initiator=False, rng=seeded_rng(12))

    # IKE_SA_INIT, both directions: throw-away SAs (a mutated INIT may still be valid).
    r1, a1 = storm(new_responder, init_req, str(ADDR_I), rnd, fresh=True)
    r2, a2 = storm(new_initiator, init_resp, str(ADDR_R), rnd, fresh=True)
    assert r1 > PER_MESSAGE // 2 and r2 > PER_MESSAGE // 2

    # The real pair, mid-handshake: every mutated protected message is refused.
    initiator, responder = new_initiator(), new_responder()
    assert feed(responder, init_req, str(ADDR_I)) is False
    responder_answer = init_resp
    assert feed(initiator, responder_answer, str(ADDR_R)) is False
    for bad in mutations(auth_req, rnd, PER_MESSAGE):
        assert feed(responder, bad, str(ADDR_I)), "a corrupted IKE_AUTH request was accepted"
    responder.receive_datagram(auth_req, (str(ADDR_I), 500), 0.0)
    genuine_answer = responder.datagrams_to_send(0.0)
    assert [d.data for d in genuine_answer] == [auth_resp]
    for bad in mutations(auth_resp, rnd, PER_MESSAGE):
        assert feed(initiator, bad, str(ADDR_R)), "a corrupted IKE_AUTH response was accepted"
    initiator.receive_datagram(auth_resp, (str(ADDR_R), 500), 0.0)
    assert initiator.state is IkeState.ESTABLISHED and responder.state is IkeState.ESTABLISHED

    # Established: replays and corruptions of everything, to both sides.
    for data in (init_req, init_resp, auth_req, auth_resp):
        for bad in mutations(data, rnd, 150):
            assert feed(initiator, bad, str(ADDR_R))
            assert feed(responder, bad, str(ADDR_I))

    total = sum(initiator.drops.values()) + sum(responder.drops.values())
    assert total >= 2 * PER_MESSAGE + 2 * 4 * 150
    assert initiator.drops[DropReason.INTEGRITY] > 0
    assert responder.drops[DropReason.TRUNCATED] > 0

    # ... and the same pair completes fresh exchanges in both directions.
    events: list[object] = []
    for sender, receiver, src_s, src_r in (
        (initiator, responder, str(ADDR_I), str(ADDR_R)),
        (responder, initiator, str(ADDR_R), str(ADDR_I)),
    ):
        sender.check_liveness(1.0)
        for _ in range(3):
            for d in sender.datagrams_to_send(1.0):
                receiver.receive_datagram(d.data, (src_s, d.local_port), 1.0)
            for d in receiver.datagrams_to_send(1.0):
                sender.receive_datagram(d.data, (src_r, d.local_port), 1.0)
        assert sender.get_timer() is None  # answered: nothing left to retransmit
    while (e := initiator.next_event()) is not None:
        events.append(type(e))
    assert events == [IkeSaEstablished, ChildSaEstablished]
    assert a1 + a2 < r1 + r2
