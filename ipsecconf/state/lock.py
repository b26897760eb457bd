"""The apply lock: one writer at a time, and a message that names the holder.

The lock is an ``flock`` on ``<db>.lock`` (via filelock), so the kernel releases it when the
holder dies, even by SIGKILL.  Beside it, ``<db>.lock.json`` names the holder: lock ID
(a random nonce, as Terraform's), pid, host, start time and command.  A second writer
waits up to its timeout and then fails with that information.

``force_unlock(ID)`` exists for the cases the kernel cannot settle: a holder on another
host of a shared filesystem, or a stale holder record.  It never breaks a lock held by a
live process on this host, since that would let two applies write at once.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import filelock

from ipsecconf.errors import StateError


class LockError(StateError):
    """The state is locked by someone else; carries the holder when known."""

    def __init__(self, message: str, holder: LockInfo | None) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass(frozen=True, slots=True)
class LockInfo:
    """Who holds the lock."""

    id: str
    pid: int
    host: str
    since: str
    command: str

    def describe(self) -> str:
        """One line for messages."""
        return (
            f"lock ID {self.id}, held by pid {self.pid} on {self.host} since {self.since} "
            f"({self.command})"
        )


def _read_info(path: str) -> LockInfo | None:
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
        return LockInfo(
            id=str(raw["id"]),
            pid=int(raw["pid"]),
            host=str(raw["host"]),
            since=str(raw["since"]),
            command=str(raw["command"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StateLock:
    """The writer lock of the store at ``db_path``."""

    def __init__(self, db_path: str) -> None:
        self.lock_path = db_path + ".lock"
        self.info_path = db_path + ".lock.json"
        self._lock = filelock.FileLock(self.lock_path, mode=0o600, is_singleton=False)
        self.info: LockInfo | None = None

    def holder(self) -> LockInfo | None:
        """The recorded holder, if any."""
        return _read_info(self.info_path)

    def acquire(self, timeout: float, command: str) -> LockInfo:
        """Take the lock, waiting up to ``timeout`` seconds; :class:`LockError` names the holder."""
        try:
            self._lock.acquire(timeout=max(timeout, 0.0), poll_interval=0.05)
        except filelock.Timeout:
            holder = self.holder()
            who = holder.describe() if holder else "holder unknown"
            raise LockError(
                f"the state is locked ({who}); waited {timeout:g}s. If that process is gone, "
                f"run: ipsecconf force-unlock {holder.id if holder else 'ID'}",
                holder,
            ) from None
        info = LockInfo(
            id=str(uuid.uuid4()),
            pid=os.getpid(),
            host=socket.gethostname(),
            since=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            command=command,
        )
        tmp = f"{self.info_path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(info), fh)
        os.replace(tmp, self.info_path)
        self.info = info
        return info

    @contextlib.contextmanager
    def held(self, timeout: float, command: str) -> Iterator[LockInfo]:
        """:meth:`acquire` for the block, :meth:`release` after it."""
        info = self.acquire(timeout, command)
        try:
            yield info
        finally:
            self.release()

    def release(self) -> None:
        """Drop the lock and its holder record."""
        if self.info is not None:
            current = self.holder()
            if current is not None and current.id == self.info.id:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.info_path)
            self.info = None
        self._lock.release()


def force_unlock(db_path: str, lock_id: str) -> str:
    """Remove a lock that its holder cannot release; returns what was done."""
    lock = StateLock(db_path)
    holder = lock.holder()
    if holder is None:
        raise StateError(f"the state at {db_path} is not locked (no holder record)")
    if holder.id != lock_id:
        raise StateError(f"lock ID {lock_id} does not match the current lock ({holder.describe()})")
    try:
        lock._lock.acquire(timeout=0)
    except filelock.Timeout:
        if holder.host == socket.gethostname() and _pid_alive(holder.pid):
            raise StateError(
                f"{holder.describe()}: that process is still running; stop it first "
                f"(breaking a live lock would let two applies write at once)"
            ) from None
        # Held from another host (shared filesystem): unlinking the lock file gives later
        # writers a fresh inode to lock; the old holder keeps a lock on a file nobody uses.
        for path in (lock.lock_path, lock.info_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        return f"broke {holder.describe()}"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock.info_path)
    finally:
        lock._lock.release()
    return f"removed the stale record of {holder.describe()} (the process had already exited)"
