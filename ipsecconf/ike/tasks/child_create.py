"""CHILD_SA creation (RFC 7296 1.3 and 2.9, 2.17), here inside IKE_AUTH.

The initiator offers its child's ESP/AH proposals with its inbound SPI, TSi/TSr from the
child's selectors (the triggering packet first when populating from the packet) and
USE_TRANSPORT_MODE for transport mode.  The responder looks for the first of its children
whose selectors intersect the offered ones and whose mode and proposals match; it answers
with the narrowed selectors, or with TS_UNACCEPTABLE (no selector fits) or
NO_PROPOSAL_CHOSEN (selectors fit, algorithms or mode do not).  A failed child leaves the
IKE SA up (2.21.3).

Keys: ``KEYMAT = prf+(SK_d, Ni | Nr)`` with the IKE_SA_INIT nonces for the first child;
the CREATE_CHILD_SA tasks (:mod:`.child_sa`) pass fresh nonces and a PFS secret to
:func:`install`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ipsecconf.ike.config import ChildConfig, Mode, TriggerPacket
from ipsecconf.ike.constants import ExchangeType, NotifyType
from ipsecconf.ike.context import ChildRecord, IkeState, SaContext
from ipsecconf.ike.events import ChildSaEstablished, ChildSaFailed, FailureReason
from ipsecconf.ike.keymat import child_keys
from ipsecconf.ike.message import Message
from ipsecconf.ike.payloads import NotifyPayload, Payload
from ipsecconf.ike.payloads_sa import SaPayload, WireProposal
from ipsecconf.ike.payloads_ts import TsEntry, TsPayload
from ipsecconf.ike.proposals import (
    ChildAlgorithms,
    auth_negotiator,
    without_key_exchange,
)
from ipsecconf.ike.selectors import (
    Narrowed,
    initiator_check,
    offer,
    responder_answer,
    to_selectors,
)
from ipsecconf.ike.tasks.base import Status, Task, first_error, has_notify, one
from ipsecconf.model.selectors import Selector

_CHILD_ERRORS = {
    NotifyType.NO_PROPOSAL_CHOSEN: FailureReason.NO_PROPOSAL_CHOSEN,
    NotifyType.TS_UNACCEPTABLE: FailureReason.TS_UNACCEPTABLE,
    NotifyType.SINGLE_PAIR_REQUIRED: FailureReason.TS_UNACCEPTABLE,
    NotifyType.INVALID_SELECTORS: FailureReason.TS_UNACCEPTABLE,
}


def ts_of(message: Message, initiator: bool) -> list[TsEntry] | None:
    """The selectors of the TSi (``initiator``) or TSr payload, if there is one."""
    payload = ts_payload(message, initiator)
    return None if payload is None else list(payload.selectors)


def ts_pair(message: Message) -> tuple[TsPayload | None, TsPayload | None]:
    """The TSi and TSr payloads, either ``None`` when absent (the first of each kind)."""
    tsi = tsr = None
    for p in message.find(TsPayload):
        if p.initiator:
            if tsi is None:
                tsi = p
        elif tsr is None:
            tsr = p
    return tsi, tsr


def ts_payload(message: Message, initiator: bool) -> TsPayload | None:
    """The TSi (``initiator``) or TSr payload, if there is one."""
    for p in message.find(TsPayload):
        if p.initiator == initiator:
            return p
    return None


_TRANSPORT = NotifyPayload(NotifyType.USE_TRANSPORT_MODE)
# Enum members read in every child negotiation as module constants: on Python 3.11
# reading one from its class goes through EnumType's __getattr__ hook.
_USE_TRANSPORT = int(NotifyType.USE_TRANSPORT_MODE)
_MODE_TRANSPORT, _MODE_TUNNEL = Mode.TRANSPORT, Mode.TUNNEL
_ESTABLISHED = IkeState.ESTABLISHED
_SUCCESS, _FAILED = Status.SUCCESS, Status.FAILED
_NO_SPI = bytes(4)


def _numbered(sa: SaPayload, number: int) -> WireProposal:
    """The proposal of ``sa`` with ``number`` (the one an answer accepted)."""
    for p in sa.proposals:
        if p.number == number:
            return p
    raise LookupError(number)  # pragma: no cover - the negotiator answered one of them


def _spi_bytes(spi: int) -> bytes:
    return spi.to_bytes(4, "big")


def install(
    ctx: SaContext,
    child: ChildConfig,
    algorithms: ChildAlgorithms,
    spi_in: int,
    spi_out: int,
    local_ts: Sequence[TsEntry],
    remote_ts: Sequence[TsEntry],
    transport: bool,
    *,
    exchange_initiator: bool | None = None,
    nonces: tuple[bytes, bytes] | None = None,
    shared: bytes = b"",
    rekey_of: int | None = None,
    selectors: tuple[Selector, ...] | None = None,
) -> ChildRecord:
    """Derive the keys of a new child pair (2.17), remember it and announce it.

    ``nonces`` are (Ni, Nr) of the exchange that created it (the IKE_SA_INIT ones for
    the first child), ``shared`` the PFS secret; the initiator of *that exchange* takes
    the initiator-to-responder keys for sending.  ``selectors`` are the ``out``
    selectors of the TS lists when the caller has them already."""
    assert ctx.algorithms is not None and ctx.keys is not None
    ni, nr = nonces or (ctx.ni, ctx.nr)
    initiator = ctx.initiator if exchange_initiator is None else exchange_initiator
    keys = child_keys(
        ctx.algorithms.prf,
        ctx.keys.sk_d,
        algorithms.cipher,
        algorithms.integrity,
        ni,
        nr,
        shared,
    )
    if initiator:
        e_out, a_out, e_in, a_in = keys.encr_i, keys.integ_i, keys.encr_r, keys.integ_r
    else:
        e_out, a_out, e_in, a_in = keys.encr_r, keys.integ_r, keys.encr_i, keys.integ_i
    local, remote = tuple(local_ts), tuple(remote_ts)  # no copy when given tuples
    record = ChildRecord(
        child.name,
        spi_in,
        spi_out,
        algorithms.protocol,
        child,  # config
        algorithms,
        local,  # local_ts
        remote,  # remote_ts
        transport,
    )
    ctx.children.append(record)
    if selectors is None:
        selectors = tuple(to_selectors(list(local), list(remote)))
    # Positional, in field order (a keyword call of this size costs twice as much).
    ctx.push(
        ChildSaEstablished(
            child.name,
            algorithms.protocol,
            _MODE_TRANSPORT if transport else _MODE_TUNNEL,  # mode
            spi_in,
            spi_out,
            local,  # local_ts
            remote,  # remote_ts
            selectors,
            algorithms,
            e_in,  # encr_key_in
            a_in,  # integ_key_in
            e_out,  # encr_key_out
            a_out,  # integ_key_out
            ctx.udp_encap,
            ctx.local_address,
            ctx.local_port,
            ctx.remote_address,
            ctx.remote_port,
            ctx.spi_i,  # ike_spi_i
            ctx.spi_r,  # ike_spi_r
            rekey_of,
        )
    )
    return record


class ChildCreateInitiator(Task):
    """The initiator's side of a child SA negotiation."""

    exchange = ExchangeType.IKE_AUTH

    def __init__(self, child: ChildConfig, trigger: TriggerPacket | None = None) -> None:
        self.child = child
        self.trigger = trigger
        self.spi_in = 0
        self.sent: tuple[TsPayload, TsPayload] | None = None

    def build_request(self, ctx: SaContext) -> list[Payload]:
        if not self.spi_in:
            self.spi_in = ctx.spi_allocator()
        self.sent = offer(self.child, self.trigger)
        payloads: list[Payload] = []
        if self.child.mode is _MODE_TRANSPORT:
            payloads.append(_TRANSPORT)
        payloads += [
            auth_negotiator(self.child).offer(_spi_bytes(self.spi_in)),
            *self.sent,
        ]
        return payloads

    def _fail(
        self,
        ctx: SaContext,
        reason: FailureReason,
        detail: str,
        notify: int | None = None,
        by_peer: bool = False,
    ) -> Status:
        ctx.push(ChildSaFailed(self.child.name, reason, detail, notify, by_peer))
        return Status.SUCCESS  # the child is done; the IKE SA stays (2.21.3)

    def process_response(self, ctx: SaContext, message: Message) -> Status:
        if ctx.state is not _ESTABLISHED:
            return _FAILED
        error = first_error(message)
        sa = one(message, SaPayload)
        if error is not None and sa is None:
            reason = _CHILD_ERRORS.get(error.type, FailureReason.PEER_ERROR)  # type: ignore[call-overload]
            return self._fail(
                ctx, reason, f"the peer refused child {self.child.name!r}", error.type, True
            )
        tsi, tsr = ts_pair(message)
        if sa is None or tsi is None or tsr is None:
            return self._fail(
                ctx,
                FailureReason.PROTOCOL_ERROR,
                "the peer answered without SA, TSi and TSr",
                None,
                True,
            )
        accepted = auth_negotiator(self.child).check(without_key_exchange(sa))
        if accepted is None or accepted.child is None or len(sa.proposals[0].spi) != 4:
            return self._fail(
                ctx,
                FailureReason.NO_PROPOSAL_CHOSEN,
                "the peer chose a child proposal we did not offer",
            )
        assert self.sent is not None
        selectors = initiator_check(self.child, self.sent, tsi, tsr)
        if selectors is None:
            return self._fail(
                ctx, FailureReason.TS_UNACCEPTABLE, "the peer widened the traffic selectors"
            )
        transport = has_notify(message, _USE_TRANSPORT)
        if transport != (self.child.mode is _MODE_TRANSPORT):
            return self._fail(
                ctx,
                FailureReason.MODE_MISMATCH,
                f"the peer wants {'transport' if transport else 'tunnel'} mode",
            )
        algorithms = accepted.child
        spi_out = int.from_bytes(sa.proposals[0].spi, "big")
        install(
            ctx,
            self.child,
            algorithms,
            self.spi_in,
            spi_out,
            tsi.selectors,
            tsr.selectors,
            transport,
            selectors=selectors,
        )
        return Status.SUCCESS


