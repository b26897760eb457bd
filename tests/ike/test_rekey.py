"""CREATE_CHILD_SA and INFORMATIONAL in memory: new children, child and IKE rekeys (also
simultaneous, RFC 7296 2.8.1), deletes from either side, liveness and INVALID_SPI."""

from __future__ import annotations

import pytest

from ipsecconf.ike.config import ChildConfig, IkeConfig
from ipsecconf.ike.context import IkeState
from ipsecconf.ike.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    ChildSaFailed,
    FailureReason,
    IkeEvent,
    IkeRekeyFailed,
    IkeSaDeleted,
    IkeSaFailed,
    IkeSaRekeyed,
)
from ipsecconf.ike.sa import IkeSa
from ipsecconf.model.proposals import parse
from tests.ike.pair import Pair, configs, host_child, make_pair, mirror


def up(ci: IkeConfig | None = None, cr: IkeConfig | None = None, **wire: float) -> Pair:
    if ci is None or cr is None:
        ci, cr = configs()
    pair = make_pair(ci, cr, **wire)
    pair.run()
    assert pair.initiator.state is IkeState.ESTABLISHED
    assert pair.responder.state is IkeState.ESTABLISHED
    pair.events_i.clear()
    pair.events_r.clear()
    return pair


def of(events: list[IkeEvent], kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in events if isinstance(e, kind)]


def assert_crossed(a: ChildSaEstablished, b: ChildSaEstablished) -> None:
    """Two sides' views of one child pair: SPIs and keys crossed."""
    assert (a.spi_in, a.spi_out) == (b.spi_out, b.spi_in)
    assert a.encr_key_out == b.encr_key_in and a.encr_key_in == b.encr_key_out
    assert a.integ_key_out == b.integ_key_in and a.integ_key_in == b.integ_key_out


def pairs_of(sa: IkeSa) -> set[tuple[int, int]]:
    return {(c.spi_in, c.spi_out) for c in sa.children}


def mirrored(a: IkeSa, b: IkeSa) -> bool:
    return {(o, i) for i, o in pairs_of(a)} == pairs_of(b)


@pytest.mark.parametrize("side", ["i", "r"])
def test_child_rekey_from_either_side_makes_before_it_breaks(side: str) -> None:
    pair = up()
    starter = pair.initiator if side == "i" else pair.responder
    [old] = starter.children
    starter.rekey_child(pair.now, old.spi_in)
    pair.run()
    mine, theirs = (pair.events_i, pair.events_r) if side == "i" else (pair.events_r, pair.events_i)
    # The new pair is announced first, with the old SPI; the old pair is deleted after.
    assert [type(e) for e in mine] == [ChildSaEstablished, ChildSaDeleted]
    assert [type(e) for e in theirs] == [ChildSaEstablished, ChildSaDeleted]
    new_mine, new_theirs = mine[0], theirs[0]
    assert new_mine.rekey_of == old.spi_in and new_theirs.rekey_of == old.spi_out
    assert_crossed(new_mine, new_theirs)
    assert mine[1] == ChildSaDeleted("host", old.spi_in, old.spi_out, False)
    assert theirs[1] == ChildSaDeleted("host", old.spi_out, old.spi_in, True)
    assert new_mine.spi_in not in (old.spi_in, old.spi_out)
    assert mirrored(pair.initiator, pair.responder)
    assert pairs_of(starter) == {(new_mine.spi_in, new_mine.spi_out)}
    assert not pair.initiator.drops and not pair.responder.drops


def test_child_rekey_with_pfs_and_invalid_ke_retry() -> None:
    # The initiator guesses x25519 first; the responder only does ecp256 and says so.
    child = host_child(esp=[parse("aes128gcm-x25519-ecp256", "esp")])
    peer = mirror(host_child(esp=[parse("aes128gcm-ecp256", "esp")]))
    ci, cr = configs(child_i=child, child_r=peer)
    pair = up(ci, cr)
    [old] = pair.initiator.children
    pair.initiator.rekey_child(pair.now, old.spi_in)
    pair.run()
    new_i = of(pair.events_i, ChildSaEstablished)[0]
    new_r = of(pair.events_r, ChildSaEstablished)[0]
    assert new_i.algorithms.dh is not None and new_i.algorithms.dh.name == "ecp256"
    assert_crossed(new_i, new_r)
    assert len(of(pair.events_i, ChildSaDeleted)) == 1


