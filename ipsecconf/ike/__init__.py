"""The sans-IO IKEv2 core (RFC 7296): bytes and ``now`` in; datagrams, timers and events out.

The engine needs only what is re-exported here: build an :class:`IkeConfig` (with its
:class:`ChildConfig` children, :class:`Identity` values and a PSK lookup such as a
:class:`PskTable`), create an :class:`IkeSa` per peer (``route()`` tells which SA an
incoming datagram belongs to, or that it starts a new one), and pull events.
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
from ipsecconf.ike.errors import DropReason, LocalProtocolError, RemoteProtocolError
from ipsecconf.ike.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    ChildSaFailed,
    FailureReason,
    IkeEvent,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
)
from ipsecconf.ike.sa import Datagram, IkeSa, RouteInfo, route

__all__ = [
    "ChildConfig",
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
