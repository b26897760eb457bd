"""The differ: create, no-op, update, replace, delete, drift, prune, adoption, SAs, secrets."""

from __future__ import annotations

from ipsecconf.engine.service import Service
from ipsecconf.model.desired import Policy
from ipsecconf.model.spd import expand
from ipsecconf.plan.model import Action
from tests.plan.conftest import PlanFn
from tests.stateutil import config, policy


def _actions(planned: object) -> dict[str, str]:
    return {c.address: c.action.value for c in planned.plan.changes}  # type: ignore[attr-defined]


def test_first_plan_creates_everything_then_nothing(plan_text: PlanFn, apply_text: PlanFn) -> None:
    first = plan_text(config(2))
    assert set(_actions(first).values()) == {"create"}
    assert {
        "policy.p0.out",
        "policy.p0.in",
        "peer.gw",
        "psk.203.0.113.1",
        "setting.default_action",
    } <= set(_actions(first))
    assert first.plan.summary().line() == "8 to add, 0 to change, 0 to destroy, 0 SAs affected"
    apply_text(config(2))
    again = plan_text(config(2))
    assert not again.plan.has_changes and again.plan.unchanged == 8


def test_one_field_changed_is_exactly_that_update(plan_text: PlanFn, apply_text: PlanFn) -> None:
    apply_text(config(3))
    text = config(3).replace("encryption: aes128", "encryption: aes256", 1)
    planned = plan_text(text)
    assert _actions(planned) == {"policy.p0.in": "update", "policy.p0.out": "update"}
    for c in planned.plan.changes:
        assert [(f.path, f.before, f.after) for f in c.fields] == [
            ("encryption", "aes128", "aes256")
        ]
        assert c.index is not None


def test_selector_change_is_a_replace_naming_the_field(
    plan_text: PlanFn, apply_text: PlanFn
) -> None:
    apply_text(config(1))
    planned = plan_text(config(1).replace("[1024]", "[2048]"))
    (c1, c2) = planned.plan.changes
    assert {c1.action, c2.action} == {Action.REPLACE}
    assert c1.replace_fields == ["selectors"]
    assert all(f.forces_replacement for f in c1.fields)
    assert planned.plan.summary().line() == "2 to add, 0 to change, 2 to destroy, 0 SAs affected"


def test_removed_policy_is_deleted(plan_text: PlanFn, apply_text: PlanFn) -> None:
    apply_text(config(2))
    planned = plan_text(config(1))
    assert _actions(planned) == {
        "policy.p1.in": "delete",
        "policy.p1.out": "delete",
        "psk.203.0.113.2": "delete",
    }
    psk = next(c for c in planned.plan.changes if c.kind == "psk")
    assert psk.sensitive == ["key"]


def _add_unmanaged(service: Service, name: str, **kw: object) -> list[int]:
    rows = expand(Policy(name=name, **kw))  # type: ignore[arg-type]
    return service.backend.add_policies(rows, managed=False)


def test_unmanaged_rows_are_drift_unless_pruned(
    service: Service, plan_text: PlanFn, apply_text: PlanFn
) -> None:
    apply_text(config(1))
    idx = _add_unmanaged(service, "ipsec-9", source="198.51.100.77", destination="203.0.113.77")
    planned = plan_text(config(1))
    assert not planned.plan.has_changes
    assert sorted((d.address, d.index) for d in planned.plan.drift) == sorted(
        [("policy.ipsec-9.out", idx[0]), ("policy.ipsec-9.in", idx[1])]
    )
    pruned = plan_text(config(1), prune=True)
    assert _actions(pruned) == {"policy.ipsec-9.out": "delete", "policy.ipsec-9.in": "delete"}


