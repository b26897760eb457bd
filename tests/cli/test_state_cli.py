"""``ipsecconf plan/apply/show/export/force-unlock`` as a user runs them."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from ipsecconf.state import StateLock
from tests.stateutil import GW_PSK, PSK, PYTHON, Terminal, config, env, policy, run_cli, write


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PSK", PSK)
    monkeypatch.setenv("TEST_GW_PSK", GW_PSK)
    monkeypatch.delenv("IPSECCONF_STATE", raising=False)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run_cli(*argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_apply_then_plan_is_clean_and_one_change_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "state.db")
    cfg = write(tmp_path / "cfg", config(3))
    code, out, err = cli(capsys, "--state", db, "apply", str(cfg), "--auto-approve")
    assert code == 0 and "Apply complete!" in out and "apply transaction begun" in err
    code, out, _ = cli(capsys, "--state", db, "plan", str(cfg), "--detailed-exitcode")
    assert code == 0 and out.startswith("No changes.")
    write(
        tmp_path / "cfg", config(3).replace("authentication: sha256", "authentication: sha512", 1)
    )
    code, out, _ = cli(capsys, "plan", str(cfg), "--detailed-exitcode", "--state", db)
    assert code == 2
    changed = [line for line in out.splitlines() if line.strip().startswith("~ ")]
    assert changed == [
        "  ~ policy.p0.in",
        '      ~ authentication: "sha256" -> "sha512"',
        "  ~ policy.p0.out",
        '      ~ authentication: "sha256" -> "sha512"',
    ]
    assert "Plan: 0 to add, 2 to change, 0 to destroy, 0 SAs affected." in out
    code, out, _ = cli(capsys, "--state", db, "plan", str(cfg))
    assert code == 0  # without --detailed-exitcode changes are still success


def test_plan_on_a_missing_state_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "state" / "state.db"
    cfg = write(tmp_path / "cfg", config(1))
    code, out, _ = cli(capsys, "--state", str(db), "plan", str(cfg))
    assert code == 0 and "Plan: 5 to add" in out
    assert not (tmp_path / "state").exists()
    # A saved plan needs the state it will be applied to: that one is created.
    saved = str(tmp_path / "p.plan")
    code, out, _ = cli(capsys, "--state", str(db), "plan", str(cfg), "--out", saved)
    assert code == 0 and db.exists()
    code, out, _ = cli(capsys, "--state", str(db), "apply", saved)
    assert code == 0 and "Apply complete!" in out


def test_plan_json_and_saved_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "state.db")
    cfg = write(tmp_path / "cfg", config(1))
    code, out, _ = cli(
        capsys, "--state", db, "plan", str(cfg), "--json", "--out", str(tmp_path / "p.plan")
    )
    doc = json.loads(out)
    assert code == 0 and doc["format_version"] == "1.0" and doc["summary"]["add"] == 5
    code, out, err = cli(capsys, "--state", db, "apply", str(tmp_path / "p.plan"))
    assert code == 0, err
    code, out, err = cli(capsys, "--state", db, "apply", str(tmp_path / "p.plan"))
    assert code == 1 and "saved plan" in err and "is stale" in err and "run plan again" in err
    assert "Traceback" not in err


def test_apply_without_a_terminal_needs_auto_approve(tmp_path: Path) -> None:
    cfg = write(tmp_path / "cfg", config(1))
    proc = subprocess.run(
        [PYTHON, "-m", "ipsecconf", "--state", str(tmp_path / "s.db"), "apply", str(cfg)],
        env=env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "needs --auto-approve or a saved plan" in proc.stderr
    assert not (tmp_path / "s.db").exists()


def _apply_without_terminal(db: Path, cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "ipsecconf", "--state", str(db), "apply", str(cfg), "--auto-approve"],
        env=env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,  # stderr is a pipe, as under CI or in a log: not a terminal
        text=True,
        timeout=120,
    )


def test_apply_progress_without_a_terminal_is_plain_lines(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    cfg = write(tmp_path / "cfg", config(40))  # 40 PSKs, a peer, 80 policy rows, a setting
    proc = _apply_without_terminal(db, cfg)
    assert proc.returncode == 0, proc.stderr
    assert "Apply complete! 122 to add" in proc.stdout
    lines = proc.stderr.splitlines()
    assert lines[0] == "ipsecconf: apply transaction begun (122 changes)"
    progress = [re.fullmatch(r"apply: (\d+)/122 changes written", line) for line in lines[1:]]
    assert progress and all(progress), proc.stderr
    done = [int(m.group(1)) for m in progress if m]
    # Counts only go up, end with every change written, and come at most every 10 %
    # (a log stays readable): no bar, no colour, no carriage-return redraws.
    assert done == sorted(set(done)) and done[-1] == 122
    assert len(done) <= 11
    assert len({d * 10 // 122 for d in done}) == len(done)
    assert "\x1b[" not in proc.stderr and "\r" not in proc.stderr
    # One more policy (to a host that has a key): the next apply reports its own total.
    write(tmp_path / "cfg", config(40) + policy("extra", 250))
    proc = _apply_without_terminal(db, cfg)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        "ipsecconf: apply transaction begun (2 changes)",
        "apply: 2/2 changes written",
    ]


def _pty_run(argv: list[str], answer: str) -> tuple[int, str]:
    term = Terminal(*argv)
    term.read_until("Enter a value:")
    term.send(answer)
    return term.finish()


def test_apply_on_a_terminal_asks_for_confirmation(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    cfg = write(tmp_path / "cfg", config(1))
    base = ["--state", db, "apply", str(cfg)]
    code, text = _pty_run(base, "no")
    assert code == 1 and "Apply cancelled." in text
    assert "\x1b[" in text  # colour on a terminal
    code, text = _pty_run(base, "yes")
    assert code == 0 and "Apply complete!" in text


def test_show_subjects_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "state.db")
    code, _, err = cli(capsys, "--state", db, "show", "policies")
    assert code == 1 and "no state at" in err
    cfg = write(tmp_path / "cfg", config(2))
    cli(capsys, "--state", db, "apply", str(cfg), "--auto-approve")
    code, out, _ = cli(capsys, "--state", db, "show", "policies")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["Index", "Name", "Managed"]
    assert len(out.splitlines()) == 5
    code, out, _ = cli(capsys, "--state", db, "show", "policies", "--json")
    assert sorted(p["index"] for p in json.loads(out)) == [1, 2, 3, 4]
    for what in ("sas", "certs", "stats", "history"):
        code, out, _ = cli(capsys, "--state", db, "show", what, "--json")
        assert code == 0
        json.loads(out)
        code, out, _ = cli(capsys, "--state", db, "show", what)
        assert code == 0 and out
    code, out, _ = cli(capsys, "--state", db, "show", "history", "--json")
    (entry,) = json.loads(out)
    assert entry["summary"].startswith("8 to add") and entry["serial"] == 1


def test_export_to_a_file_plans_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "state.db")
    cfg = write(tmp_path / "cfg", config(2))
    cli(capsys, "--state", db, "apply", str(cfg), "--auto-approve")
    code, _, _ = cli(capsys, "--state", db, "export", "-o", str(tmp_path / "e.yaml"))
    assert code == 0
    code, out, _ = cli(
        capsys, "--state", db, "plan", str(tmp_path / "e.yaml"), "--detailed-exitcode"
    )
    assert code == 0, out


def test_lock_timeout_names_the_holder_and_force_unlock(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "state.db")
    cfg = write(tmp_path / "cfg", config(1))
    holder = StateLock(db)
    info = holder.acquire(0, "ipsecconf apply elsewhere.yaml")
    code, _, err = cli(
        capsys, "--state", db, "apply", str(cfg), "--auto-approve", "--lock-timeout", "0.2"
    )
    assert code == 1
    assert f"lock ID {info.id}, held by pid {os.getpid()}" in err and "waited 0.2s" in err
    code, _, err = cli(capsys, "--state", db, "force-unlock", info.id)
    assert code == 1 and "still running" in err
    holder.release()
    code, out, _ = cli(capsys, "--state", db, "apply", str(cfg), "--auto-approve")
    assert code == 0 and "Apply complete!" in out


def test_bad_inputs_are_clear_errors_and_change_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "state.db")
    cfg = write(tmp_path / "cfg", config(1))
    cli(capsys, "--state", db, "apply", str(cfg), "--auto-approve")
    before = Path(db).read_bytes()
    bad = write(tmp_path / "bad", "policies:\n  - name: x\n    encryption: rot13\n")
    code, _, err = cli(capsys, "--state", db, "apply", str(bad), "--auto-approve")
    assert code == 1 and "bad/ipsec.yaml:3" in err and "rot13" in err
    code, _, err = cli(capsys, "--state", db, "plan", str(tmp_path / "nowhere"))
    assert code == 1 and "nowhere" in err
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--state", db, "show", "everything")
    assert exit_info.value.code == 1
    code, _, err = cli(capsys, "--state", str(tmp_path), "show", "policies")
    assert code == 1 and "is a directory" in err
    assert Path(db).read_bytes() == before


def test_a_saved_plan_is_applied_on_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "state.db")
    cfg = write(tmp_path / "cfg", config(1))
    cli(capsys, "plan", str(cfg), "--out", str(tmp_path / "p.plan"), "--state", db)
    code, _, err = cli(capsys, "apply", str(tmp_path / "p.plan"), str(cfg), "--state", db)
    assert code == 1 and "applied on its own" in err
    code, _, err = cli(capsys, "apply", str(tmp_path / "p.plan"), "--prune", "--state", db)
    assert code == 1 and "carries its own inputs" in err
