"""The fast YAML reader: rapidyaml parses, emits JSON, and the json module decodes it.

Emitting JSON and decoding it runs in C, ten times faster than walking the tree node by
node from Python; the few scalars whose YAML 1.2 type JSON cannot carry are retyped from
the tree.  Positions are not computed up front: a node is found again in the tree, and
its address in our buffer turned into a line and column, only when a diagnostic needs
it.  Anything unusual (anchors, aliases, tags, merge keys, several documents) raises
:class:`Fallback` so that the reference reader takes over.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import sys
from bisect import bisect_right
from collections.abc import Iterator
from typing import Any

from ipsecconf.config.yamldoc import TYPED_FIRST, Parsed, Path, Position, plain_scalar


class _PyBuffer(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("obj", ctypes.c_void_p),
        ("len", ctypes.c_ssize_t),
        ("itemsize", ctypes.c_ssize_t),
        ("readonly", ctypes.c_int),
        ("ndim", ctypes.c_int),
        ("format", ctypes.c_char_p),
        ("shape", ctypes.c_void_p),
        ("strides", ctypes.c_void_p),
        ("suboffsets", ctypes.c_void_p),
        ("internal", ctypes.c_void_p),
    ]


_get_buffer = ctypes.pythonapi.PyObject_GetBuffer
_get_buffer.argtypes = [ctypes.py_object, ctypes.POINTER(_PyBuffer), ctypes.c_int]
_release_buffer = ctypes.pythonapi.PyBuffer_Release
_release_buffer.argtypes = [ctypes.POINTER(_PyBuffer)]


def _address(view: Any) -> int:
    """The memory address a buffer (ryml's memoryview into our text) starts at."""
    buf = _PyBuffer()
    _get_buffer(view, ctypes.byref(buf), 0)
    try:
        return int(buf.buf or 0)
    finally:
        _release_buffer(ctypes.byref(buf))


class Fallback(Exception):
    """The fast path met a feature it leaves to ruamel.yaml."""


_NEEDS_REFERENCE_READER = re.compile(r"(?:^|[\s\[{,:-])[&*!][^\s,\]}]|<<\s*:|^---|^%", re.M)
"""Anchors, aliases, tags, merge keys, several documents or directives: left to ruamel.
It may also match inside a quoted string or a comment; that only costs speed."""


class _RymlDoc:
    def __init__(self, text: str) -> None:
        import ryml  # deferred: only this reader needs the extension

        self.ryml = ryml
        self.buf = bytearray(text.encode("utf-8"))
        self.text_bytes = bytes(self.buf)
        self.tree = ryml.parse_in_place(self.buf)
        self.base = _address(self.buf)
        self._line_starts: list[int] | None = None
        self.duplicates: list[tuple[Path, Position, Position]] = []
        self._none = int(ryml.NONE)
        self._child_index: dict[int, tuple[dict[Any, int], list[int]]] = {}

    @property
    def line_starts(self) -> list[int]:
        if self._line_starts is None:
            self._line_starts = [0] + [m.end() for m in re.finditer(b"\n", self.text_bytes)]
        return self._line_starts

    def root(self) -> int:
        t = self.tree
        node = t.root_id()
        if t.is_stream(node):
            n = t.num_children(node)
            if n != 1:
                raise Fallback
            node = t.first_child(node)
        return int(node)

    def build(self, node: int, path: Path) -> Any:
        # Hot path: one type() call per node, flags tested as bits.
        t = self.tree
        ryml = self.ryml
        kind = t.type(node)
        none = self._none
        if kind & ryml.MAP:
            out: dict[Any, Any] = {}
            seen: dict[Any, int] = {}
            child = t.first_child(node)
            while child != none:
                ckind = t.type(child)
                key_text = bytes(t.key(child)).decode("utf-8")
                key = key_text if ckind & ryml.KEYQUO else plain_scalar(key_text)
                if key in seen:
                    self.duplicates.append(
                        ((*path, key), self.position(child, True), self.position(seen[key], True))
                    )
                else:
                    seen[key] = child
                    out[key] = self._value(child, ckind, (*path, key))
                child = t.next_sibling(child)
            return out
        return self._value(node, kind, path)

    def _value(self, node: int, kind: int, path: Path) -> Any:
        ryml = self.ryml
        t = self.tree
        if kind & ryml.MAP:
            return self.build(node, path)
        if kind & ryml.SEQ:
            items = []
            child = t.first_child(node)
            i = 0
            none = self._none
            while child != none:
                items.append(self.build(child, (*path, i)))
                i += 1
                child = t.next_sibling(child)
            return items
        view = t.val(node) if kind & ryml.VAL else None
        if view is None:
            return None
        text = bytes(view).decode("utf-8")
        if kind & ryml.VALQUO:
            return text
        return plain_scalar(text)

    def _offset_position(self, offset: int) -> Position:
        line = bisect_right(self.line_starts, offset)
        start = self.line_starts[line - 1]
        col = len(self.text_bytes[start:offset].decode("utf-8", "replace")) + 1
        return line, col

    def position(self, node: int, key: bool) -> Position:
        t = self.tree
        if key and t.has_key(node):
            view, quoted = t.key(node), t.is_key_quoted(node)
        elif t.has_val(node) and not t.is_container(node) and t.val(node) is not None:
            view, quoted = t.val(node), t.is_val_quoted(node)
        elif t.num_children(node) > 0:
            first = t.first_child(node)
            # ruamel places a sequence at its first "-" or "[", a flow mapping at its "{",
            # not at the first item inside
            opener = ("-", "[") if t.is_seq(node) else ("{",)
            line, col = self.position(first, t.has_key(first))
            start = self.line_starts[line - 1]
            text = self.text_bytes[start:].split(b"\n", 1)[0].decode("utf-8", "replace")
            head = text[: col - 1].rstrip()
            if head.endswith(opener):
                return line, len(head)
            return line, col
        elif t.has_key(node):
            view, quoted = t.key(node), t.is_key_quoted(node)
        else:
            return 1, 1
        offset = _address(view) - self.base
        if not 0 <= offset <= len(self.buf):
            return 1, 1
        if not key and (t.is_val_literal(node) or t.is_val_folded(node)):
            # ruamel reports a block scalar at its indicator, not at its first line
            offset = self._back_to(offset, b"|>")
        elif quoted and offset > 0:
            offset -= 1
        return self._offset_position(offset)

    def _back_to(self, offset: int, chars: bytes) -> int:
        i = offset - 1
        while i >= 0 and self.text_bytes[i] not in chars:
            i -= 1
        return i if i >= 0 else offset

    def _children(self, node: int) -> tuple[dict[Any, int], list[int]]:
        # Memoised per container: locating thousands of diagnostics in a long list
        # must not walk the list from its start each time.
        cached = self._child_index.get(node)
        if cached is None:
            t = self.tree
            by_key: dict[Any, int] = {}
            order: list[int] = []
            is_map = t.is_map(node)
            child = t.first_child(node)
            while child != self._none:
                order.append(child)
                if is_map:
                    text = bytes(t.key(child)).decode("utf-8")
                    key = text if t.is_key_quoted(child) else plain_scalar(text)
                    by_key.setdefault(key, child)
                    by_key.setdefault(text, child)
                child = t.next_sibling(child)
            cached = (by_key, order)
            self._child_index[node] = cached
        return cached

    def find(self, path: Path) -> int | None:
        t = self.tree
        node: int | None = self.root()
        for part in path:
            assert node is not None
            by_key, order = self._children(node)
            if t.is_map(node):
                node = by_key.get(part)
            elif isinstance(part, int) and 0 <= part < len(order):
                node = order[part]
            else:
                return None
            if node is None:
                return None
        return node

    def find_raw(self, path: Path) -> int | None:
        """The node at a path of keys as the JSON writer spelt them."""
        t = self.tree
        node = self.root()
        for part in path:
            if isinstance(part, int):
                if not t.is_seq(node) or part >= t.num_children(node):
                    return None
                node = t.child(node, part)
                continue
            child = t.first_child(node)
            found = None
            while child != self._none:
                text = bytes(t.key(child)).decode("utf-8")
                if text == part or (
                    part in _JSON_RENAMED and text.lower().lstrip("+-.") in ("nan", "inf")
                ):
                    found = child
                    break
                child = t.next_sibling(child)
            if found is None:
                return None
            node = found
        return node

    def locate(self, path: Path, key: bool) -> Position | None:
        node = self.find(path)
        if node is None:
            return None
        return self.position(node, key)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    # rapidyaml's C++ error handler writes to fd 2 before raising; the user should see
    # ruamel's message instead, once.
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _DuplicateKey(Exception):
    pass


class _PairsHook:
    """json object hook: refuses duplicate keys, notes keys YAML would type (``1:``)."""

    __slots__ = ("typed_key",)

    def __init__(self) -> None:
        self.typed_key = False

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            raise _DuplicateKey
        if not self.typed_key:
            for k, _ in pairs:
                if k[:1] in TYPED_FIRST and _candidate(k):
                    self.typed_key = True
                    break
        return out


_JSON_RENAMED = frozenset({".nan", ".inf", "-.inf", "+.inf"})
"""rapidyaml's JSON writer spells the plain words nan/inf (strings in YAML 1.2) like this."""


def _candidate(text: str) -> bool:
    if text in _JSON_RENAMED:
        return True
    return text[:1] in TYPED_FIRST and not isinstance(plain_scalar(text), str)


def _retype(doc: _RymlDoc, value: Any, path: Path) -> Any:
    """Give each scalar the exact value ruamel.yaml would, where JSON may have changed it.

    rapidyaml's JSON writer types only what JSON can say (``~``, ``0x1F`` or ``010`` stay
    strings) and renames ``nan``/``inf``; for those rare candidates the tree is asked for
    the scalar's own text and whether it was quoted.
    """
    t = doc.tree
    ryml = doc.ryml
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key: Any = k
            if _candidate(k):
                node = doc.find_raw((*path, k))
                if node is not None:
                    raw = bytes(t.key(node)).decode("utf-8")
                    key = raw if t.type(node) & ryml.KEYQUO else plain_scalar(raw)
            out[key] = _retype(doc, v, (*path, k))
        return out
    if isinstance(value, list):
        return [_retype(doc, v, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, str) and _candidate(value):
        node = doc.find_raw(path)
        if node is not None and t.type(node) & ryml.VAL:
            raw = bytes(t.val(node)).decode("utf-8")
            return raw if t.type(node) & ryml.VALQUO else plain_scalar(raw)
    return value


# JSON strings that YAML 1.2 might type (null, bool, int, float) all contain one of these;
# only then does the slower _retype walk have anything to do.  A false alarm only costs
# time, so cheap substring tests are enough.
_TYPED_HINTS = (
    '"~"',
    '"null"',
    '"true"',
    '"false"',
    '"Null"',
    '"NULL"',
    '"True"',
    '"TRUE"',
    '"False"',
    '"FALSE"',
    '"+',
    '"-',
    '".',
    '"0x',
    '"0o',
    '"0b',
)
_LEADING_ZERO = re.compile(r'"0[0-9_]')
_NUMBER_UNDERSCORE = re.compile(r'"[-+0-9.][0-9.]*_')


def _may_need_retype(emitted: str) -> bool:
    if any(h in emitted for h in _TYPED_HINTS):
        return True
    if '"0' in emitted and _LEADING_ZERO.search(emitted):
        return True
    return "_" in emitted and bool(_NUMBER_UNDERSCORE.search(emitted))


_REFERENCE_HINTS = ("&", "*", "!", "<<", "\n---", "\n%")


def read_fast(text: str) -> Parsed:
    if (
        any(h in text for h in _REFERENCE_HINTS) or text.startswith(("---", "%"))
    ) and _NEEDS_REFERENCE_READER.search(text):
        raise Fallback
    with _quiet_stderr():
        doc = _RymlDoc(text)
        root = doc.root()
        try:
            # Emitting JSON and decoding it runs in C: ten times faster than walking
            # the tree node by node from Python.
            emitted = doc.ryml.emit_json(doc.tree, root)
            hook = _PairsHook()
            data = json.loads(emitted, object_pairs_hook=hook)
        except (ValueError, _DuplicateKey):
            data = doc.build(root, ())
        else:
            if hook.typed_key or _may_need_retype(emitted):
                data = _retype(doc, data, ())
    return Parsed(data, doc.locate, doc.duplicates, "ryml")
