"""The ipsecconf Ansible module, run by real ansible-playbook processes on localhost.

Each test writes a desired state, runs the module (check mode, diff mode, apply) and
checks the module's result, what ansible-playbook printed and the store itself.  The test
secrets are handed over in the module's ``secrets`` option (no_log) and must never show
in any output.
"""

from __future__ import annotations

import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ansible.conftest import (
    GW_PSK,
    INFO_MODULE,
    PSK,
    PSK_ROTATED,
    SECRETS,
    Outcome,
    Runner,
    desired,
    store_state,
    write_config,
)

pytestmark = pytest.mark.slow


def secrets(psk: str = PSK) -> dict[str, str]:
    return {"TEST_PSK": psk, "TEST_GW_PSK": GW_PSK}


def assert_no_secret(*outcomes: Outcome) -> None:
    for o in outcomes:
        for s in SECRETS:
            assert s not in o.output, f"a secret leaked into the output:\n{o.stdout}"


def assert_ok(o: Outcome) -> None:
    assert o.rc == 0 and not o.result.get("failed"), o.stdout + o.stderr


def test_check_mode_reports_changes_and_changes_nothing(ansible: Runner, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    conf = write_config(tmp_path / "conf", desired())
    args = {"src": [str(conf)], "state_path": str(state), "secrets": secrets()}

    # No state yet: check mode plans against an empty state and creates nothing.
    first = ansible.run(args, check=True)
    assert_ok(first)
    assert first.result["changed"] is True
    assert first.result["summary"]["add"] == 5
    assert first.result["plan"]["format_version"] == "1.0"
    assert not state.exists()

    applied = ansible.run(args)
    assert_ok(applied)
    before = store_state(state)

    # A changed field: check mode says changed and leaves serial and content alone.
    write_config(tmp_path / "conf", desired(encryption="aes256"))
    checked = ansible.run(args, check=True)
    assert_ok(checked)
    assert checked.result["changed"] is True
    assert checked.result["summary"]["change"] == 2
    assert "changed: [node]" in checked.stdout
    assert store_state(state) == before

    # Nothing to change: check mode says so.
    write_config(tmp_path / "conf", desired())
    same = ansible.run(args, check=True)
    assert_ok(same)
    assert same.result["changed"] is False
    assert store_state(state) == before
    assert_no_secret(first, applied, checked, same)


def test_apply_changes_the_state_and_is_idempotent(ansible: Runner, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    conf = write_config(tmp_path / "conf", desired())
    args = {"src": [str(tmp_path / "conf")], "state_path": str(state), "secrets": secrets()}

    first = ansible.run(args)
    assert_ok(first)
    assert first.result["changed"] is True
    assert first.result["serial"] == 1
    assert first.result["msg"].startswith("Apply complete: 5 to add")
    serial, _ = store_state(state)
    assert serial == 1
    shown = subprocess.run(
        [sys.executable, "-m", "ipsecconf", "--state", str(state), "show", "policies"],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"},
    )
    assert "web.out" in shown.stdout and "web.in" in shown.stdout

    second = ansible.run(args)
    assert_ok(second)
    assert second.result["changed"] is False
    assert "ok: [node]" in second.stdout
    assert store_state(state)[0] == 1

    # ipsecconf_info reads back what was applied (check mode changes nothing either).
    info = ansible.run(
        {"state_path": str(state), "gather": ["policies", "history"]},
        module=INFO_MODULE,
        check=True,
    )
    assert_ok(info)
    assert info.result["changed"] is False
    assert (info.result["serial"], info.result["lineage"]) == (1, first.result["lineage"])
    assert {(p["name"], p["managed"]) for p in info.result["policies"]} == {
        ("web.out", True),
        ("web.in", True),
    }
    assert [h["serial"] for h in info.result["history"]] == [1]
    missing = ansible.run({"state_path": str(tmp_path / "none.db")}, module=INFO_MODULE)
    assert_ok(missing)
    assert missing.result["exists"] is False and missing.result["policies"] == []
    assert not (tmp_path / "none.db").exists()

    # state=absent removes what ipsecconf manages.
    gone = ansible.run({"state": "absent", "state_path": str(state)})
    assert_ok(gone)
    assert gone.result["changed"] is True
    # Everything but setting.default_action (an empty desired state keeps "bypass").
    assert gone.result["summary"]["destroy"] == 4
    assert {c["address"] for c in gone.result["plan"]["resource_changes"]} == {
        "psk.203.0.113.7",
        "peer.gw",
        "policy.web.in",
        "policy.web.out",
    }
    assert conf.exists()
    assert_no_secret(first, second, info, gone)


def test_diff_shows_the_changed_field_with_secrets_masked(ansible: Runner, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    conf = write_config(tmp_path / "conf", desired())
    args = {"src": [str(conf)], "state_path": str(state), "secrets": secrets()}
    assert_ok(ansible.run(args))

    write_config(tmp_path / "conf", desired(encryption="aes256"))
    o = ansible.run(args, check=True, diff=True)
    assert_ok(o)
    assert '-encryption: "aes128"' in o.stdout
    assert '+encryption: "aes256"' in o.stdout
    assert "policy.web.out (update)" in o.stdout
    entries = {d["before_header"]: d for d in o.result["diff"]}
    assert set(entries) == {"policy.web.out (update)", "policy.web.in (update)"}
    assert 'encryption: "aes128"' in entries["policy.web.out (update)"]["before"]

    # A new peer shows its secret field masked, never its value.
    write_config(tmp_path / "conf", desired(extra_peer=True))
    created = ansible.run(args, check=True, diff=True)
    assert_ok(created)
    assert "peer.gw2 (create)" in created.stdout
    assert "+psk: (sensitive value)" in created.stdout
    assert_no_secret(o, created)


def test_rotated_psk_is_a_change(ansible: Runner, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    conf = write_config(tmp_path / "conf", desired())
    base = {"src": [str(conf)], "state_path": str(state)}
    assert_ok(ansible.run(dict(base, secrets=secrets(PSK))))

    rotated = dict(base, secrets=secrets(PSK_ROTATED))
    # -vvv prints the module's result and the connection's commands: still no secret.
    checked = ansible.run(rotated, check=True, diff=True, verbosity="-vvv")
    assert_ok(checked)
    assert checked.result["changed"] is True
    assert checked.result["summary"]["change"] == 1
    [change] = checked.result["plan"]["resource_changes"]
    assert change["address"] == "psk.203.0.113.7"
    assert change["change"]["after_sensitive"] == {"key": True}
    assert "-key: (sensitive value)" in checked.stdout
    assert "+key: (sensitive value changed)" in checked.stdout

    applied = ansible.run(rotated)
    assert_ok(applied)
    assert applied.result["changed"] is True
    again = ansible.run(rotated)
    assert_ok(again)
    assert again.result["changed"] is False
    assert_no_secret(checked, applied, again)


def test_invalid_file_fails_with_its_line(ansible: Runner, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    text = desired().replace("destination: 203.0.113.7/32[443]", "destination: 203.0.113.999/32")
    conf = write_config(tmp_path / "conf", text)
    line = next(n for n, t in enumerate(conf.read_text().splitlines(), 1) if "203.0.113.999" in t)
    o = ansible.run({"src": [str(conf)], "state_path": str(state), "secrets": secrets()})
    assert o.result["failed"] is True
    assert "fatal: [node]" in o.stdout
    assert f"{conf}:{line}:" in o.result["msg"]
    assert "invalid desired state (1 error)" in o.result["msg"]
    [diag] = [d for d in o.result["diagnostics"] if d["severity"] == "error"]
    assert (diag["path"], diag["line"]) == (str(conf), line)
    assert f"ipsec.yaml:{line}:" in o.stdout
    assert not state.exists()
    assert_no_secret(o)


def test_inline_config_and_its_diagnostics(ansible: Runner, tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    config = {
        "psks": [{"address": "2001:db8::7", "key": "env:TEST_PSK"}],
        "policies": [
            {
                "name": "v6",
                "source": "2001:db8::1/128",
                "destination": "2001:db8::7/128",
                "protocol": "esp",
                "encryption": "aes256gcm",
                "authentication": "none",
            }
        ],
    }
    args = {"config": config, "state_path": str(state), "secrets": secrets()}
    first = ansible.run(args)
    assert_ok(first)
    assert first.result["changed"] is True
    second = ansible.run(args)
    assert_ok(second)
    assert second.result["changed"] is False

    # A literal key in the inline config loads with a warning, and Ansible masks it
    # everywhere, the echoed module arguments included.
    literal = "Literal-inline-key-4f0e2a"
    peer = {"name": "v6gw", "address": "2001:db8::fe", "psk": literal}
    with_literal = {**config, "peers": [peer]}
    lit = ansible.run(
        {"config": with_literal, "state_path": str(state), "secrets": secrets()},
        check=True,
        verbosity="-vvv",
    )
    assert_ok(lit)
    assert lit.result["changed"] is True
    assert any("<config>:" in w for w in lit.result.get("warnings", [])), lit.result
    assert literal not in lit.output
    assert '"psk": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"' in lit.stdout

    bad = {**config, "policies": [{**config["policies"][0], "encryption": "rot13"}]}
    o = ansible.run({"config": bad, "state_path": str(state), "secrets": secrets()})
    assert o.result["failed"] is True
    assert "<config>:" in o.result["msg"]
    assert "rot13" in o.result["msg"]
    assert_no_secret(first, second, lit, o)


def test_missing_secret_names_the_reference_only(ansible: Runner, tmp_path: Path) -> None:
    conf = write_config(tmp_path / "conf", desired())
    o = ansible.run(
        {"src": [str(conf)], "state_path": str(tmp_path / "s.db"), "secrets": {"TEST_PSK": PSK}}
    )
    assert o.result["failed"] is True
    assert "TEST_GW_PSK" in o.result["msg"]
    assert_no_secret(o)


def test_missing_ipsecconf_names_the_library(ansible: Runner, tmp_path: Path) -> None:
    # A fresh virtualenv: a real interpreter on which ipsecconf is not installed.
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    conf = write_config(tmp_path / "conf", desired())
    o = ansible.run(
        {"src": [str(conf)], "state_path": str(tmp_path / "s.db")},
        python_path=None,
        interpreter=str(venv / "bin" / "python"),
    )
    assert o.result["failed"] is True
    assert "Failed to import the required Python library (ipsecconf)" in o.result["msg"]


def test_a_held_lock_fails_naming_its_holder(ansible: Runner, tmp_path: Path) -> None:
    from ipsecconf.state import StateLock

    state = tmp_path / "state.db"
    conf = write_config(tmp_path / "conf", desired())
    args = {"src": [str(conf)], "state_path": str(state), "secrets": secrets()}
    assert_ok(ansible.run(args))
    write_config(tmp_path / "conf", desired(encryption="aes256"))
    before = store_state(state)
    lock = StateLock(str(state))
    lock.acquire(5, "ipsecconf apply by a colleague")
    try:
        o = ansible.run({**args, "lock_timeout": 0.5})
        # Check mode plans without the lock, as `ipsecconf plan` does.
        checked = ansible.run(args, check=True)
    finally:
        lock.release()
    assert o.result["failed"] is True
    assert "LockError: the state is locked" in o.result["msg"]
    assert "ipsecconf apply by a colleague" in o.result["msg"]
    assert store_state(state) == before
    assert_ok(checked)
    assert checked.result["changed"] is True
    assert_no_secret(o, checked)


def _policies(state: Path) -> dict[str, bool]:
    """The store's SPD entries, name -> managed, read without writing."""
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        return {name: bool(m) for name, m in conn.execute("SELECT name, managed FROM policies")}
    finally:
        conn.close()


def test_prune_removes_drift_and_without_it_drift_is_reported(
    ansible: Runner, tmp_path: Path
) -> None:
    from ipsecconf.cli.ipsec_main import main as ipsec

    state = tmp_path / "state.db"
    conf = write_config(tmp_path / "conf", desired())
    args = {"src": [str(conf)], "state_path": str(state), "secrets": secrets()}
    assert_ok(ansible.run(args))
    # Drift: an entry typed at the prompt, not made by ipsecconf (mirrored: two rows).
    add = shlex.split("policy add -s 198.51.100.9/32 -t 203.0.113.99/32 -p none -d out")
    assert ipsec(["--state", str(state), *add]) == 0
    managed = {"web.out": True, "web.in": True}
    drift = {n for n, m in _policies(state).items() if not m}
    assert _policies(state) == {**managed, **dict.fromkeys(drift, False)}
    assert len(drift) == 2 and {n.rsplit(".", 1)[1] for n in drift} == {"in", "out"}
    drift_addresses = {f"policy.{n}" for n in drift}
    before = store_state(state)

    # prune: false (the default) reports the drift, warns, and deletes nothing.
    kept = ansible.run(args)
    assert_ok(kept)
    assert kept.result["changed"] is False
    assert kept.result["summary"]["drift"] == 2 and kept.result["summary"]["destroy"] == 0
    assert {d["address"] for d in kept.result["plan"]["drift"]} == drift_addresses
    assert any(
        "2 unmanaged entries left in place (prune=true deletes them)" in w
        for w in kept.result.get("warnings", [])
    ), kept.result
    assert store_state(state) == before

    # prune: true in check mode: reported as changes, still nothing deleted.
    pruning = {**args, "prune": True}
    checked = ansible.run(pruning, check=True)
    assert_ok(checked)
    assert checked.result["changed"] is True
    assert checked.result["summary"]["destroy"] == 2 and checked.result["summary"]["drift"] == 0
    assert store_state(state) == before

    # prune: true deletes exactly the drift; the managed entries stay.
    pruned = ansible.run(pruning)
    assert_ok(pruned)
    assert pruned.result["changed"] is True
    deleted = {
        c["address"]
        for c in pruned.result["plan"]["resource_changes"]
        if c["change"]["actions"] == ["delete"]
    }
    assert deleted == drift_addresses
    assert _policies(state) == managed
    assert store_state(state)[0] == before[0] + 1

    again = ansible.run(pruning)
    assert_ok(again)
    assert again.result["changed"] is False and again.result["summary"]["drift"] == 0
    assert_no_secret(kept, checked, pruned, again)
