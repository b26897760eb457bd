"""Semantic checks of a validated desired state: the rules the schema alone cannot say.

Each check reports through :class:`CheckContext`, which turns a model path into
``file:line:col``.  The policy checks live in :mod:`.policy_checks`, the key, peer and
certificate checks in :mod:`.peer_checks`; this module holds what they share and runs
them in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ipsecconf.config.locator import Locator
from ipsecconf.config.yamlread import Path
from ipsecconf.errors import Diagnostic, Severity
from ipsecconf.model.desired import Document
from ipsecconf.model.spd import PolicyRow

if TYPE_CHECKING:
    from ipsecconf.config.loader import Secrets


@dataclass
class CheckContext:
    """What every check needs: the model, its rows, and a way to locate a finding."""

    document: Document
    rows: list[PolicyRow]
    locator: Locator
    index: dict[str, list[int]]
    """Section -> merged index of each valid model item (invalid items were dropped)."""
    offline: bool
    check_certificates: bool
    secrets: Secrets
    findings: list[Diagnostic] = field(default_factory=list)
    _policy_paths: dict[str, Path] = field(default_factory=dict)

    def path(self, section: str, model_index: int, *rest: str | int) -> Path:
        """The merged path of the ``model_index``-th valid item of ``section``."""
        merged = self.index.get(section, [])
        i = merged[model_index] if model_index < len(merged) else model_index
        return (section, i, *rest)

    def policy_path(self, policy_name: str, *rest: str | int) -> Path:
        """The merged path of a policy by name."""
        if not self._policy_paths:
            for i, p in enumerate(self.document.policies):
                self._policy_paths.setdefault(p.name, self.path("policies", i))
        return (*self._policy_paths.get(policy_name, ("policies",)), *rest)

    def error(self, path: Path, message: str, *, key: bool = False) -> None:
        """Report an error at ``path``."""
        self.findings.append(self.locator.diagnostic(Severity.ERROR, path, message, key=key))

    def warning(self, path: Path, message: str, *, key: bool = False) -> None:
        """Report a warning at ``path``."""
        self.findings.append(self.locator.diagnostic(Severity.WARNING, path, message, key=key))


def duplicate_names(ctx: CheckContext, section: str, names: list[str], what: str) -> None:
    """Error on the second and later resources of a section that reuse a name."""
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in first:
            earlier = ctx.locator.diagnostic(
                Severity.ERROR, ctx.path(section, first[name], "name"), ""
            )
            where = f" (first at line {earlier.line})" if earlier.line else ""
            ctx.error(ctx.path(section, i, "name"), f"duplicate {what} name {name!r}{where}")
        else:
            first[name] = i


def run(ctx: CheckContext) -> list[Diagnostic]:
    """Run every check; return the findings."""
    from ipsecconf.config import peer_checks, policy_checks

    steps: list[Callable[[CheckContext], None]] = [
        policy_checks.check_policies,
        policy_checks.check_pairs,
        policy_checks.check_shadowing,
        peer_checks.check_peers,
        peer_checks.check_secrets,
        peer_checks.check_policy_keys,
        peer_checks.check_manual_sas,
        peer_checks.check_certificates,
    ]
    for step in steps:
        step(ctx)
    return ctx.findings
