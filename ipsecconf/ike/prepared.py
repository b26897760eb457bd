"""What the core derives from one IKE SA config, ready for every handshake with its peer.

An :class:`~ipsecconf.ike.config.IkeConfig` is immutable and serves every SA with its
peer, so what a handshake derives from it (its IKE offer and proposal matching, our
IDi/IDr payloads, the bytes NAT detection hashes, the AUTH methods it accepts) is
computed once, on first use, and then read as a plain attribute:
:func:`~ipsecconf.ike.config.derived` costs a call, a closure and two lookups each time,
and a handshake asks for these a dozen times.  Each
:class:`~ipsecconf.ike.context.SaContext` holds the one :class:`Prepared` of its config.
"""

from __future__ import annotations

from functools import cached_property

from ipsecconf.ike.config import Identity, IkeConfig, IPAddress, derived
from ipsecconf.ike.payloads import IdPayload
from ipsecconf.ike.payloads_sa import SaPayload
from ipsecconf.ike.proposals import Negotiator, ike_negotiator, ike_offer

Endpoints = tuple[IPAddress, int, IPAddress, int]
"""Our address and port, the peer's address and port."""


def pack_endpoints(endpoints: Endpoints) -> tuple[bytes, bytes]:
    """``IP | Port`` of our side and of the peer's, as NAT detection hashes them."""
    local, local_port, remote, remote_port = endpoints
    return (
        local.packed + local_port.to_bytes(2, "big"),
        remote.packed + remote_port.to_bytes(2, "big"),
    )


class Prepared:
    """The values of one config that every handshake uses (computed on first use)."""

    def __init__(self, config: IkeConfig) -> None:
        self.config = config

    @cached_property
    def local_id(self) -> Identity:
        """Our identity (:attr:`IkeConfig.effective_local_id`)."""
        return self.config.effective_local_id

    @cached_property
    def accepted_methods(self) -> frozenset[str]:
        """:attr:`IkeConfig.accepted_methods`."""
        return self.config.accepted_methods

    @cached_property
    def uses_signatures(self) -> bool:
        """:attr:`IkeConfig.uses_signatures`."""
        return self.config.uses_signatures

    @cached_property
    def idi(self) -> IdPayload:
        """Our identity as the IDi payload."""
        return self.local_id.to_payload(True)

    @cached_property
    def idr(self) -> IdPayload:
        """Our identity as the IDr payload."""
        return self.local_id.to_payload(False)

    @cached_property
    def ike_offer(self) -> SaPayload:
        """The SA payload of our IKE_SA_INIT request."""
        return ike_offer(self.config)

    @cached_property
    def ike_negotiator(self) -> Negotiator:
        """Matching against the config's IKE proposals."""
        return ike_negotiator(self.config)

    @cached_property
    def remote_text(self) -> str:
        """The configured peer address as text."""
        return str(self.config.remote_address)

    @cached_property
    def natd_endpoints(self) -> tuple[Endpoints, tuple[bytes, bytes]]:
        """The configured endpoints and their :func:`pack_endpoints` bytes."""
        config = self.config
        endpoints = (
            config.local_address,
            config.local_port,
            config.remote_address,
            config.remote_port,
        )
        return endpoints, pack_endpoints(endpoints)


def prepared(config: IkeConfig) -> Prepared:
    """The one :class:`Prepared` of ``config``."""
    return derived(config, "prepared", lambda: Prepared(config))
