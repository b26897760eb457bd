"""The seed's address/prefixlen[port] shorthand, ports, protocols and coverage."""

from __future__ import annotations

import pytest

from ipsecconf.model.desired import Policy
from ipsecconf.model.selectors import Endpoint, Selector, SelectorError, parse_protocol
from ipsecconf.model.spd import expand, ordered


def test_seed_shorthand() -> None:
    e = Endpoint.parse("10.0.0.0/16[139]")
    assert str(e.network) == "10.0.0.0/16" and e.ports == (139, 139)
    assert Endpoint.parse("[139]").network is None  # the seed's -s[139]
    assert Endpoint.parse("2001:db8::/32[443]").version == 6
    assert str(Endpoint.parse("any")) == "any"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.0/16[", "invalid endpoint"),
        ("10.0.0.1/8", "host bits set"),
        ("10.0.0.0/16[x]", "invalid port"),
        ("300.1.1.1", "invalid address"),
        ("10.0.0.0/16[5-1]", "reversed"),
    ],
)
def test_bad_endpoints(text: str, message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        Endpoint.parse(text)


def test_protocols() -> None:
    assert parse_protocol("TCP") == 6
    assert parse_protocol(17) == 17
    assert parse_protocol(None) == 0


def test_covers() -> None:
    wide = Selector(Endpoint.parse("any"), Endpoint.parse("203.0.113.0/24"), 0)
    narrow = Selector(Endpoint.parse("198.51.100.1"), Endpoint.parse("203.0.113.9[22]"), 6)
    assert wide.covers(narrow) and not narrow.covers(wide)
    v6 = Selector(Endpoint.parse("any"), Endpoint.parse("2001:db8::1"), 0)
    assert not wide.covers(v6)


def test_mirror_and_tcp_udp_expansion() -> None:
    p = Policy.model_validate(
        {
            "name": "cifs",
            "source": "198.51.100.0/24",
            "destination": "203.0.113.10[139]",
            "direction": "in",
        }
    )
    rows = expand(p)
    assert [r.name for r in rows] == ["cifs.in", "cifs.out"]
    assert [s.protocol for s in rows[0].selectors] == [6, 17]  # a bare port: TCP and UDP
    assert str(rows[1].selectors[0].source) == "203.0.113.10/32[139]"
    unmirrored = Policy.model_validate({"name": "x", "mirror": False})
    assert [r.name for r in expand(unmirrored)] == ["x.out"]


def test_order_priority_then_specificity_then_name() -> None:
    def row(name: str, dst: str, prio: int | None = None) -> Policy:
        return Policy.model_validate(
            {"name": name, "destination": dst, "priority": prio, "mirror": False}
        )

    rows = ordered(
        [
            r
            for p in (
                row("b", "203.0.113.0/24"),
                row("a", "203.0.113.0/24"),
                row("host", "203.0.113.5"),
                row("first", "any", 1),
            )
            for r in expand(p)
        ]
    )
    assert [r.policy for r in rows] == ["first", "host", "a", "b"]


def test_row_round_trip() -> None:
    p = Policy.model_validate(
        {
            "name": "x",
            "source": "10.0.0.0/8[80]",
            "ip_protocol": "tcp",
            "lifetime": {"time": "2h", "bytes": "1G"},
        }
    )
    for r in expand(p):
        assert type(r).from_dict(r.to_dict()) == r
