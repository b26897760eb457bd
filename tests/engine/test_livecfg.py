"""The live tables built from the configuration: routes, restrict rules in SPD order, the
nftables batch, and which policy pairs a change forces to renegotiate."""

from __future__ import annotations

import dataclasses

from ipsecconf.engine import livecfg
from ipsecconf.engine.livecfg import LiveConfig, Source
from ipsecconf.io.hostnet import HostNet, Names
from ipsecconf.model.selectors import Endpoint, Selector
from ipsecconf.model.spd import PolicyRow

PEER = {"address": "203.0.113.2", "auth": "psk", "liveness_interval": 30}


def _rows(name: str, src: str, dst: str, **kw: object) -> list[PolicyRow]:
    sel = Selector(Endpoint.parse(src), Endpoint.parse(dst), int(kw.pop("proto", 0)))  # type: ignore[call-overload]
    out = PolicyRow(name=f"{name}.out", policy=name, direction="out", selectors=(sel,), **kw)  # type: ignore[arg-type]
    back = dataclasses.replace(out, name=f"{name}.in", direction="in", selectors=(sel.reversed(),))
    return [out, back]


def _config(rows: list[PolicyRow], secrets: dict[str, bytes] | None = None) -> LiveConfig:
    keys = secrets if secrets is not None else {"peer.gw#psk": b"k1"}
    source = Source(rows, {("peer", "gw"): PEER}, keys.get)
    names: dict[str, int] = {}
    return livecfg.build(source, lambda n: names.setdefault(n, len(names) + 1))


TUNNEL = {"action": "protect", "protocol": "esp", "mode": "tunnel", "peer": "gw",
          "encryption": "aes128gcm", "authentication": "none"}  # fmt: skip


def test_routes_and_restrict_rules_follow_the_spd_order() -> None:
    rows = (
        _rows("site", "198.51.100.0/26", "198.51.100.128/26", **TUNNEL)
        + _rows("hole", "198.51.100.0/26", "198.51.100.128/26[5003]", action="bypass",
                protocol=None, proto=6)
        + _rows("loose", "198.51.100.64/26", "198.51.100.192/26", level="permit", **TUNNEL)
    )  # fmt: skip
    cfg = _config(rows)
    host = cfg.host_config()
    assert host.routes == frozenset({"198.51.100.128/26", "198.51.100.192/26"})
    inbound = [d for d in host.clear_drops if not d.outbound]
    # The more specific bypass comes first (an accept), then the restrict drop; the
    # permit policy drops nothing.
    assert [(d.policy, d.accept) for d in inbound] == [("hole.in", True), ("site.in", False)]
    assert inbound[0].source_ports == (5003, 5003) and inbound[0].protocol == 6
    assert [d.policy for d in host.clear_drops if d.outbound] == ["site.out"]
    batch = HostNet(Names()).ruleset(host.clear_drops)
    rules = [c["add"]["rule"] for c in batch["nftables"] if "rule" in c.get("add", {})]
    out_rules = [r for r in rules if r["chain"] == "clear_out"]
    assert out_rules[0]["expr"][-1] == {"accept": None}  # the engine's own mark first
    in_rules = [r for r in rules if r["chain"] == "clear_in"]
    assert [r["expr"][-1] for r in in_rules] == [{"accept": None}, {"drop": None}]


def test_changed_pairs_are_those_whose_policy_peer_or_key_changed() -> None:
    base = _rows("site", "198.51.100.0/26", "198.51.100.128/26", **TUNNEL) + _rows(
        "other", "198.51.100.64/26", "198.51.100.192/26", **TUNNEL
    )
    old = _config(base)
    assert livecfg.changed_pairs(old, _config(base)) == set()
    changed = [dataclasses.replace(r, encryption="aes256gcm") if r.policy == "site" else r
               for r in base]  # fmt: skip
    assert livecfg.changed_pairs(old, _config(changed)) == {"site"}
    assert livecfg.changed_pairs(old, _config(base, {"peer.gw#psk": b"k2"})) == {"site", "other"}
    assert livecfg.changed_pairs(old, _config(base[:2])) == {"other"}
    assert "k1" not in repr(old)


def test_default_discard_routes_everything_and_closes_both_chains() -> None:
    rows = _rows("site", "198.51.100.0/26", "198.51.100.128/26", **TUNNEL) + _rows(
        "ssh", "198.51.100.0/26[22]", "198.51.100.128/26", action="bypass", protocol=None, proto=6
    )
    source = Source(
        rows,
        {("peer", "gw"): PEER, ("setting", "default_action"): {"value": "discard"}},
        {"peer.gw#psk": b"k1"}.get,
    )
    host = livecfg.build(source, lambda n: 1).host_config()
    assert host.default_discard and {"0.0.0.0/0", "::/0"} <= host.routes
    # The bypass entry's inbound accept stays: the closing drop comes after it.
    assert [(d.policy, d.accept) for d in host.clear_drops if not d.outbound] == [
        ("ssh.in", True),
        ("site.in", False),
    ]
    batch = HostNet(Names()).ruleset(host.clear_drops, host.default_discard)
    rules = [c["add"]["rule"] for c in batch["nftables"] if "rule" in c.get("add", {})]
    for chain in ("clear_in", "clear_out"):
        last = [r for r in rules if r["chain"] == chain][-1]
        assert last["expr"][-1] == {"drop": None} and last["comment"] == "default_action discard"
    closing_in = [r["expr"] for r in rules if r.get("comment") == "default_action discard"]
    # IKE and ESP are accepted before the drop, or nothing could be protected.
    assert any({"set": [500, 4500]} in [e.get("match", {}).get("right") for e in x]
               for x in closing_in)  # fmt: skip
