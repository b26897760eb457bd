"""IKE SA rekey with CREATE_CHILD_SA (RFC 7296 1.3.2, 2.8, 2.18).

The request carries an IKE SA proposal whose SPI is the initiator's new IKE SPI, Ni and
KEi; the answer the responder's new SPI, Nr and KEr.  The new SA's keys come from
``SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)`` with the old SA's PRF, then prf+
with the new one over the new nonces and SPIs; its message IDs start at 0 and the
rekey's initiator is its "original initiator".

The old SA hands its children to the new one (state REKEYED) and announces it with
:class:`~ipsecconf.ike.events.IkeSaRekeyed`; the rekey's initiator then deletes the old SA,
whose :class:`~ipsecconf.ike.events.IkeSaDeleted` says ``rekeyed`` so that the engine
keeps the children.  Simultaneous rekeys (2.8.1): the new SA created with the lowest of
the four nonces is redundant; its creator deletes it, the other side deletes the old SA.
"""

from __future__ import annotations

from dataclasses import replace

from ipsecconf.crypto.dh import KeyExchange, KeyExchangeError
from ipsecconf.ike.constants import ExchangeType, NotifyType, ProtocolId
from ipsecconf.ike.context import ChildState, IkeState, PeerRekey, SaContext
from ipsecconf.ike.events import FailureReason, IkeRekeyFailed, IkeSaRekeyed
from ipsecconf.ike.keymat import rekey_skeyseed
from ipsecconf.ike.message import Message
from ipsecconf.ike.payloads import KePayload, NoncePayload, NotifyPayload, Payload
from ipsecconf.ike.payloads_sa import SaPayload
from ipsecconf.ike.proposals import IkeAlgorithms, check_answer, ike_algorithms, select, to_wire
from ipsecconf.ike.tasks.base import Status, Task, first_error, one
from ipsecconf.ike.tasks.child_sa import ChildResponder, lost_collision
from ipsecconf.ike.tasks.ike_init import install_keys, nonzero_spi
from ipsecconf.ike.tasks.informational import IkeDelete
from ipsecconf.model.algorithms import DhGroup

MAX_KE_RETRIES = 2


def successor(
    ctx: SaContext,
    *,
    initiator: bool,
    spis: tuple[bytes, bytes],
    nonces: tuple[bytes, bytes],
    algorithms: IkeAlgorithms,
    shared: bytes,
) -> SaContext:
    """The established context of the IKE SA that a rekey creates (2.18)."""
    assert ctx.algorithms is not None and ctx.keys is not None
    new = ctx.successor(initiator)
    new.spi_i, new.spi_r = spis
    new.ni, new.nr = nonces
    seed = rekey_skeyseed(ctx.algorithms.prf, ctx.keys.sk_d, shared, *nonces)
    install_keys(new, algorithms, seed)
    new.transition(IkeState.CONNECTING)
    new.transition(IkeState.ESTABLISHED)
    new.now = ctx.now
    return new


def hand_over(
    ctx: SaContext, new: SaContext, *, by_peer: bool, redundant: SaContext | None
) -> None:
    """Move the children to ``new``, retire ``ctx`` and announce the successor (and the
    redundant SA of a collision, so that the engine can route its Delete)."""
    new.children, ctx.children = ctx.children, []
    ctx.rekeyed_to = new
    ctx.transition(IkeState.REKEYED)
    for sa, peer, spare in ((new, by_peer, False), (redundant, not by_peer, True)):
        if sa is None:
            continue
        assert ctx.adopt is not None and sa.algorithms is not None
        if spare and peer:
            # The peer made the redundant SA and deletes it; a Delete that overtook the
            # response that makes the SA known here was dropped, so do not wait forever.
            sa.redundant_until = ctx.now + 2 * ctx.config.retransmit.timeout
        ctx.push(
            IkeSaRekeyed(
                ctx.adopt(sa),
                ctx.spi_i,
                ctx.spi_r,
                sa.spi_i,
                sa.spi_r,
                sa.algorithms,
                by_peer=peer,
                redundant=spare,
            )
        )


