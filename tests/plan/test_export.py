"""``export``: YAML that validates and plans to no changes; adoption of unmanaged entries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from ipsecconf.config import load
from ipsecconf.engine.service import Service
from ipsecconf.model.desired import Policy
from ipsecconf.model.spd import expand
from ipsecconf.plan.export import env_name
from ipsecconf.plan.planfile import Inputs
from tests.plan.conftest import PlanFn
from tests.stateutil import ROOT, config

# examples/ci is a GitOps repository skeleton (pipelines, playbooks), not one desired state.
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.is_dir() and p.name != "ci")


def _plan_file(service: Service, path: Path) -> object:
    return service.plan(Inputs.make([str(path)], {}, [], False))


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_export_of_each_example_plans_to_no_changes(
    example: Path, service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("LYON", "OSLO", "KYIV"):
        monkeypatch.setenv(f"PSK_{name}", f"example-key-{name.lower()}")
    copy = tmp_path / example.name
    shutil.copytree(example, copy)
    service.apply(service.plan(Inputs.make([str(copy)], {}, [], False)))
    out = tmp_path / "export.yaml"
    out.write_text(service.export())
    result = load([str(out)])
    assert result.errors == [], [str(e) for e in result.errors]
    planned = _plan_file(service, out)
    assert not planned.plan.has_changes, [c.address for c in planned.plan.changes]  # type: ignore[attr-defined]


def test_export_writes_references_never_values(apply_text: PlanFn, service: Service) -> None:
    apply_text(config(2))
    text = service.export()
    doc = YAML(typ="safe").load(text)
    assert doc["peers"][0]["psk"] == "env:TEST_GW_PSK"
    assert {p["key"] for p in doc["psks"]} == {"env:TEST_PSK"}
    assert "psk-Value" not in text and "gw-Secret" not in text


def test_literal_secrets_export_as_generated_env_names(plan_text: PlanFn, service: Service) -> None:
    text = config(1).replace("key: env:TEST_PSK", 'key: "literal-Psk-123"')
    service.apply(plan_text(text))
    exported = service.export()
    name = env_name("psk.203.0.113.1#key")
    assert name == "IPSECCONF_SECRET_PSK_203_0_113_1_KEY"
    assert f"key: env:{name}" in exported and f"#   {name}" in exported
    assert "literal-Psk-123" not in exported


def test_unmanaged_entries_export_and_are_adopted_on_a_fresh_node(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_PSK", "x")
    rows = expand(
        Policy(
            name="ipsec-1",
            source="198.51.100.3",
            destination="203.0.113.3[139]",
            protocol="esp",
            encryption="3des",
            authentication="sha1",
        )
    )
    rows += expand(
        Policy(
            name="ipsec-2",
            source="198.51.100.4",
            destination="203.0.113.4",
            protocol="none",
            mirror=False,
        )
    )
    service.backend.add_policies(rows)
    out = tmp_path / "export.yaml"
    out.write_text(service.export() + "psks:\n  - address: 203.0.113.3\n    key: env:TEST_PSK\n")
    planned = _plan_file(service, out).plan  # type: ignore[attr-defined]
    policies = [c for c in planned.changes if c.kind == "policy"]
    assert {c.address for c in policies} == {
        "policy.ipsec-1.out",
        "policy.ipsec-1.in",
        "policy.ipsec-2.out",
    }
    assert all(c.adopted and c.action.value == "no-op" for c in policies)
    before = {p.name: p.idx for p in service.backend.policies()}
    service.apply(_plan_file(service, out))  # type: ignore[arg-type]
    after = service.backend.policies()
    assert {p.name: p.idx for p in after} == before and all(p.managed for p in after)
    assert not _plan_file(service, out).plan.has_changes  # type: ignore[attr-defined]
