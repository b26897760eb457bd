"""Finding, reading and rendering the input files of a desired state.

Paths may be files or directories; a directory contributes every ``*.yaml``, ``*.yml``
and ``*.j2`` file below it in sorted order, so that a GitOps repository split by team or
host merges the same way on every machine.  Template variables come, weakest first, from
the ``vars:`` sections of the files, then ``--vars-file``, then ``--var k=v``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from ipsecconf.config.locator import Source
from ipsecconf.config.template import TemplateFailure, is_template, render
from ipsecconf.config.yamlread import YamlSyntaxError, plain_scalar, read
from ipsecconf.errors import Diagnostic, Severity

SUFFIXES = (".yaml", ".yml", ".j2")


def discover(paths: Sequence[str]) -> tuple[list[str], list[Diagnostic]]:
    """The files named by ``paths`` (directories expanded), in a stable order."""
    files: list[str] = []
    problems: list[Diagnostic] = []
    for path in paths:
        if os.path.isdir(path):
            found = []
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found += [os.path.join(root, n) for n in names if n.endswith(SUFFIXES)]
            if not found:
                problems.append(
                    Diagnostic(Severity.ERROR, "directory holds no .yaml/.yml/.j2 file", path)
                )
            files += sorted(found, key=lambda p: os.path.relpath(p, path))
        elif os.path.exists(path):
            files.append(path)
        else:
            problems.append(Diagnostic(Severity.ERROR, "no such file or directory", path))
    seen: set[str] = set()
    unique = []
    for f in files:
        real = os.path.realpath(f)
        if real not in seen:
            seen.add(real)
            unique.append(f)
    return unique, problems


def parse_var(text: str) -> tuple[str, Any]:
    """``--var k=v``: the value is typed like a YAML scalar (``3`` is a number)."""
    name, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"--var {text!r}: write NAME=VALUE with a valid variable name")
    return name, plain_scalar(value)


_VARS_BLOCK = re.compile(r"^vars:[ \t]*(?:#.*)?\n((?:[ \t]+.*\n|[ \t]*\n|#.*\n)*)", re.M)


def _template_vars(text: str) -> dict[str, Any]:
    # A template's own vars: block can be read before rendering when it holds no
    # template syntax itself; that is the common case of a file with its loop data.
    m = _VARS_BLOCK.search(text if text.endswith("\n") else text + "\n")
    if not m or any(h in m.group(0) for h in ("{{", "{%", "{#")):
        return {}
    try:
        parsed = read(m.group(0)).data
    except YamlSyntaxError:
        return {}
    value = parsed.get("vars") if isinstance(parsed, dict) else None
    return value if isinstance(value, dict) else {}


class _Raw:
    def __init__(self, name: str, text: str) -> None:
        self.name = name
        self.text = text
        self.template = is_template(name, text)


def load_sources(
    files: Sequence[str],
    cli_vars: dict[str, Any],
    vars_files: Sequence[str],
) -> tuple[list[Source], list[Diagnostic]]:
    """Read, render and parse every file; problems come back as diagnostics."""
    problems: list[Diagnostic] = []
    raws: list[_Raw] = []
    for name in files:
        try:
            with open(name, encoding="utf-8") as fh:
                raws.append(_Raw(name, fh.read()))
        except UnicodeDecodeError as exc:
            problems.append(Diagnostic(Severity.ERROR, f"not UTF-8 text ({exc.reason})", name))
        except OSError as exc:
            problems.append(Diagnostic(Severity.ERROR, f"cannot read: {exc.strerror}", name))

    variables: dict[str, Any] = {}
    sources: list[Source] = []
    plain: dict[str, Source] = {}
    for raw in raws:
        if raw.template:
            variables.update(_template_vars(raw.text))
            continue
        source = _parse(raw.name, raw.text, None, problems)
        plain[raw.name] = source
        data = source.parsed.data if source.parsed else None
        if isinstance(data, dict) and isinstance(data.get("vars"), dict):
            variables.update(data["vars"])
    for vf in vars_files:
        try:
            with open(vf, encoding="utf-8") as fh:
                data = read(fh.read()).data
        except OSError as exc:
            problems.append(
                Diagnostic(Severity.ERROR, f"cannot read vars file: {exc.strerror}", vf)
            )
            continue
        except YamlSyntaxError as exc:
            problems.append(Diagnostic(Severity.ERROR, exc.message, vf, exc.line, exc.column))
            continue
        if not isinstance(data, dict):
            problems.append(Diagnostic(Severity.ERROR, "a vars file must hold a mapping", vf, 1, 1))
            continue
        variables.update(data)
    variables.update(cli_vars)

    for raw in raws:
        if not raw.template:
            sources.append(plain[raw.name])
            continue
        try:
            rendered = render(raw.text, variables, raw.name)
        except TemplateFailure as exc:
            problems.append(Diagnostic(Severity.ERROR, exc.message, raw.name, exc.line))
            sources.append(Source(raw.name, None))
            continue
        sources.append(_parse(raw.name, rendered.text, rendered, problems))
    return sources, problems


def _parse(name: str, text: str, rendered: Any, problems: list[Diagnostic]) -> Source:
    try:
        parsed = read(text)
    except YamlSyntaxError as exc:
        line = exc.line
        if line is not None and rendered is not None:
            line = rendered.source_line(line)
        problems.append(Diagnostic(Severity.ERROR, f"YAML: {exc.message}", name, line, exc.column))
        return Source(name, None, rendered)
    source = Source(name, parsed, rendered)
    for path, pos, first in parsed.duplicates:
        line = rendered.source_line(pos[0]) if rendered else pos[0]
        first_line = rendered.source_line(first[0]) if rendered else first[0]
        problems.append(
            Diagnostic(
                Severity.ERROR,
                f"duplicate key {path[-1]!r} (first defined at line {first_line})",
                name,
                line,
                pos[1],
            )
        )
    return source
