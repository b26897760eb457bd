"""Printing for the CLI: diagnostics, JSON, and colour only when writing to a terminal."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from ipsecconf.errors import Diagnostic, Severity

_COLOURS = {"red": "31", "yellow": "33", "green": "32", "bold": "1", "dim": "2", "cyan": "36"}


def use_colour(stream: TextIO) -> bool:
    """Colour only on a TTY, and never when NO_COLOR is set."""
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def paint(text: str, colour: str, stream: TextIO) -> str:
    """``text`` in ``colour`` when ``stream`` takes colour."""
    if not use_colour(stream):
        return text
    return f"\x1b[{_COLOURS[colour]}m{text}\x1b[0m"


def print_diagnostics(diagnostics: Iterable[Diagnostic], stream: TextIO | None = None) -> None:
    """One line per diagnostic: ``file:line:col: severity: message``."""
    out = stream or sys.stderr
    for d in diagnostics:
        colour = "red" if d.severity is Severity.ERROR else "yellow"
        label = paint(d.severity.value, colour, out)
        out.write(f"{d.location()}: {label}: {d.message}\n")


def print_json(value: Any, stream: TextIO | None = None) -> None:
    """Pretty JSON on stdout."""
    out = stream or sys.stdout
    json.dump(value, out, indent=2, sort_keys=False, default=str)
    out.write("\n")
