"""IKE_SA_INIT (RFC 7296 1.2): proposals, key exchange, nonces and NAT detection.

The initiator offers its proposals and a KE in the first group of its first proposal.
An INVALID_KE_PAYLOAD answer names the group the responder wants: if we offered it, we
retry with it; a COOKIE answer is retried with the cookie first (section 2.6).  Retries
are bounded.  The responder takes the first proposal it shares
(:func:`ipsecconf.ike.proposals.select`); a KE in another group is answered with
INVALID_KE_PAYLOAD and no state is kept.

Both sides send NAT_DETECTION_SOURCE_IP/DESTINATION_IP (section 2.23).  With forced
encapsulation the source hash is random, as strongSwan does, so that the peer also sees
a "NAT" and both move to UDP 4500.
"""

from __future__ import annotations

from ipsecconf.crypto.dh import KeyExchange, KeyExchangeError
from ipsecconf.ike.constants import ExchangeType, NotifyType
from ipsecconf.ike.context import IkeState, SaContext
from ipsecconf.ike.errors import DropReason, RemoteProtocolError
from ipsecconf.ike.events import FailureReason, IkeSaFailed
from ipsecconf.ike.keymat import ike_keys, skeyseed
from ipsecconf.ike.message import Message, SkCrypto
from ipsecconf.ike.payloads import KePayload, NoncePayload, NotifyPayload, Payload
from ipsecconf.ike.payloads_sa import SaPayload
from ipsecconf.ike.proposals import IkeAlgorithms
from ipsecconf.ike.tasks.base import Status, Task, first_error, notifies, notify_of, one
from ipsecconf.model.algorithms import DhGroup

MAX_RETRIES = 3
# Enum members as plain ints: on Python 3.11 reading one from its class goes through
# EnumType's __getattr__ hook, and these are compared with every notify of a message.
_NATD_SOURCE = int(NotifyType.NAT_DETECTION_SOURCE_IP)
_NATD_DEST = int(NotifyType.NAT_DETECTION_DESTINATION_IP)
_FRAGMENTATION = int(NotifyType.FRAGMENTATION_SUPPORTED)
_HASHES = int(NotifyType.SIGNATURE_HASH_ALGORITHMS)
_COOKIE = int(NotifyType.COOKIE)
_CONNECTING = IkeState.CONNECTING
_SUCCESS = Status.SUCCESS
_ZERO_SPI = bytes(8)

_PEER_FAILURES = {
    NotifyType.NO_PROPOSAL_CHOSEN: FailureReason.NO_PROPOSAL_CHOSEN,
    NotifyType.INVALID_KE_PAYLOAD: FailureReason.INVALID_KE,
    NotifyType.AUTHENTICATION_FAILED: FailureReason.AUTHENTICATION_FAILED,
}


def nonzero_spi(ctx: SaContext) -> bytes:
    """Eight random bytes that are not all zero (a zero SPI means "unknown")."""
    for _ in range(16):
        spi = ctx.rng(8)
        if spi != _ZERO_SPI:
            return spi
    raise RemoteProtocolError(DropReason.STATE, "rng returned zero SPIs")  # pragma: no cover


def spi_and_nonce(ctx: SaContext) -> tuple[bytes, bytes]:
    """A fresh IKE SPI (:func:`nonzero_spi`) and nonce, drawn in one rng call."""
    size = ctx.config.nonce_bytes
    drawn = ctx.rng(8 + size)
    spi, nonce = drawn[:8], drawn[8:]
    return (spi if spi != _ZERO_SPI else nonzero_spi(ctx)), nonce


def natd_payloads(ctx: SaContext, spi_r: bytes) -> list[Payload]:
    """NAT_DETECTION_SOURCE_IP and _DESTINATION_IP for a message with ``spi_r``."""
    source, dest = ctx.natd_hashes(ctx.spi_i, spi_r)
    if ctx.config.force_encap:
        source = ctx.rng(20)
    return [NotifyPayload(_NATD_SOURCE, 0, b"", source), NotifyPayload(_NATD_DEST, 0, b"", dest)]


_FRAGMENTATION_SUPPORTED = NotifyPayload(_FRAGMENTATION)
_NO_HASHES: frozenset[int] = frozenset()


def _hash_notify() -> NotifyPayload:
    """SIGNATURE_HASH_ALGORITHMS with SHA-256, -384, -512 (RFC 7427 4)."""
    return NotifyPayload(NotifyType.SIGNATURE_HASH_ALGORITHMS, data=bytes((0, 2, 0, 3, 0, 4)))


def auth_announcements(ctx: SaContext, response: bool) -> list[Payload]:
    """What IKE_SA_INIT says about signatures: our hash algorithms (in a response only
    when the peer announced its own) and, from the responder, a CERTREQ of our roots;
    and IKEV2_FRAGMENTATION_SUPPORTED (in a response only when the peer sent it)."""
    out: list[Payload] = []
    if ctx.config.fragment_size and (not response or ctx.fragmentation):
        out.append(_FRAGMENTATION_SUPPORTED)
    if ctx.prepared.uses_signatures and (not response or ctx.peer_hashes):
        out.append(_hash_notify())
    if response and ctx.config.trust is not None and ctx.prepared.uses_signatures:
        out.append(ctx.config.trust.certreq())
    return out


