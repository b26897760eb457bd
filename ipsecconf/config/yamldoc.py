"""What a YAML reader returns: the data, the way back to positions, and syntax errors.

Also the typing of plain scalars by YAML 1.2's core schema exactly as ruamel.yaml does it
(ruamel's own resolver table decides), shared by both readers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.resolver import VersionedResolver

Path = tuple[str | int, ...]
Position = tuple[int, int]
"""(line, column), both counted from 1."""


class YamlSyntaxError(Exception):
    """A YAML text that does not parse; ``line``/``column`` count from 1."""

    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass
class Parsed:
    """The data of one YAML text and a way to find where each node is."""

    data: Any
    locate: Callable[[Path, bool], Position | None]
    """``locate(path, key)``: position of the node at ``path`` (of its key when ``key``)."""
    duplicates: list[tuple[Path, Position, Position]] = field(default_factory=list)
    """Duplicate keys: the path of the later key, its position, the earlier one's."""
    reader: str = "ryml"


# -- scalar typing (YAML 1.2 core schema, as ruamel.yaml resolves it) ------------------

_RESOLVER = VersionedResolver(version=(1, 2))
_SCALAR_CACHE: dict[str, Any] = {}
_SPECIAL_FLOATS = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf")}


_IMPLICIT_TABLE: dict[Any, list[tuple[Any, Any]]] = _RESOLVER.versioned_resolver


def _construct(text: str) -> Any:
    kind = "str"
    for tag, regexp in _IMPLICIT_TABLE.get(text[0] if text else "", ()):
        if regexp.match(text):
            kind = str(tag).rsplit(":", 1)[-1]
            break
    if kind == "null":
        return None
    if kind == "bool":
        return text.lower() == "true"
    if kind == "int":
        digits = text.replace("_", "")
        sign = -1 if digits.startswith("-") else 1
        body = digits.lstrip("+-")
        for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
            if body.startswith(prefix):
                return sign * int(body[2:], base)
        return sign * int(body, 10)
    if kind == "float":
        low = text.lower()
        if low in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[low]
        if low.endswith(".nan"):
            return float("nan")
        return float(text.replace("_", ""))
    return text


TYPED_FIRST = frozenset(_RESOLVER.versioned_resolver) - {"="}
"""First characters for which ruamel's resolver may find a non-string type."""


def plain_scalar(text: str) -> Any:
    """The typed value of an unquoted scalar (memoised: documents repeat their words)."""
    try:
        return _SCALAR_CACHE[text]
    except KeyError:
        if text and text[0] not in TYPED_FIRST:
            return text
        value = _construct(text)
        if len(_SCALAR_CACHE) < 200_000:
            _SCALAR_CACHE[text] = value
        return value
