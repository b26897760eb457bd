"""Two real engines over an in-memory link: acquire and queueing, SA records on both sides,
rekey on the soft lifetime, liveness, INITIAL_CONTACT after a restart, and the control
API's apply (one step over store and live tables, rolled back on failure)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ipsecconf.engine import wire
from ipsecconf.engine.control import Control
from ipsecconf.engine.ikemgr import QUEUE_PER_FLOW
from ipsecconf.engine.service import Service, StoreBackend
from ipsecconf.esp.sa import SecurityAssociation
from ipsecconf.plan.planfile import Inputs
from tests.engine.memnet import (
    A_OUT,
    B_OUT,
    Clock,
    MemNet,
    Node,
    icmp,
    node,
    run,
    start,
    write_config,
)

HOST_A, HOST_B = "198.51.100.10", "198.51.100.130"


@pytest.fixture(params=range(3))
def net(request: pytest.FixtureRequest) -> MemNet:
    return MemNet(seed=request.param)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def sa_rows(n: Node) -> list[dict[str, object]]:
    n.engine.sync()
    return [sa.as_dict() for sa in n.store.sas()]


def live_spis(n: Node) -> set[int]:
    return {int(r["spi"]) for r in sa_rows(n) if r["state"] == "M"}  # type: ignore[call-overload]


def connected(
    net: MemNet, clock: Clock, tmp_path: Path, a_cfg: dict[str, object], b_cfg: dict[str, object]
) -> tuple[Node, Node]:
    """Sites A and B, with A's first packet through (the SAs negotiated on demand)."""
    a, b = node(net, clock, tmp_path, "a", **a_cfg), node(net, clock, tmp_path, "b", **b_cfg)
    a.engine.outbound([icmp(HOST_A, HOST_B, 0)], clock.t)
    run(net, clock, [a, b], 1.0)
    return a, b


def test_acquire_queues_then_sends_and_both_sides_record_the_same_sas(
    net: MemNet, clock: Clock, tmp_path: Path
) -> None:
    a, b = node(net, clock, tmp_path, "a"), node(net, clock, tmp_path, "b")
    for seq in range(QUEUE_PER_FLOW + 8):  # more than the queue holds
        a.engine.outbound([icmp(HOST_A, HOST_B, seq)], clock.t)
    # After IKE_SA_INIT, while IKE_AUTH runs, the reserved SPI is Larval in the store.
    net.deliver(clock.t, rounds=2)
    assert {r["state"] for r in sa_rows(a)} == {"L"}
    run(net, clock, [a, b], 1.0)
    assert len(b.tun.packets) == QUEUE_PER_FLOW  # the queue was delivered, the rest dropped
    assert a.engine.ike.queue_drops == 8
    assert live_spis(a) == live_spis(b) and len(live_spis(a)) == 2
    # Nothing crossed the link in clear.
    assert all(p[9] in (50, 17) for p in net.wire_log)
    a.engine.sync()
    assert a.store.counters()["policy_drops"] == 8
    assert a.store.counters()["ike_succeeded"] == 1 and b.store.counters()["ike_succeeded"] == 1


