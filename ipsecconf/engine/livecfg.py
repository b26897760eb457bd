"""The engine's live configuration: SPD rows, peers and keys turned into what the
dataplane and the IKE core use (``esp.spd.Policy`` entries, ``ike.config.ChildConfig``,
peer specs with their pre-shared keys), plus the host routes and restrict rules.

It is built from a :class:`Source` -- the store, or a desired state that an apply is
about to write -- so that an apply can build (and so validate) the new live tables before
touching anything.  Building never does I/O beyond the source's reads.  Pre-shared keys
live in :class:`PeerSpec`/:class:`LiveConfig` fields hidden from reprs.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ipsecconf.engine.certauth import certificates
from ipsecconf.engine.manual import ManualSpec
from ipsecconf.engine.manual import specs as manual_specs
from ipsecconf.engine.ports import ClearDrop, HostConfig
from ipsecconf.errors import IpsecconfError
from ipsecconf.esp.errors import SaConfigError
from ipsecconf.esp.spd import Action, Direction, Level, Policy
from ipsecconf.ike.config import (
    ChildConfig,
    Identity,
    Mode,
    PskLookup,
    PskQuery,
    RetransmitPolicy,
)
from ipsecconf.ike.credentials import Credentials, TrustAnchors
from ipsecconf.model.proposals import Proposal, ProposalError, child_proposals, default_ike, parse
from ipsecconf.model.selectors import ANY_PORT, Selector
from ipsecconf.model.spd import PolicyRow
from ipsecconf.state.store import Store


class LiveConfigError(IpsecconfError):
    """The stored or desired state cannot be turned into live tables."""


@dataclass(frozen=True, slots=True)
class Source:
    """Rows, resources (kind, name) -> data, and a secret reader."""

    rows: list[PolicyRow]
    resources: dict[tuple[str, str], dict[str, Any]]
    secret: Callable[[str], bytes | None] = field(repr=False)


def from_store(store: Store) -> Source:
    """The store's current configuration."""
    rows = [PolicyRow.from_dict(json.loads(p.data)) for p in store.policies()]
    res = {
        (r.kind, r.name): json.loads(r.data)
        for kind in ("peer", "psk", "setting", "cert", "sa")
        for r in store.resources(kind)
    }
    return Source(rows, res, store.secret_value)


