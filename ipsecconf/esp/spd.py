"""The user-space SPD: an ordered policy table with protect, bypass and discard.

Order: the one total order of :func:`ipsecconf.model.spd.order_key` (``priority``, lower
first, a missing one counting as the default; then more specific selectors; then the
name), so that the planner, ``show`` and this table agree.  The first matching entry in
that order decides (RFC 4301 section 4.4.1).  Traffic no entry
matches gets the table's default action: bypass (the seed's filer talks in clear) or, with
``default_action: discard``, discard.

Lookup is not a linear scan.  Entries are grouped by (source prefix length, destination
prefix length) per direction and IP version -- a tuple-space search: each group is a hash
table keyed by the masked address pair, holding its entries in order.  A lookup probes the
groups in order of their best entry and stops as soon as no remaining group can beat the
match found, so its cost depends on the number of distinct prefix-length pairs, not on
the number of policies.  :meth:`PolicyTable.scan` is the plain first-match scan the index
must agree with (the tests check both on random policy sets).
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ipsecconf.esp.errors import SaConfigError
from ipsecconf.model.selectors import ANY_PORT, Selector
from ipsecconf.model.spd import order_key

_BITS = {4: 32, 6: 128}


class Direction(enum.StrEnum):
    """Which traffic a policy applies to."""

    OUT = "out"
    IN = "in"


class Action(enum.StrEnum):
    """What the SPD does with matching traffic (RFC 4301: PROTECT, BYPASS, DISCARD)."""

    PROTECT = "protect"
    BYPASS = "bypass"
    DISCARD = "discard"


class Level(enum.StrEnum):
    """The seed's levels: restrict drops while no Mature SA exists; permit sends in clear
    (and accepts clear from the peer) only after a negotiation has failed."""

    RESTRICT = "restrict"
    PERMIT = "permit"


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """One SPD row (one direction of a mirrored pair)."""

    name: str
    """Unique name, e.g. ``cifs.out``."""
    direction: Direction
    """Outbound or inbound."""
    action: Action
    """Protect, bypass or discard."""
    selectors: tuple[Selector, ...]
    """Match tuples in this direction's orientation (source = sender); any one matches."""
    priority: int | None = None
    """Explicit order, lower first; ``None`` counts as ``model.spd.DEFAULT_PRIORITY``."""
    reqid: int = 0
    """Links a protect policy to its SAs in the SAD."""
    level: Level = Level.RESTRICT
    """What to do while no SA exists."""

    def sort_key(self) -> tuple[int, int, int, int, str]:
        """The SPD's total order, defined once in :func:`ipsecconf.model.spd.order_key`."""
        return order_key(self.priority, self.selectors, self.name)


@dataclass(frozen=True, slots=True)
class CompiledSelector:
    """A selector of one IP family as integers: what the fast paths compare."""

    version: int
    src_net: int
    src_shift: int
    dst_net: int
    dst_shift: int
    proto: int
    sp_lo: int
    sp_hi: int
    dp_lo: int
    dp_hi: int

    def matches(self, src: int, dst: int, proto: int, sport: int, dport: int) -> bool:
        """True when the flow (of this selector's family) matches."""
        return (
            src >> self.src_shift == self.src_net
            and dst >> self.dst_shift == self.dst_net
            and (self.proto == 0 or self.proto == proto)
            and self.sp_lo <= sport <= self.sp_hi
            and self.dp_lo <= dport <= self.dp_hi
        )


def _ports(ports: tuple[int, int]) -> tuple[int, int]:
    # ANY also matches opaque ports (-1: non-initial fragments, ICMP, no ports at all).
    return (-1, 65535) if ports == ANY_PORT else ports


def compile_selector(sel: Selector) -> list[CompiledSelector]:
    """One compiled form per IP family the selector can match (two for any/any)."""
    versions = {n.version for n in (sel.source.network, sel.destination.network) if n}
    if len(versions) > 1:
        return []  # an IPv4 source with an IPv6 destination never matches anything
    out = []
    for version in sorted(versions) or [4, 6]:
        bits = _BITS[version]
        s, d = sel.source.network, sel.destination.network
        s_shift = bits - s.prefixlen if s else bits
        d_shift = bits - d.prefixlen if d else bits
        sp, dp = _ports(sel.source.ports), _ports(sel.destination.ports)
        out.append(
            CompiledSelector(
                version,
                int(s.network_address) >> s_shift if s else 0,
                s_shift,
                int(d.network_address) >> d_shift if d else 0,
                d_shift,
                sel.protocol,
                sp[0],
                sp[1],
                dp[0],
                dp[1],
            )
        )
    return out


# An index entry: (order, proto, sport lo, hi, dport lo, hi, policy).
_Entry = tuple[int, int, int, int, int, int, Policy]


@dataclass(slots=True)
class _Group:
    min_order: int
    src_shift: int
    dst_shift: int
    key_bits: int
    table: dict[int, list[_Entry]] = field(default_factory=dict)


