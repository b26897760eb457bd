"""The desired state of a node, as pydantic models: policies, peers, keys, certificates.

This module owns the shape of the YAML (its JSON Schema is generated from these classes)
and the field-level rules.  Rules that relate several fields or resources (AH with a
cipher, a PSK peer without a key, shadowed policies...) are checked by
:mod:`ipsecconf.config.checks`, which can report every problem at once with its position.

Every option of the seed's ``ipsec policy add`` has a field: ``source`` (-s),
``destination`` (-t), ``protocol`` (-p, plus ``discard``), ``encryption`` (-e),
``authentication`` (-a), ``direction`` (-d), ``mirror`` (-m disables), ``ip_protocol``
(-f) and ``level`` (-l).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from ipsecconf.model.secrets import SecretField
from ipsecconf.model.selectors import Endpoint
from ipsecconf.model.types import (
    Authentication,
    ByteSize,
    DhGroupName,
    Duration,
    Encryption,
    EndpointField,
    IdentityField,
    IPAddr,
    IpProtocol,
    Name,
)

MAX_ROOTS = 15


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Lifetime(_Model):
    """Hard limits of an SA and the margin before them at which it is rekeyed (soft)."""

    time: Duration = Field(3600, description="hard lifetime; 0 = unlimited")
    bytes: ByteSize = Field(0, description="hard limit in bytes; 0 = unlimited")
    packets: int = Field(0, ge=0, description="hard limit in packets; 0 = unlimited")
    rekey_margin: Duration = Field(
        540, description="rekey this long before the hard time limit (soft lifetime)"
    )


class Tunnel(_Model):
    """Outer addresses of a tunnel-mode SA."""

    local: IPAddr | None = Field(None, description="local outer address (default: routing)")
    remote: IPAddr | None = Field(None, description="remote outer address (default: the peer)")


PolicyProtocol = Literal["esp", "ah", "none", "discard"]
Level = Literal["restrict", "permit"]


class PolicySettings(_Model):
    """The policy fields that ``defaults`` may set for every policy."""

    direction: Literal["in", "out"] = Field("out", description="the seed's -d")
    protocol: PolicyProtocol = Field(
        "esp", description="the seed's -p: esp, ah, none (bypass: send in clear) or discard"
    )
    encryption: Encryption = Field("auto", description="the seed's -e; auto = best negotiated")
    authentication: Authentication = Field(
        "auto", description="the seed's -a; auto = best negotiated (the seed's -a null)"
    )
    esp_proposals: list[str] | None = Field(
        None, description="explicit ESP/AH proposals, e.g. aes128gcm-x25519; overrides the words"
    )
    level: Level = Field("restrict", description="the seed's -l")
    mirror: bool = Field(True, description="also create the opposite-direction policy")
    ip_protocol: IpProtocol = Field(0, description="the seed's -f; 0/any = every protocol")
    priority: int | None = Field(
        None, ge=0, le=65535, description="lower wins; default: by specificity (DESIGN.md)"
    )
    mode: Literal["transport", "tunnel"] = "transport"
    peer: Name | None = Field(
        None, description="IKE peer by name; default: the packet's remote address"
    )
    pfs_group: DhGroupName = Field(None, description="DH group for PFS on rekey, none = off")
    lifetime: Lifetime = Field(default_factory=Lifetime)
    replay_window: int = Field(64, ge=0, le=1 << 20)
    esn: Annotated[
        Literal["auto", "yes", "no"],
        WithJsonSchema({"anyOf": [{"enum": ["auto", "yes", "no"]}, {"type": "boolean"}]}),
    ] = Field("auto", description="extended sequence numbers; auto offers no-ESN first")
    udp_encapsulation: bool = Field(False, description="force ESP-in-UDP (port 4500)")
    start: Literal["on_demand", "immediate"] = Field(
        "on_demand", description="negotiate on the first packet, or as soon as applied"
    )

    @field_validator("esn", mode="before")
    @classmethod
    def _esn_bool(cls, v: Any) -> Any:
        # YAML reads yes/no/true/false as booleans in some dialects.
        if isinstance(v, bool):
            return "yes" if v else "no"
        return v


class PolicyDefaults(PolicySettings):
    """``defaults:`` applied to every policy that does not set the field itself."""


class Policy(PolicySettings):
    """One security policy, as the seed's ``ipsec policy add`` describes it."""

    name: Name
    description: str | None = None
    source: EndpointField = Field(
        default_factory=Endpoint, description="the seed's -s: address/prefixlen[port]"
    )
    destination: EndpointField = Field(
        default_factory=Endpoint, description="the seed's -t: address/prefixlen[port]"
    )
    tunnel: Tunnel | None = None


