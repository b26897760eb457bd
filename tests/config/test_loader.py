"""Merging files and directories, vars precedence, defaults, offline checks, psk.txt."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from ipsecconf.config import load, policy_checks
from ipsecconf.config.sources import parse_var
from ipsecconf.model.spd import PolicyRow


def _write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_directory_merges_in_sorted_order(tmp_path: Path) -> None:
    _write(tmp_path, "b/20.yaml", "policies:\n  - name: second\n    destination: 203.0.113.2\n")
    _write(tmp_path, "a/10.yaml", "policies:\n  - name: first\n    destination: 203.0.113.1\n")
    _write(tmp_path, "a/psk.txt", "203.0.113.1 k1\n203.0.113.2 k2\n")
    _write(tmp_path, "a/00.yml", "psk_file: psk.txt\n")
    _write(tmp_path, "a/notes.txt", "ignored")
    result = load([str(tmp_path)])
    assert result.errors == []
    assert result.files == [
        str(tmp_path / "a/00.yml"),
        str(tmp_path / "a/10.yaml"),
        str(tmp_path / "b/20.yaml"),
    ]
    assert [p.name for p in result.document.policies] == ["first", "second"]


def test_singletons_set_twice_are_an_error_naming_both_files(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.yaml", "default_action: discard\n")
    b = _write(tmp_path, "b.yaml", "policies: []\ndefault_action: bypass\n")
    errors = load([a, b]).errors
    assert len(errors) == 1
    assert errors[0].file == b and errors[0].line == 2
    assert f"already set in {a}" in errors[0].message


def test_errors_in_second_file_point_into_it(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.yaml", "policies:\n  - name: ok\n    protocol: none\n")
    b = _write(tmp_path, "b.yaml", "# team B\npolicies:\n  - name: bad\n    level: loose\n")
    errors = load([a, b]).errors
    assert [(e.file, e.line, e.column) for e in errors] == [(b, 4, 12)]


def test_defaults_apply_and_errors_point_at_defaults(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "d.yaml",
        "defaults:\n  encryption: aes128gcm\n  authentication: sha256\n"
        "policies:\n  - name: a\n    destination: 203.0.113.0/24\n  - name: b\n"
        "    destination: 198.51.100.0/24\n    authentication: none\n",
    )
    result = load([path])
    errors = result.errors
    # Policy a inherits the bad combination; the error points at the defaults line.
    assert [(e.line, e.column) for e in errors] == [(3, 19)]
    assert result.document is not None
    b = result.document.policies[1]
    assert (b.encryption, b.authentication) == ("aes128gcm", "none")


def test_vars_precedence(tmp_path: Path) -> None:
    tpl = _write(
        tmp_path,
        "t.yaml.j2",
        "vars:\n  a: file\n  b: file\n  c: file\npolicies:\n"
        "  - name: {{ a }}-{{ b }}-{{ c }}\n    protocol: none\n",
    )
    vf = _write(tmp_path, "vars.yaml", "b: varsfile\nc: varsfile\n")
    result = load([tpl], variables={"c": "cli"}, vars_files=[vf])
    assert result.errors == []
    assert result.document.policies[0].name == "file-varsfile-cli"


def test_vars_from_plain_file_reach_templates(tmp_path: Path) -> None:
    _write(tmp_path, "00-vars.yaml", "vars:\n  peer_ip: 203.0.113.7\n")
    _write(
        tmp_path,
        "10-p.yaml.j2",
        "peers:\n  - name: p\n    address: {{ peer_ip }}\n    psk: literal:x\n",
    )
    result = load([str(tmp_path)])
    assert result.errors == []
    assert str(result.document.peers[0].address) == "203.0.113.7"
    assert any("secret written in the file" in w.message for w in result.warnings)


def test_parse_var_types_values() -> None:
    assert parse_var("n=3") == ("n", 3)
    assert parse_var("name=gw") == ("name", "gw")
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_var("3x=1")


def test_offline_checks_references_without_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SITE_PSK", raising=False)
    path = _write(
        tmp_path,
        "o.yaml",
        "peers:\n  - name: p\n    address: 203.0.113.7\n    psk: env:SITE_PSK\n"
        "  - name: q\n    address: 203.0.113.8\n    psk: env:bad-name\n",
    )
    online = load([path])
    assert any("SITE_PSK is not set" in e.message for e in online.errors)
    offline = load([path], offline=True)
    assert [e.message for e in offline.errors] == [
        "'bad-name' is not a valid environment variable name"
    ]
    assert offline.secrets.values == {}


def test_psk_file_supplies_keys_by_address(tmp_path: Path) -> None:
    _write(tmp_path, "psk.txt", "# comment\n203.0.113.7 k7\n\n203.0.113.8   k8 with spaces\n")
    path = _write(
        tmp_path,
        "p.yaml",
        "psk_file: psk.txt\npolicies:\n  - name: a\n    destination: 203.0.113.7/32\n"
        "  - name: b\n    destination: 203.0.113.9/32\n",
    )
    result = load([path])
    assert result.secrets.psk_by_address["203.0.113.8"] == b"k8 with spaces"
    assert result.errors == []
    assert [(w.line, w.message[:40]) for w in result.warnings] == [
        (5, "no pre-shared key for 203.0.113.9, the I")
    ]


def test_bad_psk_file_line(tmp_path: Path) -> None:
    _write(tmp_path, "psk.txt", "203.0.113.7 k7\nnot-an-ip key\n")
    path = _write(tmp_path, "p.yaml", "psk_file: [psk.txt]\n")
    errors = load([path]).errors
    assert len(errors) == 1
    assert "psk.txt (line 2): 'not-an-ip' is not an IP address" in errors[0].message


def test_missing_path_and_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    errors = load([str(tmp_path / "nope.yaml"), str(tmp_path / "empty")]).errors
    assert sorted((e.file, e.message) for e in errors) == [
        (str(tmp_path / "empty"), "directory holds no .yaml/.yml/.j2 file"),
        (str(tmp_path / "nope.yaml"), "no such file or directory"),
    ]


def test_shadowed_policy_warns(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "s.yaml",
        "policies:\n"
        "  - name: wide\n    destination: 203.0.113.0/24\n    protocol: none\n    priority: 10\n"
        "  - name: narrow\n    destination: 203.0.113.5/32[22]\n    ip_protocol: tcp\n"
        "    protocol: discard\n    priority: 20\n",
    )
    warnings = load([path]).warnings
    assert len(warnings) == 2  # the .out rows and the mirrored .in rows
    assert all("is shadowed by wide." in w.message for w in warnings)
    assert all("which comes first and bypasses that traffic" in w.message for w in warnings)
    assert {w.line for w in warnings} == {6}


def test_specific_policy_is_not_shadowed_by_default_order(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "s.yaml",
        "policies:\n"
        "  - name: wide\n    destination: 203.0.113.0/24\n    protocol: none\n"
        "  - name: narrow\n    destination: 203.0.113.5/32\n    protocol: discard\n",
    )
    result = load([path])
    assert result.warnings == []
    assert [r.name for r in result.rows][:2] == ["narrow.in", "narrow.out"]


def test_shadowing_under_one_broad_rule_warns_for_every_row(tmp_path: Path) -> None:
    # 20,000 rows under one broad rule: each is found shadowed, with its own warning.
    lines = ["policies:", "  - name: all", "    protocol: none", "    priority: 1"]
    for i in range(10_000):
        lines += [
            f"  - name: h{i}",
            f"    destination: 10.{i >> 8 & 255}.{i & 255}.0/24",
            "    protocol: discard",
            "    priority: 5",
        ]
    path = _write(tmp_path, "big.yaml", "\n".join(lines) + "\n")
    warnings = load([path]).warnings
    assert len(warnings) == 20_000


def _nets_and_hosts(groups: int) -> str:
    """``groups`` bypassed /24 networks first, then one discarded host inside each.

    Every host is shadowed by its own network only, which comes ``groups`` rows earlier:
    a scan of all earlier rows compares each host with every network (quadratic), the
    bucketed checker looks only in the host's ancestor buckets (a constant per row).
    """
    lines = ["policies:"]
    for i in range(groups):
        net = f"10.{i >> 8 & 255}.{i & 255}"
        lines += [f"  - name: n{i}", f"    destination: {net}.0/24", "    protocol: none"]
        lines += ["    priority: 10"]
        lines += [f"  - name: h{i}", f"    destination: {net}.7/32", "    protocol: discard"]
        lines += ["    priority: 20"]
    return "\n".join(lines) + "\n"


def _all_pairs_comparisons(rows: list[PolicyRow]) -> int:
    """What a scan of all earlier rows compares: pairs (earlier, later) in SPD order with
    the same direction and different actions (counted in one pass)."""
    seen: dict[tuple[str, str], int] = defaultdict(int)
    total = 0
    for row in rows:
        total += sum(n for (d, a), n in seen.items() if d == row.direction and a != row.action)
        seen[(row.direction, row.action)] += 1
    return total


def _cover_tests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, groups: int) -> tuple[int, int]:
    """The cover tests the shadowing check makes on ``groups`` networks and hosts, and
    the comparisons an all-pairs scan would make on the same rows."""
    calls = 0
    real = policy_checks._side_covers

    def counted(outer: Any, inner: Any) -> bool:
        nonlocal calls
        calls += 1
        return real(outer, inner)

    monkeypatch.setattr(policy_checks, "_side_covers", counted)
    path = _write(tmp_path, f"shadow-{groups}.yaml", _nets_and_hosts(groups))
    result = load([path])
    monkeypatch.setattr(policy_checks, "_side_covers", real)
    assert result.errors == []
    # Every host (both rows of its mirrored pair) is shadowed by its own network.
    assert {w.message for w in result.warnings} == {
        f"policy h{i}.{d} ({sel}) is shadowed by n{i}.{d}, which comes first and bypasses "
        "that traffic: it never matches"
        for i in range(groups)
        for d, sel in (
            ("in", f"10.{i >> 8 & 255}.{i & 255}.7/32 -> any (any)"),
            ("out", f"any -> 10.{i >> 8 & 255}.{i & 255}.7/32 (any)"),
        )
    }
    return calls, _all_pairs_comparisons(result.rows)


def test_shadowing_work_grows_linearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted, not timed: 4x the policies cost about 4x the cover tests (an all-pairs scan
    would cost 16x on this input)."""
    small, naive_small = _cover_tests(tmp_path, monkeypatch, 500)
    large, naive_large = _cover_tests(tmp_path, monkeypatch, 2000)
    # The input is one on which a scan of all earlier rows does quadratic work.
    assert naive_small == 2 * 500 * 500 and naive_large == 16 * naive_small
    # At least one cover test per shadowed row (2 rows per host), and a constant per row.
    assert 2 * 500 <= small <= 4 * 2 * 500
    assert 2 * 2000 <= large <= 4 * 2 * 2000
    assert large / small <= 4.5, (small, large)