def process_notifies(ctx: SaContext, message: Message, spi_r: bytes) -> None:
    """What the peer's IKE_SA_INIT notifies say, in one pass over them: whether a NAT
    is on the way (NAT detection, RFC 7296 2.23), its SIGNATURE_HASH_ALGORITHMS (RFC
    7427 4) and whether both sides do IKE fragmentation (RFC 7383 2.3)."""
    sources: list[bytes] = []
    dests: list[bytes] = []
    fragmentation = False
    found: set[int] = set()
    for n in notifies(message):
        ntype = n.type
        if ntype == _NATD_SOURCE:
            sources.append(n.data)
        elif ntype == _NATD_DEST:
            dests.append(n.data)
        elif ntype == _FRAGMENTATION:
            fragmentation = True
        elif ntype == _HASHES:
            data = n.data[: 2 * 16]
            found |= {int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data) - 1, 2)}
    _detect_nat(ctx, sources, dests, spi_r)
    ctx.fragmentation = bool(ctx.config.fragment_size) and fragmentation
    ctx.peer_hashes = frozenset(found) if found else _NO_HASHES


def _detect_nat(ctx: SaContext, sources: list[bytes], dests: list[bytes], spi_r: bytes) -> None:
    if not sources or not dests:
        ctx.natd_supported = False
        return
    ctx.natd_supported = True
    local, remote = ctx.natd_hashes(ctx.spi_i, spi_r)
    ctx.nat_local = local not in dests
    ctx.nat_remote = remote not in sources


def derive(ctx: SaContext, algorithms: IkeAlgorithms, shared: bytes) -> None:
    """SKEYSEED, SK_* and the SK payload transforms of this SA (RFC 7296 2.14)."""
    install_keys(ctx, algorithms, skeyseed(algorithms.prf, ctx.ni, ctx.nr, shared))


def install_keys(ctx: SaContext, algorithms: IkeAlgorithms, seed: bytes) -> None:
    """SK_* from SKEYSEED ``seed`` (fresh, or 2.18's for a rekeyed SA) and the SK
    payload transforms, with ``ctx``'s nonces and SPIs."""
    keys = ike_keys(
        algorithms.prf,
        algorithms.cipher,
        algorithms.integrity,
        seed,
        ctx.ni,
        ctx.nr,
        ctx.spi_i,
        ctx.spi_r,
    )
    ctx.algorithms = algorithms
    ctx.keys = keys
    mine_e, peer_e = (keys.sk_ei, keys.sk_er) if ctx.initiator else (keys.sk_er, keys.sk_ei)
    mine_a, peer_a = (keys.sk_ai, keys.sk_ar) if ctx.initiator else (keys.sk_ar, keys.sk_ai)
    ctx.crypto = SkCrypto(
        algorithms.cipher,
        algorithms.integrity,
        encr_out=mine_e,
        encr_in=peer_e,
        integ_out=mine_a,
        integ_in=peer_a,
        rng=ctx.rng,
    )