class Peer(_Model):
    """An IKE peer."""

    name: Name
    address: IPAddr
    local_address: IPAddr | None = None
    port: int = Field(500, ge=1, le=65535)
    ike_version: Literal[1, 2] = 2
    auth: Literal["psk", "certificate", "kerberos"] = Field(
        "psk", description="how this node authenticates itself"
    )
    remote_auth: list[Literal["psk", "certificate"]] | None = Field(
        None, description="methods accepted from the peer (default: the same as auth)"
    )
    psk: SecretField | None = Field(None, description="default: psks/psk_file by address")
    local_id: IdentityField | None = None
    remote_id: IdentityField | None = None
    ike_proposals: list[str] | None = Field(None, description="default: auto, strongest first")
    ike_lifetime: Duration = 14400
    rekey_margin: Duration = 540
    liveness_interval: Duration = Field(30, description="dead peer detection; 0 = off")
    liveness_timeout: Duration | None = Field(
        None,
        description=(
            "how long an unanswered IKE request (a liveness check included) is retransmitted "
            "before the peer is declared dead; default: strongSwan's schedule, about 160 s"
        ),
    )
    udp_encapsulation: bool = False

    @field_validator("liveness_timeout")
    @classmethod
    def _timeout_floor(cls, value: int | None) -> int | None:
        # Six waits share it: under 6 s the first retransmission would come in well under
        # a second, faster than a loaded peer answers an IKE request.
        if value is not None and value < 6:
            raise ValueError("must be at least 6 seconds")
        return value


class PskEntry(_Model):
    """A pre-shared key for a peer address, like one line of the seed's psk.txt."""

    address: IPAddr
    key: SecretField


class Certificates(_Model):
    """The node's own certificate and key, and the trusted roots (the seed's cert set)."""

    certificate: str | None = Field(None, description="PEM file of the node's certificate")
    private_key: SecretField | None = Field(None, description="PEM private key (file:PATH)")
    intermediates: list[str] = Field(default_factory=list)
    roots: list[str] = Field(default_factory=list, description="1 to 15 PEM root certificates")


class ManualSa(_Model):
    """A manually keyed SA (rare; no IKE)."""

    name: Name
    spi: Annotated[
        int,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "integer", "minimum": 256, "maximum": 0xFFFFFFFF},
                    {"type": "string", "pattern": "^(0[xX][0-9a-fA-F]+|[0-9]+)$"},
                ]
            }
        ),
    ] = Field(ge=256, le=0xFFFFFFFF, description="256..2^32-1; hex strings allowed")
    source: IPAddr
    destination: IPAddr
    protocol: Literal["esp", "ah"] = "esp"
    mode: Literal["transport", "tunnel"] = "transport"
    encryption: Encryption = "null"
    encryption_key: SecretField | None = None
    authentication: Authentication = "none"
    authentication_key: SecretField | None = None
    replay_window: int = Field(64, ge=0, le=1 << 20)
    esn: bool = False
    udp_encapsulation: bool = False

    @field_validator("spi", mode="before")
    @classmethod
    def _hex_spi(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                return int(v, 0)
            except ValueError:
                raise ValueError(f"invalid SPI {v!r}; write a number or 0x hex") from None
        return v


class Document(_Model):
    """The whole desired state of a node (all YAML files merged)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="ipsecconf desired state",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    version: Literal[1] = 1
    vars: dict[str, Any] = Field(
        default_factory=dict, description="template variables (jinja2), see --var"
    )
    default_action: Literal["bypass", "discard"] = Field(
        "bypass", description="what happens to traffic no policy matches"
    )
    defaults: PolicyDefaults = Field(default_factory=PolicyDefaults)
    certificates: Certificates | None = None
    peers: list[Peer] = Field(default_factory=list)
    psks: list[PskEntry] = Field(default_factory=list)
    psk_file: Annotated[
        list[str],
        WithJsonSchema(
            {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
        ),
    ] = Field(default_factory=list, description="files in the seed's psk.txt format: address key")
    policies: list[Policy] = Field(default_factory=list)
    manual_sas: list[ManualSa] = Field(default_factory=list)

    @field_validator("psk_file", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v
