"""Who is at fault: errors of the IKE core, split as h11 splits them.

* :class:`RemoteProtocolError` - the peer sent something wrong.  It is raised deep in the
  codec or a task and caught once, at :meth:`ipsecconf.ike.sa.IkeSa.receive_datagram`,
  where it is counted under its :class:`DropReason` and, when RFC 7296 says so, answered
  with its notify.  It never leaves the core.
* :class:`LocalProtocolError` - the caller misused the core (wrong state, bad config).
  It does leave the core: it is a programming or configuration error.

Messages never hold key material or pre-shared keys.
"""

from __future__ import annotations

import enum

from ipsecconf.errors import ProtocolError
from ipsecconf.ike.constants import NotifyType


class DropReason(enum.StrEnum):
    """Why an incoming datagram was dropped or refused; the key of the drop counters."""

    TRUNCATED = "truncated"
    """Shorter than a header or than a length field says."""
    BAD_LENGTH = "bad-length"
    """A length field disagrees with the data."""
    TOO_LARGE = "too-large"
    """Over the size or count limits of the codec."""
    BAD_VERSION = "bad-version"
    """Major version is not 2."""
    UNKNOWN_SPI = "unknown-spi"
    """IKE SPIs that do not belong to this SA."""
    UNEXPECTED_EXCHANGE = "unexpected-exchange"
    """An exchange type that is not valid in the current state."""
    UNEXPECTED_RESPONSE = "unexpected-response"
    """A response to no outstanding request, or with the wrong message ID."""
    INVALID_MESSAGE_ID = "invalid-message-id"
    """A request outside the window."""
    RETRANSMIT = "retransmit"
    """A retransmitted request; answered from the response cache."""
    INTEGRITY = "integrity"
    """The SK payload failed its ICV or AEAD tag, or decrypted to bad padding."""
    MALFORMED = "malformed"
    """A payload does not parse (INVALID_SYNTAX)."""
    UNSUPPORTED_CRITICAL = "unsupported-critical"
    """A payload of unknown type with the critical bit set."""
    MISSING_PAYLOAD = "missing-payload"
    """A payload the exchange requires is absent."""
    BAD_KEY_EXCHANGE = "bad-key-exchange"
    """A KE payload whose public value is invalid."""
    WRONG_ROLE = "wrong-role"
    """Initiator/response flags that do not fit our role."""
    KEEPALIVE = "keepalive"
    """A NAT-T keepalive (RFC 3948 section 2.3): not an error, counted for visibility."""
    STATE = "state"
    """A message that is valid but not in the current state of the SA."""


class LocalProtocolError(ProtocolError):
    """The caller used the IKE core wrongly (state or configuration)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid; carries the reason and the notify to answer with."""

    def __init__(
        self,
        reason: DropReason,
        detail: str,
        *,
        notify: NotifyType | None = None,
        notify_data: bytes = b"",
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.notify = notify
        self.notify_data = notify_data
        self.authenticated = False
        """True once the message passed its integrity check: only then may a protected
        exchange be answered with an error notify (RFC 7296 section 2.21)."""


def malformed(detail: str) -> RemoteProtocolError:
    """A payload that does not parse: answered with INVALID_SYNTAX once authenticated."""
    return RemoteProtocolError(DropReason.MALFORMED, detail, notify=NotifyType.INVALID_SYNTAX)
