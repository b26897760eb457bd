"""The state one IKE SA shares between its tasks (strongSwan's ike_sa_t internals).

Tasks read and write this object; only :mod:`ipsecconf.ike.sa` exposes it to the
engine, through a narrow API.  It holds keys, so it has no useful repr.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha1
from typing import TYPE_CHECKING

from ipsecconf.crypto.dh import KeyExchangeFactory
from ipsecconf.ike.auth import PskAuthenticator
from ipsecconf.ike.config import (
    ChildConfig,
    Identity,
    IkeConfig,
    IPAddress,
    TriggerPacket,
)
from ipsecconf.ike.constants import NATT_PORT
from ipsecconf.ike.errors import LocalProtocolError
from ipsecconf.ike.events import IkeEvent
from ipsecconf.ike.keymat import IkeKeys
from ipsecconf.ike.message import SkCrypto
from ipsecconf.ike.payloads_ts import TsEntry
from ipsecconf.ike.prepared import Prepared, pack_endpoints, prepared
from ipsecconf.ike.proposals import ChildAlgorithms, IkeAlgorithms
from ipsecconf.model.algorithms import Prf

if TYPE_CHECKING:  # only for annotations: tasks and sa import this module
    from ipsecconf.ike.sa import IkeSa
    from ipsecconf.ike.tasks.base import Task

Rng = Callable[[int], bytes]
_ZERO_SPI = bytes(8)
_NO_HASHES: frozenset[int] = frozenset()


class IkeState(enum.Enum):
    """Life cycle of an IKE SA (strongSwan's ike_sa_state_t, reduced to this issue)."""

    CREATED = "created"
    CONNECTING = "connecting"
    ESTABLISHED = "established"
    REKEYED = "rekeyed"
    """Replaced by a rekeyed IKE SA that holds the children now; awaiting its Delete."""
    DELETING = "deleting"
    DELETED = "deleted"
    FAILED = "failed"

    # Members are singletons: an identity hash (C) instead of Enum's hash of the name (a
    # Python call at every TRANSITIONS lookup).
    __hash__ = object.__hash__


# Everything that may change an IKE SA's state, in one table (h11's _state.py rule):
# a transition not listed here is a bug of ours, reported as LocalProtocolError.
TRANSITIONS: dict[IkeState, frozenset[IkeState]] = {
    IkeState.CREATED: frozenset({IkeState.CONNECTING, IkeState.FAILED}),
    IkeState.CONNECTING: frozenset({IkeState.ESTABLISHED, IkeState.FAILED}),
    IkeState.ESTABLISHED: frozenset(
        {IkeState.REKEYED, IkeState.DELETING, IkeState.DELETED, IkeState.FAILED}
    ),
    IkeState.REKEYED: frozenset({IkeState.DELETING, IkeState.DELETED, IkeState.FAILED}),
    IkeState.DELETING: frozenset({IkeState.DELETED, IkeState.FAILED}),
    IkeState.DELETED: frozenset(),
    IkeState.FAILED: frozenset(),
}


class ChildState(enum.Enum):
    """Life cycle of a child SA inside its IKE SA (strongSwan's child_sa_state_t, reduced)."""

    INSTALLED = "installed"
    REKEYING = "rekeying"
    """Our CREATE_CHILD_SA rekey for it is under way."""
    REKEYED = "rekeyed"
    """A successor exists; the SA stays installed until its Delete (make-before-break)."""
    DELETING = "deleting"


@dataclass(frozen=True, slots=True)
class PeerRekey:
    """A rekey the peer made of one of our SAs (child or IKE) while we were rekeying it
    too: what RFC 7296 2.8.1 needs to decide which of the two new SAs survives."""

    nonces: tuple[bytes, bytes]
    successor: object
    """The new :class:`ChildRecord` or :class:`SaContext` of the peer's exchange."""


@dataclass(slots=True)
class ChildRecord:
    """A negotiated child SA as the IKE SA remembers it (for delete and rekey)."""

    name: str
    spi_in: int
    spi_out: int
    protocol: int
    config: ChildConfig | None = None
    algorithms: ChildAlgorithms | None = None
    local_ts: tuple[TsEntry, ...] = ()
    remote_ts: tuple[TsEntry, ...] = ()
    transport: bool = False
    state: ChildState = ChildState.INSTALLED
    peer_rekey: PeerRekey | None = field(default=None, repr=False)


class SaContext:
    """Mutable state of one IKE SA.

    Slotted: a handshake gives a context some forty attributes, past what an instance
    dict holds before it is copied into a larger one (twice, in every handshake)."""

    __slots__ = (
        "_remote_text",
        "adopt",
        "algorithms",
        "child_exchange",
        "children",
        "config",
        "crypto",
        "error_to_report",
        "events",
        "followups",
        "fragmentation",
        "ike_rekeying",
        "init_request",
        "init_response",
        "initiator",
        "ke_factory",
        "keys",
        "local_address",
        "local_port",
        "nat_local",
        "nat_remote",
        "natd_supported",
        "ni",
        "now",
        "nr",
        "peer_auth_method",
        "peer_hashes",
        "peer_ike_rekey",
        "peer_initial_contact",
        "prepared",
        "psk_authenticator",
        "psk_lookup",
        "redundant_until",
        "rekeyed_to",
        "remote_address",
        "remote_id",
        "remote_port",
        "rng",
        "spi_allocator",
        "spi_i",
        "spi_r",
        "state",
        "trigger",
    )

    def __init__(
        self,
        config: IkeConfig,
        initiator: bool,
        rng: Rng,
        ke_factory: KeyExchangeFactory,
        spi_allocator: Callable[[], int],
    ) -> None:
        self.config = config
        self.initiator = initiator
        self.rng = rng
        self.ke_factory = ke_factory
        self.spi_allocator = spi_allocator
        self.local_address: IPAddress = config.local_address
        self.local_port = config.local_port
        self.remote_address: IPAddress = config.remote_address
        self.remote_port = config.remote_port
        self.prepared: Prepared = prepared(config)
        self._remote_text = self.prepared.remote_text
        self.children: list[ChildRecord] = []
        self.events: deque[IkeEvent] = deque()
        self.followups: list[Task] = []
        """Tasks a task wants initiated after it (the Delete after a rekey); the task
        manager queues them once the current message is handled."""
        self.state = IkeState.CREATED
        self.spi_i = b""
        self.spi_r = _ZERO_SPI
        self.ni = b""
        self.nr = b""
        self.init_request = b""
        """The IKE_SA_INIT request as sent (AUTH input of the initiator, 2.15)."""
        self.init_response = b""
        self.algorithms: IkeAlgorithms | None = None
        self.keys: IkeKeys | None = None
        self.crypto: SkCrypto | None = None
        self.nat_local = False
        self.nat_remote = False
        self.natd_supported = False
        self.fragmentation = False
        """Both sides announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 2.3)."""
        self.remote_id: Identity | None = None
        self.peer_initial_contact = False
        self.peer_auth_method = 0
        self.psk_lookup: tuple[Identity | None, IPAddress, bytes | None] | None = None
        """The last PSK lookup: (peer identity, peer address, key); see ``peer_auth``."""
        self.psk_authenticator: tuple[bytes, Prf, PskAuthenticator] | None = None
        """The last PSK authenticator built, with its key and PRF (reused for both AUTHs)."""
        self.peer_hashes: frozenset[int] = _NO_HASHES
        """RFC 7427 hash algorithms the peer announced (SIGNATURE_HASH_ALGORITHMS)."""
        self.error_to_report: int | None = None
        """An error notify to send once in a separate INFORMATIONAL request, when our
        side refused a response (RFC 7296 2.21.2: the initiator refusing the AUTH)."""
        self.trigger: TriggerPacket | None = None
        self.ike_rekeying = False
        """Our CREATE_CHILD_SA rekey of this IKE SA is in flight."""
        self.child_exchange = False
        """Our exchange creating, rekeying or deleting a child is in flight: the peer's
        IKE rekey must wait (TEMPORARY_FAILURE, RFC 7296 2.25.2) or the child would be
        lost between the old and the new IKE SA."""
        self.peer_ike_rekey: PeerRekey | None = None
        self.adopt: Callable[[SaContext], IkeSa] | None = None
        """Wraps a rekeyed IKE SA's context into an :class:`IkeSa` (set by ``IkeSa``)."""
        self.rekeyed_to: SaContext | None = None
        self.redundant_until: float | None = None
        """The peer's redundant SA of an IKE rekey collision: the peer deletes it (2.8.1),
        and if its Delete has not come by then (it may race ahead of the exchange that
        makes the SA known here and be dropped), this side deletes it."""
        self.now = 0.0
        """The time of the call being handled (set by ``IkeSa`` at every entry point)."""

    def find_child(
        self, spi: int, *, inbound: bool, protocol: int | None = None
    ) -> ChildRecord | None:
        """The child with our inbound (or the peer's, ``inbound=False``) SPI ``spi``."""
        for record in self.children:
            if (record.spi_in if inbound else record.spi_out) == spi and (
                protocol is None or record.protocol == protocol
            ):
                return record
        return None

    def successor(self, initiator: bool) -> SaContext:
        """A fresh context for the IKE SA that replaces this one after a rekey: the same
        peer, config and NAT state; the new SA's initiator is the rekey's initiator."""
        new = SaContext(self.config, initiator, self.rng, self.ke_factory, self.spi_allocator)
        new.local_address, new.local_port = self.local_address, self.local_port
        new.remote_address, new.remote_port = self.remote_address, self.remote_port
        new._remote_text = self._remote_text
        new.nat_local, new.nat_remote = self.nat_local, self.nat_remote
        new.natd_supported = self.natd_supported
        new.fragmentation = self.fragmentation
        new.remote_id = self.remote_id
        new.adopt = self.adopt
        return new

    def __repr__(self) -> str:
        return f"SaContext({'initiator' if self.initiator else 'responder'}, {self.state.value})"

    def transition(self, new: IkeState) -> None:
        """Move to ``new`` as :data:`TRANSITIONS` allows (staying put is always allowed)."""
        if new is self.state:
            return
        if new not in TRANSITIONS[self.state]:
            raise LocalProtocolError(f"IKE SA cannot go from {self.state.value} to {new.value}")
        self.state = new

    # -- NAT traversal (RFC 7296 2.23) -------------------------------------------------
    def natd_hashes(self, spi_i: bytes, spi_r: bytes) -> tuple[bytes, bytes]:
        """SHA-1(SPIi | SPIr | IP | Port) of our address and port and of the peer's: the
        NAT detection data (RFC 7296 2.23), both at once (they are always wanted together)."""
        endpoints = (self.local_address, self.local_port, self.remote_address, self.remote_port)
        # Usually still the config's endpoints: their bytes are packed once per config.
        known, packed = self.prepared.natd_endpoints
        if endpoints != known:  # addresses compare by identity first: cheap when equal
            packed = pack_endpoints(endpoints)
        spis = spi_i + spi_r
        return sha1(spis + packed[0]).digest(), sha1(spis + packed[1]).digest()

    @property
    def udp_encap(self) -> bool:
        """ESP must go in UDP: a NAT was detected on either side, or it is forced; only
        with a peer that sent NAT detection notifies, i.e. that speaks NAT-T (2.23)."""
        return self.natd_supported and (
            self.nat_local or self.nat_remote or self.config.force_encap
        )

    def float_to_natt(self) -> None:
        """Move IKE to port 4500 (RFC 7296 2.23) once NAT or forced encapsulation is known."""
        if self.udp_encap:
            self.local_port = NATT_PORT
            if self.initiator:
                self.remote_port = NATT_PORT

    @property
    def remote_text(self) -> str:
        """The peer's address as canonical text (datagrams are addressed with it)."""
        return self._remote_text

    def update_remote(self, host: str, port: int) -> None:
        """Follow the peer's address after an authenticated request (NAT mapping changes)."""
        if port == self.remote_port and host == self._remote_text:
            return  # the usual case: nothing moved, nothing to parse
        try:
            self.remote_address = ipaddress.ip_address(host)
        except ValueError:
            return
        self.remote_port = port
        self._remote_text = str(self.remote_address)  # canonical, as str() gave before

    def push(self, event: IkeEvent) -> None:
        """Queue an event for the engine."""
        self.events.append(event)
