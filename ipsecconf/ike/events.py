"""What the IKE core tells the engine: event dataclasses pulled with ``next_event()``.

Events are values: nothing changes one after it is pushed.  They are not ``frozen``
only because a frozen dataclass costs a call per field to build, and the two of every
handshake have some forty fields between them; they stay hashable.

* :class:`IkeSaEstablished` - both peers authenticated; the algorithms and addresses.
* :class:`ChildSaEstablished` - everything the dataplane needs to install the SA pair:
  SPIs, negotiated selectors, algorithms, keys (never in reprs), mode, ESN, UDP
  encapsulation and ports.
* :class:`ChildSaFailed` / :class:`IkeSaFailed` - a negotiation ended; ``reason`` says why
  in words, ``notify`` is the notify that was sent or received, ``by_peer`` whose
  decision it was.
* :class:`IkeSaDeleted` - the SA is gone (deleted by either side); after a rekey
  (``rekeyed``) its children live on in the successor and must stay installed.
* :class:`IkeSaRekeyed` - a new IKE SA replaces this one (RFC 7296 2.18): register the
  ``successor`` :class:`~ipsecconf.ike.sa.IkeSa` under its SPIs and drive it like any
  other; the children now belong to it.  In a simultaneous rekey (2.8.1) one of the two
  new SAs is ``redundant``: register it too; it deletes itself or is deleted by the peer.
* :class:`IkeRekeyFailed` - our IKE rekey did not happen; the old SA is still fine.
* :class:`ChildSaEstablished` with ``rekey_of`` - the new SA of a child rekey: install it
  and send with it from now on, but keep the old pair (``rekey_of`` is its ``spi_in``)
  until its :class:`ChildSaDeleted` arrives (make-before-break).

Events are plain data: the engine may log them (keys are excluded from ``repr``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ipsecconf.ike.config import Identity, IPAddress, Mode
from ipsecconf.ike.constants import NotifyType, ProtocolId
from ipsecconf.ike.payloads_ts import TsEntry
from ipsecconf.ike.proposals import ChildAlgorithms, IkeAlgorithms
from ipsecconf.model.selectors import Selector

if TYPE_CHECKING:  # annotation only: sa.py imports this module
    from ipsecconf.ike.sa import IkeSa


class FailureReason(enum.StrEnum):
    """Why a negotiation failed, in categories the engine and the CLI can act on."""

    AUTHENTICATION_FAILED = "authentication-failed"
    NO_PROPOSAL_CHOSEN = "no-proposal-chosen"
    TS_UNACCEPTABLE = "ts-unacceptable"
    INVALID_KE = "invalid-ke"
    NO_PSK = "no-pre-shared-key"
    TIMEOUT = "peer-not-responding"
    PEER_ERROR = "peer-error"
    PROTOCOL_ERROR = "protocol-error"
    MODE_MISMATCH = "mode-mismatch"
    TEMPORARY_FAILURE = "temporary-failure"
    """The peer is busy with a conflicting exchange (2.25): retry a little later."""
    CHILD_SA_NOT_FOUND = "child-sa-not-found"
    CERTIFICATE_EXPIRED = "certificate-expired"
    """The peer's certificate is not valid now (expired or not yet valid)."""
    UNTRUSTED_CERTIFICATE = "untrusted-certificate"
    """The peer's certificate does not chain to a configured root, or is not valid now."""
    IDENTITY_MISMATCH = "identity-mismatch"
    """The peer's certificate does not carry the identity it claims."""
    METHOD_NOT_ALLOWED = "auth-method-not-allowed"
    """The peer authenticated with a method this side does not accept from it."""