def test_child_rekey_collision_keeps_exactly_one_pair() -> None:
    pair = up()
    [old_i] = pair.initiator.children
    [old_r] = pair.responder.children
    pair.initiator.rekey_child(pair.now, old_i.spi_in)
    pair.responder.rekey_child(pair.now, old_r.spi_in)
    pair.run()
    # Each side made two new pairs (one per exchange) and deleted two (old + redundant).
    for events in (pair.events_i, pair.events_r):
        assert len(of(events, ChildSaEstablished)) == 2, events
        assert len(of(events, ChildSaDeleted)) == 2, events
    [kept_i] = pair.initiator.children
    [kept_r] = pair.responder.children
    assert (kept_i.spi_in, kept_i.spi_out) == (kept_r.spi_out, kept_r.spi_in)
    assert old_i.spi_in != kept_i.spi_in
    # The survivor's keys agree on both sides.
    by_spi_i = {e.spi_in: e for e in of(pair.events_i, ChildSaEstablished)}
    by_spi_r = {e.spi_in: e for e in of(pair.events_r, ChildSaEstablished)}
    assert_crossed(by_spi_i[kept_i.spi_in], by_spi_r[kept_r.spi_in])
    assert not pair.initiator.drops and not pair.responder.drops


def test_new_child_with_create_child_sa() -> None:
    first = host_child("first", protocol=6)
    second = host_child("second", protocol=17)
    ci, cr = configs(child_i=first)
    ci = IkeConfig(**{**_fields(ci), "children": (first, second)})
    cr = IkeConfig(**{**_fields(cr), "children": (mirror(first), mirror(second))})
    pair = up(ci, cr)
    pair.initiator.create_child(pair.now, child="second")
    pair.run()
    [new_i] = of(pair.events_i, ChildSaEstablished)
    [new_r] = of(pair.events_r, ChildSaEstablished)
    assert new_i.name == new_r.name == "second" and new_i.rekey_of is None
    assert_crossed(new_i, new_r)
    assert len(pair.initiator.children) == 2 and mirrored(pair.initiator, pair.responder)


def test_unknown_child_rekey_is_refused_with_child_sa_not_found() -> None:
    pair = up()
    [old] = pair.initiator.children
    # The responder forgets the pair (as after a crash of its dataplane state).
    pair.responder._ctx.children.clear()
    pair.initiator.rekey_child(pair.now, old.spi_in)
    pair.run()
    [failed] = of(pair.events_i, ChildSaFailed)
    assert failed.reason is FailureReason.CHILD_SA_NOT_FOUND and failed.notify == 44
    assert pair.initiator.children[0].state == "installed"  # the old pair stays usable


def _fields(config: IkeConfig) -> dict[str, object]:
    return {name: getattr(config, name) for name in IkeConfig.__dataclass_fields__}


@pytest.mark.parametrize("side", ["i", "r"])
def test_ike_rekey_from_either_side_moves_the_children(side: str) -> None:
    pair = up()
    starter = pair.initiator if side == "i" else pair.responder
    children_i, children_r = pair.initiator.children, pair.responder.children
    old_spis = (pair.initiator.spi_i, pair.initiator.spi_r)
    starter.rekey_ike(pair.now)
    pair.run()
    [new_i] = pair.live("i")
    [new_r] = pair.live("r")
    assert (new_i.spi_i, new_i.spi_r) == (new_r.spi_i, new_r.spi_r) != old_spis
    # The rekey's initiator is the new SA's original initiator.
    assert new_i.initiator == (side == "i") and new_r.initiator == (side == "r")
    assert new_i.children == children_i and new_r.children == children_r
    for events in (pair.events_i, pair.events_r):
        [rekeyed] = of(events, IkeSaRekeyed)
        assert rekeyed.old_spi_i == old_spis[0] and not rekeyed.redundant
        assert of(events, IkeSaDeleted) == [
            IkeSaDeleted(
                by_peer=events is not pair.events_i if side == "i" else events is pair.events_i,
                rekeyed=True,
            )
        ]
        assert not of(events, ChildSaDeleted)
    assert pair.initiator.state is IkeState.DELETED and pair.responder.state is IkeState.DELETED
    # The new SA works: a child rekey under its keys, then a delete of the whole SA.
    [child] = new_i.children
    new_i.rekey_child(pair.now, child.spi_in)
    pair.run()
    assert mirrored(new_i, new_r) and pairs_of(new_i) != {(child.spi_in, child.spi_out)}
    new_r.close(pair.now)
    pair.run()
    assert new_i.state is IkeState.DELETED and new_r.state is IkeState.DELETED
    assert not any(sa.drops for sa in pair.sas_i + pair.sas_r)