def test_unmanaged_rows_with_matching_selectors_are_adopted(
    service: Service, plan_text: PlanFn, apply_text: PlanFn
) -> None:
    # The same selectors and direction as p0 of config(1), made imperatively.
    idx = _add_unmanaged(
        service,
        "ipsec-1",
        source="198.51.100.1/32",
        destination="203.0.113.1/32[1024]",
        ip_protocol=6,
        encryption="aes128",
        authentication="sha256",
    )
    planned = plan_text(config(1))
    adopted = {c.address: c for c in planned.plan.changes if c.kind == "policy"}
    assert set(adopted) == {"policy.p0.out", "policy.p0.in"}
    assert {c.previous_address for c in adopted.values()} == {
        "policy.ipsec-1.out",
        "policy.ipsec-1.in",
    }
    assert all(c.action is Action.NOOP for c in adopted.values())
    assert planned.plan.summary().adopt == 2 and planned.plan.summary().add == 3
    service.apply(planned)
    stored = {p.name: (p.idx, p.managed) for p in service.backend.policies()}
    assert stored == {"p0.out": (idx[0], True), "p0.in": (idx[1], True)}
    assert not plan_text(config(1)).plan.has_changes


def test_adoption_with_a_different_setting_is_an_update(
    service: Service, plan_text: PlanFn
) -> None:
    _add_unmanaged(
        service,
        "ipsec-1",
        source="198.51.100.1/32",
        destination="203.0.113.1/32[1024]",
        ip_protocol=6,
        encryption="3des",
        authentication="sha256",
    )
    planned = plan_text(config(1))
    c = next(c for c in planned.plan.changes if c.address == "policy.p0.out")
    assert c.action is Action.UPDATE and c.adopted
    assert [(f.path, f.before, f.after) for f in c.fields] == [("encryption", "3des", "aes128")]


def test_changes_list_the_live_sas_they_tear_down(
    service: Service, plan_text: PlanFn, apply_text: PlanFn
) -> None:
    apply_text(config(2))
    store = service.backend.store  # type: ignore[attr-defined]
    with store.transaction() as w:
        mature = w.add_sa(
            spi=0xC0FFEE,
            protocol="esp",
            source="198.51.100.1",
            destination="203.0.113.1",
            state="M",
            policy="p0",
        )
        w.add_sa(
            spi=0xDEAD,
            protocol="esp",
            source="198.51.100.1",
            destination="203.0.113.1",
            state="D",
            policy="p0",
        )
        other = w.add_sa(
            spi=0xBEEF,
            protocol="esp",
            source="198.51.100.2",
            destination="203.0.113.2",
            state="M",
            policy="p1",
        )
        via_peer = w.add_sa(
            spi=0xFACE,
            protocol="esp",
            source="198.51.100.9",
            destination="203.0.113.254",
            state="M",
            peer="gw",
        )
    planned = plan_text(config(2).replace("encryption: aes128", "encryption: aes256", 1))
    affected = {c.address: [s.id for s in c.affected_sas] for c in planned.plan.changes}
    assert affected == {"policy.p0.in": [mature], "policy.p0.out": [mature]}
    assert planned.plan.summary().sas_affected == 1
    rotated = plan_text(config(2)).plan  # nothing changed: no SA listed
    assert rotated.summary().sas_affected == 0
    service.apply(planned)
    states = {sa.id: sa.state for sa in service.backend.sas()}
    assert states[mature] == "D" and states[other] == "M" and states[via_peer] == "M"


def test_secret_rotation_plans_as_sensitive_change(
    plan_text: PlanFn, apply_text: PlanFn, monkeypatch: object
) -> None:
    apply_text(config(1))
    monkeypatch.setenv("TEST_GW_PSK", "rotated-value-9")  # type: ignore[attr-defined]
    planned = plan_text(config(1))
    (c,) = planned.plan.changes
    assert (c.address, c.action, c.sensitive, c.fields) == ("peer.gw", Action.UPDATE, ["psk"], [])


def test_reference_rename_with_same_value_is_no_change(
    plan_text: PlanFn, apply_text: PlanFn, monkeypatch: object
) -> None:
    apply_text(config(1))
    monkeypatch.setenv("OTHER_NAME", "gw-Secret-42b1e8")  # type: ignore[attr-defined]
    assert not plan_text(config(1).replace("env:TEST_GW_PSK", "env:OTHER_NAME")).plan.has_changes


def test_new_policy_among_many_is_one_create_pair(plan_text: PlanFn, apply_text: PlanFn) -> None:
    apply_text(config(5))
    planned = plan_text(config(5) + policy("extra", 2).replace("[1026]", "[3000]"))
    assert _actions(planned) == {"policy.extra.in": "create", "policy.extra.out": "create"}
