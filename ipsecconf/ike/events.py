"""What the IKE core tells the engine: frozen event dataclasses pulled with ``next_event()``.

* :class:`IkeSaEstablished` - both peers authenticated; the algorithms and addresses.
* :class:`ChildSaEstablished` - everything the dataplane needs to install the SA pair:
  SPIs, negotiated selectors, algorithms, keys (never in reprs), mode, ESN, UDP
  encapsulation and ports.
* :class:`ChildSaFailed` / :class:`IkeSaFailed` - a negotiation ended; ``reason`` says why
  in words, ``notify`` is the notify that was sent or received, ``by_peer`` whose
  decision it was.
* :class:`IkeSaDeleted` - the SA is gone (deleted by either side).

Events are plain data: the engine may log them (keys are excluded from ``repr``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ipsecconf.ike.config import Identity, IPAddress, Mode
from ipsecconf.ike.constants import NotifyType, ProtocolId
from ipsecconf.ike.payloads_ts import TsEntry
from ipsecconf.ike.proposals import ChildAlgorithms, IkeAlgorithms
from ipsecconf.model.selectors import Selector


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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class ChildSaFailed:
    """A child SA could not be negotiated (the IKE SA may still be up)."""

    name: str
    reason: FailureReason
    detail: str
    notify: NotifyType | int | None = None
    by_peer: bool = False


@dataclass(frozen=True, slots=True)
class IkeSaFailed:
    """The IKE SA could not be established or died."""

    reason: FailureReason
    detail: str
    notify: NotifyType | int | None = None
    by_peer: bool = False


@dataclass(frozen=True, slots=True)
class ChildSaDeleted:
    """A child SA pair is deleted; remove it from the dataplane."""

    name: str
    spi_in: int
    spi_out: int
    by_peer: bool


@dataclass(frozen=True, slots=True)
class IkeSaDeleted:
    """The IKE SA (and so all its children) is deleted."""

    by_peer: bool


IkeEvent = (
    IkeSaEstablished
    | ChildSaEstablished
    | ChildSaFailed
    | ChildSaDeleted
    | IkeSaFailed
    | IkeSaDeleted
)
