"""The payload codec, the SK payload and proposal selection, payload by payload."""

from __future__ import annotations

import ipaddress
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsecconf.codec import Buffer
from ipsecconf.ike import proposals as props
from ipsecconf.ike.constants import ExchangeType, NotifyType, PayloadType, ProtocolId
from ipsecconf.ike.errors import DropReason, RemoteProtocolError
from ipsecconf.ike.message import Message, SkCrypto, decode, encode, pull_header
from ipsecconf.ike.payloads import (
    AuthPayload,
    CertPayload,
    CertReqPayload,
    ConfigAttribute,
    ConfigPayload,
    DeletePayload,
    EapPayload,
    IdPayload,
    KePayload,
    NoncePayload,
    NotifyPayload,
    Payload,
    VendorIdPayload,
    pull_chain,
    push_chain,
)
from ipsecconf.ike.payloads_sa import SaPayload, Transform, WireProposal
from ipsecconf.ike.payloads_ts import TsEntry, TsPayload
from ipsecconf.ike.sa import IkeSa, route
from ipsecconf.model.algorithms import CIPHERS, INTEGRITIES, TransformType
from ipsecconf.model.proposals import parse
from tests.ike.pair import ADDR_I, configs, seeded_rng

V4 = ipaddress.ip_address

ALL: list[Payload] = [
    props.to_wire((parse("aes128-sha256-x25519-modp2048", "ike"), parse("aes256gcm", "esp"))),
    KePayload(31, b"k" * 32),
    NoncePayload(b"n" * 32),
    IdPayload(True, 2, b"gw.example.net"),
    IdPayload(False, 1, b"\xc6\x33\x64\x02"),
    AuthPayload(2, b"a" * 32),
    NotifyPayload(NotifyType.INVALID_KE_PAYLOAD, data=b"\x00\x0e"),
    NotifyPayload(NotifyType.REKEY_SA, ProtocolId.ESP, b"\x01\x02\x03\x04"),
    DeletePayload(ProtocolId.ESP, (b"\x00\x00\x01\x00", b"\x00\x00\x02\x00")),
    DeletePayload(ProtocolId.IKE),
    VendorIdPayload(b"ipsecconf"),
    TsPayload(
        True,
        (
            TsEntry(V4("198.51.100.1"), V4("198.51.100.1"), 6, 139, 139),
            TsEntry(V4("198.51.100.1"), V4("198.51.100.1"), 17, 139, 139),
        ),
    ),
    TsPayload(
        False,
        (TsEntry(ipaddress.ip_address("2001:db8::"), ipaddress.ip_address("2001:db8::ffff")),),
    ),
    CertPayload(4, b"\x30\x82cert"),
    CertReqPayload(4, b"h" * 20),
    ConfigPayload(1, (ConfigAttribute(1, b""), ConfigAttribute(3, b"\xc6\x33\x64\x09"))),
    EapPayload(b"\x01\x02\x00\x04"),
]


def test_every_payload_round_trips() -> None:
    first, data = push_chain(ALL)
    parsed, sk = pull_chain(data, first)
    assert sk is None
    assert parsed == ALL


def _with_unknown(critical: bool) -> tuple[int, bytes]:
    first, data = push_chain([NoncePayload(b"n" * 16)])
    # Re-chain: Nonce -> unknown type 200 -> end.
    raw = bytearray(data)
    raw[0] = 200
    raw += bytes((0, 0x80 if critical else 0)) + (8).to_bytes(2, "big") + b"zzzz"
    return first, bytes(raw)


def test_unknown_non_critical_payload_is_skipped() -> None:
    first, data = _with_unknown(critical=False)
    parsed, _ = pull_chain(data, first)
    assert parsed == [NoncePayload(b"n" * 16)]


def test_unknown_critical_payload_is_refused_with_its_type() -> None:
    first, data = _with_unknown(critical=True)
    with pytest.raises(RemoteProtocolError) as info:
        pull_chain(data, first)
    assert info.value.reason is DropReason.UNSUPPORTED_CRITICAL
    assert info.value.notify is NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD
    assert info.value.notify_data == bytes((200,))