@dataclass(slots=True, unsafe_hash=True)
class IkeSaEstablished:
    """The IKE SA is up."""

    spi_i: bytes
    spi_r: bytes
    initiator: bool
    """True when this side initiated the IKE SA."""
    local_id: Identity
    remote_id: Identity
    algorithms: IkeAlgorithms
    local_address: IPAddress
    local_port: int
    remote_address: IPAddress
    remote_port: int
    nat_local: bool
    """This side is behind a NAT (its NAT_DETECTION_DESTINATION_IP did not match)."""
    nat_remote: bool
    """The peer is behind a NAT, or pretends to be (its forced encapsulation)."""
    udp_encap: bool
    """IKE (from IKE_AUTH on) and ESP use UDP 4500: a NAT on either side, or forced."""
    initial_contact: bool
    """The peer sent INITIAL_CONTACT: the engine drops older SAs with it (RFC 7296 2.4)."""
    peer_auth_method: int = 0
    """The AUTH method the peer proved itself with (2 PSK, 1 RSA, 9-11 ECDSA, 14 RFC 7427)."""


@dataclass(slots=True, unsafe_hash=True)
class ChildSaEstablished:
    """A child SA pair is negotiated; install it in the dataplane."""

    name: str
    """The child config's name."""
    protocol: ProtocolId
    mode: Mode
    spi_in: int
    """Our SPI: the peer sends with it, we receive."""
    spi_out: int
    """The peer's SPI: we send with it."""
    local_ts: tuple[TsEntry, ...]
    remote_ts: tuple[TsEntry, ...]
    selectors: tuple[Selector, ...]
    """The negotiated TS as ``out``-direction selectors (local = source)."""
    algorithms: ChildAlgorithms
    encr_key_in: bytes = field(repr=False)
    integ_key_in: bytes = field(repr=False)
    encr_key_out: bytes = field(repr=False)
    integ_key_out: bytes = field(repr=False)
    udp_encap: bool = False
    """ESP-in-UDP (RFC 3948) on ``local_port``/``remote_port`` (4500)."""
    local_address: IPAddress | None = None
    local_port: int = 0
    remote_address: IPAddress | None = None
    remote_port: int = 0
    ike_spi_i: bytes = b""
    ike_spi_r: bytes = b""
    rekey_of: int | None = None
    """When this pair rekeys another: the old pair's ``spi_in``; it stays until deleted."""


@dataclass(slots=True, unsafe_hash=True)
class ChildSaFailed:
    """A child SA could not be negotiated (the IKE SA may still be up)."""

    name: str
    reason: FailureReason
    detail: str
    notify: NotifyType | int | None = None
    by_peer: bool = False


@dataclass(slots=True, unsafe_hash=True)
class IkeSaFailed:
    """The IKE SA could not be established or died."""

    reason: FailureReason
    detail: str
    notify: NotifyType | int | None = None
    by_peer: bool = False


@dataclass(slots=True, unsafe_hash=True)
class ChildSaDeleted:
    """A child SA pair is deleted; remove it from the dataplane."""

    name: str
    spi_in: int
    spi_out: int
    by_peer: bool


@dataclass(slots=True, unsafe_hash=True)
class IkeSaDeleted:
    """The IKE SA (and so all its children) is deleted."""

    by_peer: bool
    rekeyed: bool = False
    """The SA was replaced by a rekey: its children moved to the successor, keep them."""


@dataclass(slots=True, unsafe_hash=True)
class IkeSaRekeyed:
    """A new IKE SA replaces this one; the engine must register ``successor``."""

    successor: IkeSa = field(repr=False)
    old_spi_i: bytes
    old_spi_r: bytes
    spi_i: bytes
    spi_r: bytes
    algorithms: IkeAlgorithms
    by_peer: bool
    redundant: bool = False
    """The loser of a simultaneous rekey (2.8.1): no children; it is deleted shortly."""


@dataclass(slots=True, unsafe_hash=True)
class IkeRekeyFailed:
    """Our IKE SA rekey failed; the current IKE SA stays in use (retry later)."""

    reason: FailureReason
    detail: str
    notify: NotifyType | int | None = None


IkeEvent = (
    IkeSaEstablished
    | ChildSaEstablished
    | ChildSaFailed
    | ChildSaDeleted
    | IkeSaFailed
    | IkeSaDeleted
    | IkeSaRekeyed
    | IkeRekeyFailed
)
