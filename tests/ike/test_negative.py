"""Negative pairs, retransmission, window and duplicate handling, and local misuse."""

from __future__ import annotations

import ipaddress

import pytest

from ipsecconf.ike.config import ChildConfig, Identity, IkeConfig, Mode, PskTable, RetransmitPolicy
from ipsecconf.ike.constants import ExchangeType, NotifyType
from ipsecconf.ike.context import IkeState, SaContext
from ipsecconf.ike.errors import DropReason, LocalProtocolError
from ipsecconf.ike.events import (
    ChildSaEstablished,
    ChildSaFailed,
    FailureReason,
    IkeSaEstablished,
    IkeSaFailed,
)
from ipsecconf.ike.message import Message
from ipsecconf.ike.payloads import NotifyPayload, Payload
from ipsecconf.ike.sa import IkeSa
from ipsecconf.ike.tasks.base import Status, Task
from ipsecconf.model.proposals import child_proposals, parse
from ipsecconf.model.selectors import Endpoint, Selector
from tests.ike.pair import ADDR_I, ADDR_R, configs, host_child, make_pair, mirror, seeded_rng
from tests.ike.test_pair import _fields, established


def test_wrong_psk_is_authentication_failed_on_both_sides() -> None:
    pair = make_pair(*configs(psk_r=b"not the same key"))
    pair.run()
    assert pair.events_r == [
        IkeSaFailed(
            FailureReason.AUTHENTICATION_FAILED,
            "the peer's AUTH payload does not verify (wrong PSK?)",
            NotifyType.AUTHENTICATION_FAILED,
            False,
        )
    ]
    [failure] = pair.events_i
    assert isinstance(failure, IkeSaFailed)
    assert failure.reason is FailureReason.AUTHENTICATION_FAILED
    assert failure.notify == NotifyType.AUTHENTICATION_FAILED and failure.by_peer
    assert pair.initiator.state is IkeState.FAILED and pair.responder.state is IkeState.FAILED


def test_no_shared_ike_proposal() -> None:
    pair = make_pair(*configs(ike="aes128-sha256-modp2048", ike_r="aes256gcm-prfsha384-ecp384"))
    pair.run()
    [resp] = pair.events_r
    [init] = pair.events_i
    assert isinstance(resp, IkeSaFailed) and resp.reason is FailureReason.NO_PROPOSAL_CHOSEN
    assert resp.notify == NotifyType.NO_PROPOSAL_CHOSEN and not resp.by_peer
    assert isinstance(init, IkeSaFailed) and init.reason is FailureReason.NO_PROPOSAL_CHOSEN
    assert init.notify == NotifyType.NO_PROPOSAL_CHOSEN and init.by_peer
    assert pair.initiator.get_timer() is None


def test_aead_and_non_aead_never_mix() -> None:
    # Same DH and PRF, but one side only AEAD, the other only CBC: nothing in common.
    pair = make_pair(*configs(ike="aes128gcm-prfsha256-x25519", ike_r="aes128-sha256-x25519"))
    pair.run()
    assert isinstance(pair.events_i[0], IkeSaFailed)
    assert pair.events_i[0].reason is FailureReason.NO_PROPOSAL_CHOSEN


def _site(
    local: str, remote: str, *, mode: Mode = Mode.TUNNEL, esp: str = "aes128-sha256"
) -> ChildConfig:
    return ChildConfig(
        name="site",
        selectors=(Selector(Endpoint.parse(local), Endpoint.parse(remote)),),
        proposals=(parse(esp, "esp"),),
        mode=mode,
    )


def test_unacceptable_traffic_selectors() -> None:
    child_i = _site("203.0.113.128/25", "203.0.113.0/25")
    child_r = _site("198.51.100.0/28", "198.51.100.16/28")
    pair = make_pair(*configs(child_i=child_i, child_r=child_r))
    pair.run()
    assert [type(e) for e in pair.events_i] == [IkeSaEstablished, ChildSaFailed]
    assert [type(e) for e in pair.events_r] == [IkeSaEstablished, ChildSaFailed]
    failed_i, failed_r = pair.events_i[1], pair.events_r[1]
    assert isinstance(failed_i, ChildSaFailed) and isinstance(failed_r, ChildSaFailed)
    assert failed_i.reason is FailureReason.TS_UNACCEPTABLE and failed_i.by_peer
    assert failed_i.notify == NotifyType.TS_UNACCEPTABLE and failed_i.name == "site"
    assert failed_r.reason is FailureReason.TS_UNACCEPTABLE and not failed_r.by_peer
    # The IKE SA survives a failed child (RFC 7296 2.21.3).
    assert pair.initiator.state is IkeState.ESTABLISHED


