"""The sans-IO IKEv2 core (RFC 7296): bytes and ``now`` in; datagrams, timers and events out.

The engine needs only what is re-exported here: build an :class:`IkeConfig` (with its
:class:`ChildConfig` children, :class:`Identity` values and a PSK lookup such as a
:class:`PskTable`), create an :class:`IkeSa` per peer (``route()`` tells which SA an
incoming datagram belongs to, or that it starts a new one, which an
:class:`IkeResponderGate` admits or answers with a cookie), and pull events.  IKE SAs
born from rekeys arrive in :class:`IkeSaRekeyed` events.
"""

from ipsecconf.ike.config import (
    ChildConfig,
    Identity,
    IkeConfig,
    Mode,
    PskLookup,
    PskQuery,
    PskTable,
    RetransmitPolicy,
    TriggerPacket,
)
from ipsecconf.ike.context import IkeState
from ipsecconf.ike.credentials import Credentials, TrustAnchors
from ipsecconf.ike.errors import DropReason, LocalProtocolError, RemoteProtocolError
from ipsecconf.ike.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    ChildSaFailed,
    FailureReason,
    IkeEvent,
    IkeRekeyFailed,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    IkeSaRekeyed,
)
from ipsecconf.ike.gate import GateDecision, IkeResponderGate
from ipsecconf.ike.sa import ChildInfo, Datagram, IkeSa, RouteInfo, route

__all__ = [
    "ChildConfig",
    "ChildInfo",
    "Credentials",
    "GateDecision",
    "IkeRekeyFailed",
    "IkeResponderGate",
    "IkeSaRekeyed",
    "TrustAnchors",
    "ChildSaDeleted",
    "ChildSaEstablished",
    "ChildSaFailed",
    "Datagram",
    "DropReason",
    "FailureReason",
    "Identity",
    "IkeConfig",
    "IkeEvent",
    "IkeSa",
    "IkeSaDeleted",
    "IkeSaEstablished",
    "IkeSaFailed",
    "IkeState",
    "LocalProtocolError",
    "Mode",
    "PskLookup",
    "PskQuery",
    "PskTable",
    "RemoteProtocolError",
    "RetransmitPolicy",
    "RouteInfo",
    "TriggerPacket",
    "route",
]