class IkeRekey(Task):
    """Our rekey of this IKE SA."""

    exchange = ExchangeType.CREATE_CHILD_SA

    def __init__(self) -> None:
        self.spi = b""
        self.ni = b""
        self.group: DhGroup | None = None
        self.ke: KeyExchange | None = None
        self.retries = 0

    def obsolete(self, ctx: SaContext) -> bool:
        return ctx.state is not IkeState.ESTABLISHED

    def build_request(self, ctx: SaContext) -> list[Payload]:
        assert ctx.algorithms is not None
        ctx.ike_rekeying = True
        self.spi = self.spi or nonzero_spi(ctx)
        self.ni = ctx.rng(ctx.config.nonce_bytes)
        self.group = self.group or ctx.algorithms.dh  # the group in use is likely accepted
        if self.ke is None or self.ke.group != self.group:
            self.ke = ctx.ke_factory(self.group)
        return [
            to_wire(ctx.config.proposals, self.spi),
            NoncePayload(self.ni),
            KePayload(self.group.dh_id, self.ke.public_key()),
        ]

    def _fail(
        self, ctx: SaContext, reason: FailureReason, detail: str, notify: int | None
    ) -> Status:
        ctx.ike_rekeying = False
        ctx.push(IkeRekeyFailed(reason, f"IKE rekey: {detail}", notify))
        peer = ctx.peer_ike_rekey
        if peer is not None and isinstance(peer.successor, SaContext):
            # The peer's crossing rekey succeeded where ours did not: it simply wins.
            ctx.peer_ike_rekey = None
            hand_over(ctx, peer.successor, by_peer=True, redundant=None)
        return Status.SUCCESS

    def process_response(self, ctx: SaContext, message: Message) -> Status:
        error = first_error(message)
        sa = one(message, SaPayload)
        if error is not None and sa is None:
            if error.type == NotifyType.INVALID_KE_PAYLOAD and len(error.data) == 2:
                wanted = int.from_bytes(error.data, "big")
                offered = {g.dh_id: g for p in ctx.config.proposals for g in p.dh_groups}
                if wanted in offered and self.retries < MAX_KE_RETRIES:
                    self.retries += 1
                    self.group = offered[wanted]  # type: ignore[index]
                    return Status.NEED_MORE
            reason = (
                FailureReason.TEMPORARY_FAILURE
                if error.type == NotifyType.TEMPORARY_FAILURE
                else FailureReason.PEER_ERROR
            )
            return self._fail(ctx, reason, "refused by the peer", error.type)
        nonce, ke = one(message, NoncePayload), one(message, KePayload)
        if sa is None or nonce is None or ke is None:
            return self._fail(
                ctx, FailureReason.PROTOCOL_ERROR, "answer lacks SA, Nonce or KE", None
            )
        chosen = check_answer(sa, ctx.config.proposals)
        spi_r = sa.proposals[0].spi if sa.proposals else b""
        if chosen is None or len(spi_r) != 8 or spi_r == bytes(8):
            return self._fail(ctx, FailureReason.NO_PROPOSAL_CHOSEN, "unusable IKE proposal", None)
        algorithms = ike_algorithms(chosen)
        assert self.ke is not None and self.group is not None
        if algorithms.dh != self.group or ke.group != self.group.dh_id:
            return self._fail(ctx, FailureReason.INVALID_KE, "KE not in our group", None)
        try:
            shared = self.ke.shared_secret(ke.data)
        except KeyExchangeError as exc:
            return self._fail(ctx, FailureReason.PROTOCOL_ERROR, str(exc), None)
        ctx.ike_rekeying = False
        nonces = (self.ni, nonce.nonce)
        ours = successor(
            ctx,
            initiator=True,
            spis=(self.spi, spi_r),
            nonces=nonces,
            algorithms=algorithms,
            shared=shared,
        )
        peer = ctx.peer_ike_rekey
        ctx.peer_ike_rekey = None
        if peer is not None and isinstance(peer.successor, SaContext):
            if lost_collision(nonces, peer.nonces):
                ours.followups.append(IkeDelete())  # ours is redundant; the peer deletes old
                hand_over(ctx, peer.successor, by_peer=True, redundant=ours)
                return Status.SUCCESS
            hand_over(ctx, ours, by_peer=False, redundant=peer.successor)
        else:
            hand_over(ctx, ours, by_peer=False, redundant=None)
        ctx.followups.append(IkeDelete())
        return Status.SUCCESS


