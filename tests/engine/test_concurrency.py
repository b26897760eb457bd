"""Two ``ipsecconf apply`` processes at once: one waits for the other (or fails naming it),
and nothing either of them wrote is lost.

The first apply runs on a terminal and holds the lock while it waits at its confirmation
prompt, as a person at the keyboard would; that makes the overlap certain.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from ipsecconf.state import Store
from tests.stateutil import PYTHON, Terminal, config, env, policy, spawn, write


def _policies(db: Path) -> set[str]:
    store = Store.open(str(db), create=False)
    try:
        return {p.name for p in store.policies()}
    finally:
        store.close()


def test_second_apply_waits_and_plans_against_the_first(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    one = write(tmp_path / "one", config(50))
    two = write(tmp_path / "two", config(50) + policy("late", 7).replace("[1031]", "[4000]"))
    first = Terminal("--state", str(db), "apply", str(one))
    first.read_until("Enter a value:")
    second = spawn("--state", str(db), "apply", str(two), "--auto-approve", "--lock-timeout", "120")
    time.sleep(1.5)
    assert second.poll() is None  # waiting for the lock
    first.send("yes")
    code1, text1 = first.finish()
    out2, err2 = second.communicate(timeout=120)
    assert code1 == 0 and "Apply complete!" in text1
    assert second.returncode == 0, err2
    # The second planned after the first committed: it adds only what the first lacked.
    assert "Plan: 2 to add, 0 to change, 0 to destroy" in out2
    assert _policies(db) == {f"p{i}.{d}" for i in range(50) for d in ("in", "out")} | {
        "late.in",
        "late.out",
    }
    store = Store.open(str(db), create=False)
    assert [h.serial for h in store.history()] == [2, 1] and store.serial == 2
    store.close()


def test_second_apply_without_patience_fails_naming_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    one = write(tmp_path / "one", config(50))
    two = write(tmp_path / "two", config(3, enc="aes256"))
    first = Terminal("--state", str(db), "apply", str(one))
    first.read_until("Enter a value:")
    second = subprocess.run(
        [
            PYTHON,
            "-m",
            "ipsecconf",
            "--state",
            str(db),
            "apply",
            str(two),
            "--auto-approve",
            "--lock-timeout",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env(),
    )
    first.send("yes")
    code1, _ = first.finish()
    assert code1 == 0
    assert second.returncode == 1
    assert f"held by pid {first.proc.pid}" in second.stderr and "lock ID" in second.stderr
    assert "waited 0.5s" in second.stderr and "Traceback" not in second.stderr
    assert len(_policies(db)) == 100  # the first apply is complete, the second wrote nothing
