"""The reference YAML reader: ruamel.yaml's round-trip loader, with its line/column marks.

It reads what the fast reader leaves to it, and explains every syntax error.  Duplicate
keys are refused with a message of our own: ruamel's quotes both values, which may be
secrets.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ipsecconf.config.yamldoc import Parsed, Path, Position, YamlSyntaxError


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


def read_ruamel(text: str) -> Parsed:
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