def _seconds(value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    raise LiveConfigError(f"not a duration in seconds: {value!r}")


@dataclass(frozen=True, slots=True)
class PeerSpec:
    """An IKE peer as the engine uses it."""

    name: str
    address: str
    local_address: str | None = None
    port: int = 500
    psk: bytes | None = field(default=None, repr=False)
    local_id: Identity | None = None
    remote_id: Identity | None = None
    ike_proposals: tuple[Proposal, ...] = ()
    liveness: float = 30.0
    udp_encap: bool = False
    ike_lifetime: float = 14400.0
    ike_rekey_margin: float = 540.0
    retransmit: RetransmitPolicy | None = None
    """The schedule of unanswered requests, from ``liveness_timeout``; None: the engine's."""
    auth: str = "psk"
    """``psk`` or ``certificate`` (sign with the node's certificate, check the peer's
    chain against the configured roots)."""


@dataclass(frozen=True, slots=True)
class PairSpec:
    """A protect policy pair (one child SA): its rows, child config and peer."""

    name: str
    reqid: int
    child: ChildConfig
    level: Level
    peer: str | None
    """Peer resource name, or ``None``."""
    remote: str | None
    """The IKE peer's address; ``None`` means the packet's destination (seed host policy)."""
    local: str | None
    start_immediate: bool
    lifetime: tuple[float, int, int, float]
    """(hard seconds, hard bytes, hard packets, rekey margin seconds)."""
    replay_window: int
    udp_encap: bool
    digest: str
    """Canonical form of everything above: a change means the live SAs must be redone."""

    def local_for(self, peer: PeerSpec | None, trigger_source: str | None) -> str | None:
        """Our address for this pair's IKE SA: the tunnel's or the peer's; for a host
        policy (transport mode, no peer) the source of the packet that asked, so that
        the outer header of transport mode is the packet's own."""
        local = self.local or (peer.local_address if peer else None)
        if local is None and self.child.mode is Mode.TRANSPORT and self.remote is None:
            return trigger_source
        return local


@dataclass(slots=True)
class LiveConfig:
    """Everything the running engine derives from the configuration."""

    policies: list[Policy]
    default_action: Action
    pairs: dict[str, PairSpec]
    peers: dict[str, PeerSpec]
    psks: dict[str, bytes] = field(repr=False)
    tun_name: str = ""
    credentials: Credentials | None = field(default=None, repr=False)
    manual: dict[str, ManualSpec] = field(default_factory=dict, repr=False)
    """Manual SAs by name, bound to their pairs."""
    """The node's certificate, private key and intermediates, when configured."""
    trust: TrustAnchors | None = None
    """The configured roots, when there are any."""

    def peer_by_address(self, address: str) -> PeerSpec | None:
        """The peer resource whose address is ``address``."""
        for p in self.peers.values():
            if p.address == address:
                return p
        return None

    def psk_for(self, address: str, peer: PeerSpec | None) -> bytes | None:
        """The PSK for a peer: its own ``psk:`` first, then the psk table by address."""
        if peer is not None and peer.psk is not None:
            return peer.psk
        return self.psks.get(address)

    def psk_lookup(self, peer: PeerSpec | None) -> PskLookup:
        """The PSK lookup of one IKE SA (the key is read when the exchange needs it)."""

        def lookup(query: PskQuery) -> bytes | None:
            return self.psk_for(str(query.remote_address), peer)

        return lookup

    def pairs_for_remote(self, address: str) -> list[PairSpec]:
        """The pairs an IKE SA with ``address`` may carry (explicit peer or host policy)."""
        addr = ipaddress.ip_address(address)
        out = []
        for pair in self.pairs.values():
            if pair.remote is not None:
                if pair.remote == address:
                    out.append(pair)
                continue
            for sel in pair.child.selectors:
                net = sel.destination.network
                if net is None or (net.version == addr.version and addr in net):
                    out.append(pair)
                    break
        return out

    def host_config(self) -> HostConfig:
        """Routes into the TUN for every outbound protect entry, and the restrict rules in
        SPD order: an inbound bypass entry ordered before a restrict entry becomes an
        accept rule before its drop rule, as the SPD's first match would decide.

        With ``default_action: discard`` (RFC 4301's closing rule) every destination is
        routed into the TUN, so that the SPD decides on all outbound traffic, and every
        inbound bypass entry is an accept rule before the firewall's final drop."""
        discard = self.default_action is Action.DISCARD
        routes: set[str] = {"0.0.0.0/0", "::/0"} if discard else set()
        drops: list[ClearDrop] = []
        for p in sorted(self.policies, key=Policy.sort_key):
            inbound_bypass = p.action is Action.BYPASS and p.direction is Direction.IN
            if p.action is not Action.PROTECT and not inbound_bypass:
                continue
            for sel in p.selectors:
                if p.direction is Direction.OUT:
                    net = sel.destination.network
                    routes.update([str(net)] if net is not None else ["0.0.0.0/0", "::/0"])
                if inbound_bypass or p.level is Level.RESTRICT:
                    outbound = p.direction is Direction.OUT
                    drops.extend(_clear_drops(p.name, sel, outbound, accept=inbound_bypass))
        # Accept rules only matter before a drop rule (the final one of discard included).
        while drops and drops[-1].accept and not discard:
            drops.pop()
        return HostConfig(frozenset(routes), tuple(drops), default_discard=discard)


def _clear_drops(
    name: str, sel: Selector, outbound: bool, *, accept: bool = False
) -> list[ClearDrop]:
    s, d = sel.source.network, sel.destination.network
    versions = {n.version for n in (s, d) if n is not None} or {4, 6}
    out = []
    for v in sorted(versions):
        anyaddr = "0.0.0.0/0" if v == 4 else "::/0"
        out.append(
            ClearDrop(
                version=v,
                source=str(s) if s is not None else anyaddr,
                destination=str(d) if d is not None else anyaddr,
                protocol=sel.protocol,
                source_ports=sel.source.ports if sel.source.ports != ANY_PORT else None,
                destination_ports=(
                    sel.destination.ports if sel.destination.ports != ANY_PORT else None
                ),
                policy=name,
                outbound=outbound,
                accept=accept,
            )
        )
    return out


def _identity(value: Any) -> Identity | None:
    return Identity.parse(str(value)) if value else None


def _peer(name: str, data: dict[str, Any], psk: bytes | None) -> PeerSpec:
    try:
        proposals = tuple(parse(p, "ike") for p in (data.get("ike_proposals") or [])) or tuple(
            default_ike()
        )
    except ProposalError as exc:
        raise LiveConfigError(f"peer {name}: {exc}") from None
    return PeerSpec(
        name=name,
        address=str(ipaddress.ip_address(data["address"])),
        local_address=data.get("local_address"),
        port=int(data.get("port", 500)),
        psk=psk,
        local_id=_identity(data.get("local_id")),
        remote_id=_identity(data.get("remote_id")),
        ike_proposals=proposals,
        liveness=_seconds(data.get("liveness_interval"), 30.0),
        udp_encap=bool(data.get("udp_encapsulation", False)),
        ike_lifetime=_seconds(data.get("ike_lifetime"), 14400.0),
        ike_rekey_margin=_seconds(data.get("rekey_margin"), 540.0),
        retransmit=_retransmit(data.get("liveness_timeout")),
        auth=str(data.get("auth", "psk")),
    )


def _retransmit(timeout: Any) -> RetransmitPolicy | None:
    """strongSwan's schedule (4 s x 1.8^n, 5 retransmissions: about 161 s in all), scaled
    so that the six waits add up to ``timeout``: the shape, and so its tolerance of a
    congested path early on, stays the same."""
    if timeout is None:
        return None
    default = RetransmitPolicy()
    total = sum(default.base**n for n in range(default.tries + 1))
    return dataclasses.replace(default, timeout=_seconds(timeout, 0.0) / total)


def _esn_word(value: Any) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value or "auto")


