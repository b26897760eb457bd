"""Where each part of the merged desired state came from: file, line and column.

The loader merges several files (and the ``defaults`` section into every policy); a
:class:`Locator` maps a path in the merged data, such as ``("policies", 12, "source")``,
back to the file it came from, the path inside that file, and finally the template line
when the file was a Jinja2 template.  A path that does not exist (a missing field) falls
back to its nearest existing parent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ipsecconf.config.template import Rendered
from ipsecconf.config.yamlread import Parsed, Path
from ipsecconf.errors import Diagnostic, Severity


@dataclass
class Source:
    """One input file as read."""

    name: str
    """The path as the user gave it (shown in diagnostics)."""
    parsed: Parsed | None
    rendered: Rendered | None = None

    @property
    def base_dir(self) -> str:
        """Directory for paths the file mentions (secrets, certificates, psk files)."""
        return os.path.dirname(os.path.abspath(self.name))

    def position(self, path: Path, key: bool) -> tuple[int, int] | None:
        """(line, column) of ``path`` in this file, in the template's own lines."""
        if self.parsed is None:
            return None
        pos = None
        probe = path
        while pos is None:
            pos = self.parsed.locate(probe, key)
            if not probe:
                break
            probe, key = probe[:-1], False
        if pos is None:
            return None
        line, col = pos
        if self.rendered is not None:
            line = self.rendered.source_line(line)
        return line, col


@dataclass
class Locator:
    """Maps merged paths to (source, path in source)."""

    sections: dict[str, Source] = field(default_factory=dict)
    """Owner of each non-list top-level key."""
    items: dict[str, list[tuple[Source, int]]] = field(default_factory=dict)
    """For list sections: merged index -> (source, index in that source)."""
    inherited: dict[int, set[str]] = field(default_factory=dict)
    """Policy index -> keys taken from ``defaults``."""

    def resolve(self, path: Path) -> tuple[Source, Path] | None:
        """The source and in-file path of a merged path."""
        if not path:
            return None
        head = str(path[0])
        if (
            head == "policies"
            and len(path) >= 3
            and isinstance(path[1], int)
            and str(path[2]) in self.inherited.get(path[1], ())
        ):
            return self.resolve(("defaults", *path[2:]))
        if head in self.items and len(path) >= 2 and isinstance(path[1], int):
            table = self.items[head]
            if 0 <= path[1] < len(table):
                source, index = table[path[1]]
                return source, (head, index, *path[2:])
        if head in self.sections:
            return self.sections[head], path
        if self.items.get(head):
            source, index = self.items[head][0]
            return source, (head,)
        return None

    def base_dir(self, path: Path) -> str:
        """Directory relative paths at ``path`` are taken from."""
        found = self.resolve(path)
        return found[0].base_dir if found else os.getcwd()

    def diagnostic(
        self, severity: Severity, path: Path, message: str, *, key: bool = False
    ) -> Diagnostic:
        """A diagnostic located at ``path``."""
        found = self.resolve(path)
        if found is None:
            any_source = next(iter(self.sections.values()), None)
            return Diagnostic(severity, message, any_source.name if any_source else None)
        source, inner = found
        pos = source.position(inner, key)
        if pos is None:
            return Diagnostic(severity, message, source.name)
        return Diagnostic(severity, message, source.name, pos[0], pos[1])