class IkeRekeyResponder(Task):
    """The responder's part of a CREATE_CHILD_SA that rekeys the IKE SA."""

    exchange = ExchangeType.CREATE_CHILD_SA

    def __init__(self) -> None:
        self.payloads: list[Payload] = []

    def _refuse(self, notify: int, data: bytes = b"") -> Status:
        self.payloads = [NotifyPayload(notify, data=data)]
        return Status.SUCCESS

    def process_request(self, ctx: SaContext, message: Message) -> Status:
        sa, nonce, ke = one(message, SaPayload), one(message, NoncePayload), one(message, KePayload)
        if sa is None or nonce is None or ke is None:
            return self._refuse(NotifyType.INVALID_SYNTAX)
        busy = ctx.child_exchange or any(c.state is ChildState.REKEYING for c in ctx.children)
        if ctx.state is not IkeState.ESTABLISHED or busy:
            return self._refuse(NotifyType.TEMPORARY_FAILURE)  # 2.25.2: retry later
        offers = SaPayload(
            tuple(
                p
                for p in sa.proposals
                if p.protocol == ProtocolId.IKE and len(p.spi) == 8 and p.spi != bytes(8)
            )
        )
        picked = select(offers, ctx.config.proposals)
        if picked is None:
            return self._refuse(NotifyType.NO_PROPOSAL_CHOSEN)
        answer, chosen = picked
        algorithms = ike_algorithms(chosen)
        if ke.group != algorithms.dh.dh_id:
            return self._refuse(
                NotifyType.INVALID_KE_PAYLOAD, algorithms.dh.dh_id.to_bytes(2, "big")
            )
        own = ctx.ke_factory(algorithms.dh)
        try:
            shared = own.shared_secret(ke.data)
        except KeyExchangeError:
            return self._refuse(NotifyType.INVALID_SYNTAX)
        nr = ctx.rng(ctx.config.nonce_bytes)
        spi_r = nonzero_spi(ctx)
        spi_i = next(p.spi for p in offers.proposals if p.number == answer.number)
        new = successor(
            ctx,
            initiator=False,
            spis=(spi_i, spi_r),
            nonces=(nonce.nonce, nr),
            algorithms=algorithms,
            shared=shared,
        )
        if ctx.ike_rekeying:
            # Decided when the answer to our own rekey arrives (2.8.1).
            ctx.peer_ike_rekey = PeerRekey((nonce.nonce, nr), new)
        else:
            hand_over(ctx, new, by_peer=True, redundant=None)
        self.payloads = [
            SaPayload((replace(answer, spi=spi_r),)),
            NoncePayload(nr),
            KePayload(algorithms.dh.dh_id, own.public_key()),
        ]
        return Status.SUCCESS

    def build_response(self, ctx: SaContext) -> list[Payload]:
        return self.payloads


class CreateChildSaResponder(Task):
    """Answers any CREATE_CHILD_SA: an IKE SA proposal means an IKE rekey, anything else
    a new or rekeyed child SA (1.3)."""

    exchange = ExchangeType.CREATE_CHILD_SA

    def __init__(self) -> None:
        self.delegate: Task = ChildResponder()

    def process_request(self, ctx: SaContext, message: Message) -> Status:
        sa = one(message, SaPayload)
        if sa is not None and any(p.protocol == ProtocolId.IKE for p in sa.proposals):
            self.delegate = IkeRekeyResponder()
        return self.delegate.process_request(ctx, message)

    def build_response(self, ctx: SaContext) -> list[Payload]:
        return self.delegate.build_response(ctx)