def _child(pair: str, row: PolicyRow, selectors: tuple[Selector, ...]) -> ChildConfig:
    proto = row.protocol or "esp"
    try:
        if row.esp_proposals:
            proposals = tuple(parse(p, proto) for p in row.esp_proposals)
        else:
            proposals = tuple(
                child_proposals(
                    proto,
                    row.encryption,
                    row.authentication,
                    pfs_group=row.pfs_group,
                    esn=_esn_word(row.esn),
                )
            )
    except (ProposalError, ValueError, KeyError) as exc:
        raise LiveConfigError(f"policy {pair}: {exc}") from None
    return ChildConfig(
        name=pair,
        selectors=selectors,
        proposals=proposals,
        mode=Mode(row.mode),
        populate_from_packet=row.peer is None and row.tunnel_remote is None,
    )


def build(source: Source, reqids: Callable[[str], int]) -> LiveConfig:
    """The live tables of ``source``; ``reqids`` gives a stable reqid per pair name."""
    peers: dict[str, PeerSpec] = {}
    psks: dict[str, bytes] = {}
    default_action = Action.BYPASS
    for (kind, name), data in source.resources.items():
        if kind == "peer":
            peers[name] = _peer(name, data, source.secret(f"peer.{name}#psk"))
        elif kind == "psk":
            key = source.secret(f"psk.{name}#key")
            if key is not None:
                psks[str(ipaddress.ip_address(data.get("address", name)))] = key
        elif kind == "setting" and name == "default_action":
            default_action = Action(data.get("value", "bypass"))
    by_pair: dict[str, dict[str, PolicyRow]] = {}
    for row in source.rows:
        by_pair.setdefault(row.policy, {})[row.direction] = row
    policies: list[Policy] = []
    pairs: dict[str, PairSpec] = {}
    for name, rows in sorted(by_pair.items()):
        reqid = reqids(name)
        for row in rows.values():
            policies.append(
                Policy(
                    name=row.name,
                    direction=Direction(row.direction),
                    action=Action(row.action),
                    selectors=row.selectors,
                    priority=row.priority,
                    reqid=reqid if row.action == "protect" else 0,
                    level=Level(row.level),
                )
            )
        lead = rows.get("out") or rows.get("in")
        if lead is None or lead.action != "protect":
            continue
        selectors = (
            rows["out"].selectors
            if "out" in rows
            else tuple(s.reversed() for s in rows["in"].selectors)
        )
        pairs[name] = _pair(name, reqid, lead, selectors, peers)
    credentials, trust = certificates(source.resources, source.secret)
    definitions = {name: d for (kind, name), d in source.resources.items() if kind == "sa"}
    try:
        manual = manual_specs(definitions, source.secret, pairs)
    except SaConfigError as exc:
        raise LiveConfigError(str(exc)) from None
    return LiveConfig(
        policies,
        default_action,
        pairs,
        peers,
        psks,
        credentials=credentials,
        trust=trust,
        manual=manual,
    )


