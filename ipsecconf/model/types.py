"""Field types of the desired-state model: parsing of the words and shorthands users write.

Each type here is an ``Annotated`` pydantic type whose validator turns the YAML value
into a plain value object and whose JSON Schema says what may be written.  Errors are
``ValueError``s with a message that names the bad value and the valid choices; pydantic
attaches the location, the config layer turns it into ``file:line:col``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from ipsecconf.model import algorithms as alg
from ipsecconf.model.selectors import (
    ANY_PORT,
    Endpoint,
    IPAddress,
    SelectorError,
    parse_ports,
    parse_prefix,
    parse_protocol,
)

# -- names ---------------------------------------------------------------------------

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"a name must be a string, not {type(value).__name__}")
    if not NAME_RE.match(value):
        raise ValueError(
            f"invalid name {value!r}: use 1-63 letters, digits, '-' or '_', starting with a "
            f"letter or digit (the planner appends .in/.out)"
        )
    return value


Name = Annotated[
    str,
    BeforeValidator(_name),
    WithJsonSchema({"type": "string", "pattern": NAME_RE.pattern}),
]

# -- durations and sizes -------------------------------------------------------------

_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdSMHD]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 30s, 10m, 1h, 1d")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return value
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return int(m.group(1)) * _UNITS[m.group(2).lower()]
    raise ValueError(f"invalid duration {value!r}; write seconds or 30s, 10m, 1h, 1d")


Duration = Annotated[
    int,
    BeforeValidator(_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": _DURATION_RE.pattern},
            ],
            "description": "seconds, or a number with s, m, h or d",
        }
    ),
]

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgtKMGT]?)[iI]?[bB]?\s*$")
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string like 512M, 4G")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if isinstance(value, str):
        m = _SIZE_RE.match(value)
        if m:
            return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
    raise ValueError(f"invalid size {value!r}; write bytes or a number with K, M, G or T")


ByteSize = Annotated[
    int,
    BeforeValidator(_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": _SIZE_RE.pattern},
            ]
        }
    ),
]

# -- addresses, endpoints, protocols -------------------------------------------------


def _ip(value: Any) -> IPAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    if not isinstance(value, str):
        raise ValueError(f"an IP address must be a string, not {type(value).__name__}")
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"invalid IP address {value!r}") from None


IPAddr = Annotated[
    IPAddress,
    BeforeValidator(_ip),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "an IPv4 or IPv6 address"}),
]


def _endpoint(value: Any) -> Endpoint:
    try:
        if isinstance(value, Endpoint):
            return value
        if value is None:
            return Endpoint()
        if isinstance(value, str):
            return Endpoint.parse(value)
        if isinstance(value, dict):
            unknown = set(value) - {"address", "port"}
            if unknown:
                raise ValueError(
                    f"unknown key {sorted(unknown)[0]!r} in endpoint; use address and port"
                )
            address = value.get("address")
            if address is not None and not isinstance(address, str):
                raise ValueError("endpoint address must be a string like 10.0.0.0/16")
            port = value.get("port")
            if port is not None and not isinstance(port, int | str):
                raise ValueError("endpoint port must be a number or a range like 1024-2048")
            return Endpoint(parse_prefix(address or "any"), parse_ports(port))
    except SelectorError as exc:
        raise ValueError(str(exc)) from None
    raise ValueError(
        "an endpoint is address/prefixlen[port] (e.g. 10.0.0.0/16[139]) or "
        "{address: ..., port: ...}"
    )


EndpointField = Annotated[
    Endpoint,
    BeforeValidator(_endpoint),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "description": "address/prefixlen[port], e.g. 10.0.0.0/16[139], or any",
                },
                {
                    "type": "object",
                    "properties": {
                        "address": {"type": "string"},
                        "port": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                    },
                    "additionalProperties": False,
                },
            ]
        }
    ),
]


def _protocol(value: Any) -> int:
    try:
        return parse_protocol(value)
    except SelectorError as exc:
        raise ValueError(str(exc)) from None


IpProtocol = Annotated[
    int,
    BeforeValidator(_protocol),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": 255},
                {"type": "string", "description": "tcp, udp, icmp, any, ... or a number"},
            ]
        }
    ),
]

# -- algorithm words -----------------------------------------------------------------


def _encryption(value: Any) -> str:
    # YAML reads a bare ``null`` as None: the seed's -e null (ESP-NULL) is meant.
    if value is None:
        return "null"
    if not isinstance(value, str):
        raise ValueError(f"encryption must be a word, not {value!r}")
    word = value.strip().lower()
    if word == "auto":
        return "auto"
    try:
        return alg.cipher(word).name
    except alg.UnknownAlgorithm:
        raise ValueError(
            f"unknown encryption algorithm {value!r}; valid: auto, {', '.join(alg.CIPHERS)}"
        ) from None


Encryption = Annotated[
    str,
    BeforeValidator(_encryption),
    WithJsonSchema({"enum": ["auto", *alg.CIPHERS], "default": "auto"}),
]


def _authentication(value: Any) -> str:
    if value is None or (isinstance(value, str) and value.strip().lower() == "null"):
        raise ValueError(
            "authentication: null is ambiguous in YAML; write auto for the best negotiated "
            "algorithm (the seed's -a null) or none for no integrity (AEAD ciphers only)"
        )
    if not isinstance(value, str):
        raise ValueError(f"authentication must be a word, not {value!r}")
    word = value.strip().lower()
    if word == "auto":
        return "auto"
    try:
        return alg.integrity(word).name
    except alg.UnknownAlgorithm:
        raise ValueError(
            f"unknown authentication algorithm {value!r}; valid: auto, {', '.join(alg.INTEGRITIES)}"
        ) from None


Authentication = Annotated[
    str,
    BeforeValidator(_authentication),
    WithJsonSchema({"enum": ["auto", *alg.INTEGRITIES], "default": "auto"}),
]


def _dh(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return None
    if isinstance(value, bool):
        raise ValueError("a DH group is a name like ecp256 or a number like 19")
    try:
        return alg.dh_group(value).name
    except alg.UnknownAlgorithm:
        raise ValueError(
            f"unknown DH group {value!r}; valid: none, {', '.join(alg.DH_GROUPS)} "
            f"(or their IANA numbers)"
        ) from None


DhGroupName = Annotated[
    str | None,
    BeforeValidator(_dh),
    WithJsonSchema(
        {"anyOf": [{"enum": ["none", *alg.DH_GROUPS]}, {"type": "integer"}, {"type": "null"}]}
    ),
]

# -- identities ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """An IKE identity (RFC 7296 3.5): kind ``ip``, ``fqdn``, ``email`` or ``dn``."""

    kind: str
    value: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> Identity:
        """``ip:``/``fqdn:``/``email:``/``dn:`` prefixes, or guessed from the shape."""
        t = text.strip()
        if not t:
            raise ValueError("an identity cannot be empty")
        kind, sep, rest = t.partition(":")
        if sep and kind.lower() in ("ip", "fqdn", "email", "dn"):
            kind = kind.lower()
            if kind == "ip":
                try:
                    rest = str(ipaddress.ip_address(rest.strip()))
                except ValueError:
                    raise ValueError(f"identity {t!r}: {rest!r} is not an IP address") from None
            if not rest.strip():
                raise ValueError(f"identity {t!r} has no value after {kind}:")
            return cls(kind, rest.strip())
        try:
            return cls("ip", str(ipaddress.ip_address(t)))
        except ValueError:
            pass
        if "=" in t:
            return cls("dn", t)
        if "@" in t and not t.startswith("@"):
            return cls("email", t)
        return cls("fqdn", t.lstrip("@"))


def _identity(value: Any) -> Identity:
    if isinstance(value, Identity):
        return value
    if not isinstance(value, str):
        raise ValueError("an identity is a string: an IP, a FQDN, an email or a DN")
    return Identity.parse(value)


IdentityField = Annotated[
    Identity,
    BeforeValidator(_identity),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "ip:, fqdn:, email: or dn: prefix, or guessed: "
            "198.51.100.1, host.example.org, user@example.org, CN=host,O=Example",
        }
    ),
]

__all__ = [
    "ANY_PORT",
    "Authentication",
    "ByteSize",
    "DhGroupName",
    "Duration",
    "Encryption",
    "EndpointField",
    "IPAddr",
    "Identity",
    "IdentityField",
    "IpProtocol",
    "Name",
]
