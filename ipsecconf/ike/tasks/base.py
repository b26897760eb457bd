"""The task contract (strongSwan's task.h, split by role as h11 splits client/server).

An initiator task builds a request and processes the response; a responder task
processes a request and builds the response.  ``process_*`` returns a :class:`Status`:

* ``SUCCESS``: the task is done;
* ``NEED_MORE``: send the request again, rebuilt (IKE_SA_INIT after INVALID_KE_PAYLOAD
  or COOKIE);
* ``FAILED``: the exchange failed; the task has pushed the failure event and set the SA
  state, and the tasks after it in the same exchange are skipped.

Tasks raise :class:`~ipsecconf.ike.errors.RemoteProtocolError` for malformed peer data;
the manager counts it and answers with its notify where RFC 7296 allows.
"""

from __future__ import annotations

import enum

from ipsecconf.ike.constants import ExchangeType
from ipsecconf.ike.context import SaContext
from ipsecconf.ike.errors import LocalProtocolError
from ipsecconf.ike.message import Message
from ipsecconf.ike.payloads import NotifyPayload, Payload


class Status(enum.Enum):
    """Outcome of processing one message in one task."""

    SUCCESS = "success"
    NEED_MORE = "need-more"
    FAILED = "failed"


class Task:
    """Base of all tasks; a subclass overrides the pair of methods for its role."""

    exchange: ExchangeType = ExchangeType.INFORMATIONAL

    def obsolete(self, ctx: SaContext) -> bool:
        """True when a queued task no longer makes sense (its SA is gone or replaced);
        the manager drops it instead of starting its exchange."""
        return False

    def build_request(self, ctx: SaContext) -> list[Payload]:
        """Payloads this task adds to our request."""
        raise LocalProtocolError(f"{type(self).__name__} does not initiate")

    def process_response(self, ctx: SaContext, message: Message) -> Status:
        """Consume the peer's response."""
        raise LocalProtocolError(f"{type(self).__name__} does not initiate")

    def process_request(self, ctx: SaContext, message: Message) -> Status:
        """Consume the peer's request."""
        raise LocalProtocolError(f"{type(self).__name__} does not respond")

    def build_response(self, ctx: SaContext) -> list[Payload]:
        """Payloads this task adds to our response."""
        raise LocalProtocolError(f"{type(self).__name__} does not respond")


def notifies(message: Message) -> list[NotifyPayload]:
    """The Notify payloads of a message, in order (do not modify the list)."""
    return message.find(NotifyPayload)


def first_error(message: Message) -> NotifyPayload | None:
    """The first error notify (type below 16384) of a message."""
    for n in message.find(NotifyPayload):
        if n.type < 16384:
            return n
    return None


def notify_of(message: Message, ntype: int) -> NotifyPayload | None:
    """The first notify of type ``ntype`` in the message, or ``None``."""
    for n in message.find(NotifyPayload):
        if n.type == ntype:
            return n
    return None


def has_notify(message: Message, ntype: int) -> bool:
    """True when the message carries a notify of type ``ntype``."""
    return notify_of(message, ntype) is not None


one = Message.first
"""``one(message, kind)``: the first payload of a class, or ``None``."""
