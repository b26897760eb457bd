"""Manual SAs in two real engines over the in-memory link: installed from the store with
their keys, used by the peerless policy they serve (no IKE at all), counted in the store,
replaced when the configuration changes them, and never installed when no policy uses
them."""

from __future__ import annotations

from pathlib import Path

from ipsecconf.engine.service import Service, StoreBackend
from ipsecconf.plan.planfile import Inputs
from tests.engine.memnet import A_OUT, B_OUT, Clock, MemNet, Node, icmp, run, start

KEY_AB = '"0x' + "11" * 20 + '"'  # AES-GCM-128: 16 bytes of key and 4 of salt (RFC 4106)
KEY_BA = '"0x' + "22" * 16 + '"'
AUTH_BA = '"0x' + "33" * 32 + '"'

YAML = """\
manual_sas:
  - name: ab
    spi: {spi_ab}
    source: 203.0.113.1
    destination: 203.0.113.2
    encryption: aes128gcm
    encryption_key: {key_ab}
    replay_window: 0
  - name: ba
    spi: 0x2002
    source: 203.0.113.2
    destination: 203.0.113.1
    encryption: aes128
    encryption_key: {key_ba}
    authentication: sha256
    authentication_key: {auth_ba}
{extra}policies:
  - name: host
    source: {local}/32
    destination: {remote}/32
    encryption: aes128gcm
    authentication: none
    mode: transport
"""


def configure(d: Path, side: str, spi_ab: int = 0x1001, extra: str = "") -> str:
    d.mkdir(parents=True, exist_ok=True)
    local, remote = (A_OUT, B_OUT) if side == "a" else (B_OUT, A_OUT)
    cfg = d / "ipsec.yaml"
    cfg.write_text(
        YAML.format(spi_ab=spi_ab, key_ab=KEY_AB, key_ba=KEY_BA, auth_ba=AUTH_BA,
                    local=local, remote=remote, extra=extra)
    )  # fmt: skip
    state = str(d / "state.db")
    svc = Service(StoreBackend(state))
    try:
        svc.apply(svc.plan(Inputs.make([str(cfg)], {}, [], False)))
    finally:
        svc.backend.close()
    return state


def store_rows(n: Node) -> dict[str, tuple[str, int]]:
    n.engine.sync()
    return {str(r.manual): (r.state, r.packets) for r in n.store.sas() if r.manual}


def test_manual_sas_carry_traffic_both_ways_without_ike(tmp_path: Path) -> None:
    net, clock = MemNet(), Clock()
    a = start(net, clock, configure(tmp_path / "a", "a"), "a")
    b = start(net, clock, configure(tmp_path / "b", "b"), "b")
    assert set(a.engine.manual.installed) == set(b.engine.manual.installed) == {"ab", "ba"}
    for seq in range(3):
        a.engine.outbound([icmp(A_OUT, B_OUT, seq)], clock.t)
        b.engine.outbound([icmp(B_OUT, A_OUT, seq)], clock.t)
        run(net, clock, [a, b], 0.5)
    assert b.tun.packets == [icmp(A_OUT, B_OUT, seq) for seq in range(3)]
    assert a.tun.packets == [icmp(B_OUT, A_OUT, seq) for seq in range(3)]
    assert all(isinstance(p, bytes) and p[9] == 50 for p in net.wire_log)  # ESP only
    spis = {int.from_bytes(p[20:24], "big") for p in net.wire_log}
    assert spis == {0x1001, 0x2002}
    assert not a.engine.ike.entries and not b.engine.ike.entries  # nothing negotiated
    assert store_rows(a) == {"ab": ("M", 3), "ba": ("M", 3)}


def test_a_changed_manual_sa_is_replaced_and_an_unused_one_not_installed(
    tmp_path: Path,
) -> None:
    net, clock = MemNet(), Clock()
    a = start(net, clock, configure(tmp_path / "a", "a"), "a")
    b = start(net, clock, configure(tmp_path / "b", "b"), "b")
    a.engine.outbound([icmp(A_OUT, B_OUT, 0)], clock.t)
    run(net, clock, [a, b], 0.5)
    stray = (
        "  - name: stray\n    spi: 0x3003\n    source: 198.51.100.1\n"
        "    destination: 198.51.100.2\n    encryption: aes128gcm\n"
        f"    encryption_key: {KEY_AB}\n"
    )
    for side, node in (("a", a), ("b", b)):
        configure(tmp_path / side, side, spi_ab=0x1111, extra=stray)
        node.engine.reconfigure(lambda stage: stage(), clock.t)
    assert set(a.engine.manual.installed) == {"ab", "ba"}  # "stray" serves no policy
    a.engine.outbound([icmp(A_OUT, B_OUT, 1)], clock.t)
    run(net, clock, [a, b], 0.5)
    assert b.tun.packets[-1] == icmp(A_OUT, B_OUT, 1)
    assert int.from_bytes(net.wire_log[-1][20:24], "big") == 0x1111
