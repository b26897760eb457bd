"""INFORMATIONAL exchanges (RFC 7296 1.4): delete of the IKE SA, liveness, notifies.

This issue needs the responder side (a peer may delete the IKE SA or probe liveness at
any time) and two small initiator tasks, :class:`IkeDelete` and :class:`Liveness`.  Child
SA deletion answers with our SPIs of the same pairs (1.4.1); the rekey/delete issue adds
its own tasks beside these.
"""

from __future__ import annotations

from ipsecconf.ike.constants import ExchangeType, NotifyType, ProtocolId
from ipsecconf.ike.context import IkeState, SaContext
from ipsecconf.ike.events import ChildSaDeleted, FailureReason, IkeSaDeleted, IkeSaFailed
from ipsecconf.ike.message import Message
from ipsecconf.ike.payloads import DeletePayload, NotifyPayload, Payload
from ipsecconf.ike.tasks.base import Status, Task


class InformationalResponder(Task):
    """Answers a peer's INFORMATIONAL request."""

    exchange = ExchangeType.INFORMATIONAL

    def __init__(self) -> None:
        self.delete_ike = False
        self.deleted: dict[int, list[bytes]] = {}

    def process_request(self, ctx: SaContext, message: Message) -> Status:
        for p in message.payloads:
            if isinstance(p, NotifyPayload) and p.type == NotifyType.AUTHENTICATION_FAILED:
                # The initiator refused our AUTH after we established (2.21.2).
                ctx.transition(IkeState.FAILED)
                ctx.push(
                    IkeSaFailed(
                        FailureReason.AUTHENTICATION_FAILED,
                        "the peer refused our authentication",
                        NotifyType.AUTHENTICATION_FAILED,
                        by_peer=True,
                    )
                )
                return Status.SUCCESS
            if not isinstance(p, DeletePayload):
                continue
            if p.protocol == ProtocolId.IKE:
                self.delete_ike = True
                continue
            for spi in p.spis:
                if len(spi) != 4:
                    continue
                value = int.from_bytes(spi, "big")
                for record in list(ctx.children):
                    if record.spi_out == value and record.protocol == p.protocol:
                        ctx.children.remove(record)
                        self.deleted.setdefault(p.protocol, []).append(
                            record.spi_in.to_bytes(4, "big")
                        )
                        ctx.push(ChildSaDeleted(record.name, record.spi_in, record.spi_out, True))
        if self.delete_ike:
            ctx.transition(IkeState.DELETED)
            ctx.push(IkeSaDeleted(by_peer=True))
        return Status.SUCCESS

    def build_response(self, ctx: SaContext) -> list[Payload]:
        if self.delete_ike:
            return []
        return [DeletePayload(proto, tuple(spis)) for proto, spis in self.deleted.items()]


class IkeDelete(Task):
    """Deletes the IKE SA and with it every child (1.4.1)."""

    exchange = ExchangeType.INFORMATIONAL

    def build_request(self, ctx: SaContext) -> list[Payload]:
        ctx.transition(IkeState.DELETING)
        return [DeletePayload(ProtocolId.IKE)]

    def process_response(self, ctx: SaContext, message: Message) -> Status:
        ctx.transition(IkeState.DELETED)
        ctx.push(IkeSaDeleted(by_peer=False))
        return Status.SUCCESS


class Liveness(Task):
    """An empty INFORMATIONAL request: the peer is alive when it answers (2.4)."""

    exchange = ExchangeType.INFORMATIONAL

    def __init__(self) -> None:
        self.answered = False

    def build_request(self, ctx: SaContext) -> list[Payload]:
        return []

    def process_response(self, ctx: SaContext, message: Message) -> Status:
        self.answered = True
        return Status.SUCCESS


class RefuseChildSa(Task):
    """Answers CREATE_CHILD_SA with NO_ADDITIONAL_SAS (2.21.3) until rekeying tasks exist."""

    exchange = ExchangeType.CREATE_CHILD_SA

    def process_request(self, ctx: SaContext, message: Message) -> Status:
        return Status.SUCCESS

    def build_response(self, ctx: SaContext) -> list[Payload]:
        return [NotifyPayload(NotifyType.NO_ADDITIONAL_SAS)]
