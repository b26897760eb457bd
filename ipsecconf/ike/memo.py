"""A memo slot for immutable values: what is derived from one, computed once.

Immutable dataclasses of this core (configs, identities, credentials, SA and TS
payloads) are built once and used in every handshake; values derived from them (an
encoding, a text, the results of proposal matching) are kept in one extra slot that is
not a dataclass field, so equality, hashing, ``repr``, ``dataclasses.fields`` and
``replace`` ignore it (a replaced copy starts with an empty memo).
"""

from __future__ import annotations

from typing import Any

_MISSING = object()


class Memo:
    """Base class giving a subclass's instances the memo slot."""

    __slots__ = ("_memo",)


def recall(obj: Memo) -> Any:
    """The value remembered for ``obj``, or ``None``."""
    return getattr(obj, "_memo", None)


def remember(obj: Memo, value: object) -> None:
    """Remember ``value`` for ``obj`` (bypassing the ``__setattr__`` of a frozen
    dataclass: the value is derived from the fields, so the object does not change)."""
    object.__setattr__(obj, "_memo", value)
