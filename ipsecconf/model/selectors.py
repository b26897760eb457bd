"""Traffic selectors: address prefixes, upper-layer protocol and port ranges.

An :class:`Endpoint` is one side of a policy (the seed's ``-s``/``-t``): an address
prefix, or any address, and a port range.  The seed's shorthand ``10.0.0.0/16[139]`` is
parsed here; the square brackets are literal, as the man page insists.  A
:class:`Selector` is the full match tuple of one SPD row.

Rules (DESIGN.md): a port without a protocol means TCP and UDP, so such a policy carries
two selectors; protocol 0 (any) never has ports; ports only make sense for TCP, UDP,
SCTP, UDP-Lite and DCCP.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ANY_PORT = (0, 65535)

PROTOCOL_NAMES: dict[str, int] = {
    "any": 0,
    "icmp": 1,
    "igmp": 2,
    "tcp": 6,
    "udp": 17,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "icmpv6": 58,
    "ipv6-icmp": 58,
    "sctp": 132,
    "udplite": 136,
    "dccp": 33,
}
PROTOCOL_WORDS: dict[int, str] = {
    0: "any",
    1: "icmp",
    2: "igmp",
    6: "tcp",
    17: "udp",
    33: "dccp",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "icmpv6",
    132: "sctp",
    136: "udplite",
}
PORT_PROTOCOLS = frozenset({6, 17, 33, 132, 136})


class SelectorError(ValueError):
    """A malformed address, prefix, port or protocol; the message says which part."""


def parse_protocol(value: str | int | None) -> int:
    """An upper-layer protocol by number (0-255) or name; ``None``/``any`` is 0."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise SelectorError(f"protocol must be a number or a name, not {value!r}")
    if isinstance(value, int):
        number = value
    else:
        word = value.strip().lower()
        if word in PROTOCOL_NAMES:
            return PROTOCOL_NAMES[word]
        if not word.isdigit():
            names = ", ".join(sorted(PROTOCOL_NAMES))
            raise SelectorError(f"unknown protocol {value!r}; use a number 0-255 or one of {names}")
        number = int(word)
    if not 0 <= number <= 255:
        raise SelectorError(f"protocol number {number} is outside 0-255")
    return number


def parse_ports(value: str | int | None) -> tuple[int, int]:
    """A port or range (``139``, ``1024-65535``, ``any``) as an inclusive pair."""
    if value is None:
        return ANY_PORT
    if isinstance(value, bool):
        raise SelectorError(f"port must be a number or a range, not {value!r}")
    if isinstance(value, int):
        lo = hi = value
    else:
        text = value.strip().lower()
        if text in ("any", ""):
            return ANY_PORT
        m = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", text)
        if not m:
            raise SelectorError(f"invalid port {value!r}; use a number or a range like 1024-2048")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
    for p in (lo, hi):
        if not 0 <= p <= 65535:
            raise SelectorError(f"port {p} is outside 0-65535")
    if lo > hi:
        raise SelectorError(f"port range {lo}-{hi} is reversed")
    return lo, hi


def parse_prefix(text: str) -> IPNetwork | None:
    """An address or address/prefixlen; ``any`` gives ``None`` (any address, any family)."""
    t = text.strip()
    if t.lower() in ("any", "", "*"):
        return None
    try:
        return ipaddress.ip_network(t, strict=True)
    except ValueError as exc:
        # ip_network's own message for host bits set is the clearest; keep it.
        if "has host bits set" in str(exc):
            net = ipaddress.ip_network(t, strict=False)
            raise SelectorError(
                f"{t} has host bits set; the network is {net} (or write a host address "
                f"without a prefix)"
            ) from None
        raise SelectorError(f"invalid address or prefix {t!r}") from None


_SHORTHAND = re.compile(r"^\s*(?P<addr>[^\[\]\s]*)\s*(?:\[(?P<port>[^\]]*)\])?\s*$")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One side of a selector: a prefix (``None`` = any) and an inclusive port range."""

    network: IPNetwork | None = None
    ports: tuple[int, int] = ANY_PORT

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """Parse the seed's ``address/prefixlen[port]`` shorthand (each part optional)."""
        return _parse_endpoint(text)

    @classmethod
    def _parse(cls, text: str) -> Endpoint:
        m = _SHORTHAND.match(text)
        if not m:
            raise SelectorError(
                f"invalid endpoint {text!r}; write address/prefixlen[port], e.g. 10.0.0.0/16[139]"
            )
        port = m.group("port")
        if port is not None and not port.strip():
            raise SelectorError(f"empty port in brackets in {text!r}")
        return cls(parse_prefix(m.group("addr")), parse_ports(port))

    @property
    def version(self) -> int | None:
        """4, 6, or ``None`` for any address."""
        return self.network.version if self.network is not None else None

    @property
    def has_ports(self) -> bool:
        """True when the port range is narrower than any."""
        return self.ports != ANY_PORT

    @property
    def prefixlen(self) -> int:
        """The prefix length; 0 for any."""
        return self.network.prefixlen if self.network is not None else 0

    def covers(self, other: Endpoint) -> bool:
        """True when every address and port of ``other`` is also in ``self``."""
        if self.network is not None:
            if other.network is None or other.network.version != self.network.version:
                return False
            if not other.network.subnet_of(self.network):  # type: ignore[arg-type]
                return False
        return self.ports[0] <= other.ports[0] and other.ports[1] <= self.ports[1]

    def format_address(self) -> str:
        """The prefix as text, ``any`` when unrestricted."""
        return str(self.network) if self.network is not None else "any"

    def format_port(self) -> str:
        """The port or range, ``any`` when unrestricted."""
        lo, hi = self.ports
        if (lo, hi) == ANY_PORT:
            return "any"
        return str(lo) if lo == hi else f"{lo}-{hi}"

    def __str__(self) -> str:
        text = self.format_address()
        return text if not self.has_ports else f"{text}[{self.format_port()}]"


@dataclass(frozen=True, slots=True)
class Selector:
    """The match tuple of one SPD row: source, destination and upper-layer protocol."""

    source: Endpoint
    destination: Endpoint
    protocol: int = 0

    def covers(self, other: Selector) -> bool:
        """True when every packet ``other`` matches is matched by ``self`` too."""
        return (
            (self.protocol == 0 or self.protocol == other.protocol)
            and self.source.covers(other.source)
            and self.destination.covers(other.destination)
        )

    def reversed(self) -> Selector:
        """The mirror selector: source and destination swapped."""
        return Selector(self.destination, self.source, self.protocol)

    def specificity(self) -> tuple[int, int, int]:
        """Sort key, most specific first: prefixes, then a protocol, then port width."""
        span = (self.source.ports[1] - self.source.ports[0]) + (
            self.destination.ports[1] - self.destination.ports[0]
        )
        return (
            -(self.source.prefixlen + self.destination.prefixlen),
            0 if self.protocol else 1,
            span,
        )


@functools.lru_cache(maxsize=1 << 16)
def _parse_endpoint(text: str) -> Endpoint:
    # Endpoints are immutable and configurations repeat them (every policy towards the
    # same server): parse each text once.
    return Endpoint._parse(text)
