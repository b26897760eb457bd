"""The engine's ports: the only ways the running engine reaches I/O.

The engine (:mod:`ipsecconf.engine.runtime`) is sans-IO like the protocol cores: packets,
datagrams and ``now`` come in through its methods; what it sends, writes and configures
goes out through the small Protocols below.  :mod:`ipsecconf.io` implements them with
sockets, a TUN device and ``ip``/``nft``; a kernel XFRM backend would implement the same
:class:`HostNetwork` differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Wire(Protocol):
    """Sending on the network.  Every socket behind it carries the engine's firewall mark,
    so that the policy routing rules never steer the engine's own traffic into the TUN."""

    def send_ike(self, data: bytes, local_port: int, remote: tuple[str, int]) -> None:
        """Send one IKE UDP payload from ``local_port`` (500 or 4500) to ``remote``."""

    def send_packets(self, packets: Sequence[bytes]) -> int:
        """Send complete IP packets (ESP, ESP-in-UDP, AH, or bypassed clear traffic) as
        they are, routed by their destination address; returns how many could not be
        sent (no route, too big for the path, buffers full)."""

    def source_for(self, remote: str) -> str | None:
        """The local address the routing table would use towards ``remote``."""

    def path_mtu(self, remote: str) -> int | None:
        """The MTU the kernel knows for the engine's path to ``remote`` (link MTU or a
        learned path MTU), or None."""


class Tun(Protocol):
    """The TUN device: clear packets for the local stack."""

    def write_packets(self, packets: Sequence[bytes]) -> None:
        """Hand decapsulated packets to the kernel."""


@dataclass(frozen=True, slots=True)
class ClearDrop:
    """One restrict rule.  Inbound: clear packets matching it that did not come out of the
    TUN are dropped.  Outbound: packets matching it that would leave by another interface
    than the TUN without the engine's mark are dropped -- which keeps a restrict policy
    closed while no engine runs (after a crash the routes into the TUN are gone, the
    nftables table is not)."""

    version: int
    source: str
    destination: str
    protocol: int = 0
    source_ports: tuple[int, int] | None = None
    destination_ports: tuple[int, int] | None = None
    policy: str = ""
    outbound: bool = False
    accept: bool = False
    """An inbound bypass entry ordered before restrict entries: accept instead of drop."""


@dataclass(frozen=True, slots=True)
class HostConfig:
    """What the host's routing and firewall must look like for the current SPD."""

    routes: frozenset[str]
    """Prefixes steered into the TUN (destinations of outbound protect entries)."""
    clear_drops: tuple[ClearDrop, ...]
    """The nftables rules of restrict policies."""
    default_discard: bool = False
    """``default_action: discard``: clear traffic that no rule accepts is dropped both ways
    (everything is routed into the TUN, where the SPD decides)."""


class HostNetwork(Protocol):
    """Policy routing, firewall and TUN setup: the engine's footprint on the host."""

    def apply(self, config: HostConfig) -> None:
        """Make routes and nftables rules match ``config`` (raises on failure)."""

    def drop_counts(self) -> dict[str, int]:
        """Clear packets the firewall's restrict rules dropped so far, by policy."""
