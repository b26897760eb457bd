"""The apply lock: a second writer waits, then fails naming the holder; force-unlock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ipsecconf.errors import StateError
from ipsecconf.state import LockError, StateLock, force_unlock


def test_second_holder_times_out_with_the_holder_named(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    first = StateLock(db)
    info = first.acquire(1, "ipsecconf apply one.yaml")
    assert oct(os.stat(db + ".lock.json").st_mode & 0o777) == "0o600"
    second = StateLock(db)
    t0 = time.monotonic()
    with pytest.raises(LockError) as caught:
        second.acquire(0.3, "ipsecconf apply two.yaml")
    assert time.monotonic() - t0 >= 0.3
    msg = str(caught.value)
    assert f"pid {os.getpid()}" in msg and info.id in msg and info.host in msg
    assert "since" in msg and "apply one.yaml" in msg and "force-unlock" in msg
    first.release()
    assert not os.path.exists(db + ".lock.json")
    second.acquire(0, "two")
    second.release()


def test_force_unlock_refuses_a_wrong_id_and_a_live_holder(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    lock = StateLock(db)
    info = lock.acquire(0, "apply")
    with pytest.raises(StateError, match="does not match"):
        force_unlock(db, "not-the-id")
    with pytest.raises(StateError, match="still running"):
        force_unlock(db, info.id)
    lock.release()
    with pytest.raises(StateError, match="not locked"):
        force_unlock(db, info.id)


def test_force_unlock_clears_the_record_of_a_killed_holder(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    code = (
        "import sys, time; from ipsecconf.state import StateLock; "
        f"StateLock({db!r}).acquire(0, 'apply'); print('held', flush=True); time.sleep(60)"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        holder = StateLock(db).holder()
        assert holder is not None and holder.pid == proc.pid
    finally:
        proc.kill()
        proc.wait()
    # The kernel dropped the flock with the process; only the record is left.
    lock_id = json.loads(Path(db + ".lock.json").read_text())["id"]
    assert "already exited" in force_unlock(db, lock_id)
    assert StateLock(db).holder() is None