def test_rekey_on_soft_lifetime_keeps_traffic_and_retires_old_sas(
    net: MemNet, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ipsecconf")
    a, b = connected(net, clock, tmp_path, {"lifetime": 60}, {"lifetime": 60})
    first = live_spis(a)
    keys = {sa.config.enc_key for sa in a.engine.sad if isinstance(sa, SecurityAssociation)}
    (ike,) = list(a.engine.ike.entries)
    delivered = 0
    # Soft lifetime: 60 s - 20 s margin (less a random tenth of it), so the first rekey
    # comes 38-40 s in and the old SAs die at 60 s. The run stops at 70 s, before the new
    # SAs' own soft lifetime (76 s at the earliest) marks them Dying on the responder.
    for seq in range(1, 70):
        a.engine.outbound([icmp(HOST_A, HOST_B, seq)], clock.t)
        run(net, clock, [a, b], 1.0)
        delivered = len(b.tun.packets)
    assert delivered == 70  # not one packet lost across the rekey
    second = live_spis(a)
    assert second and not (second & first) and live_spis(b) == second
    # Rekeyed in place (CREATE_CHILD_SA, RFC 7296 2.8): still the one first IKE SA.
    assert list(a.engine.ike.entries) == list(b.engine.ike.entries) == [ike]
    states = {int(r["spi"]): r["state"] for r in sa_rows(a)}  # type: ignore[call-overload]
    assert all(states.get(spi, "D") == "D" for spi in first)  # Dead, or gone after 60 s
    # One log line per rekey, naming the policy and the old SPI; never a key.
    assert caplog.text.count("rekeyed policy site with") >= 2
    keys |= {sa.config.enc_key for sa in a.engine.sad if isinstance(sa, SecurityAssociation)}
    assert all(k and k.hex() not in caplog.text.lower() for k in keys)


def test_liveness_notices_a_dead_peer(
    net: MemNet, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ipsecconf")
    a, b = connected(net, clock, tmp_path, {}, {})
    assert len(live_spis(a)) == 2
    net.down.add(B_OUT)
    run(net, clock, [a, b], 200.0, step=1.0)  # liveness 10 s, then the retransmissions
    assert live_spis(a) == set()
    assert not a.engine.ike.entries
    a.engine.sync()
    assert a.store.counters()["ike_failed"] >= 1
    assert "IKE SA with 203.0.113.2 for policy site failed: peer-not-responding" in caplog.text


def test_liveness_timeout_shortens_the_wait_for_a_dead_peer(
    net: MemNet, clock: Clock, tmp_path: Path
) -> None:
    a, b = connected(net, clock, tmp_path, {"liveness_timeout": 12}, {})
    net.down.add(B_OUT)
    # The first liveness check (10 s in) only notes the inbound counters; the second finds
    # them unchanged and probes, then six waits add up to 12 s (strongSwan's 1.8^n shape).
    run(net, clock, [a, b], 30.5, step=0.5)
    assert len(live_spis(a)) == 2
    run(net, clock, [a, b], 4.0, step=0.5)  # not the 160 s of the default schedule
    assert live_spis(a) == set() and not a.engine.ike.entries


def test_esp_for_a_lost_sa_deletes_the_pair_and_the_sender_renegotiates(
    net: MemNet, clock: Clock, tmp_path: Path
) -> None:
    a, b = connected(net, clock, tmp_path, {}, {})
    old = live_spis(a)
    (ike,) = list(a.engine.ike.entries)
    # B's dataplane loses its inbound SA while its IKE SA still lists the pair.
    (lost,) = [
        sa.config
        for sa in b.engine.sad
        if isinstance(sa, SecurityAssociation) and sa.config.direction.value == "in"
    ]
    b.engine.sad.delete(lost.spi, lost.dst, lost.protocol, clock.t)
    a.engine.outbound([icmp(HOST_A, HOST_B, 1)], clock.t)
    run(net, clock, [a, b], 0.5)  # B deletes the pair over IKE, on both sides
    assert live_spis(a) == live_spis(b) == set()
    a.engine.outbound([icmp(HOST_A, HOST_B, 2)], clock.t)  # a new child, same IKE SA
    run(net, clock, [a, b], 1.0)
    assert b.tun.packets[-1] == icmp(HOST_A, HOST_B, 2)
    assert len(live_spis(a)) == 2 and live_spis(a) == live_spis(b) and not live_spis(a) & old
    assert list(a.engine.ike.entries) == list(b.engine.ike.entries) == [ike]


def test_esp_with_an_spi_never_known_gets_invalid_spi_at_most_once_a_second(
    net: MemNet, clock: Clock, tmp_path: Path
) -> None:
    a, b = connected(net, clock, tmp_path, {}, {})
    live = live_spis(a)
    esp = next(p for p in net.wire_log if p[9] == 50)
    forged = esp[:20] + (0xDEAD0001).to_bytes(4, "big") + esp[24:]
    for _ in range(5):
        b.engine.inbound([forged], clock.t)
    sent = [i for i in net.queue if isinstance(i, tuple) and i[0] == B_OUT]
    assert len(sent) == 1  # one INFORMATIONAL with INVALID_SPI, not five
    run(net, clock, [a, b], 1.0)
    assert live_spis(a) == live_spis(b) == live  # A has no such SA: nothing else changes
    clock.t += 1.0
    b.engine.inbound([forged], clock.t)
    assert len([i for i in net.queue if isinstance(i, tuple) and i[0] == B_OUT]) == 1


def test_restart_sends_initial_contact_and_the_peer_drops_old_sas(
    net: MemNet, clock: Clock, tmp_path: Path
) -> None:
    a, b = connected(net, clock, tmp_path, {}, {})
    old = live_spis(b)
    # A "crashes": a new engine on the same store, without deleting anything.
    a.store.close()
    a2 = start(net, clock, a.state, "a")
    assert {r["state"] for r in sa_rows(a2)} == {"D"}  # the old run's SAs
    a2.engine.outbound([icmp(HOST_A, HOST_B, 1)], clock.t)
    run(net, clock, [a2, b], 1.0)
    assert len(b.engine.ike.entries) == 1  # INITIAL_CONTACT: the stale IKE SA is gone
    assert live_spis(b) == live_spis(a2) and not (live_spis(b) & old)
    assert b.tun.packets[-1] == icmp(HOST_A, HOST_B, 1)


def _planned(n: Node, cfg: Path) -> dict[str, object]:
    svc = Service(StoreBackend(n.state))
    try:
        p = svc.plan(Inputs.make([str(cfg)], {}, [], False))
    finally:
        svc.backend.close()
    return {
        "plan": wire.plan_to_json(p.plan),
        "desired": wire.desired_to_json(p.desired),
        "command": "test apply",
    }


def test_control_apply_tears_down_changed_pairs_and_rolls_back_on_failure(
    net: MemNet, clock: Clock, tmp_path: Path
) -> None:
    a, b = connected(net, clock, tmp_path, {}, {})
    old = live_spis(a)
    control = Control(a.engine, clock, a.state)
    params = _planned(a, write_config(tmp_path / "a", "a", encryption="aes256gcm"))
    # The host refuses the new routes: nothing changes, neither store nor live SAs.
    a.host.fail = True
    res = control.handle({"method": "apply", "params": params})
    assert res["ok"] is False and "internal error" in res["error"]["message"]
    a.host.fail = False
    assert a.store.serial == 1 and live_spis(a) == old
    assert json.loads(a.store.policies()[0].data)["encryption"] == "aes128gcm"
    res = control.handle({"method": "apply", "params": params})
    assert res["ok"] is True, res
    assert a.store.serial == 2
    run(net, clock, [a, b], 1.0)
    assert not (live_spis(a) & old)  # torn down (and B was told)
    # The same saved plan again: stale.
    res = control.handle({"method": "apply", "params": params})
    assert res["ok"] is False and res["error"]["type"] == "StaleStateError"


def test_control_refuses_malformed_requests_without_echoing_secrets(
    net: MemNet, clock: Clock, tmp_path: Path
) -> None:
    a = node(net, clock, tmp_path, "a")
    control = Control(a.engine, clock, a.state)
    assert control.handle({"method": "nope"})["error"]["type"] == "UsageError"
    assert control.handle(["not", "a", "request"])["ok"] is False
    res = control.handle({"method": "fingerprint", "params": {"address": "x", "value": "!!"}})
    assert res["ok"] is False and "!!" not in json.dumps(res)
    res = control.handle({"method": "ping"})
    assert res["ok"] is True and res["result"]["state"] == a.state
    counters = control.handle({"method": "counters"})["result"]
    assert set(counters) >= {"packets_in", "packets_out", "ike_started"}
    assert A_OUT  # the engine runs with this outer address


def test_refused_child_is_retried_once_the_peer_agrees(
    net: MemNet, clock: Clock, tmp_path: Path
) -> None:
    # A offers only AES-256-GCM, B accepts only AES-128-GCM: the child fails.
    a, b = connected(net, clock, tmp_path, {"encryption": "aes256gcm"}, {})
    assert live_spis(a) == set() and b.tun.packets == []
    a.engine.sync()
    assert a.store.counters()["ike_failed"] == 1
    # B changes its mind (through its control API, as `ipsecconf apply` would).
    params = _planned(b, write_config(tmp_path / "b", "b", encryption="aes256gcm"))
    assert Control(b.engine, clock, b.state).handle({"method": "apply", "params": params})["ok"]
    for seq in range(1, 6):
        a.engine.outbound([icmp(HOST_A, HOST_B, seq)], clock.t)
        run(net, clock, [a, b], 1.0)
    assert len(live_spis(a)) == 2 and live_spis(a) == live_spis(b)
    assert b.tun.packets[-1] == icmp(HOST_A, HOST_B, 5)
    assert len(a.engine.ike.entries) == 1  # the failed IKE SA was deleted, not kept


def test_ike_lifetime_rekeys_the_ike_sa_in_place_without_losing_traffic(
    net: MemNet, clock: Clock, tmp_path: Path
) -> None:
    a, b = connected(net, clock, tmp_path, {"ike_lifetime": 100}, {"ike_lifetime": 100})
    (first,) = list(a.engine.ike.entries)
    children = live_spis(a)
    for seq in range(1, 70):  # the IKE rekey is due 50 s in (lifetime 100 s, margin <= half)
        a.engine.outbound([icmp(HOST_A, HOST_B, seq)], clock.t)
        run(net, clock, [a, b], 1.0)
    assert len(b.tun.packets) == 70
    assert list(a.engine.ike.entries) != [first] and len(a.engine.ike.entries) == 1
    assert list(b.engine.ike.entries) == list(a.engine.ike.entries)  # the same new SPIs
    # CREATE_CHILD_SA (RFC 7296 2.18): the child SAs moved to the new IKE SA unchanged.
    assert live_spis(a) == live_spis(b) == children
    assert next(iter(a.engine.ike.entries.values())).children


def test_dying_while_the_rekey_runs_then_dead(net: MemNet, clock: Clock, tmp_path: Path) -> None:
    a, b = connected(net, clock, tmp_path, {"lifetime": 60}, {"lifetime": 60})
    old = live_spis(a)
    run(net, clock, [a, b], 35.0)  # soft lifetime: between 38 and 40 s
    net.down.add(B_OUT)  # the rekey cannot complete while B is away
    run(net, clock, [a, b], 6.0)
    states = {int(r["spi"]): r["state"] for r in sa_rows(a)}  # type: ignore[call-overload]
    assert {states[spi] for spi in old} == {"d"}  # Dying: rekey under way, still in use
    a.engine.outbound([icmp(HOST_A, HOST_B, 1)], clock.t)
    assert any(isinstance(p, bytes) and p[9] == 50 for p in net.queue)  # Dying still protects
    net.down.clear()
    run(net, clock, [a, b], 12.0)  # the rekey's retransmission gets through
    states = {int(r["spi"]): r["state"] for r in sa_rows(a)}  # type: ignore[call-overload]
    assert all(states.get(spi, "D") == "D" for spi in old)
    assert len(live_spis(a)) == 2 and not (live_spis(a) & old)


def test_esp_in_udp_when_the_policy_asks(net: MemNet, clock: Clock, tmp_path: Path) -> None:
    a = node(net, clock, tmp_path, "a", udp=True)
    b = node(net, clock, tmp_path, "b", udp=True)
    for seq in range(3):
        a.engine.outbound([icmp(HOST_A, HOST_B, seq)], clock.t)
        run(net, clock, [a, b], 1.0)
    assert b.tun.packets == [icmp(HOST_A, HOST_B, seq) for seq in range(3)]
    # ESP rode in UDP 4500 (RFC 3948), nothing went as bare ESP.
    assert net.wire_log and all(p[9] == 17 for p in net.wire_log)
    rows = [r for r in sa_rows(b) if r["state"] == "M"]
    assert rows and all(r["details"]["udp_encapsulation"] for r in rows)  # type: ignore[index]


def test_start_immediate_negotiates_at_engine_start_without_traffic(
    net: MemNet, clock: Clock, tmp_path: Path
) -> None:
    b = node(net, clock, tmp_path, "b")
    a = node(net, clock, tmp_path, "a", start="immediate")
    # engine.start() itself sent IKE_SA_INIT to the peer: no packet asked for it.
    assert [(i[0], i[2]) for i in net.queue if isinstance(i, tuple)] == [(A_OUT, (B_OUT, 500))]
    run(net, clock, [a, b], 1.0)
    assert len(live_spis(a)) == 2 and live_spis(a) == live_spis(b)
    assert len(a.engine.ike.entries) == len(b.engine.ike.entries) == 1
    assert net.wire_log == [] and b.tun.packets == []  # IKE only, no ESP yet
    a.engine.sync()
    assert a.store.counters()["ike_succeeded"] == 1
    # The first packet leaves as ESP at once: no acquire, no new IKE exchange, no queue.
    a.engine.outbound([icmp(HOST_A, HOST_B, 1)], clock.t)
    assert [i[9] for i in net.queue if isinstance(i, bytes)] == [50]
    assert not any(isinstance(i, tuple) for i in net.queue)
    net.deliver(clock.t)
    assert b.tun.packets == [icmp(HOST_A, HOST_B, 1)]
    assert a.engine.ike.queue_drops == 0


def test_start_immediate_waits_for_an_unreachable_peer_then_negotiates(
    net: MemNet, clock: Clock, tmp_path: Path
) -> None:
    b = node(net, clock, tmp_path, "b")
    net.down.add(B_OUT)
    a = node(net, clock, tmp_path, "a", start="immediate")
    run(net, clock, [a, b], 5.0)
    assert live_spis(a) == set() and live_spis(b) == set()
    net.down.clear()
    # IKE_SA_INIT is retransmitted (or the pair retried): up without any packet to send.
    run(net, clock, [a, b], 30.0)
    assert len(live_spis(a)) == 2 and live_spis(a) == live_spis(b)
    assert b.tun.packets == []


def test_on_demand_negotiates_nothing_until_traffic(
    net: MemNet, clock: Clock, tmp_path: Path
) -> None:
    # The control case for the two tests above: the same pair with start: on_demand.
    b = node(net, clock, tmp_path, "b")
    a = node(net, clock, tmp_path, "a")
    assert net.queue == []  # engine.start() sent nothing
    run(net, clock, [a, b], 5.0)
    assert live_spis(a) == set() and not a.engine.ike.entries and not b.engine.ike.entries
    a.engine.sync()
    assert a.store.counters()["ike_started"] == 0
