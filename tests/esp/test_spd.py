"""SPD: the indexed lookup equals a plain first-match scan on random overlapping policy
sets (hypothesis), and the DESIGN.md order (priority, specificity, name)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipsecconf.esp.errors import SaConfigError
from ipsecconf.esp.spd import Action, Direction, Policy, PolicyTable
from ipsecconf.model.selectors import ANY_PORT, Endpoint, Selector

# Small address pools so that random prefixes overlap a lot.
V4_BASES = ["198.51.100.0", "203.0.113.0", "198.51.100.128"]
V6_BASES = ["2001:db8::", "2001:db8:0:1::", "2001:db8:ffff::"]


@st.composite
def networks(draw: st.DrawFn, version: int):
    base = draw(st.sampled_from(V4_BASES if version == 4 else V6_BASES))
    bits = 32 if version == 4 else 128
    plen = draw(
        st.sampled_from([0, 8, 16, 24, 25, 28, 32] if version == 4 else [0, 32, 48, 64, 120, 128])
    )
    host = draw(st.integers(0, 255))
    addr = int(ipaddress.ip_address(base)) + host
    net = ipaddress.ip_network((addr >> (bits - plen) << (bits - plen), plen))
    return None if plen == 0 and draw(st.booleans()) else net


ports = st.one_of(
    st.just(ANY_PORT),
    st.tuples(st.integers(0, 20), st.integers(0, 20)).map(lambda t: (min(t), max(t))),
    st.integers(0, 20).map(lambda p: (p, p)),
)


@st.composite
def selectors(draw: st.DrawFn) -> Selector:
    version = draw(st.sampled_from([4, 6]))
    proto = draw(st.sampled_from([0, 6, 17, 1]))
    src_ports = draw(ports) if proto in (6, 17) else ANY_PORT
    dst_ports = draw(ports) if proto in (6, 17) else ANY_PORT
    src = Endpoint(draw(networks(version)), src_ports)
    dst = Endpoint(draw(networks(version)), dst_ports)
    return Selector(src, dst, proto)


@st.composite
def policy_sets(draw: st.DrawFn) -> list[Policy]:
    n = draw(st.integers(1, 40))
    out = []
    for i in range(n):
        sels = tuple(draw(st.lists(selectors(), min_size=1, max_size=2)))
        out.append(
            Policy(
                name=f"p{i:03d}",
                direction=draw(st.sampled_from([Direction.OUT, Direction.IN])),
                action=draw(st.sampled_from(list(Action))),
                selectors=sels,
                priority=draw(st.one_of(st.none(), st.integers(0, 5))),
            )
        )
    return out


@st.composite
def probes(draw: st.DrawFn):
    version = draw(st.sampled_from([4, 6]))
    bases = V4_BASES if version == 4 else V6_BASES
    src = int(ipaddress.ip_address(draw(st.sampled_from(bases)))) + draw(st.integers(0, 255))
    dst = int(ipaddress.ip_address(draw(st.sampled_from(bases)))) + draw(st.integers(0, 255))
    proto = draw(st.sampled_from([6, 17, 1, 50]))
    sport = draw(st.integers(-1, 22)) if proto in (6, 17) else -1
    dport = draw(st.integers(-1, 22)) if proto in (6, 17) else -1
    return draw(st.sampled_from(list(Direction))), version, src, dst, proto, sport, dport


def _plain_first_match(policies, direction, version, src, dst, proto, sport, dport):
    """An independent reference: sort by the documented key, test each selector with
    ipaddress membership, take the first hit."""
    klass = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    s_addr, d_addr = klass(src), klass(dst)

    def port_ok(rng, p):
        return rng == ANY_PORT or (p >= 0 and rng[0] <= p <= rng[1])

    def ep_ok(ep, addr, p):
        if ep.network is not None and (ep.network.version != version or addr not in ep.network):
            return False
        return port_ok(ep.ports, p)

    for pol in sorted(policies, key=Policy.sort_key):
        if pol.direction is not direction:
            continue
        for sel in pol.selectors:
            if sel.protocol not in (0, proto):
                continue
            if ep_ok(sel.source, s_addr, sport) and ep_ok(sel.destination, d_addr, dport):
                return pol
    return None


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_sets(), st.lists(probes(), min_size=1, max_size=40))
def test_indexed_lookup_equals_first_match_scan(policies, flows) -> None:
    table = PolicyTable(policies)
    for flow in flows:
        expected = _plain_first_match(policies, *flow)
        assert table.scan(*flow) is expected
        assert table.lookup(*flow) is expected


def _sel(src: str, dst: str, proto: int = 0, sport=ANY_PORT, dport=ANY_PORT) -> Selector:
    return Selector(
        Endpoint(Endpoint.parse(src).network, sport),
        Endpoint(Endpoint.parse(dst).network, dport),
        proto,
    )


def test_order_priority_then_specificity_then_name() -> None:
    wide = Policy(
        name="a-wide",
        direction=Direction.OUT,
        action=Action.BYPASS,
        selectors=(_sel("198.51.100.0/24", "203.0.113.0/24"),),
    )
    narrow = Policy(
        name="z-narrow",
        direction=Direction.OUT,
        action=Action.PROTECT,
        selectors=(_sel("198.51.100.7", "203.0.113.0/24"),),
    )
    tie = Policy(
        name="b-tie",
        direction=Direction.OUT,
        action=Action.DISCARD,
        selectors=(_sel("198.51.100.7", "203.0.113.0/24"),),
    )
    table = PolicyTable([wide, narrow, tie])
    got = table.lookup_addresses(Direction.OUT, "198.51.100.7", "203.0.113.9", 6, 1, 2)
    assert got is tie  # same specificity as z-narrow, name breaks the tie
    pinned = Policy(
        name="zz",
        direction=Direction.OUT,
        action=Action.BYPASS,
        priority=10,
        selectors=(_sel("0.0.0.0/0", "0.0.0.0/0"),),
    )
    table.add(pinned)
    assert table.lookup_addresses(Direction.OUT, "198.51.100.7", "203.0.113.9") is pinned
    assert [p.name for p in table] == ["zz", "b-tie", "z-narrow", "a-wide"]
    table.remove("zz")
    assert table.lookup_addresses(Direction.OUT, "198.51.100.7", "203.0.113.9") is tie
    assert table.lookup_addresses(Direction.IN, "198.51.100.7", "203.0.113.9") is None


def test_ports_opaque_and_protocol_rules() -> None:
    web = Policy(
        name="web",
        direction=Direction.OUT,
        action=Action.PROTECT,
        selectors=(_sel("any", "203.0.113.0/24", 6, dport=(443, 443)),),
    )
    table = PolicyTable([web])
    assert table.lookup_addresses(Direction.OUT, "198.51.100.1", "203.0.113.5", 6, 999, 443) is web
    assert (
        table.lookup_addresses(Direction.OUT, "198.51.100.1", "203.0.113.5", 17, 999, 443) is None
    )
    # A non-initial fragment has opaque ports: only ANY port ranges match it.
    assert table.lookup_addresses(Direction.OUT, "198.51.100.1", "203.0.113.5", 6, -1, -1) is None
    # any/any selectors match both IP families.
    everything = Policy(
        name="all", direction=Direction.OUT, action=Action.DISCARD, selectors=(_sel("any", "any"),)
    )
    table.add(everything)
    assert table.lookup_addresses(Direction.OUT, "2001:db8::1", "2001:db8::2") is everything


def test_names_unique_and_default_action() -> None:
    p = Policy(name="x", direction=Direction.OUT, action=Action.BYPASS, selectors=())
    table = PolicyTable([p], default_action=Action.DISCARD)
    with pytest.raises(SaConfigError):
        table.add(p)
    with pytest.raises(SaConfigError):
        PolicyTable(default_action=Action.PROTECT)
    assert table.default_action is Action.DISCARD and len(table) == 1
