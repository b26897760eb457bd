"""Jinja2 templating of a whole YAML file, with a map from output lines back to template lines.

A file is a template when its name ends in ``.j2`` or it holds ``{{``, ``{%`` or ``{#``.
It is rendered as a whole (loops may generate many policies) in a sandbox with
``StrictUndefined``: a misspelt variable is an error, never an empty string.

To point every later diagnostic at the template's own line, a marker naming the
template line is put at the start of each line of literal text before rendering (found
with Jinja's own lexer, so tags and expressions are never touched), and stripped from the
output afterwards, leaving a table ``output line -> template line``.  Markers add no
newlines, so Jinja's own error line numbers stay right too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

_MARK = "\x1e{}\x1f"
_MARK_RE = re.compile("\x1e(\\d+)\x1f")
_TEMPLATE_HINTS = ("{{", "{%", "{#")


class TemplateFailure(Exception):
    """Rendering failed; ``line`` is the template line when Jinja knows it."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True)
class Rendered:
    """A rendered template: the YAML text and, for each of its lines, the template line."""

    text: str
    line_map: list[int]

    def source_line(self, line: int) -> int:
        """The template line (from 1) that produced output ``line`` (from 1)."""
        if 1 <= line <= len(self.line_map):
            return self.line_map[line - 1]
        return self.line_map[-1] if self.line_map else line


def is_template(name: str, text: str) -> bool:
    """True when the file must be rendered before it is read as YAML."""
    return name.endswith(".j2") or any(h in text for h in _TEMPLATE_HINTS)


def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _mark_lines(env: SandboxedEnvironment, source: str, name: str) -> str:
    tokens = list(env.lex(source, name=name))
    out: list[str] = []
    for index, (lineno, kind, value) in enumerate(tokens):
        if kind != "data":
            out.append(value)
            continue
        nxt = tokens[index + 1][1] if index + 1 < len(tokens) else None
        pieces = value.split("\n")
        marked = []
        for i, piece in enumerate(pieces):
            line = lineno + i
            starts_line = i > 0 or not out or out[-1].endswith("\n")
            # A line holding only a tag is removed by lstrip/trim: a marker there would
            # stop lstrip_blocks from recognising it.
            tag_only = (
                not piece.strip(" \t")
                and i == len(pieces) - 1
                and nxt
                in (
                    "block_begin",
                    "comment_begin",
                )
            )
            if starts_line and not tag_only:
                marked.append(_MARK.format(line) + piece)
            else:
                marked.append(piece)
        out.append("\n".join(marked))
    return "".join(out)


def _template_line(exc: BaseException, name: str) -> int | None:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == name:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render(source: str, variables: dict[str, Any], name: str) -> Rendered:
    """Render ``source`` with ``variables``; raise :class:`TemplateFailure` with a line."""
    env = _environment()
    try:
        marked = _mark_lines(env, source, name)
        template = env.from_string(marked)
        template.filename = name
        output = template.render(**variables)
    except TemplateSyntaxError as exc:
        raise TemplateFailure(f"template syntax error: {exc.message}", exc.lineno) from None
    except UndefinedError as exc:
        raise TemplateFailure(
            f"template error: {exc.message} (set it under vars:, with --var or --vars-file)",
            _template_line(exc, name),
        ) from None
    except SecurityError as exc:
        raise TemplateFailure(
            f"template refused by the sandbox: {exc}", _template_line(exc, name)
        ) from None
    except TemplateError as exc:
        raise TemplateFailure(f"template error: {exc}", _template_line(exc, name)) from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateFailure(
            f"template error: {type(exc).__name__}: {exc}", _template_line(exc, name)
        ) from None
    line_map: list[int] = []
    clean: list[str] = []
    current = 1
    for raw in output.split("\n"):
        m = _MARK_RE.match(raw)
        if m:
            current = int(m.group(1))
        line_map.append(current)
        found = _MARK_RE.findall(raw)
        if found:
            current = int(found[-1])
        clean.append(_MARK_RE.sub("", raw) if found else raw)
    return Rendered("\n".join(clean), line_map)
