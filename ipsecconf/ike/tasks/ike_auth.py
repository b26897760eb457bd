"""IKE_AUTH (RFC 7296 1.2 and 2.15): identities, certificates and AUTH.

The initiator sends IDi, its CERTs when it signs, a CERTREQ naming its roots when it
accepts signatures, IDr when it expects a particular responder identity,
INITIAL_CONTACT on its first IKE SA with the peer (the engine decides, 2.4), and AUTH.
The responder checks the identity against its config and the peer's AUTH with
:func:`~ipsecconf.ike.peer_auth.check_peer` (PSK, or certificate chain, identity and
signature); on any failure it answers with AUTHENTICATION_FAILED alone (2.21.2) and the
SA is dead.  The initiator refusing the responder reports it in an INFORMATIONAL.
"""

from __future__ import annotations

from ipsecconf.ike.auth import Authenticator, signed_octets
from ipsecconf.ike.config import Identity
from ipsecconf.ike.constants import ExchangeType, NotifyType
from ipsecconf.ike.context import IkeState, SaContext
from ipsecconf.ike.events import FailureReason, IkeSaEstablished, IkeSaFailed
from ipsecconf.ike.message import Message
from ipsecconf.ike.payloads import AuthPayload, IdPayload, NotifyPayload, Payload
from ipsecconf.ike.peer_auth import check_peer, our_authenticator
from ipsecconf.ike.tasks.base import Status, Task, first_error, has_notify, one


def _proof(
    ctx: SaContext, auth: Authenticator, id_payload: IdPayload, initiator: bool
) -> list[Payload]:
    """Our CERTs (when we sign) and AUTH."""
    out: list[Payload] = []
    if ctx.config.credentials is not None:
        out += ctx.config.credentials.cert_payloads()
    out.append(auth.sign(_octets(ctx, initiator, id_payload)))
    return out


def _id_of(message: Message, initiator: bool) -> IdPayload | None:
    """The IDi (``initiator``) or IDr payload of a message, if there is one."""
    for p in message.find(IdPayload):
        if p.initiator == initiator:
            return p
    return None


def _octets(ctx: SaContext, of_initiator: bool, identity: IdPayload) -> bytes:
    assert ctx.algorithms is not None and ctx.keys is not None
    if of_initiator:
        return signed_octets(ctx.algorithms.prf, ctx.init_request, ctx.nr, ctx.keys.sk_pi, identity)
    return signed_octets(ctx.algorithms.prf, ctx.init_response, ctx.ni, ctx.keys.sk_pr, identity)


def established(ctx: SaContext) -> IkeSaEstablished:
    """The event for an SA that just authenticated."""
    assert ctx.algorithms is not None and ctx.remote_id is not None
    # Positional, in field order (a keyword call of this size costs twice as much).
    return IkeSaEstablished(
        ctx.spi_i,
        ctx.spi_r,
        ctx.initiator,
        ctx.prepared.local_id,
        ctx.remote_id,
        ctx.algorithms,
        ctx.local_address,
        ctx.local_port,
        ctx.remote_address,
        ctx.remote_port,
        ctx.nat_local,
        ctx.nat_remote,
        ctx.udp_encap,
        ctx.peer_initial_contact,  # initial_contact
        ctx.peer_auth_method,
    )


_INITIAL_CONTACT = NotifyPayload(NotifyType.INITIAL_CONTACT)
# Enum members read on every IKE_AUTH as module constants: on Python 3.11 reading one
# from its class goes through EnumType's __getattr__ hook.
_INITIAL_CONTACT_TYPE = int(NotifyType.INITIAL_CONTACT)
_ESTABLISHED = IkeState.ESTABLISHED
_SUCCESS = Status.SUCCESS