def test_responder_answers_unsupported_critical_payload_in_ike_sa_init() -> None:
    ci, cr = configs()
    init = IkeSa(ci, initiator=True, rng=seeded_rng(1))
    init.connect(0.0)
    request = init.datagrams_to_send(0.0)[0].data
    header = pull_header(request)
    # Append a critical payload of unknown type 201 after the last payload.
    payloads, _ = pull_chain(request[28:], header.next_payload)
    first, chain = push_chain(payloads, trailer=201)
    chain += bytes((0, 0x80)) + (4).to_bytes(2, "big")
    length = 28 + len(chain)
    forged = request[:16] + bytes((first,)) + request[17:24] + length.to_bytes(4, "big") + chain
    resp = IkeSa(cr, initiator=False, rng=seeded_rng(2))
    resp.receive_datagram(forged, (str(ADDR_I), 500), 0.0)
    [answer] = resp.datagrams_to_send(0.0)
    message = decode(answer.data, pull_header(answer.data), None)
    assert message.payloads == [
        NotifyPayload(NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD, data=bytes((201,)))
    ]
    assert resp.drops[DropReason.UNSUPPORTED_CRITICAL] == 1


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\x00" * 27,
        bytes(8) + b"\x01" * 20,  # zero initiator SPI
    ],
)
def test_header_refusals(bad: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        pull_header(bad)
    assert route(bad) is None


def test_limits() -> None:
    many = [VendorIdPayload(b"v")] * 65
    first, data = push_chain(many)
    with pytest.raises(RemoteProtocolError) as info:
        pull_chain(data, first)
    assert info.value.reason is DropReason.TOO_LARGE
    with pytest.raises(RemoteProtocolError):
        pull_chain(*reversed(push_chain([NoncePayload(b"short")])))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cipher", "integ"),
    [("aes128", "sha256"), ("aes256gcm", None), ("chacha20poly1305", None), ("3des", "sha1")],
)
def test_sk_payload_seal_and_open(cipher: str, integ: str | None) -> None:
    c = CIPHERS[cipher]
    i = INTEGRITIES[integ] if integ else None
    ka, kb = os.urandom(c.key_bytes), os.urandom(c.key_bytes)
    ia, ib = (os.urandom(i.key_bytes), os.urandom(i.key_bytes)) if i else (b"", b"")
    alice = SkCrypto(c, i, encr_out=ka, encr_in=kb, integ_out=ia, integ_in=ib, rng=os.urandom)
    bob = SkCrypto(c, i, encr_out=kb, encr_in=ka, integ_out=ib, integ_in=ia, rng=os.urandom)
    message = Message(
        ExchangeType.INFORMATIONAL,
        7,
        b"i" * 8,
        b"r" * 8,
        True,
        False,
        [DeletePayload(ProtocolId.IKE), NotifyPayload(16384)],
        encrypted=True,
    )
    data = encode(message, alice)
    header = pull_header(data)
    assert header.next_payload == PayloadType.SK
    assert decode(data, header, bob).payloads == message.payloads
    for pos in (5, 30, len(data) - 1):
        tampered = bytearray(data)
        tampered[pos] ^= 1
        with pytest.raises(RemoteProtocolError) as info:
            decode(bytes(tampered), pull_header(bytes(tampered)), bob)
        assert info.value.reason in (DropReason.INTEGRITY, DropReason.BAD_LENGTH)
    with pytest.raises(RemoteProtocolError):
        decode(data, header, alice)  # our own outbound keys do not open it


def _offer(*transforms: Transform, protocol: int = ProtocolId.IKE, spi: bytes = b"") -> SaPayload:
    return SaPayload((WireProposal(1, protocol, spi, transforms),))


