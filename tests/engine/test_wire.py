"""The control socket's JSON forms: every value survives the round trip through JSON, and
secret values appear only where they must (the desired state sent to the engine)."""

from __future__ import annotations

import json
from pathlib import Path

from ipsecconf.engine import wire
from ipsecconf.engine.service import Service, StoreBackend
from ipsecconf.plan.planfile import Inputs
from tests.engine.memnet import apply_to_store, write_config

PSK = b"memnet-test-psk-0123456789"


def _through_json(value: object) -> object:
    return json.loads(json.dumps(value))


def test_plan_desired_snapshot_round_trip(tmp_path: Path) -> None:
    state = str(tmp_path / "state.db")
    apply_to_store(state, write_config(tmp_path / "a", "a"))
    svc = Service(StoreBackend(state))
    try:
        # A change with an affected SA and field-level detail, against a non-empty store.
        with svc.backend.store.transaction() as w:  # type: ignore[attr-defined]
            w.add_sa(spi=0x1234, protocol="esp", source="203.0.113.2",
                     destination="203.0.113.1", state="M", policy="site", peer="gw")  # fmt: skip
        planned = svc.plan(
            Inputs.make([str(write_config(tmp_path / "a", "a", "aes256gcm"))], {}, [], False)
        )
        snap = svc.backend.snapshot()
    finally:
        svc.backend.close()
    plan = planned.plan
    assert any(c.affected_sas for c in plan.changes) and any(c.fields for c in plan.changes)
    again = wire.plan_from_json(_through_json(wire.plan_to_json(plan)))  # type: ignore[arg-type]
    assert again == plan and again.digest() == plan.digest()
    desired = wire.desired_from_json(_through_json(wire.desired_to_json(planned.desired)))  # type: ignore[arg-type]
    assert desired == planned.desired
    assert desired.secret_values()["peer.gw#psk"].value == PSK
    assert wire.snapshot_from_json(_through_json(wire.snapshot_to_json(snap))) == snap  # type: ignore[arg-type]
    # The plan and the snapshot never carry the key; the desired state carries it encoded.
    assert wire.b64(PSK) not in json.dumps(wire.plan_to_json(plan))
    assert wire.b64(PSK) not in json.dumps(wire.snapshot_to_json(snap))
    assert wire.b64(PSK) in json.dumps(wire.desired_to_json(planned.desired))
    assert PSK.decode() not in repr(desired) + repr(snap)
