"""INFORMATIONAL exchanges (RFC 7296 1.4): delete of the IKE SA, liveness, notifies.

The responder side answers whatever a peer sends at any time: Delete of the IKE SA or of
child pairs (answered with our SPIs of the same pairs, except for pairs we are deleting
ourselves, 1.4.1), an empty liveness probe, INVALID_SPI (2.21.4: the peer has no SA for
an SPI we send with, so our pair is useless and is dropped) and AUTHENTICATION_FAILED
after IKE_AUTH.  The initiator tasks here are :class:`IkeDelete`, :class:`Liveness` and
:class:`InvalidSpiReport`; child deletes live in :mod:`.child_sa`.
"""

from __future__ import annotations

from ipsecconf.ike.constants import ExchangeType, NotifyType, ProtocolId
from ipsecconf.ike.context import ChildState, IkeState, SaContext
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
            if isinstance(p, NotifyPayload) and p.type == NotifyType.INVALID_SPI:
                self._invalid_spi(ctx, p)
                continue
            if not isinstance(p, DeletePayload):
                continue
            if p.protocol == ProtocolId.IKE:
                self.delete_ike = True
                continue
            for spi in p.spis:
                if len(spi) != 4:
                    continue
                record = ctx.find_child(
                    int.from_bytes(spi, "big"), inbound=False, protocol=p.protocol
                )
                if record is None:
                    continue
                ctx.children.remove(record)
                if record.state is not ChildState.DELETING:
                    # A pair we delete ourselves is not repeated in the answer (1.4.1).
                    self.deleted.setdefault(p.protocol, []).append(record.spi_in.to_bytes(4, "big"))
                ctx.push(ChildSaDeleted(record.name, record.spi_in, record.spi_out, True))
        if self.delete_ike:
            ctx.transition(IkeState.DELETED)
            ctx.push(IkeSaDeleted(by_peer=True, rekeyed=ctx.rekeyed_to is not None))
        return Status.SUCCESS

    @staticmethod
    def _invalid_spi(ctx: SaContext, notify: NotifyPayload) -> None:
        """The peer got ESP/AH with an SPI it does not know (2.21.4); the SPI is in the
        notification data (or, from some peers, the SPI field)."""
        raw = notify.data if len(notify.data) == 4 else notify.spi
        if len(raw) != 4:
            return
        record = ctx.find_child(int.from_bytes(raw, "big"), inbound=False)
        if record is not None:
            ctx.children.remove(record)
            ctx.push(ChildSaDeleted(record.name, record.spi_in, record.spi_out, True))

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

    def obsolete(self, ctx: SaContext) -> bool:
        return ctx.state not in (IkeState.ESTABLISHED, IkeState.REKEYED)

    def process_response(self, ctx: SaContext, message: Message) -> Status:
        ctx.transition(IkeState.DELETED)
        ctx.push(IkeSaDeleted(by_peer=False, rekeyed=ctx.rekeyed_to is not None))
        return Status.SUCCESS


class InvalidSpiReport(Task):
    """Tells the peer that ESP/AH arrived with an SPI we do not know (2.21.4)."""

    exchange = ExchangeType.INFORMATIONAL

    def __init__(self, spi: int, protocol: int) -> None:
        self.spi = spi
        self.protocol = protocol

    def build_request(self, ctx: SaContext) -> list[Payload]:
        return [
            NotifyPayload(NotifyType.INVALID_SPI, self.protocol, data=self.spi.to_bytes(4, "big"))
        ]

    def process_response(self, ctx: SaContext, message: Message) -> Status:
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