def test_selection_ignores_unknown_ids_and_attributes() -> None:
    mine = (parse("aes128-sha256-modp2048", "ike"),)
    offer = _offer(
        Transform(TransformType.ENCR, 1024, 128),  # unknown cipher id
        Transform(TransformType.ENCR, 12, 128, unknown_attribute=True),
        Transform(TransformType.ENCR, 12, 128),
        Transform(TransformType.PRF, 5),
        Transform(TransformType.INTEG, 12),
        Transform(TransformType.DH, 14),
    )
    picked = props.select(offer, mine)
    assert picked is not None
    answer, chosen = picked
    assert [t.id for t in answer.transforms] == [12, 5, 12, 14]
    assert str(props.ike_algorithms(chosen)) == "aes128-sha256-prfsha256-modp2048"


def test_selection_rejects_a_proposal_with_an_unknown_transform_type() -> None:
    mine = (parse("aes128-sha256-modp2048", "ike"),)
    offer = _offer(
        Transform(TransformType.ENCR, 12, 128),
        Transform(TransformType.PRF, 5),
        Transform(TransformType.INTEG, 12),
        Transform(TransformType.DH, 14),
        Transform(6, 1),  # ADDKE1 (RFC 9370): unknown here
    )
    assert props.select(offer, mine) is None


def test_aes_without_key_length_is_not_accepted() -> None:
    mine = (parse("aes128-sha256-modp2048", "ike"),)
    offer = _offer(
        Transform(TransformType.ENCR, 12),
        Transform(TransformType.PRF, 5),
        Transform(TransformType.INTEG, 12),
        Transform(TransformType.DH, 14),
    )
    assert props.select(offer, mine) is None


def test_initiator_rejects_an_answer_it_did_not_offer() -> None:
    mine = (parse("aes128-sha256-modp2048", "ike"),)
    answer = _offer(
        Transform(TransformType.ENCR, 12, 256),
        Transform(TransformType.PRF, 5),
        Transform(TransformType.INTEG, 12),
        Transform(TransformType.DH, 14),
    )
    assert props.check_answer(answer, mine) is None
    two = SaPayload(answer.proposals * 2)
    assert props.check_answer(two, mine) is None


def test_buffer_round_trip_of_sa() -> None:
    sa = props.to_wire((parse("aes128-sha256", "esp"),), b"\x00\x00\x10\x00")
    buf = Buffer()
    from ipsecconf.ike.payloads_sa import pull_sa, push_sa

    push_sa(buf, sa)
    assert pull_sa(Buffer(buf.data())) == sa


@settings(max_examples=400, deadline=None)
@given(first=st.integers(0, 255), data=st.binary(max_size=300))
def test_the_chain_parser_only_raises_remote_protocol_errors(first: int, data: bytes) -> None:
    try:
        pull_chain(data, first)
    except RemoteProtocolError as exc:
        assert isinstance(exc.reason, DropReason)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_an_sa_never_raises_on_garbage(data: bytes) -> None:
    ci, cr = configs()
    for sa in (
        IkeSa(ci, initiator=True, rng=seeded_rng(1)),
        IkeSa(cr, initiator=False, rng=seeded_rng(2)),
    ):
        sa.receive_datagram(data, (str(ADDR_I), 500), 0.0)
        sa.receive_datagram(b"\0\0\0\0" + data, (str(ADDR_I), 4500), 0.0)


def test_state_transitions_follow_the_table() -> None:
    from ipsecconf.ike.context import TRANSITIONS, IkeState, SaContext
    from ipsecconf.ike.errors import LocalProtocolError

    ctx = SaContext(configs()[0], True, os.urandom, lambda g: None, lambda: 0)  # type: ignore[arg-type,return-value]
    ctx.transition(IkeState.CONNECTING)
    ctx.transition(IkeState.CONNECTING)  # staying is allowed
    with pytest.raises(LocalProtocolError):
        ctx.transition(IkeState.DELETING)
    assert all(not TRANSITIONS[s] for s in (IkeState.DELETED, IkeState.FAILED))
