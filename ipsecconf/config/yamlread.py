"""Reading one YAML text into plain Python data, with the position of every node on demand.

Two readers give the same data (a test proves it on every example and on generated
documents):

* the fast path, rapidyaml (``ryml``): parses 10,000 policies in well under a second.
  Scalars are typed by ruamel.yaml's own YAML 1.2 resolver, so ``true``, ``010`` or
  ``0x1F`` mean what ruamel says.  Positions are not computed up front: a node is found
  again in the tree only when a diagnostic needs its line and column.
* ruamel.yaml's round-trip loader, the reference: used for anything the fast path does
  not handle (anchors, aliases, merge keys, tags, several documents) and for every syntax
  error, since its messages say best what is wrong.

Duplicate keys are reported by both readers as errors with both positions.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import os
import sys
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import ScalarNode
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
_IMPLICIT = (True, False)
_SCALAR_CACHE: dict[str, Any] = {}
_SPECIAL_FLOATS = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf")}


def _construct(text: str) -> Any:
    tag = _RESOLVER.resolve(ScalarNode, text, _IMPLICIT).suffix
    kind = tag.rsplit(":", 1)[-1]
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


def plain_scalar(text: str) -> Any:
    """The typed value of an unquoted scalar (memoised: documents repeat their words)."""
    try:
        return _SCALAR_CACHE[text]
    except KeyError:
        value = _construct(text)
        if len(_SCALAR_CACHE) < 200_000:
            _SCALAR_CACHE[text] = value
        return value


# -- the fast path ---------------------------------------------------------------------


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


class _Fallback(Exception):
    """The fast path met a feature it leaves to ruamel.yaml."""


class _RymlDoc:
    def __init__(self, text: str) -> None:
        import ryml  # deferred: only this reader needs the extension

        self.ryml = ryml
        self.buf = bytearray(text.encode("utf-8"))
        self.text_bytes = bytes(self.buf)
        self.tree = ryml.parse_in_place(self.buf)
        self.base = _address(self.buf)
        self.line_starts = [0]
        for i, b in enumerate(self.text_bytes):
            if b == 0x0A:
                self.line_starts.append(i + 1)
        self.duplicates: list[tuple[Path, Position, Position]] = []

    def root(self) -> int:
        t = self.tree
        node = t.root_id()
        if t.is_stream(node):
            n = t.num_children(node)
            if n != 1:
                raise _Fallback
            node = t.first_child(node)
        return int(node)

    def build(self, node: int, path: Path) -> Any:
        t = self.tree
        if t.is_key_ref(node) or t.is_val_ref(node) or t.has_val_anchor(node):
            raise _Fallback
        if t.has_key_anchor(node) or t.has_val_tag(node) or t.has_key_tag(node):
            raise _Fallback
        if t.is_map(node):
            out: dict[Any, Any] = {}
            seen: dict[Any, int] = {}
            child = t.first_child(node)
            while child != self._none:
                key_view = t.key(child)
                key_text = bytes(key_view).decode("utf-8")
                key = key_text if t.is_key_quoted(child) else plain_scalar(key_text)
                if key == "<<" and not t.is_key_quoted(child):
                    raise _Fallback
                if key in seen:
                    self.duplicates.append(
                        ((*path, key), self.position(child, True), self.position(seen[key], True))
                    )
                else:
                    seen[key] = child
                    out[key] = self.build(child, (*path, key))
                child = t.next_sibling(child)
            return out
        if t.is_seq(node):
            items = []
            child = t.first_child(node)
            i = 0
            while child != self._none:
                items.append(self.build(child, (*path, i)))
                i += 1
                child = t.next_sibling(child)
            return items
        if not t.has_val(node):
            return None
        text = bytes(t.val(node)).decode("utf-8")
        if t.is_val_quoted(node) or t.is_val_literal(node) or t.is_val_folded(node):
            return text
        return plain_scalar(text)

    @property
    def _none(self) -> int:
        return int(self.ryml.NONE)

    def _offset_position(self, offset: int) -> Position:
        line = bisect_right(self.line_starts, offset)
        start = self.line_starts[line - 1]
        col = len(self.text_bytes[start:offset].decode("utf-8", "replace")) + 1
        return line, col

    def position(self, node: int, key: bool) -> Position:
        t = self.tree
        if key and t.has_key(node):
            view, quoted = t.key(node), t.is_key_quoted(node)
        elif t.has_val(node) and not t.is_container(node):
            view, quoted = t.val(node), t.is_val_quoted(node)
        elif t.num_children(node) > 0:
            first = t.first_child(node)
            if t.is_seq(node):
                # ruamel places a sequence at its first "-" (or "["), not at the item
                line, col = self.position(first, t.has_key(first))
                start = self.line_starts[line - 1]
                text = self.text_bytes[start:].split(b"\n", 1)[0].decode("utf-8", "replace")
                head = text[: col - 1].rstrip()
                if head.endswith(("-", "[")):
                    return line, len(head)
                return line, col
            return self.position(first, t.has_key(first))
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

    def find(self, path: Path) -> int | None:
        t = self.tree
        node = self.root()
        for part in path:
            if t.is_map(node):
                child = t.first_child(node)
                found = None
                while child != self._none:
                    text = bytes(t.key(child)).decode("utf-8")
                    key = text if t.is_key_quoted(child) else plain_scalar(text)
                    if key == part:
                        found = child
                        break
                    child = t.next_sibling(child)
                if found is None:
                    return None
                node = found
            elif t.is_seq(node) and isinstance(part, int):
                if part >= t.num_children(node):
                    return None
                node = t.child(node, part)
            else:
                return None
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


def _read_fast(text: str) -> Parsed:
    with _quiet_stderr():
        doc = _RymlDoc(text)
    data = doc.build(doc.root(), ())
    return Parsed(data, doc.locate, doc.duplicates, "ryml")


# -- the reference path: ruamel.yaml -----------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, str):
        return str(value)
    if hasattr(value, "value"):  # TaggedScalar
        return str(value.value)
    return value


def _ruamel_locate(root: Any) -> Callable[[Path, bool], Position | None]:
    def locate(path: Path, key: bool) -> Position | None:
        node = root
        parent: Any = None
        last: str | int | None = None
        for part in path:
            in_map = isinstance(node, CommentedMap) and part in node
            in_seq = isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node)
            if in_map or in_seq:
                parent, last, node = node, part, node[part]
            else:
                return None
        if parent is None:
            return 1, 1
        if isinstance(parent, CommentedMap):
            line, col = parent.lc.key(last) if key else parent.lc.value(last)
            if not key and isinstance(node, CommentedMap | CommentedSeq) and len(node):
                line, col = node.lc.line, node.lc.col
        else:
            line, col = parent.lc.item(last)
        return line + 1, col + 1

    return locate


def _read_ruamel(text: str) -> Parsed:
    yaml = YAML(typ="rt")
    try:
        docs = list(yaml.load_all(text))
    except DuplicateKeyError as exc:
        # ruamel's own message quotes both values, which may be secrets: say it anew.
        first, again = exc.context_mark, exc.problem_mark
        where = f" (first defined at line {first.line + 1})" if first else ""
        raise YamlSyntaxError(
            f"duplicate key{where}",
            again.line + 1 if again else None,
            again.column + 1 if again else None,
        ) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{exc.context}: {problem}"
        raise YamlSyntaxError(
            problem,
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
        ) from None
    except YAMLError as exc:
        raise YamlSyntaxError(str(exc).splitlines()[0], None, None) from None
    if len(docs) > 1:
        raise YamlSyntaxError("several YAML documents in one file; use one per file", None, None)
    root = docs[0] if docs else None
    return Parsed(_plain(root), _ruamel_locate(root), [], "ruamel")


def read(text: str, *, fast: bool = True) -> Parsed:
    """Parse one YAML document; raise :class:`YamlSyntaxError` when it does not parse."""
    if fast:
        try:
            parsed = _read_fast(text)
        except _Fallback:
            pass
        except Exception:  # noqa: BLE001 - any ryml failure: let ruamel explain it
            pass
        else:
            return parsed
    return _read_ruamel(text)
