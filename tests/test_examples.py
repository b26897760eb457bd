"""Every example validates (with the secrets its comments say to provide)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipsecconf.config import load

# examples/ci is a GitOps repository skeleton (pipelines, playbooks, one desired state per
# node), not one desired state: tests/ansible/test_recipes.py checks it.
EXAMPLES = sorted(
    p
    for p in (Path(__file__).resolve().parents[1] / "examples").iterdir()
    if p.is_dir() and p.name != "ci"
)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates(example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LYON", "OSLO", "KYIV"):
        monkeypatch.setenv(f"PSK_{name}", f"example-key-{name.lower()}")
    result = load([str(example)])
    assert result.errors == [], [str(e) for e in result.errors]
    assert result.rows, "an example should declare at least one policy"


def test_the_examples_cover_the_foundation_scenarios() -> None:
    assert {p.name for p in EXAMPLES} >= {
        "quickstart",
        "seed-cifs",
        "site-to-site",
        "manual-sa",
        "template-loop",
    }
