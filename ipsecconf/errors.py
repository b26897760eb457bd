"""The error hierarchy every layer raises, and the Diagnostic that locates a problem.

A :class:`Diagnostic` names where a problem is (file, line, column, counted from 1) and
what it is.  Configuration problems are collected as diagnostics and raised together in
one :class:`ConfigError`, so that a user sees every mistake of a file in one run.  Nothing
here may hold secret material: messages are built by callers that know what is secret.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class Severity(enum.StrEnum):
    """How serious a diagnostic is; ``--strict`` promotes warnings to errors."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One located finding about the desired state."""

    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None

    def location(self) -> str:
        """``file:line:col`` as far as it is known, or ``<input>``."""
        if self.file is None:
            return "<input>"
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        return f"{self.location()}: {self.severity.value}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        """The JSON form used by ``--json`` output."""
        return {
            "severity": self.severity.value,
            "path": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


class IpsecconfError(Exception):
    """Base of every error ipsecconf raises on purpose; the CLI maps it to exit 1."""


class UsageError(IpsecconfError):
    """The command line itself is wrong."""


class ConfigError(IpsecconfError):
    """The desired state is invalid; carries every diagnostic found."""

    def __init__(self, diagnostics: Iterable[Diagnostic]) -> None:
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        errors = [d for d in self.diagnostics if d.severity is Severity.ERROR]
        first = errors[0] if errors else (self.diagnostics[0] if self.diagnostics else None)
        summary = str(first) if first else "invalid configuration"
        more = len(errors) - 1
        if more > 0:
            summary += f" (and {more} more error{'s' if more > 1 else ''})"
        super().__init__(summary)

    @property
    def errors(self) -> Sequence[Diagnostic]:
        """Only the diagnostics of severity error."""
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]


class NotSupportedError(IpsecconfError):
    """A feature the product deliberately does not offer (e.g. Kerberos IKE auth)."""


class SecretError(IpsecconfError):
    """A secret reference cannot be resolved; the message never holds the secret."""


class StateError(IpsecconfError):
    """The persistent store is missing, corrupt, locked or from the future."""


class ProtocolError(IpsecconfError):
    """Base of IKE/ESP protocol errors raised inside the sans-IO cores."""
