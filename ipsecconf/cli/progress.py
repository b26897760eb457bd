"""Apply progress for people: a rich progress bar on a terminal, plain lines otherwise.

The transaction marker line ("apply: transaction begun") is printed in both cases and
flushed at once: the crash-safety test waits for it.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

from ipsecconf.engine.apply import ApplyHooks, ApplyOutcome

MARKER = "ipsecconf: apply transaction begun"


class CliHooks(ApplyHooks):
    """Prints progress to ``stream`` (stderr)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._last_line = -1

    def transaction_begun(self, total: int) -> None:
        self.stream.write(f"{MARKER} ({total} changes)\n")
        self.stream.flush()
        if self.tty and total > 0:
            from rich.progress import Progress  # only a terminal pays for importing rich

            self._bar = Progress(transient=True)
            self._bar.start()
            self._task = self._bar.add_task("applying", total=total)

    def progress(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done)
            return
        # Plain lines at most every 10 %, so that a log stays readable.
        tenth = done * 10 // max(total, 1)
        if tenth != self._last_line:
            self._last_line = tenth
            self.stream.write(f"apply: {done}/{total} changes written\n")
            self.stream.flush()

    def committed(self, outcome: ApplyOutcome) -> None:
        self.close()

    def close(self) -> None:
        """Stop the progress bar (also on failure)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
