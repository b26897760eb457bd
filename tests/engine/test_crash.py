"""Crash safety: SIGKILL ``ipsecconf apply`` at random moments inside its transaction.

After every kill the store must open, pass ``PRAGMA integrity_check`` and hold exactly the
old state or the new one.  At least 40 of the 50 kills must land after the
"transaction begun" marker and before the commit.
"""

from __future__ import annotations

import random
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from ipsecconf.state import Store
from tests.stateutil import PYTHON, config, env, write

N_POLICIES = 1500
KILLS = 50


def _dump(path: Path) -> list[tuple[object, ...]]:
    store = Store.open(str(path), create=False)
    try:
        assert store.integrity_check() == "ok"
        out: list[tuple[object, ...]] = []
        for table in ("meta", "policies", "resources", "secrets", "sas", "history"):
            rows = store.conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            out += [(table, *r) for r in rows]
        return out
    finally:
        store.close()


def _without_history_time(dump: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    # The history row carries its own timestamp; compare everything else exactly.
    return [r[:2] + r[3:] if r[0] == "history" else r for r in dump]


def _checkpoint(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _apply(db: Path, cfg: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-m", "ipsecconf", "--state", str(db), "apply", str(cfg), "--auto-approve"],
        env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )


def _until_marker(proc: subprocess.Popen[str]) -> float:
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "apply transaction begun" in line, line
    return time.monotonic()


@pytest.mark.slow
def test_sigkill_inside_the_apply_transaction_leaves_old_or_new(tmp_path: Path) -> None:
    old_cfg = write(tmp_path / "old", config(N_POLICIES))
    new_cfg = write(tmp_path / "new", config(N_POLICIES, enc="aes256") + "default_action: discard\n")
    pristine = tmp_path / "pristine.db"
    subprocess.run(
        [PYTHON, "-m", "ipsecconf", "--state", str(pristine), "apply", str(old_cfg),
         "--auto-approve"], env=env(), capture_output=True, check=True, timeout=120,
    )
    _checkpoint(pristine)
    old = _without_history_time(_dump(pristine))
    # Calibrate: how long does the transaction body take (marker to the last progress line)?
    work = tmp_path / "state.db"
    shutil.copy(pristine, work)
    proc = _apply(work, new_cfg)
    begun = _until_marker(proc)
    assert proc.stderr is not None
    window = 0.0
    for line in proc.stderr:
        if line.startswith(f"apply: {2 * N_POLICIES + 1}/"):
            window = time.monotonic() - begun
    assert proc.wait(timeout=120) == 0
    new = _without_history_time(_dump(work))
    assert new != old and window > 0
    rng = random.Random(20261127)
    inside = 0
    outcomes = {"old": 0, "new": 0}
    for _ in range(KILLS):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)
        shutil.copy(pristine, work)
        proc = _apply(work, new_cfg)
        # Mostly inside the transaction body; a few anywhere up to twice its length.
        delay = rng.uniform(0, window * (0.75 if rng.random() < 0.9 else 2.0))
        begun = _until_marker(proc)
        time.sleep(max(0.0, delay - (time.monotonic() - begun)))
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=60)
        state = _without_history_time(_dump(work))
        assert state in (old, new), "the store holds neither the old nor the new state"
        outcomes["old" if state == old else "new"] += 1
        if code == -signal.SIGKILL and state == old:
            inside += 1
    assert inside >= 40, (inside, outcomes, window)