def _pair(
    name: str,
    reqid: int,
    row: PolicyRow,
    selectors: tuple[Selector, ...],
    peers: dict[str, PeerSpec],
) -> PairSpec:
    peer = peers.get(row.peer) if row.peer else None
    if row.peer and peer is None:
        raise LiveConfigError(f"policy {name} names peer {row.peer!r}, which does not exist")
    remote = row.tunnel_remote or (peer.address if peer else None)
    if row.mode == "tunnel" and remote is None:
        raise LiveConfigError(f"policy {name}: tunnel mode needs a peer or tunnel.remote")
    local = row.tunnel_local or (peer.local_address if peer else None)
    child = _child(name, row, selectors)
    lifetime = (float(row.lifetime[0]), int(row.lifetime[1]), int(row.lifetime[2]))
    digest = json.dumps(
        [row.to_dict() | {"name": "", "direction": ""}, remote, local, repr(peer)],
        sort_keys=True,
        default=str,
    )
    return PairSpec(
        name=name,
        reqid=reqid,
        child=child,
        level=Level(row.level),
        peer=row.peer,
        remote=remote,
        local=local,
        start_immediate=row.start == "immediate",
        lifetime=(*lifetime, float(row.lifetime[3])),
        replay_window=row.replay_window,
        udp_encap=row.udp_encapsulation,
        digest=digest,
    )


def changed_pairs(old: LiveConfig, new: LiveConfig) -> set[str]:
    """Pairs deleted or changed between two configurations (their SAs must go)."""
    out = {n for n in old.pairs if n not in new.pairs}
    for name, pair in new.pairs.items():
        before = old.pairs.get(name)
        if before is not None and before.digest != pair.digest:
            out.add(name)
    for name, peer in new.peers.items():
        before_peer = old.peers.get(name)
        if before_peer is not None and (before_peer != peer):
            out.update(p.name for p in new.pairs.values() if p.peer == name)
    for address in set(old.psks) | set(new.psks):
        if old.psks.get(address) != new.psks.get(address):
            out.update(p.name for p in new.pairs.values() if p.remote in (address, None))
    return out


def all_names(pairs: Iterable[PairSpec]) -> list[str]:
    """Pair names, sorted (for logs)."""
    return sorted(p.name for p in pairs)