def test_ike_rekey_collision_leaves_one_sa_with_the_children() -> None:
    pair = up()
    children_i = pair.initiator.children
    pair.initiator.rekey_ike(pair.now)
    pair.responder.rekey_ike(pair.now)
    pair.run()
    [new_i] = pair.live("i")
    [new_r] = pair.live("r")
    assert (new_i.spi_i, new_i.spi_r) == (new_r.spi_i, new_r.spi_r)
    assert new_i.children == children_i and mirrored(new_i, new_r)
    for events in (pair.events_i, pair.events_r):
        rekeyed = of(events, IkeSaRekeyed)
        assert sorted(e.redundant for e in rekeyed) == [False, True]
    # Old SAs and both redundant ones are gone; nothing is half-open.
    assert len(pair.sas_i) == 3 and len(pair.sas_r) == 3
    assert all(
        sa.state is IkeState.DELETED for sa in pair.sas_i + pair.sas_r if sa not in (new_i, new_r)
    )
    new_i.check_liveness(pair.now)
    pair.run()
    assert new_i.state is IkeState.ESTABLISHED


def test_ike_rekey_collision_whose_redundant_sa_delete_is_lost() -> None:
    # The creator of the redundant SA deletes it (2.8.1); here none of its Deletes arrive
    # (as when the first overtakes the response that makes the SA known and is dropped,
    # and the peer gives up).  The other side deletes the SA itself after two timeouts.
    pair = up()
    muted: list[IkeSa] = []
    collect = pair._collect

    def collect_and_mute() -> None:
        collect()
        for events in (pair.events_i, pair.events_r):
            for e in of(events, IkeSaRekeyed):
                if e.redundant and not e.by_peer and e.successor not in muted:
                    muted.append(e.successor)
                    e.successor.datagrams_to_send = lambda now: []  # type: ignore[method-assign]

    pair._collect = collect_and_mute  # type: ignore[method-assign]
    pair.initiator.rekey_ike(pair.now)
    pair.responder.rekey_ike(pair.now)
    pair.run()
    assert len(muted) == 1 and muted[0].state is not IkeState.ESTABLISHED
    [new_i] = pair.live("i")
    [new_r] = pair.live("r")
    assert (new_i.spi_i, new_i.spi_r) == (new_r.spi_i, new_r.spi_r)
    assert new_i.children and mirrored(new_i, new_r)


@pytest.mark.parametrize("side", ["i", "r"])
def test_delete_child_and_ike_from_either_side(side: str) -> None:
    pair = up()
    starter, other = (
        (pair.initiator, pair.responder) if side == "i" else (pair.responder, pair.initiator)
    )
    [child] = starter.children
    starter.delete_child(pair.now, child.spi_in)
    pair.run()
    assert not starter.children and not other.children
    mine = pair.events_i if side == "i" else pair.events_r
    theirs = pair.events_r if side == "i" else pair.events_i
    assert mine == [ChildSaDeleted("host", child.spi_in, child.spi_out, False)]
    assert theirs == [ChildSaDeleted("host", child.spi_out, child.spi_in, True)]
    starter.close(pair.now)
    pair.run()
    assert of(mine, IkeSaDeleted) == [IkeSaDeleted(by_peer=False)]
    assert of(theirs, IkeSaDeleted) == [IkeSaDeleted(by_peer=True)]


