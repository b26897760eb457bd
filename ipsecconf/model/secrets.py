"""Secret references: where a PSK, private key or manual SA key comes from, never the value.

A reference is written ``env:NAME`` (an environment variable), ``file:PATH`` (a file,
relative to the YAML file that names it) or, discouraged, a literal string (validate
warns).  The model keeps only the reference; resolving it is I/O and belongs to the
config layer.  ``str()`` and ``repr()`` of a literal never show its value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo, WithJsonSchema

REDACTED = "(sensitive)"


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A reference to secret material."""

    kind: str
    """``env``, ``file`` or ``literal``."""
    target: str = field(repr=False)
    """Variable name, file path, or (for literals) the secret itself."""
    base_dir: str = field(default="", compare=False, repr=False)
    """Directory that a relative ``file:`` path is relative to."""

    @classmethod
    def parse(cls, text: str, base_dir: str = "") -> SecretRef:
        """Parse ``env:NAME``, ``file:PATH`` or a literal."""
        kind, sep, rest = text.partition(":")
        if sep and kind in ("env", "file"):
            if not rest.strip():
                raise ValueError(f"secret reference {kind}: needs a name after the colon")
            return cls(kind, rest.strip(), base_dir)
        if sep and kind == "literal":
            return cls("literal", rest, base_dir)
        return cls("literal", text, base_dir)

    @property
    def is_literal(self) -> bool:
        """True for a secret written into the YAML itself."""
        return self.kind == "literal"

    def describe(self) -> str:
        """A printable form that never contains secret material."""
        if self.kind == "literal":
            return f"literal {REDACTED}"
        return f"{self.kind}:{self.target}"

    def __str__(self) -> str:
        return self.describe()

    def __repr__(self) -> str:
        return f"SecretRef({self.describe()})"


def _secret(value: Any, info: ValidationInfo) -> SecretRef:
    if isinstance(value, SecretRef):
        return value
    base_dir = str((info.context or {}).get("base_dir", ""))
    if isinstance(value, bool) or value is None:
        raise ValueError("a secret is env:NAME, file:PATH or a quoted literal")
    if isinstance(value, int):
        # A bare number in YAML: keep its text, but it is still a literal secret.
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("a secret is env:NAME, file:PATH or a quoted literal")
    if not value:
        raise ValueError("a secret cannot be empty")
    return SecretRef.parse(value, base_dir)


def _dump(ref: SecretRef) -> str:
    return ref.describe()


SecretField = Annotated[
    SecretRef,
    BeforeValidator(_secret),
    PlainSerializer(_dump, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "env:NAME, file:PATH (relative to this YAML file), or a literal "
            "(discouraged: validate warns)",
        }
    ),
]
