"""IKE fragmentation (RFC 7383) in memory: certificate-sized IKE_AUTH messages split
into SKF fragments, delivered reversed, lost, duplicated or forged, and reassembled."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ipsecconf.ike.config import IkeConfig
from ipsecconf.ike.constants import PayloadType
from ipsecconf.ike.context import IkeState
from ipsecconf.ike.credentials import TrustAnchors
from ipsecconf.ike.errors import DropReason
from ipsecconf.ike.message import Message, SkCrypto, header_bytes, pull_header
from ipsecconf.ike.sa import Datagram
from tests.certgen import NOW
from tests.ike.pair import ADDR_I, ADDR_R, Pair, configs, make_pair
from tests.ike.test_certs import Pki, creds, fields, pki  # noqa: F401 - the fixture


def cert_configs(certs: Pki, size_i: int = 400, size_r: int = 400) -> tuple[IkeConfig, IkeConfig]:
    ci, cr = configs()
    trust = TrustAnchors.from_pem(certs.root.cert_pem())
    common = {"trust": trust, "clock": lambda: NOW}
    ci = IkeConfig(
        **{**fields(ci), **common, "credentials": creds(certs.rsa_i), "fragment_size": size_i}
    )
    cr = IkeConfig(
        **{**fields(cr), **common, "credentials": creds(certs.rsa_r), "fragment_size": size_r}
    )
    return ci, cr


def is_fragment(d: Datagram) -> bool:
    return pull_header(d.data).next_payload == PayloadType.SKF


def run_collecting(pair: Pair, reverse: bool = False) -> list[Datagram]:
    """Shuttle datagrams by hand (optionally reversing each burst); all that were sent."""
    sent: list[Datagram] = []
    for _ in range(10):
        out = pair.initiator.datagrams_to_send(pair.now)
        sent += out
        for d in reversed(out) if reverse else out:
            pair.responder.receive_datagram(d.data, (str(ADDR_I), d.local_port), pair.now)
        back = pair.responder.datagrams_to_send(pair.now)
        sent += back
        for d in reversed(back) if reverse else back:
            pair.initiator.receive_datagram(d.data, (str(ADDR_R), d.local_port), pair.now)
    pair._collect()
    return sent


def test_certificate_auth_goes_in_fragments(pki: Pki) -> None:  # noqa: F811
    pair = make_pair(*cert_configs(pki))
    sent = run_collecting(pair)
    fragments = [d for d in sent if is_fragment(d)]
    assert len(fragments) >= 6  # both IKE_AUTH messages, several fragments each
    assert all(len(d.data) <= 400 for d in fragments)
    assert pair.initiator.state is IkeState.ESTABLISHED
    assert pair.responder.state is IkeState.ESTABLISHED
    assert len(pair.initiator.children) == 1
    assert not pair.initiator.drops and not pair.responder.drops


def test_fragments_in_reverse_order(pki: Pki) -> None:  # noqa: F811
    pair = make_pair(*cert_configs(pki))
    run_collecting(pair, reverse=True)
    assert pair.initiator.state is IkeState.ESTABLISHED
    assert pair.responder.state is IkeState.ESTABLISHED


def test_fragments_converge_under_loss_and_duplication(pki: Pki) -> None:  # noqa: F811
    pair = make_pair(*cert_configs(pki), loss=0.2, duplicate=0.3, seed=4)
    pair.run(max_steps=400)
    assert pair.initiator.state is IkeState.ESTABLISHED
    assert pair.responder.state is IkeState.ESTABLISHED
    assert len(pair.responder.children) == 1


def test_forged_fragment_is_dropped_and_retransmission_heals(pki: Pki) -> None:  # noqa: F811
    pair = make_pair(*cert_configs(pki))
    for d in pair.initiator.datagrams_to_send(0.0):  # IKE_SA_INIT
        pair.responder.receive_datagram(d.data, (str(ADDR_I), 500), 0.0)
    for d in pair.responder.datagrams_to_send(0.0):
        pair.initiator.receive_datagram(d.data, (str(ADDR_R), 500), 0.0)
    auth = pair.initiator.datagrams_to_send(0.0)
    assert len(auth) > 1 and all(is_fragment(d) for d in auth)
    forged = auth[1].data[:-1] + bytes((auth[1].data[-1] ^ 1,))
    pair.responder.receive_datagram(forged, (str(ADDR_I), 500), 0.0)
    assert pair.responder.drops[DropReason.INTEGRITY] == 1
    for d in auth:
        pair.responder.receive_datagram(d.data, (str(ADDR_I), 500), 0.0)
    pair.run()
    assert pair.initiator.state is IkeState.ESTABLISHED


def test_without_support_on_one_side_nothing_is_fragmented(pki: Pki) -> None:  # noqa: F811
    pair = make_pair(*cert_configs(pki, size_r=0))
    sent = run_collecting(pair)
    assert not [d for d in sent if is_fragment(d)]
    assert max(len(d.data) for d in sent) > 1000
    assert pair.initiator.state is IkeState.ESTABLISHED


def test_random_fragments_are_dropped_without_harm(pki: Pki) -> None:  # noqa: F811
    pair = make_pair(*cert_configs(pki))
    pair.run()
    resp = pair.responder
    r = random.Random(7383)
    for _ in range(300):
        body = r.randbytes(r.randrange(0, 120))
        number, total = r.randrange(0, 40), r.randrange(0, 40)
        skf = bytes((r.randrange(256), 0)) + (8 + len(body)).to_bytes(2, "big")
        skf += number.to_bytes(2, "big") + total.to_bytes(2, "big") + body
        message = Message(
            exchange=r.choice((35, 36, 37)),
            message_id=r.choice((0, 1, 2, 5)),
            spi_i=resp.spi_i,
            spi_r=resp.spi_r,
            from_initiator=True,
            is_response=r.random() < 0.3,
        )
        data = header_bytes(message, PayloadType.SKF, 28 + len(skf)) + skf
        resp.receive_datagram(data, (str(ADDR_I), 4500), pair.now)
    assert sum(resp.drops.values()) == 300
    assert resp.state is IkeState.ESTABLISHED
    pair.initiator.check_liveness(pair.now)
    pair.run()
    assert pair.initiator.state is IkeState.ESTABLISHED


def test_a_fragmented_message_is_sealed_once_per_fragment(
    pki: Pki,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seals: list[int] = []
    original = SkCrypto.seal

    def counting(self: SkCrypto, *args: Any, **kwargs: Any) -> bytes:
        seals.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SkCrypto, "seal", counting)
    pair = make_pair(*cert_configs(pki))
    sent = run_collecting(pair)
    assert pair.initiator.state is IkeState.ESTABLISHED
    # Every encrypted datagram is one seal: no whole message is sealed, then split.
    encrypted = [d for d in sent if pull_header(d.data).exchange != 34]
    assert len(seals) == len(encrypted) and all(is_fragment(d) for d in encrypted)