class IkeAuthInitiator(Task):
    """The initiator's IKE_AUTH."""

    exchange = ExchangeType.IKE_AUTH

    def __init__(self) -> None:
        self.auth: Authenticator | None = None

    def build_request(self, ctx: SaContext) -> list[Payload]:
        self.auth = our_authenticator(ctx, ctx.config.remote_id)
        idi = ctx.prepared.idi
        payloads: list[Payload] = [idi]
        if ctx.config.trust is not None and ctx.prepared.uses_signatures:
            payloads.append(ctx.config.trust.certreq())
        if ctx.config.initial_contact:
            payloads.append(_INITIAL_CONTACT)
        if ctx.config.remote_id is not None:
            payloads.append(ctx.config.remote_id.to_payload(False))
        if self.auth is None:
            # No key: the SA cannot authenticate; send nothing verifiable and fail.
            ctx.transition(IkeState.FAILED)
            ctx.push(IkeSaFailed(FailureReason.NO_PSK, "no pre-shared key for this peer"))
            return payloads
        payloads += _proof(ctx, self.auth, idi, True)
        return payloads

    def _fail(
        self, ctx: SaContext, reason: FailureReason, detail: str, notify: int | None, by_peer: bool
    ) -> Status:
        if not by_peer:
            # We refuse the responder: tell it in a separate INFORMATIONAL (2.21.2).
            ctx.error_to_report = NotifyType.AUTHENTICATION_FAILED
            notify = NotifyType.AUTHENTICATION_FAILED
        ctx.transition(IkeState.FAILED)
        ctx.push(IkeSaFailed(reason, detail, notify, by_peer))
        return Status.FAILED

    def process_response(self, ctx: SaContext, message: Message) -> Status:
        idr = _id_of(message, False)
        auth = one(message, AuthPayload)
        error = first_error(message)
        if idr is None or auth is None:
            if error is not None and error.type == NotifyType.AUTHENTICATION_FAILED:
                return self._fail(
                    ctx,
                    FailureReason.AUTHENTICATION_FAILED,
                    "the peer refused our authentication",
                    error.type,
                    True,
                )
            return self._fail(
                ctx,
                FailureReason.PEER_ERROR if error else FailureReason.PROTOCOL_ERROR,
                "IKE_AUTH response without IDr and AUTH",
                error.type if error else None,
                True,
            )
        remote = Identity.from_payload(idr)
        if ctx.config.remote_id is not None and not ctx.config.remote_id.matches(remote):
            return self._fail(
                ctx,
                FailureReason.AUTHENTICATION_FAILED,
                f"the peer is {remote}, not {ctx.config.remote_id}",
                None,
                False,
            )
        refusal = check_peer(ctx, message, idr, auth, _octets(ctx, False, idr), remote)
        if refusal is not None:
            return self._fail(ctx, refusal.reason, refusal.detail, None, False)
        ctx.remote_id = remote
        ctx.peer_auth_method = auth.method
        ctx.transition(_ESTABLISHED)
        ctx.push(established(ctx))
        return _SUCCESS


class IkeAuthResponder(Task):
    """The responder's IKE_AUTH."""

    exchange = ExchangeType.IKE_AUTH

    def __init__(self) -> None:
        self.failed = False
        self.auth: Authenticator | None = None

    def _refuse(
        self,
        ctx: SaContext,
        detail: str,
        reason: FailureReason = FailureReason.AUTHENTICATION_FAILED,
    ) -> Status:
        self.failed = True
        ctx.transition(IkeState.FAILED)
        ctx.push(IkeSaFailed(reason, detail, NotifyType.AUTHENTICATION_FAILED))
        return Status.FAILED

    def process_request(self, ctx: SaContext, message: Message) -> Status:
        idi = _id_of(message, True)
        auth = one(message, AuthPayload)
        if idi is None or auth is None:
            return self._refuse(ctx, "IKE_AUTH request without IDi and AUTH (EAP is not offered)")
        remote = Identity.from_payload(idi)
        if ctx.config.remote_id is not None and not ctx.config.remote_id.matches(remote):
            return self._refuse(ctx, f"the peer is {remote}, not {ctx.config.remote_id}")
        refusal = check_peer(ctx, message, idi, auth, _octets(ctx, True, idi), remote)
        if refusal is not None:
            return self._refuse(ctx, refusal.detail, refusal.reason)
        self.auth = our_authenticator(ctx, remote)
        if self.auth is None:
            return self._refuse(ctx, f"no pre-shared key for {remote} at {ctx.remote_address}")
        ctx.remote_id = remote
        ctx.peer_auth_method = auth.method
        ctx.peer_initial_contact = has_notify(message, _INITIAL_CONTACT_TYPE)
        ctx.transition(_ESTABLISHED)
        ctx.push(established(ctx))
        return _SUCCESS

    def build_response(self, ctx: SaContext) -> list[Payload]:
        if self.failed or self.auth is None:
            return [NotifyPayload(NotifyType.AUTHENTICATION_FAILED)]
        idr = ctx.prepared.idr
        return [idr, *_proof(ctx, self.auth, idr, False)]
