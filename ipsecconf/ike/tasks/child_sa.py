"""CREATE_CHILD_SA for child SAs and INFORMATIONAL child deletes (RFC 7296 1.3, 1.4, 2.8).

* :class:`CreateChild` - a new child SA, or the rekey of one (``rekey=`` its record):
  N(REKEY_SA) naming our inbound SPI of the old pair, SA with a fresh SPI, Ni, KEi when
  the child's proposals carry a PFS group, TSi/TSr.  KEYMAT is
  ``prf+(SK_d, g^ir (new) | Ni | Nr)`` with this exchange's nonces (2.17).
* :class:`ChildDelete` - Delete naming our inbound SPI (1.4.1); the peer answers with
  its SPI of the same pair.
* :class:`ChildResponder` - the responder's part of a child CREATE_CHILD_SA.

Make-before-break: the new pair is announced (``ChildSaEstablished.rekey_of``) while the
old one stays installed; the rekey's initiator deletes the old pair once its exchange
is done, and each side drops the old pair on that Delete.  A simultaneous rekey (2.8.1):
each side answers the peer's request while its own is out; when its own answer comes,
the new pair made with the lowest of the four nonces is redundant and is deleted by the
side that initiated it, and the other side deletes the old pair.
"""

from __future__ import annotations

from dataclasses import replace

from ipsecconf.crypto.dh import KeyExchange, KeyExchangeError
from ipsecconf.ike.config import ChildConfig, Mode, TriggerPacket
from ipsecconf.ike.constants import ExchangeType, NotifyType, ProtocolId
from ipsecconf.ike.context import ChildRecord, ChildState, IkeState, PeerRekey, SaContext
from ipsecconf.ike.events import ChildSaDeleted, ChildSaFailed, FailureReason
from ipsecconf.ike.message import Message
from ipsecconf.ike.payloads import DeletePayload, KePayload, NoncePayload, NotifyPayload, Payload
from ipsecconf.ike.payloads_sa import SaPayload, WireProposal
from ipsecconf.ike.payloads_ts import TsEntry, TsPayload
from ipsecconf.ike.proposals import check_answer, child_algorithms, select, to_wire
from ipsecconf.ike.selectors import covered, proposed, responder_narrow
from ipsecconf.ike.tasks.base import Status, Task, first_error, has_notify, notifies, one
from ipsecconf.ike.tasks.child_create import install
from ipsecconf.ike.tasks.child_create import ts_of as _ts
from ipsecconf.model.algorithms import DhGroup, TransformType

MAX_KE_RETRIES = 2

_FAILURES = {
    NotifyType.NO_PROPOSAL_CHOSEN: FailureReason.NO_PROPOSAL_CHOSEN,
    NotifyType.TS_UNACCEPTABLE: FailureReason.TS_UNACCEPTABLE,
    NotifyType.INVALID_KE_PAYLOAD: FailureReason.INVALID_KE,
    NotifyType.TEMPORARY_FAILURE: FailureReason.TEMPORARY_FAILURE,
    NotifyType.CHILD_SA_NOT_FOUND: FailureReason.CHILD_SA_NOT_FOUND,
    NotifyType.NO_ADDITIONAL_SAS: FailureReason.PEER_ERROR,
}


def lost_collision(ours: tuple[bytes, bytes], theirs: tuple[bytes, bytes]) -> bool:
    """True when the lowest of the four nonces is in our exchange (RFC 7296 2.8.1): the
    SA our exchange created is then the redundant one, and we delete it."""
    return min(ours) < min(theirs)


