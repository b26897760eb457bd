"""The plan: Changes keyed by resource address, and their summary (Terraform's shape).

An address names one resource: ``policy.<name>.<dir>`` (an SPD row), ``peer.<name>``,
``psk.<address>``, ``cert.node``, ``cert.root.<fingerprint prefix>``,
``cert.intermediate.<fingerprint prefix>``, ``sa.<name>`` (a manual SA) and
``setting.default_action``.

``before``/``after`` never hold secret values: secret fields are listed in ``sensitive``
(their fingerprints changed) and shown as "(sensitive value changed)".  ``reason`` is for
people only, never for apply decisions (as Terraform's ActionReason).  A policy row taken
over from an unmanaged entry (adoption) keeps its index and names its old address in
``previous_address``.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = "1.0"
"""Of the JSON plan; minor = backward-compatible additions, major = breaking."""


class Action(enum.StrEnum):
    """What happens to one resource."""

    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "no-op"

    @property
    def symbol(self) -> str:
        """The diff symbol people know from Terraform."""
        return {"create": "+", "update": "~", "replace": "-/+", "delete": "-", "no-op": " "}[
            self.value
        ]

    @property
    def json_actions(self) -> list[str]:
        """Terraform's action lists: replace is delete then create."""
        return ["delete", "create"] if self is Action.REPLACE else [self.value]


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One changed attribute; ``path`` like ``encryption`` or ``selectors[0].source``."""

    path: str
    before: Any
    after: Any
    forces_replacement: bool = False
    added: bool = False
    removed: bool = False


@dataclass(frozen=True, slots=True)
class AffectedSa:
    """A live SA that a change tears down."""

    id: int
    spi: int
    protocol: str
    source: str
    destination: str
    state: str

    def describe(self) -> str:
        """One line for the text plan."""
        return (
            f"SA {self.protocol} spi 0x{self.spi:08x} {self.source} -> {self.destination} "
            f"({self.state})"
        )


@dataclass(slots=True)
class Change:
    """The planned change of one resource."""

    address: str
    kind: str
    name: str
    action: Action
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: str | None = None
    fields: list[FieldChange] = field(default_factory=list)
    replace_fields: list[str] = field(default_factory=list)
    sensitive: list[str] = field(default_factory=list)
    """Secret fields whose value is new, changed or removed."""
    affected_sas: list[AffectedSa] = field(default_factory=list)
    previous_address: str | None = None
    index: int | None = None
    """The policy's index number (kept, or None until the store assigns one)."""

    @property
    def adopted(self) -> bool:
        """True when this change takes over an unmanaged entry."""
        return self.previous_address is not None

    def digest_form(self) -> list[Any]:
        """What identifies the change for the plan digest (not the SAs: they churn)."""
        return [
            self.address,
            self.action.value,
            self.before,
            self.after,
            sorted(self.sensitive),
            self.previous_address,
        ]


@dataclass(slots=True)
class Summary:
    """The counts of the summary line."""

    add: int = 0
    change: int = 0
    destroy: int = 0
    adopt: int = 0
    sas_affected: int = 0
    unchanged: int = 0

    def line(self) -> str:
        """``N to add, N to change, N to destroy, N SAs affected``."""
        text = (
            f"{self.add} to add, {self.change} to change, {self.destroy} to destroy, "
            f"{self.sas_affected} SAs affected"
        )
        if self.adopt:
            text += f", {self.adopt} to adopt"
        return text


@dataclass(slots=True)
class Plan:
    """Desired vs stored: every change, the drift left alone, and what it was planned on."""

    lineage: str
    serial: int
    changes: list[Change]
    drift: list[Change]
    """Unmanaged entries the plan leaves in place (deleted only with ``--prune``)."""
    unchanged: int
    prune: bool = False
    desired_digest: str = ""
    secrets_digest: str = ""

    @property
    def has_changes(self) -> bool:
        """True when applying would change the store."""
        return bool(self.changes)

    def summary(self) -> Summary:
        """The counts, with every live SA counted once."""
        s = Summary(unchanged=self.unchanged)
        sas: set[int] = set()
        for c in self.changes:
            if c.action is Action.CREATE:
                s.add += 1
            elif c.action is Action.UPDATE:
                s.change += 1
            elif c.action is Action.REPLACE:
                s.add += 1
                s.destroy += 1
            elif c.action is Action.DELETE:
                s.destroy += 1
            if c.adopted:
                s.adopt += 1
            sas.update(sa.id for sa in c.affected_sas)
        s.sas_affected = len(sas)
        return s

    def digest(self) -> str:
        """SHA-256 over the changes: a saved plan is applied only if this still matches."""
        h = hashlib.sha256()
        h.update(f"{self.lineage}\n{self.serial}\n{self.prune}\n".encode())
        for c in self.changes:
            h.update(json.dumps(c.digest_form(), sort_keys=True, default=str).encode())
            h.update(b"\n")
        return h.hexdigest()