class ChildCreateResponder(Task):
    """The responder's side of a child SA negotiation."""

    exchange = ExchangeType.IKE_AUTH

    def __init__(self) -> None:
        self.error: NotifyType | None = None
        self.answer: WireProposal | None = None
        self.narrowed: Narrowed | None = None
        self.transport = False
        self.skip = False

    def process_request(self, ctx: SaContext, message: Message) -> Status:
        if ctx.state is not _ESTABLISHED:
            self.skip = True
            return _FAILED
        sa = one(message, SaPayload)
        tsi, tsr = ts_pair(message)
        if sa is None:
            self.skip = True  # childless IKE_AUTH
            return Status.SUCCESS
        if tsi is None or tsr is None:
            self.error = NotifyType.TS_UNACCEPTABLE
            ctx.push(
                ChildSaFailed(
                    "", FailureReason.TS_UNACCEPTABLE, "child request without TSi/TSr", self.error
                )
            )
            return Status.SUCCESS
        self.transport = has_notify(message, _USE_TRANSPORT)
        ts_fit = False
        offered = without_key_exchange(sa)
        for child in ctx.config.children:
            narrowed = responder_answer(child, tsi, tsr)
            if narrowed is None:
                continue
            ts_fit = True
            if self.transport != (child.mode is _MODE_TRANSPORT):
                continue
            picked = auth_negotiator(child).select(offered, _NO_SPI)
            if picked is None:
                continue
            spi_in = ctx.spi_allocator()  # only now: a refused offer reserves no SPI
            answer = picked.answer
            self.answer = WireProposal(
                answer.number, answer.protocol, _spi_bytes(spi_in), answer.transforms
            )
            self.narrowed = narrowed
            peer = _numbered(sa, answer.number)
            algorithms = picked.child
            assert algorithms is not None  # a child negotiator answers ESP/AH proposals
            spi_out = int.from_bytes(peer.spi, "big")
            install(
                ctx,
                child,
                algorithms,
                spi_in,
                spi_out,
                narrowed.tsr.selectors,
                narrowed.tsi.selectors,
                self.transport,
                selectors=narrowed.selectors,
            )
            return _SUCCESS
        if ts_fit:
            self.error = NotifyType.NO_PROPOSAL_CHOSEN
            detail = "no child proposal or mode of the initiator matches ours"
            reason = FailureReason.NO_PROPOSAL_CHOSEN
        else:
            self.error = NotifyType.TS_UNACCEPTABLE
            detail = "the proposed traffic selectors match none of our policies"
            reason = FailureReason.TS_UNACCEPTABLE
        ctx.push(ChildSaFailed("", reason, detail, self.error))
        return Status.SUCCESS

    def build_response(self, ctx: SaContext) -> list[Payload]:
        if self.skip:
            return []
        if self.error is not None:
            return [NotifyPayload(self.error)]
        assert self.answer is not None and self.narrowed is not None
        payloads: list[Payload] = []
        if self.transport:
            payloads.append(_TRANSPORT)
        payloads += [SaPayload((self.answer,)), self.narrowed.tsi, self.narrowed.tsr]
        return payloads