class CreateChild(Task):
    """Our CREATE_CHILD_SA for a new child SA or for the rekey of ``rekey``."""

    exchange = ExchangeType.CREATE_CHILD_SA

    def __init__(
        self,
        child: ChildConfig,
        *,
        rekey: ChildRecord | None = None,
        trigger: TriggerPacket | None = None,
    ) -> None:
        self.child = child
        self.rekey = rekey
        self.trigger = trigger
        self.spi_in = 0
        self.ni = b""
        self.ke: KeyExchange | None = None
        groups = [g for p in child.proposals for g in p.dh_groups]
        self.group: DhGroup | None = groups[0] if groups else None
        self.retries = 0
        self.local: list[TsEntry] = []
        self.remote: list[TsEntry] = []

    def obsolete(self, ctx: SaContext) -> bool:
        if ctx.state is not IkeState.ESTABLISHED:
            return True
        old = self.rekey
        return old is not None and (
            old not in ctx.children or old.state is not ChildState.INSTALLED
        )

    def build_request(self, ctx: SaContext) -> list[Payload]:
        ctx.child_exchange = True
        if not self.spi_in:
            self.spi_in = ctx.spi_allocator()
        self.ni = ctx.rng(ctx.config.nonce_bytes)
        payloads: list[Payload] = []
        if self.rekey is not None:
            self.rekey.state = ChildState.REKEYING
            payloads.append(
                NotifyPayload(
                    NotifyType.REKEY_SA, self.rekey.protocol, self.rekey.spi_in.to_bytes(4, "big")
                )
            )
            self.local, self.remote = list(self.rekey.local_ts), list(self.rekey.remote_ts)
            transport = self.rekey.transport
        else:
            self.local, self.remote = proposed(self.child, self.trigger)
            transport = self.child.mode is Mode.TRANSPORT
        if transport:
            payloads.append(NotifyPayload(NotifyType.USE_TRANSPORT_MODE))
        payloads += [
            to_wire(self.child.proposals, self.spi_in.to_bytes(4, "big")),
            NoncePayload(self.ni),
        ]
        if self.group is not None:
            if self.ke is None or self.ke.group != self.group:
                self.ke = ctx.ke_factory(self.group)
            payloads.append(KePayload(self.group.dh_id, self.ke.public_key()))
        payloads += [TsPayload(True, tuple(self.local)), TsPayload(False, tuple(self.remote))]
        return payloads

    def _fail(
        self, ctx: SaContext, reason: FailureReason, detail: str, notify: int | None, by_peer: bool
    ) -> Status:
        if self.rekey is not None and self.rekey.state is ChildState.REKEYING:
            self.rekey.state = ChildState.INSTALLED
            if self.rekey.peer_rekey is not None:
                # Our rekey failed but the peer's succeeded: that one simply wins.
                self.rekey.state = ChildState.REKEYED
        what = "rekey of" if self.rekey else "child"
        ctx.push(
            ChildSaFailed(
                self.child.name, reason, f"{what} {self.child.name!r}: {detail}", notify, by_peer
            )
        )
        return Status.SUCCESS  # a failed child leaves the IKE SA up (2.21.3)

    def process_response(self, ctx: SaContext, message: Message) -> Status:
        ctx.child_exchange = False
        error = first_error(message)
        sa = one(message, SaPayload)
        if error is not None and sa is None:
            if error.type == NotifyType.INVALID_KE_PAYLOAD and len(error.data) == 2:
                wanted = int.from_bytes(error.data, "big")
                offered = {g.dh_id: g for p in self.child.proposals for g in p.dh_groups}
                if wanted in offered and self.retries < MAX_KE_RETRIES:
                    self.retries += 1
                    self.group = offered[wanted]  # type: ignore[index]
                    return Status.NEED_MORE
            reason = _FAILURES.get(error.type, FailureReason.PEER_ERROR)  # type: ignore[call-overload]
            return self._fail(ctx, reason, "refused by the peer", error.type, True)
        nonce = one(message, NoncePayload)
        tsi, tsr = _ts(message, True), _ts(message, False)
        if sa is None or nonce is None or tsi is None or tsr is None:
            return self._fail(
                ctx,
                FailureReason.PROTOCOL_ERROR,
                "answer without SA, Nonce, TSi or TSr",
                None,
                True,
            )
        chosen = check_answer(sa, self.child.proposals)
        if chosen is None or len(sa.proposals[0].spi) != 4:
            return self._fail(
                ctx,
                FailureReason.NO_PROPOSAL_CHOSEN,
                "the peer chose what we did not offer",
                None,
                False,
            )
        if not all(covered(t, self.local) for t in tsi) or not all(
            covered(t, self.remote) for t in tsr
        ):
            return self._fail(
                ctx, FailureReason.TS_UNACCEPTABLE, "the peer widened the selectors", None, False
            )
        transport = has_notify(message, NotifyType.USE_TRANSPORT_MODE)
        wanted_transport = self.rekey.transport if self.rekey else self.child.mode is Mode.TRANSPORT
        if transport != wanted_transport:
            return self._fail(
                ctx, FailureReason.MODE_MISMATCH, "the peer changed the mode", None, False
            )
        shared = b""
        dh = chosen.get(TransformType.DH)
        if dh is not None:
            ke = one(message, KePayload)
            group = self.group
            if (
                group is None
                or dh != group
                or ke is None
                or self.ke is None
                or ke.group != group.dh_id
            ):
                return self._fail(
                    ctx,
                    FailureReason.INVALID_KE,
                    "the peer's KE is not in our PFS group",
                    None,
                    True,
                )
            try:
                shared = self.ke.shared_secret(ke.data)
            except KeyExchangeError as exc:
                return self._fail(ctx, FailureReason.PROTOCOL_ERROR, str(exc), None, True)
        algorithms = child_algorithms(ProtocolId(sa.proposals[0].protocol), chosen)
        spi_out = int.from_bytes(sa.proposals[0].spi, "big")
        old = self.rekey
        nonces = (self.ni, nonce.nonce)
        new = install(
            ctx,
            old.config if old and old.config else self.child,
            algorithms,
            self.spi_in,
            spi_out,
            tsi,
            tsr,
            transport,
            exchange_initiator=True,
            nonces=nonces,
            shared=shared,
            rekey_of=old.spi_in if old else None,
        )
        if old is None:
            return Status.SUCCESS
        old.state = ChildState.REKEYED
        if old.peer_rekey is not None and lost_collision(nonces, old.peer_rekey.nonces):
            ctx.followups.append(ChildDelete(new))  # ours is redundant; the peer deletes old
        else:
            ctx.followups.append(ChildDelete(old))
        return Status.SUCCESS


