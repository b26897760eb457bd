"""What the engine needs around an IKE SA: datagrams out, and routing datagrams in.

:func:`route` reads the IKE header of an incoming datagram (with or without the non-ESP
marker) so that the engine can find the :class:`~ipsecconf.ike.sa.IkeSa` by its SPIs, or
see that it starts a new responder SA (then :class:`~ipsecconf.ike.gate.IkeResponderGate`
decides whether one may be created).
"""

from __future__ import annotations

from dataclasses import dataclass

from ipsecconf.crypto.dh import Rng
from ipsecconf.ike.constants import NON_ESP_MARKER, ExchangeType
from ipsecconf.ike.errors import LocalProtocolError, RemoteProtocolError
from ipsecconf.ike.message import pull_header

Address = tuple[str, int]


@dataclass(slots=True, unsafe_hash=True)
class Datagram:
    """One UDP payload to send from ``local_port`` to ``remote`` (a value: not frozen
    only because a frozen dataclass costs a call per field to build)."""

    data: bytes
    remote: Address
    local_port: int


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """A child SA pair as this IKE SA knows it (introspection for the engine and tests)."""

    name: str
    spi_in: int
    spi_out: int
    protocol: int
    state: str


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """What the engine needs to find the IKE SA of an incoming datagram."""

    spi_i: bytes
    spi_r: bytes
    exchange: int
    is_response: bool
    from_initiator: bool
    message_id: int

    @property
    def is_new_sa(self) -> bool:
        """An IKE_SA_INIT request: a new responder SA may be created for it."""
        return (
            self.exchange == ExchangeType.IKE_SA_INIT
            and not self.is_response
            and self.spi_r == bytes(8)
            and self.message_id == 0
        )


def random_spi(rng: Rng) -> int:
    """A random child SPI above 255 (RFC 4303 reserves 1-255)."""
    for _ in range(64):
        spi = int.from_bytes(rng(4), "big")
        if spi > 255:
            return spi
    raise LocalProtocolError("the rng gave no usable SPI")  # pragma: no cover


def route(data: bytes) -> RouteInfo | None:
    """The SPIs and kind of an IKE datagram (with or without non-ESP marker), or ``None``."""
    if data.startswith(NON_ESP_MARKER):
        data = data[4:]
    try:
        header = pull_header(data)
    except RemoteProtocolError:
        return None
    return RouteInfo(
        header.spi_i,
        header.spi_r,
        header.exchange,
        header.is_response,
        header.from_initiator,
        header.message_id,
    )
