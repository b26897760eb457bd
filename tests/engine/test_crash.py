"""Crash safety: SIGKILL ``ipsecconf apply`` at random moments inside its transaction.

After every kill the store must open, pass ``PRAGMA integrity_check`` and hold exactly the
old state or the new one.  At least 40 of the 50 kills must land after the "transaction
begun" marker and before the commit.

How the kills land inside a transaction that takes well under a second: apply runs with
``-vv``, which logs one line per change while the transaction is open.  The test reads
the marker, then a random number of those lines, then kills.  The test shrinks the pipe to
4 KiB (F_SETPIPE_SZ), so the process can run at most that far ahead of the reader; as long
as more than that much logging is still to come, the kill is certainly before the commit.
Ten of the fifty kills instead come at random times, anywhere until the process would
have exited.
"""

from __future__ import annotations

import fcntl
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

N_POLICIES = 300
KILLS = 50
TIMED = 10
PIPE_BYTES = 4096
PIPE_LINES_AHEAD = 150
"""More log lines (about 75 bytes each) than the 4 KiB pipe holds: the slack kept before
the commit."""


def _dump(path: Path) -> list[tuple[object, ...]]:
    store = Store.open(str(path), create=False)
    try:
        assert store.integrity_check() == "ok"
        out: list[tuple[object, ...]] = []
        for table in ("meta", "policies", "resources", "secrets", "sas", "history"):
            rows = store.conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
            # A history row carries its own timestamp (column 2): compare the rest exactly.
            out += [(table, *(r[:1] + r[2:] if table == "history" else r)) for r in rows]
        return out
    finally:
        store.close()


def _apply(db: Path, cfg: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [PYTHON, "-m", "ipsecconf", "-vv", "--state", str(db), "apply", str(cfg), "--auto-approve"],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    # The child is still importing: nothing is in the pipe yet when it shrinks.
    fcntl.fcntl(proc.stderr.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return proc


def _read_marker(proc: subprocess.Popen[str]) -> None:
    assert proc.stderr is not None
    for line in proc.stderr:
        if "apply transaction begun" in line:
            return
    raise AssertionError("apply ended without its transaction marker")


@pytest.mark.slow
def test_sigkill_inside_the_apply_transaction_leaves_old_or_new(tmp_path: Path) -> None:
    old_cfg = write(tmp_path / "old", config(N_POLICIES))
    # The large plan: every SPD entry updated, a setting changed, a PSK rotated.
    new_cfg = write(
        tmp_path / "new", config(N_POLICIES, enc="aes256") + "default_action: discard\n"
    )
    pristine = tmp_path / "pristine.db"
    subprocess.run(
        [
            PYTHON,
            "-m",
            "ipsecconf",
            "--state",
            str(pristine),
            "apply",
            str(old_cfg),
            "--auto-approve",
        ],
        env=env(),
        capture_output=True,
        check=True,
        timeout=300,
    )
    conn = sqlite3.connect(pristine)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    old = _dump(pristine)
    work = tmp_path / "state.db"

    def fresh() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work}{suffix}").unlink(missing_ok=True)
        shutil.copy(pristine, work)

    fresh()
    proc = _apply(work, new_cfg)
    _read_marker(proc)
    assert proc.stderr is not None
    t0 = time.monotonic()
    logged = sum(1 for line in proc.stderr if " ipsecconf.apply DEBUG " in line)
    assert proc.wait(timeout=300) == 0
    span = time.monotonic() - t0
    new = _dump(work)
    assert new != old and logged == 2 * N_POLICIES + 1
    rng = random.Random(20261127)
    inside = 0
    outcomes = {"old": 0, "new": 0}
    for i in range(KILLS):
        fresh()
        proc = _apply(work, new_cfg)
        _read_marker(proc)
        assert proc.stderr is not None
        if i < KILLS - TIMED:
            for _ in range(rng.randrange(0, logged - PIPE_LINES_AHEAD)):
                proc.stderr.readline()
        else:
            time.sleep(rng.uniform(0, span))
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=60)
        state = _dump(work)
        assert state in (old, new), "the store holds neither the old nor the new state"
        outcomes["old" if state == old else "new"] += 1
        if code == -signal.SIGKILL and state == old:
            inside += 1
    assert inside >= 40, (inside, outcomes)