def test_narrowing_to_the_responders_smaller_policy() -> None:
    child_i = _site("203.0.113.128/25", "203.0.113.0/24")
    child_r = _site("203.0.113.0/26", "203.0.113.128/25")
    pair = make_pair(*configs(child_i=child_i, child_r=child_r))
    pair.run()
    _, child, _, _ = established(pair)
    assert [str(t) for t in child.remote_ts] == ["203.0.113.0-203.0.113.63"]


def test_no_shared_child_proposal() -> None:
    child_i = _site("203.0.113.128/25", "203.0.113.0/25", esp="aes128-sha256")
    child_r = mirror(_site("203.0.113.128/25", "203.0.113.0/25", esp="aes256gcm"))
    pair = make_pair(*configs(child_i=child_i, child_r=child_r))
    pair.run()
    failed = pair.events_i[1]
    assert isinstance(failed, ChildSaFailed)
    assert failed.reason is FailureReason.NO_PROPOSAL_CHOSEN
    assert failed.notify == NotifyType.NO_PROPOSAL_CHOSEN


def test_mode_mismatch_is_refused() -> None:
    child_i = _site("203.0.113.128/25", "203.0.113.0/25", mode=Mode.TUNNEL)
    child_r = mirror(_site("203.0.113.128/25", "203.0.113.0/25", mode=Mode.TRANSPORT))
    pair = make_pair(*configs(child_i=child_i, child_r=child_r))
    pair.run()
    failed = pair.events_r[1]
    assert isinstance(failed, ChildSaFailed)
    assert failed.reason is FailureReason.NO_PROPOSAL_CHOSEN


def test_wrong_identity_is_refused() -> None:
    pair = make_pair(*configs(remote_id_i=Identity.fqdn("other.example.net")))
    pair.run()
    [failure] = pair.events_i
    assert isinstance(failure, IkeSaFailed)
    assert failure.reason is FailureReason.AUTHENTICATION_FAILED and not failure.by_peer
    assert "other.example.net" in failure.detail
    # The initiator tells the responder in a separate INFORMATIONAL (RFC 7296 2.21.2).
    assert [type(e) for e in pair.events_r] == [IkeSaEstablished, ChildSaEstablished, IkeSaFailed]
    refused = pair.events_r[-1]
    assert isinstance(refused, IkeSaFailed) and refused.by_peer
    assert refused.reason is FailureReason.AUTHENTICATION_FAILED
    assert pair.responder.state is IkeState.FAILED


def test_responder_without_a_key_refuses() -> None:
    ci, cr = configs()
    cr = IkeConfig(**{**_fields(cr), "psk": PskTable({})})
    pair = make_pair(ci, cr)
    pair.run()
    assert isinstance(pair.events_r[0], IkeSaFailed)
    # The precise reason; the notify on the wire stays AUTHENTICATION_FAILED (2.21.2).
    assert pair.events_r[0].reason is FailureReason.NO_PSK
    assert pair.events_r[0].notify == NotifyType.AUTHENTICATION_FAILED
    assert isinstance(pair.events_i[0], IkeSaFailed)


def test_retransmission_backs_off_then_gives_up() -> None:
    ci, _ = configs()
    sa = IkeSa(ci, initiator=True, rng=seeded_rng(1))
    sa.connect(0.0)
    first = sa.datagrams_to_send(0.0)
    assert len(first) == 1
    now, waits = 0.0, []
    for _ in range(10):
        timer = sa.get_timer()
        if timer is None:
            break
        waits.append(round(timer - now, 3))
        now = timer
        sa.handle_timer(now)
        resent = sa.datagrams_to_send(now)
        assert all(d.data == first[0].data for d in resent)
    assert waits == [4.0, 7.2, 12.96, 23.328, 41.99, 75.583]
    event = sa.next_event()
    assert isinstance(event, IkeSaFailed) and event.reason is FailureReason.TIMEOUT
    assert sa.state is IkeState.FAILED


def test_jitter_shortens_waits_from_the_injected_rng() -> None:
    ci, _ = configs()
    ci = IkeConfig(**{**_fields(ci), "retransmit": RetransmitPolicy(jitter=0.2)})
    sa = IkeSa(ci, initiator=True, rng=seeded_rng(2))
    sa.connect(0.0)
    timer = sa.get_timer()
    assert timer is not None and 3.2 <= timer <= 4.0