class IkeInitInitiator(Task):
    """The initiator's IKE_SA_INIT."""

    exchange = ExchangeType.IKE_SA_INIT

    def __init__(self, ctx: SaContext) -> None:
        self.group: DhGroup = ctx.config.proposals[0].dh_groups[0]
        self.cookie = b""
        self.retries = 0
        self.ke: KeyExchange | None = None

    def build_request(self, ctx: SaContext) -> list[Payload]:
        if not ctx.spi_i and not ctx.ni:
            ctx.spi_i, ctx.ni = spi_and_nonce(ctx)
        if not ctx.spi_i:
            ctx.spi_i = nonzero_spi(ctx)
        if not ctx.ni:
            ctx.ni = ctx.rng(ctx.config.nonce_bytes)
        ctx.spi_r = _ZERO_SPI
        ctx.transition(_CONNECTING)
        if self.ke is None or self.ke.group != self.group:
            self.ke = ctx.ke_factory(self.group)
        payloads: list[Payload] = []
        if self.cookie:
            payloads.append(NotifyPayload(NotifyType.COOKIE, data=self.cookie))
        payloads += [
            ctx.prepared.ike_offer,
            KePayload(self.group.dh_id, self.ke.public_key()),
            NoncePayload(ctx.ni),
            *natd_payloads(ctx, _ZERO_SPI),
            *auth_announcements(ctx, False),
        ]
        return payloads

    def _fail(
        self, ctx: SaContext, reason: FailureReason, detail: str, notify: int | None, by_peer: bool
    ) -> Status:
        ctx.transition(IkeState.FAILED)
        ctx.push(IkeSaFailed(reason, detail, notify, by_peer))
        return Status.FAILED

    def process_response(self, ctx: SaContext, message: Message) -> Status:
        cookie = notify_of(message, _COOKIE)
        if cookie is not None and self.retries < MAX_RETRIES:
            self.retries += 1
            self.cookie = cookie.data
            return Status.NEED_MORE
        error = first_error(message)
        if error is not None:
            if error.type == NotifyType.INVALID_KE_PAYLOAD and len(error.data) == 2:
                wanted = int.from_bytes(error.data, "big")
                offered = {g.dh_id: g for p in ctx.config.proposals for g in p.dh_groups}
                if (
                    wanted in offered
                    and wanted != self.group.dh_id
                    and (self.retries < MAX_RETRIES)
                ):
                    self.retries += 1
                    self.group = offered[wanted]  # type: ignore[index]
                    return Status.NEED_MORE
            reason = _PEER_FAILURES.get(error.type, FailureReason.PEER_ERROR)  # type: ignore[call-overload]
            return self._fail(ctx, reason, "peer refused IKE_SA_INIT", error.type, True)
        sa = one(message, SaPayload)
        ke = one(message, KePayload)
        nonce = one(message, NoncePayload)
        if sa is None or ke is None or nonce is None:
            return self._fail(
                ctx,
                FailureReason.PROTOCOL_ERROR,
                "IKE_SA_INIT response lacks SA, KE or Nonce",
                None,
                True,
            )
        accepted = ctx.prepared.ike_negotiator.check(sa)
        if accepted is None or accepted.ike is None:
            return self._fail(
                ctx,
                FailureReason.NO_PROPOSAL_CHOSEN,
                "the responder chose a proposal we did not offer",
                None,
                True,
            )
        algorithms = accepted.ike
        assert self.ke is not None
        if algorithms.dh.dh_id != self.group.dh_id or ke.group != self.group.dh_id:
            return self._fail(
                ctx,
                FailureReason.INVALID_KE,
                "the responder's KE is not in our group",
                None,
                True,
            )
        try:
            shared = self.ke.shared_secret(ke.data)
        except KeyExchangeError as exc:
            return self._fail(ctx, FailureReason.PROTOCOL_ERROR, str(exc), None, True)
        ctx.nr = nonce.nonce
        ctx.spi_r = message.spi_r
        process_notifies(ctx, message, ctx.spi_r)
        derive(ctx, algorithms, shared)
        ctx.float_to_natt()
        return _SUCCESS


class IkeInitResponder(Task):
    """The responder's IKE_SA_INIT."""

    exchange = ExchangeType.IKE_SA_INIT

    def __init__(self) -> None:
        self.error: NotifyPayload | None = None
        self.answer: SaPayload | None = None
        self.public = b""
        self.group = 0

    def process_request(self, ctx: SaContext, message: Message) -> Status:
        sa = one(message, SaPayload)
        ke = one(message, KePayload)
        nonce = one(message, NoncePayload)
        if sa is None or ke is None or nonce is None:
            raise RemoteProtocolError(
                DropReason.MISSING_PAYLOAD, "IKE_SA_INIT request lacks SA, KE or Nonce"
            )
        ctx.spi_i = message.spi_i
        picked = ctx.prepared.ike_negotiator.select(sa)
        if picked is None:
            self.error = NotifyPayload(NotifyType.NO_PROPOSAL_CHOSEN)
            ctx.transition(IkeState.FAILED)
            ctx.push(
                IkeSaFailed(
                    FailureReason.NO_PROPOSAL_CHOSEN,
                    "no IKE proposal of the initiator matches ours",
                    NotifyType.NO_PROPOSAL_CHOSEN,
                )
            )
            return Status.FAILED
        algorithms = picked.ike
        assert algorithms is not None  # an IKE negotiator answers IKE proposals
        if ke.group != algorithms.dh.dh_id:
            # Stateless answer: the initiator retries with the group we name (2.7).
            self.error = NotifyPayload(
                NotifyType.INVALID_KE_PAYLOAD, data=algorithms.dh.dh_id.to_bytes(2, "big")
            )
            return Status.FAILED
        own = ctx.ke_factory(algorithms.dh)
        try:
            shared = own.shared_secret(ke.data)
        except KeyExchangeError as exc:
            raise RemoteProtocolError(DropReason.BAD_KEY_EXCHANGE, str(exc)) from None
        ctx.ni = nonce.nonce
        ctx.spi_r, ctx.nr = spi_and_nonce(ctx)
        process_notifies(ctx, message, _ZERO_SPI)
        derive(ctx, algorithms, shared)
        self.answer = picked.reply
        self.public = own.public_key()
        self.group = algorithms.dh.dh_id
        ctx.transition(_CONNECTING)
        return _SUCCESS

    def build_response(self, ctx: SaContext) -> list[Payload]:
        if self.error is not None:
            return [self.error]
        assert self.answer is not None
        return [
            self.answer,
            KePayload(self.group, self.public),
            NoncePayload(ctx.nr),
            *natd_payloads(ctx, ctx.spi_r),
            *auth_announcements(ctx, True),
        ]
