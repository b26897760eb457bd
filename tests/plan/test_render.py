"""Plan renderings: Terraform-style text, JSON against schemas/plan.schema.json, saved plans."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from ipsecconf.engine.service import Service
from ipsecconf.plan import planfile, render_json, render_text
from ipsecconf.plan.planfile import PlanFileError
from tests.plan.conftest import PlanFn
from tests.stateutil import ROOT, config

SCHEMA = json.loads((ROOT / "schemas" / "plan.schema.json").read_text())


def _mixed(
    service: Service, plan_text: PlanFn, apply_text: PlanFn, monkeypatch: pytest.MonkeyPatch
):  # type: ignore[no-untyped-def]
    apply_text(config(3))
    store = service.backend.store  # type: ignore[attr-defined]
    with store.transaction() as w:
        w.add_sa(
            spi=0xABCD1234,
            protocol="esp",
            source="198.51.100.2",
            destination="203.0.113.2",
            state="M",
            policy="p1",
        )
    monkeypatch.setenv("TEST_GW_PSK", "rotated-Value-1")
    text = (
        config(3)
        .replace("encryption: aes128", "encryption: aes256", 1)  # p0: update
        .replace("[1025]", "[1999]")  # p1: replace
    )
    text = text.replace(text[text.index("  - name: p2") :], "")  # p2: delete
    return plan_text(text)


def test_text_plan_uses_terraform_symbols_and_summary(
    service: Service, plan_text: PlanFn, apply_text: PlanFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = _mixed(service, plan_text, apply_text, monkeypatch)
    text = render_text.render(planned.plan)
    assert "\x1b[" not in text
    assert "  ~ policy.p0.out" in text and '~ encryption: "aes128" -> "aes256"' in text
    assert "-/+ policy.p1.out" in text and "# forces replacement" in text
    assert "  - policy.p2.out" in text
    assert "~ psk: (sensitive value changed)" in text
    assert "tears down SA esp spi 0xabcd1234 198.51.100.2 -> 203.0.113.2 (M)" in text
    assert text.rstrip().endswith("Plan: 2 to add, 3 to change, 4 to destroy, 1 SAs affected.")
    assert "\x1b[" in render_text.render(planned.plan, colour=True)


def test_no_changes_text(plan_text: PlanFn, apply_text: PlanFn) -> None:
    apply_text(config(1))
    text = render_text.render(plan_text(config(1)).plan)
    assert text.startswith("No changes.")


def test_json_plan_validates_against_the_schema(
    service: Service, plan_text: PlanFn, apply_text: PlanFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = _mixed(service, plan_text, apply_text, monkeypatch)
    doc = render_json.render(planned.plan)
    jsonschema.validate(doc, SCHEMA)
    by = {c["address"]: c for c in doc["resource_changes"]}
    assert by["policy.p1.in"]["change"]["actions"] == ["delete", "create"]
    assert by["policy.p1.in"]["change"]["replace_paths"] == [["selectors"]]
    assert by["policy.p2.in"]["change"]["actions"] == ["delete"]
    assert by["peer.gw"]["change"]["after_sensitive"] == {"psk": True}
    assert "psk" not in by["peer.gw"]["change"]["after"]
    assert [s["spi"] for s in by["policy.p1.out"]["affected_sas"]] == [0xABCD1234]
    assert doc["format_version"] == "1.0" and doc["summary"]["sas_affected"] == 1
    empty = render_json.render(plan_text(config(1)).plan)  # a create-only plan too
    jsonschema.validate(empty, SCHEMA)


def test_saved_plan_round_trip_and_bad_files(
    service: Service, plan_text: PlanFn, tmp_path: Path
) -> None:
    planned = plan_text(config(2))
    out = tmp_path / "p.plan"
    service.save(planned, str(out))
    assert out.stat().st_mode & 0o777 == 0o600
    assert planfile.is_planfile(str(out)) and not planfile.is_planfile(str(tmp_path / "cfg"))
    saved = planfile.read(str(out))
    assert (saved.lineage, saved.serial) == (planned.plan.lineage, planned.plan.serial)
    assert saved.plan_digest == planned.plan.digest()
    jsonschema.validate(saved.document, SCHEMA)
    bad = tmp_path / "bad.plan"
    bad.write_text("{ not json")
    with pytest.raises(PlanFileError, match="not a saved plan"):
        planfile.read(str(bad))
    bad.write_text(json.dumps({"magic": "ipsecconf-plan", "planfile_version": 99}))
    with pytest.raises(PlanFileError, match="format 99"):
        planfile.read(str(bad))
    with pytest.raises(PlanFileError, match="cannot read"):
        planfile.read(str(tmp_path / "missing.plan"))