def test_duplicate_request_gets_the_cached_response() -> None:
    pair = make_pair(*configs())
    init_req = pair.initiator.datagrams_to_send(0.0)
    pair.responder.receive_datagram(init_req[0].data, (str(ADDR_I), 500), 0.0)
    init_resp = pair.responder.datagrams_to_send(0.0)
    pair.initiator.receive_datagram(init_resp[0].data, (str(ADDR_R), 500), 0.0)
    auth_req = pair.initiator.datagrams_to_send(0.0)
    for _ in range(3):
        pair.responder.receive_datagram(auth_req[0].data, (str(ADDR_I), 500), 0.0)
    responses = pair.responder.datagrams_to_send(0.0)
    assert len(responses) == 3 and len({r.data for r in responses}) == 1
    assert pair.responder.drops[DropReason.RETRANSMIT] == 2
    # An IKE_SA_INIT now lies outside the window: dropped, not processed again.
    pair.responder.receive_datagram(init_req[0].data, (str(ADDR_I), 500), 0.0)
    assert pair.responder.datagrams_to_send(0.0) == []
    assert pair.responder.drops[DropReason.INVALID_MESSAGE_ID] == 1
    for r in responses:
        pair.initiator.receive_datagram(r.data, (str(ADDR_R), 500), 0.0)
    pair._collect()
    assert [type(e) for e in pair.events_i] == [IkeSaEstablished, ChildSaEstablished]
    assert pair.initiator.drops[DropReason.UNEXPECTED_RESPONSE] == 2


@pytest.mark.parametrize("force_encap", [False, True], ids=["udp500", "natt4500"])
@pytest.mark.parametrize("seed", range(20))
def test_converges_under_loss_and_duplication(seed: int, force_encap: bool) -> None:
    ci, cr = configs(ike="aes128-sha256-ecp256", force_encap=force_encap)
    policy = RetransmitPolicy(timeout=1.0, base=1.5, tries=12)
    ci = IkeConfig(**{**_fields(ci), "retransmit": policy})
    pair = make_pair(ci, cr, seed=seed, loss=0.3, duplicate=0.3)
    pair.wire.seed(seed)
    pair.run(max_steps=500)
    assert [type(e) for e in pair.events_i] == [IkeSaEstablished, ChildSaEstablished]
    assert [type(e) for e in pair.events_r] == [IkeSaEstablished, ChildSaEstablished]
    child_i, child_r = pair.events_i[1], pair.events_r[1]
    assert isinstance(child_i, ChildSaEstablished) and isinstance(child_r, ChildSaEstablished)
    assert child_i.encr_key_out == child_r.encr_key_in
    assert child_i.spi_out == child_r.spi_in
    assert child_i.udp_encap is force_encap and child_r.udp_encap is force_encap
    # Whatever was dropped was dropped for a reason we expect from loss and duplication.
    for sa in (pair.initiator, pair.responder):
        assert set(sa.drops) <= {
            DropReason.RETRANSMIT,
            DropReason.UNEXPECTED_RESPONSE,
            DropReason.INVALID_MESSAGE_ID,
        }


def test_local_misuse_raises_typed_errors() -> None:
    ci, cr = configs()
    sa = IkeSa(ci, initiator=True, rng=seeded_rng(1))
    with pytest.raises(LocalProtocolError):
        sa.close(0.0)
    sa.connect(0.0)
    with pytest.raises(LocalProtocolError):
        sa.connect(0.0)
    with pytest.raises(LocalProtocolError):
        IkeSa(cr, initiator=False, rng=seeded_rng(1)).connect(0.0)
    no_key = IkeConfig(**{**_fields(ci), "psk": PskTable({})})
    with pytest.raises(LocalProtocolError, match="no pre-shared key"):
        IkeSa(no_key, initiator=True, rng=seeded_rng(1)).connect(0.0)
    with pytest.raises(LocalProtocolError):
        ChildConfig(name="x", selectors=(), proposals=tuple(child_proposals("esp", "auto", "auto")))
    with pytest.raises(LocalProtocolError):
        IkeConfig(**{**_fields(ci), "proposals": (parse("aes128-sha256", "esp"),)})
    with pytest.raises(LocalProtocolError):
        IkeConfig(**{**_fields(ci), "remote_address": ipaddress.ip_address("2001:db8::1")})
    with pytest.raises(LocalProtocolError):
        IkeSa(ci, initiator=True, rng=seeded_rng(1)).connect(0.0, child="nope")
    assert host_child().name == "host"


class _RefuseAuth(Task):
    """What an initiator sends when the responder's AUTH does not verify (2.21.2)."""

    exchange = ExchangeType.INFORMATIONAL

    def build_request(self, ctx: SaContext) -> list[Payload]:
        return [NotifyPayload(NotifyType.AUTHENTICATION_FAILED)]

    def process_response(self, ctx: SaContext, message: Message) -> Status:
        return Status.SUCCESS


def test_responder_fails_when_the_initiator_refuses_its_auth_later() -> None:
    pair = make_pair(*configs())
    pair.run()
    established(pair)
    pair.initiator._manager.queue(_RefuseAuth())
    pair.initiator._manager.initiate(pair.now)
    pair.run()
    failure = pair.events_r[-1]
    assert isinstance(failure, IkeSaFailed)
    assert failure.reason is FailureReason.AUTHENTICATION_FAILED and failure.by_peer
    assert pair.responder.state is IkeState.FAILED
