"""From paths on disk to a validated desired state, with every problem located.

The steps: find and read the files (:mod:`.sources`), merge them (list sections are
concatenated in file order; every other top-level key may be set by one file only), fold
``defaults`` into each policy, validate each resource with the pydantic model (one bad
policy does not hide the others), run the semantic checks (:mod:`.checks`), and resolve
the secret references unless ``offline``.  The result carries diagnostics with
``file:line:col``; nothing here prints.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ipsecconf.config.locator import Locator, Source
from ipsecconf.config.sources import discover, load_sources
from ipsecconf.config.yamlread import Path
from ipsecconf.errors import ConfigError, Diagnostic, Severity
from ipsecconf.model.desired import (
    Document,
    ManualSa,
    Peer,
    Policy,
    PolicyDefaults,
    PskEntry,
)
from ipsecconf.model.spd import PolicyRow, expand, ordered

LIST_SECTIONS: dict[str, type[BaseModel] | None] = {
    "policies": Policy,
    "peers": Peer,
    "psks": PskEntry,
    "manual_sas": ManualSa,
    "psk_file": None,
}
_BASE_DIR_SECTIONS = {"peers", "psks", "manual_sas", "certificates"}


@dataclass
class Secrets:
    """Resolved secret material, keyed by the merged path of its reference.

    Its repr never shows a value; only the planner's fingerprints and the engine see them.
    """

    values: dict[Path, bytes] = field(default_factory=dict)
    psk_by_address: dict[str, bytes] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Secrets({len(self.values)} values, {len(self.psk_by_address)} PSK addresses)"


@dataclass
class LoadResult:
    """A loaded desired state: the model, its SPD rows in order, and the diagnostics."""

    document: Document | None
    rows: list[PolicyRow]
    diagnostics: list[Diagnostic]
    locator: Locator
    secrets: Secrets
    files: list[str]

    @property
    def errors(self) -> list[Diagnostic]:
        """Only the errors."""
        return [d for d in self.diagnostics if d.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        """Only the warnings."""
        return [d for d in self.diagnostics if d.severity is Severity.WARNING]

    def raise_for_errors(self, strict: bool = False) -> None:
        """Raise :class:`ConfigError` when there are errors (or warnings, with ``strict``)."""
        if self.errors or (strict and self.warnings):
            raise ConfigError(self.diagnostics)


def _message(err: Any) -> tuple[str, bool]:
    loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
    kind = err["type"]
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    field_name = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        return f"unknown key {field_name!r}", True
    if kind == "missing":
        return f"required key {field_name!r} is missing", False
    if field_name and not field_name.isdigit():
        return f"{field_name}: {msg}", False
    return msg, False


def _clean_loc(loc: tuple[Any, ...]) -> Path:
    # pydantic adds union/validator branch names to locations; keep real keys only.
    return tuple(
        p for p in loc if isinstance(p, int) or not str(p).startswith(("function-", "str", "list["))
    )


class _Builder:
    def __init__(self, sources: list[Source]) -> None:
        self.sources = sources
        self.locator = Locator()
        self.findings: list[Diagnostic] = []
        self.raw: dict[str, Any] = {}

    def error(self, path: Path, message: str, *, key: bool = False) -> None:
        self.findings.append(self.locator.diagnostic(Severity.ERROR, path, message, key=key))

    def merge(self) -> None:
        for source in self.sources:
            data = source.parsed.data if source.parsed else None
            if data is None:
                continue
            if not isinstance(data, dict):
                self.findings.append(
                    Diagnostic(Severity.ERROR, "the top level must be a mapping", source.name, 1, 1)
                )
                continue
            for key, value in data.items():
                if key in LIST_SECTIONS:
                    items = [value] if key == "psk_file" and isinstance(value, str) else value
                    if not isinstance(items, list):
                        self.locator.sections.setdefault(key, source)
                        self.error((key,), f"{key} must be a list")
                        continue
                    table = self.locator.items.setdefault(key, [])
                    for i, item in enumerate(items):
                        table.append((source, i))
                        self.raw.setdefault(key, []).append(item)
                elif key == "vars" and isinstance(value, dict):
                    self.locator.sections.setdefault(key, source)
                    self.raw.setdefault("vars", {}).update(value)
                elif key in self.raw:
                    first = self.locator.sections[str(key)].name
                    self.findings.append(
                        Diagnostic(
                            Severity.ERROR,
                            f"{key!r} is already set in {first}; set it in one file only",
                            source.name,
                            *(source.position((key,), True) or (None, None)),
                        )
                    )
                else:
                    self.locator.sections[str(key)] = source
                    self.raw[key] = value

    def validate_item(self, model: type[BaseModel], path: Path, item: Any) -> Any:
        # Top-level references (certificates.private_key) are relative to their section.
        where = path or ("certificates",)
        context = {"base_dir": self.locator.base_dir(where)}
        try:
            return model.model_validate(item, context=context)
        except ValidationError as exc:
            for err in exc.errors(include_input=False, include_url=False):
                message, on_key = _message(err)
                self.error((*path, *_clean_loc(err["loc"])), message, key=on_key)
            return None

    def apply_defaults(self) -> None:
        defaults = self.raw.get("defaults")
        if defaults is None:
            return
        if not isinstance(defaults, dict):
            self.error(("defaults",), "defaults must be a mapping")
            return
        if self.validate_item(PolicyDefaults, ("defaults",), defaults) is None:
            return  # reported once here, not again on every policy
        for i, policy in enumerate(self.raw.get("policies", [])):
            if not isinstance(policy, dict):
                continue
            taken = set()
            for key, value in defaults.items():
                if key not in policy:
                    policy[key] = value
                    taken.add(key)
                elif isinstance(value, dict) and isinstance(policy[key], dict):
                    policy[key] = {**value, **policy[key]}
            if taken:
                self.locator.inherited[i] = taken

    def build(self) -> Document | None:
        top = {k: v for k, v in self.raw.items() if k not in LIST_SECTIONS}
        doc = self.validate_item(Document, (), top)
        lists: dict[str, list[Any]] = {}
        for key, model in LIST_SECTIONS.items():
            values = self.raw.get(key, [])
            if model is None:
                good = []
                for i, v in enumerate(values):
                    if isinstance(v, str) and v.strip():
                        good.append(v)
                    else:
                        self.error((key, i), f"{key} entries are file paths")
                lists[key] = good
                continue
            out = []
            for i, item in enumerate(values):
                value = self.validate_item(model, (key, i), item)
                if value is not None:
                    out.append((i, value))
            lists[key] = out
        if doc is None:
            return None
        self.valid_index = {k: [i for i, _ in v] for k, v in lists.items() if k != "psk_file"}
        update = {k: ([m for _, m in v] if k != "psk_file" else v) for k, v in lists.items()}
        result: Document = doc.model_copy(update=update)
        return result


def load(
    paths: Sequence[str],
    *,
    variables: dict[str, Any] | None = None,
    vars_files: Sequence[str] = (),
    offline: bool = False,
    check_certificates: bool = True,
) -> LoadResult:
    """Load, merge, validate and check the desired state at ``paths``."""
    # The loader allocates hundreds of thousands of small objects and frees none of them
    # until it returns; pausing the cyclic collector meanwhile is measurably faster.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _load(paths, variables or {}, vars_files, offline, check_certificates)
    finally:
        if was_enabled:
            gc.enable()


def _load(
    paths: Sequence[str],
    variables: dict[str, Any],
    vars_files: Sequence[str],
    offline: bool,
    check_certificates: bool,
) -> LoadResult:
    from ipsecconf.config import checks

    files, problems = discover(paths)
    sources, read_problems = load_sources(files, variables, vars_files)
    builder = _Builder(sources)
    builder.findings += problems + read_problems
    builder.merge()
    builder.apply_defaults()
    document = builder.build()
    rows: list[PolicyRow] = []
    secrets = Secrets()
    if document is not None:
        index = getattr(builder, "valid_index", {})
        rows = ordered([row for p in document.policies for row in expand(p)])
        context = checks.CheckContext(
            document=document,
            rows=rows,
            locator=builder.locator,
            index=index,
            offline=offline,
            check_certificates=check_certificates,
            secrets=secrets,
        )
        builder.findings += checks.run(context)
    diagnostics = sorted(builder.findings, key=lambda d: (d.file or "", d.line or 0, d.column or 0))
    return LoadResult(document, rows, diagnostics, builder.locator, secrets, files)