def test_simultaneous_child_deletes_cross_cleanly() -> None:
    pair = up()
    [ci] = pair.initiator.children
    [cr] = pair.responder.children
    pair.initiator.delete_child(pair.now, ci.spi_in)
    pair.responder.delete_child(pair.now, cr.spi_in)
    pair.run()
    assert len(of(pair.events_i, ChildSaDeleted)) == 1
    assert len(of(pair.events_r, ChildSaDeleted)) == 1
    assert not pair.initiator.children and not pair.responder.children
    assert not pair.initiator.drops and not pair.responder.drops


def test_dead_peer_is_detected_by_the_liveness_interval() -> None:
    ci, cr = configs()
    ci = IkeConfig(**{**_fields(ci), "liveness_interval": 30.0})
    pair = up(ci, cr)
    # While the peer answers, the probes are quiet successes.
    start = pair.now
    pair.run(max_steps=40)
    assert pair.now - start >= 30 and not of(pair.events_i, IkeSaFailed)
    assert pair.initiator.state is IkeState.ESTABLISHED
    # Then the peer vanishes: the probe is retransmitted and the SA fails.
    pair.loss = 1.0
    pair.run(max_steps=100)
    [failed] = of(pair.events_i, IkeSaFailed)
    assert failed.reason is FailureReason.TIMEOUT
    assert pair.initiator.state is IkeState.FAILED


def test_activity_from_the_dataplane_postpones_the_probe() -> None:
    ci, cr = configs()
    ci = IkeConfig(**{**_fields(ci), "liveness_interval": 30.0})
    pair = up(ci, cr)
    due = pair.initiator.get_timer()
    assert due is not None
    pair.initiator.note_activity(due - 1)
    pair.initiator.handle_timer(due)
    assert pair.initiator.datagrams_to_send(due) == []  # heard 1 s ago: no probe yet


def test_invalid_spi_report_drops_the_useless_pair() -> None:
    pair = up()
    [child_i] = pair.initiator.children
    # The responder got ESP with an SPI it has no SA for: the initiator's outbound SPI.
    pair.responder._ctx.children.clear()
    pair.responder.report_invalid_spi(pair.now, child_i.spi_out)
    pair.run()
    assert of(pair.events_i, ChildSaDeleted) == [
        ChildSaDeleted("host", child_i.spi_in, child_i.spi_out, True)
    ]
    assert not pair.initiator.children


def test_rekeys_converge_under_loss_and_duplication() -> None:
    pair = up(loss=0.25, duplicate=0.2)
    for _ in range(3):
        [child] = pair.initiator.children
        pair.initiator.rekey_child(pair.now, child.spi_in)
        pair.run(max_steps=400)
        assert mirrored(pair.initiator, pair.responder)
    pair.responder.rekey_ike(pair.now)
    pair.run(max_steps=400)
    [new_i] = pair.live("i")
    [new_r] = pair.live("r")
    assert mirrored(new_i, new_r) and len(new_i.children) == 1


def test_children_config_is_kept_for_rekeys() -> None:
    pair = up()
    record = pair.initiator._ctx.children[0]
    assert isinstance(record.config, ChildConfig) and record.config.name == "host"


def test_ike_rekey_waits_for_a_child_exchange_in_flight() -> None:
    pair = up()
    [child] = pair.initiator.children
    pair.initiator.delete_child(pair.now, child.spi_in)
    pair.responder.rekey_ike(pair.now)
    pair.run()
    # The initiator had its Delete out: it refused the IKE rekey for now (2.25.2).
    [failed] = of(pair.events_r, IkeRekeyFailed)
    assert failed.reason is FailureReason.TEMPORARY_FAILURE and failed.notify == 43
    assert of(pair.events_i, ChildSaDeleted) and not pair.responder.children
    # Retried later, it goes through.
    pair.responder.rekey_ike(pair.now)
    pair.run()
    [new_i] = pair.live("i")
    [new_r] = pair.live("r")
    assert (new_i.spi_i, new_i.spi_r) == (new_r.spi_i, new_r.spi_r)