class ChildDelete(Task):
    """Deletes one child SA pair with an INFORMATIONAL Delete (1.4.1)."""

    exchange = ExchangeType.INFORMATIONAL

    def __init__(self, record: ChildRecord) -> None:
        self.record = record

    def obsolete(self, ctx: SaContext) -> bool:
        return self.record not in ctx.children or ctx.state not in (
            IkeState.ESTABLISHED,
            IkeState.REKEYED,
        )

    def build_request(self, ctx: SaContext) -> list[Payload]:
        ctx.child_exchange = True
        self.record.state = ChildState.DELETING
        return [DeletePayload(self.record.protocol, (self.record.spi_in.to_bytes(4, "big"),))]

    def process_response(self, ctx: SaContext, message: Message) -> Status:
        ctx.child_exchange = False
        record = self.record
        if record in ctx.children:  # else the peer's own Delete crossed ours (1.4.1)
            ctx.children.remove(record)
            ctx.push(ChildSaDeleted(record.name, record.spi_in, record.spi_out, False))
        return Status.SUCCESS


class ChildResponder(Task):
    """The responder's part of a CREATE_CHILD_SA that creates or rekeys a child SA."""

    exchange = ExchangeType.CREATE_CHILD_SA

    def __init__(self) -> None:
        self.error: NotifyPayload | None = None
        self.payloads: list[Payload] = []

    def _refuse(
        self, ctx: SaContext, notify: int, detail: str, name: str = "", data: bytes = b""
    ) -> Status:
        self.error = NotifyPayload(notify, data=data)
        reason = _FAILURES.get(notify, FailureReason.PROTOCOL_ERROR)  # type: ignore[call-overload]
        if notify not in (NotifyType.INVALID_KE_PAYLOAD, NotifyType.TEMPORARY_FAILURE):
            ctx.push(ChildSaFailed(name, reason, detail, notify))
        return Status.SUCCESS

    def process_request(self, ctx: SaContext, message: Message) -> Status:
        sa = one(message, SaPayload)
        nonce = one(message, NoncePayload)
        tsi, tsr = _ts(message, True), _ts(message, False)
        if sa is None or nonce is None:
            return self._refuse(
                ctx, NotifyType.INVALID_SYNTAX, "CREATE_CHILD_SA without SA or Nonce"
            )
        if ctx.state is not IkeState.ESTABLISHED or ctx.ike_rekeying:
            # Busy with an IKE rekey or already replaced (2.25): the peer retries later.
            return self._refuse(ctx, NotifyType.TEMPORARY_FAILURE, "the IKE SA is being rekeyed")
        if tsi is None or tsr is None:
            return self._refuse(ctx, NotifyType.TS_UNACCEPTABLE, "child request without TSi/TSr")
        old: ChildRecord | None = None
        candidates = list(ctx.config.children)
        rekey = [n for n in notifies(message) if n.type == NotifyType.REKEY_SA]
        if rekey:
            spi = int.from_bytes(rekey[0].spi, "big") if len(rekey[0].spi) == 4 else -1
            old = ctx.find_child(spi, inbound=False, protocol=rekey[0].protocol)
            if old is None or old.config is None:
                return self._refuse(
                    ctx, NotifyType.CHILD_SA_NOT_FOUND, f"rekey of unknown SPI {spi:#x}"
                )
            if old.state in (ChildState.REKEYED, ChildState.DELETING):
                return self._refuse(
                    ctx, NotifyType.TEMPORARY_FAILURE, "the child is already rekeyed", old.name
                )
            candidates = [old.config]
        transport = has_notify(message, NotifyType.USE_TRANSPORT_MODE)
        ts_fit = False
        for child in candidates:
            narrowed = responder_narrow(child, tsi, tsr)
            if narrowed is None:
                continue
            ts_fit = True
            wanted = old.transport if old else child.mode is Mode.TRANSPORT
            if transport != wanted:
                continue
            picked = select(sa, child.proposals, bytes(4))
            if picked is None:
                continue
            return self._accept(ctx, message, child, sa, picked, narrowed, transport, old)
        if ts_fit:
            return self._refuse(
                ctx, NotifyType.NO_PROPOSAL_CHOSEN, "no child proposal or mode matches ours"
            )
        return self._refuse(
            ctx, NotifyType.TS_UNACCEPTABLE, "the proposed selectors match none of our policies"
        )

    def _accept(
        self,
        ctx: SaContext,
        message: Message,
        child: ChildConfig,
        sa: SaPayload,
        picked: tuple[WireProposal, dict[int, object]],
        narrowed: tuple[list[TsEntry], list[TsEntry]],
        transport: bool,
        old: ChildRecord | None,
    ) -> Status:
        answer, chosen = picked
        nonce = one(message, NoncePayload)
        assert nonce is not None
        shared = b""
        ke_payload: list[Payload] = []
        dh = chosen.get(TransformType.DH)
        if isinstance(dh, DhGroup):
            ke = one(message, KePayload)
            if ke is None or ke.group != dh.dh_id:
                # Stateless: the initiator retries in the group we name (1.3).
                return self._refuse(
                    ctx, NotifyType.INVALID_KE_PAYLOAD, "", data=dh.dh_id.to_bytes(2, "big")
                )
            own = ctx.ke_factory(dh)
            try:
                shared = own.shared_secret(ke.data)
            except KeyExchangeError as exc:
                return self._refuse(ctx, NotifyType.INVALID_SYNTAX, str(exc), child.name)
            ke_payload = [KePayload(dh.dh_id, own.public_key())]
        nr = ctx.rng(ctx.config.nonce_bytes)
        spi_in = ctx.spi_allocator()
        offer = next(p for p in sa.proposals if p.number == answer.number)
        tsi, tsr = narrowed
        new = install(
            ctx,
            child,
            child_algorithms(ProtocolId(answer.protocol), chosen),
            spi_in,
            int.from_bytes(offer.spi, "big"),
            tsr,
            tsi,
            transport,
            exchange_initiator=False,
            nonces=(nonce.nonce, nr),
            shared=shared,
            rekey_of=old.spi_in if old else None,
        )
        if old is not None:
            if old.state is ChildState.REKEYING:  # our own rekey of it is out: 2.8.1
                old.peer_rekey = PeerRekey((nonce.nonce, nr), new)
            else:
                old.state = ChildState.REKEYED  # the initiator deletes it next
        self.payloads = [NotifyPayload(NotifyType.USE_TRANSPORT_MODE)] if transport else []
        self.payloads += [
            SaPayload((replace(answer, spi=spi_in.to_bytes(4, "big")),)),
            NoncePayload(nr),
            *ke_payload,
            TsPayload(True, tuple(tsi)),
            TsPayload(False, tuple(tsr)),
        ]
        return Status.SUCCESS

    def build_response(self, ctx: SaContext) -> list[Payload]:
        if self.error is not None:
            return [self.error]
        return self.payloads
