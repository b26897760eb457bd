"""Authenticated nonsense: thousands of well-protected but random CREATE_CHILD_SA and
INFORMATIONAL requests (random proposals, KEs, notifies, deletes, selectors, plus real
rekey requests with random twists) reach an established responder.  None escapes as an
exception, each is answered or counted, and the SA still works afterwards."""

from __future__ import annotations

import ipaddress
import random

from ipsecconf.ike.constants import ExchangeType, NotifyType, ProtocolId
from ipsecconf.ike.context import ChildState, IkeState
from ipsecconf.ike.events import ChildSaEstablished
from ipsecconf.ike.message import Message, encode
from ipsecconf.ike.payloads import (
    AuthPayload,
    CertPayload,
    DeletePayload,
    IdPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    Payload,
)
from ipsecconf.ike.payloads_sa import SaPayload, Transform, WireProposal
from ipsecconf.ike.payloads_ts import TsEntry, TsPayload
from ipsecconf.ike.proposals import to_wire
from tests.ike.pair import ADDR_I, configs, make_pair

NOTIFIES = [
    NotifyType.REKEY_SA,
    NotifyType.INVALID_SPI,
    NotifyType.USE_TRANSPORT_MODE,
    NotifyType.TEMPORARY_FAILURE,
    NotifyType.COOKIE,
    # (AUTHENTICATION_FAILED would end the SA by design, RFC 7296 2.21.2: not fuzzed.)
    40000,
]


def _sa(r: random.Random) -> SaPayload:
    proposals = []
    for number in range(1, r.randint(1, 3) + 1):
        transforms = tuple(
            Transform(r.choice((1, 2, 3, 4, 5, 9)), r.choice((0, 2, 12, 14, 19, 20, 31, 99)))
            for _ in range(r.randint(0, 5))
        )
        spi = r.randbytes(r.choice((0, 3, 4, 8)))
        proposals.append(WireProposal(number, r.choice((1, 2, 3, 9)), spi, transforms))
    return SaPayload(tuple(proposals))


def _ts(r: random.Random, initiator: bool) -> TsPayload:
    a = ipaddress.ip_address("198.51.100.0") + r.randrange(256)
    b = a + r.randrange(4)
    entry = TsEntry(a, b, r.choice((0, 6, 17)), 0, r.choice((0, 65535)))  # type: ignore[arg-type]
    return TsPayload(initiator, (entry,))


def _random_payloads(r: random.Random, real: list[Payload]) -> list[Payload]:
    makers = [
        lambda: _sa(r),
        lambda: KePayload(r.choice((14, 19, 31, 7)), r.randbytes(r.choice((0, 32, 65, 256)))),
        lambda: NoncePayload(r.randbytes(r.randint(16, 64))),
        lambda: NotifyPayload(
            r.choice(NOTIFIES),
            r.choice((0, 1, 3)),
            r.randbytes(r.choice((0, 4, 8))),
            r.randbytes(r.choice((0, 2, 4))),
        ),
        lambda: DeletePayload(
            r.choice((2, 3, 7)),
            tuple(r.randbytes(r.choice((4, 8))) for _ in range(r.randint(0, 3))),
        ),
        lambda: _ts(r, True),
        lambda: _ts(r, False),
        lambda: IdPayload(True, 1, r.randbytes(4)),
        lambda: AuthPayload(r.choice((1, 2, 14)), r.randbytes(16)),
        lambda: CertPayload(4, r.randbytes(40)),
    ]
    out = [r.choice(makers)() for _ in range(r.randint(0, 6))]
    if real and r.random() < 0.4:
        # A real rekey request, with a random payload or two mixed in.
        out = [p for p in real if r.random() < 0.9] + out[:2]
    return out


def test_random_protected_requests_never_escape() -> None:
    ci, cr = configs()
    pair = make_pair(ci, cr)
    pair.run()
    init, resp = pair.initiator, pair.responder
    r = random.Random(7296)
    crypto = init._ctx.crypto
    answered = 0
    rekeys = 0
    for _ in range(1500):
        installed = [c for c in resp._ctx.children if c.state is ChildState.INSTALLED]
        real: list[Payload] = []
        if installed:
            child = installed[-1]
            real = [
                NotifyPayload(
                    NotifyType.REKEY_SA, ProtocolId.ESP, child.spi_out.to_bytes(4, "big")
                ),
                NotifyPayload(NotifyType.USE_TRANSPORT_MODE),
                to_wire(ci.children[0].proposals, r.randbytes(4)),
                NoncePayload(r.randbytes(32)),
                TsPayload(True, child.remote_ts),
                TsPayload(False, child.local_ts),
            ]
        exchange = r.choice((ExchangeType.CREATE_CHILD_SA, ExchangeType.INFORMATIONAL))
        message = Message(
            exchange=exchange,
            message_id=resp._manager.peer_mid,
            spi_i=resp.spi_i,
            spi_r=resp.spi_r,
            from_initiator=True,
            is_response=False,
            payloads=_random_payloads(r, real),
            encrypted=True,
        )
        resp.receive_datagram(encode(message, crypto), (str(ADDR_I), 500), pair.now)
        answered += len(resp.datagrams_to_send(pair.now))
        while (event := resp.next_event()) is not None:
            rekeys += isinstance(event, ChildSaEstablished) and event.rekey_of is not None
        assert resp.state is IkeState.ESTABLISHED
    # Every request was answered (errors included): none was dropped unanswered.
    assert answered == 1500, (answered, resp.drops)
    assert rekeys > 20  # the real rekey requests went deep, not just the parsers
    # The SA still works in both directions.
    init._manager.my_mid = resp._manager.peer_mid
    init._ctx.children.clear()
    init.check_liveness(pair.now)
    resp.check_liveness(pair.now)
    pair.events_i.clear()
    pair.run()
    assert init.state is IkeState.ESTABLISHED and resp.state is IkeState.ESTABLISHED
    assert not init.drops
