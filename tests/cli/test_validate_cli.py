"""``ipsecconf validate`` and ``schema`` as a user runs them: output, JSON and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ipsecconf.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_valid_file_exits_0_with_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "validate", str(ROOT / "examples/quickstart"))
    assert code == 0
    assert out.startswith("valid: 1 policies (2 SPD entries), 1 peers")
    assert err == ""


def test_warnings_go_to_stderr_and_strict_fails(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(ROOT / "examples/seed-cifs")
    code, _, err = run(capsys, "validate", path)
    assert code == 0 and "warning: weak algorithm 3des" in err
    code, _, err = run(capsys, "validate", "--strict", path)
    assert code == 1 and "(--strict)" in err


WEAK_DH = """\
peers:
  - name: gw
    address: 203.0.113.9
    psk: env:TEST_PSK_GW
    ike_proposals: [aes128-sha256-{ike_group}]
policies:
  - name: a
    destination: 203.0.113.9/32
    peer: gw
    pfs_group: {pfs_group}
  - name: b
    destination: 203.0.113.10/32
    peer: gw
    esp_proposals: [aes128gcm-{esp_group}]
"""


@pytest.mark.parametrize("group", ["modp768", "modp1024", "modp1536"])
def test_weak_dh_groups_warn_and_strict_fails(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    group: str,
) -> None:
    monkeypatch.setenv("TEST_PSK_GW", "gw-secret-value")
    path = tmp_path / "dh.yaml"
    path.write_text(WEAK_DH.format(ike_group=group, pfs_group=group, esp_group=group))
    code, out, err = run(capsys, "validate", str(path))
    # A warning, not an error: the file is valid, exit 0, each use named at its place.
    assert code == 0, err
    assert out.startswith("valid: 2 policies (4 SPD entries), 1 peers, 0 manual SAs, 3 warnings")
    assert err.splitlines() == [
        f"{path}:5:21: warning: weak algorithm {group} for IKE (RFC 8247)",
        f"{path}:10:16: warning: weak algorithm {group}; RFC 8221 advises against it",
        f"{path}:14:21: warning: weak algorithm {group} (RFC 8221)",
    ]
    code, out, err = run(capsys, "validate", "--json", str(path))
    assert code == 0
    assert [d["severity"] for d in json.loads(out)] == ["warning"] * 3
    code, _, err = run(capsys, "validate", "--strict", str(path))
    assert code == 1
    assert err.count(f"warning: weak algorithm {group}") == 3
    assert "invalid: 0 errors and 3 warnings (--strict)" in err


def test_strong_dh_groups_do_not_warn(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The control case: the same file with modern groups passes --strict silently.
    monkeypatch.setenv("TEST_PSK_GW", "gw-secret-value")
    path = tmp_path / "dh.yaml"
    path.write_text(WEAK_DH.format(ike_group="modp2048", pfs_group="ecp256", esp_group="x25519"))
    code, out, err = run(capsys, "validate", "--strict", str(path))
    assert (code, err) == (0, "")
    assert out.startswith("valid: 2 policies (4 SPD entries), 1 peers, 0 manual SAs")
    assert "warning" not in out


def test_errors_exit_1_with_location(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  - name: a\n    encryption: rot13\n")
    code, _, err = run(capsys, "validate", str(bad))
    assert code == 1
    assert f"{bad}:3:17: error: encryption: unknown encryption algorithm 'rot13'" in err
    assert "Traceback" not in err


def test_json_diagnostics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  - name: a\n    level: maybe\n")
    code, out, _ = run(capsys, "validate", "--json", str(bad))
    assert code == 1
    (item,) = json.loads(out)
    assert item["severity"] == "error" and item["path"] == str(bad)
    assert (item["line"], item["column"]) == (3, 12)
    assert set(item) == {"severity", "path", "line", "column", "message"}


def test_offline_does_not_need_the_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PSK_LYON", raising=False)
    path = str(ROOT / "examples/template-loop")
    assert run(capsys, "validate", path)[0] == 1
    assert run(capsys, "validate", "--offline", path)[0] == 0


def test_var_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = tmp_path / "t.yaml"
    t.write_text("policies:\n  - name: {{ n }}\n    protocol: none\n")
    assert run(capsys, "validate", str(t), "--var", "n=web")[0] == 0
    code, _, err = run(capsys, "validate", str(t), "--var", "bad")
    assert code == 1 and "NAME=VALUE" in err


def test_usage_errors_exit_1_never_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate"])
    assert info.value.code == 1
    with pytest.raises(SystemExit) as info:
        main(["no-such-command"])
    assert info.value.code == 1


def test_schema_command_matches_the_committed_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    assert code == 0
    committed = (ROOT / "schemas/ipsecconf.schema.json").read_text()
    assert json.loads(out) == json.loads(committed), (
        "schemas/ipsecconf.schema.json is stale: run `ipsecconf schema > "
        "schemas/ipsecconf.schema.json`"
    )


def test_examples_validate_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from ruamel.yaml import YAML

    schema = json.loads((ROOT / "schemas/ipsecconf.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for path in (ROOT / "examples").rglob("*.yaml"):
        parts = path.relative_to(ROOT / "examples").parts
        if parts[0] == "ci" and parts[1] != "ipsec":
            continue  # pipelines and playbooks, not desired states
        text = path.read_text()
        assert text.startswith("# yaml-language-server: $schema="), path
        errors = list(
            jsonschema.Draft202012Validator(schema).iter_errors(YAML(typ="safe").load(text))
        )
        assert errors == [], (path, [e.message for e in errors])


def test_python_dash_m_works() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "ipsecconf", "validate", str(ROOT / "examples/manual-sa")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("valid:")