class PolicyTable:
    """The ordered SPD with an index for outbound and inbound lookups."""

    def __init__(self, policies: Iterable[Policy] = (), *, default_action: Action = Action.BYPASS):
        self.generation = 0
        """Counts changes, for the caches of lookups built on the table."""
        self.default_action = default_action
        self._policies: dict[str, Policy] = {}
        self._ordered: list[Policy] = []
        self._compiled: dict[str, list[CompiledSelector]] = {}
        self._index: dict[tuple[Direction, int], list[_Group]] = {}
        self._dirty = False
        for p in policies:
            self.add(p)

    @property
    def default_action(self) -> Action:
        """Applied when no entry matches."""
        return self._default_action

    @default_action.setter
    def default_action(self, action: Action) -> None:
        if action is Action.PROTECT:
            raise SaConfigError("the default action is bypass or discard, never protect")
        self._default_action = action
        self.generation += 1

    # -- table maintenance ---------------------------------------------------------
    def add(self, policy: Policy) -> None:
        """Add a policy; names are unique."""
        if policy.name in self._policies:
            raise SaConfigError(f"policy {policy.name!r} already exists")
        self._policies[policy.name] = policy
        self._compiled[policy.name] = [c for s in policy.selectors for c in compile_selector(s)]
        self._dirty = True
        self.generation += 1

    def remove(self, name: str) -> Policy:
        """Delete a policy by name and return it."""
        policy = self._policies.pop(name)
        del self._compiled[name]
        self._dirty = True
        self.generation += 1
        return policy

    def get(self, name: str) -> Policy | None:
        """The policy named ``name``."""
        return self._policies.get(name)

    def __len__(self) -> int:
        return len(self._policies)

    def __iter__(self) -> Iterator[Policy]:
        """Policies in match order."""
        self._refresh()
        return iter(self._ordered)

    def _refresh(self) -> None:
        if not self._dirty:
            return
        self._ordered = sorted(self._policies.values(), key=Policy.sort_key)
        index: dict[tuple[Direction, int], dict[tuple[int, int], _Group]] = {}
        for order, policy in enumerate(self._ordered):
            for c in self._compiled[policy.name]:
                groups = index.setdefault((policy.direction, c.version), {})
                g = groups.get((c.src_shift, c.dst_shift))
                if g is None:
                    key_bits = _BITS[c.version] - c.dst_shift
                    g = groups[(c.src_shift, c.dst_shift)] = _Group(
                        order, c.src_shift, c.dst_shift, key_bits
                    )
                key = (c.src_net << g.key_bits) | c.dst_net
                entry = (order, c.proto, c.sp_lo, c.sp_hi, c.dp_lo, c.dp_hi, policy)
                bucket = g.table.setdefault(key, [])
                if not bucket or bucket[-1] != entry:
                    bucket.append(entry)
        self._index = {k: sorted(v.values(), key=lambda g: g.min_order) for k, v in index.items()}
        self._dirty = False

    # -- lookups -------------------------------------------------------------------
    def lookup(
        self,
        direction: Direction,
        version: int,
        src: int,
        dst: int,
        proto: int,
        sport: int,
        dport: int,
    ) -> Policy | None:
        """The first policy in order matching the flow, or ``None``.  Addresses are ints;
        ports are -1 when opaque or absent."""
        if self._dirty:
            self._refresh()
        groups = self._index.get((direction, version))
        if not groups:
            return None
        best: Policy | None = None
        best_order = 1 << 62
        for g in groups:
            if g.min_order >= best_order:
                break
            bucket = g.table.get(((src >> g.src_shift) << g.key_bits) | (dst >> g.dst_shift))
            if bucket is None:
                continue
            for order, p, sl, sh, dl, dh, policy in bucket:
                if order >= best_order:
                    break
                if (p == 0 or p == proto) and sl <= sport <= sh and dl <= dport <= dh:
                    best, best_order = policy, order
                    break
        return best

    def scan(
        self,
        direction: Direction,
        version: int,
        src: int,
        dst: int,
        proto: int,
        sport: int,
        dport: int,
    ) -> Policy | None:
        """The plain first-match linear scan (the reference :meth:`lookup` must equal)."""
        self._refresh()
        for policy in self._ordered:
            if policy.direction is not direction:
                continue
            for c in self._compiled[policy.name]:
                if c.version == version and c.matches(src, dst, proto, sport, dport):
                    return policy
        return None

    def lookup_addresses(
        self,
        direction: Direction,
        src: str,
        dst: str,
        proto: int = 0,
        sport: int = -1,
        dport: int = -1,
    ) -> Policy | None:
        """:meth:`lookup` with textual addresses (convenience for tools and tests)."""
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        if s.version != d.version:
            return None
        return self.lookup(direction, s.version, int(s), int(d), proto, sport, dport)
