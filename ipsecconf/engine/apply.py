"""Applying a plan to the store: one transaction, all or nothing.

Order inside the transaction: deletions first (so a replaced manual SA's SPI is free
again), then adoptions (renames keep the index), then creations, updates and
replacements; the SAs a change tears down are marked Dead; the history row is written
last, and the serial moves once at commit.  A failure anywhere rolls back everything.

Progress and the transaction marker go through :class:`ApplyHooks` (Terraform's hooks):
this module never prints.
"""

from __future__ import annotations

import getpass
import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ipsecconf.plan.desired import DesiredState, secret_address
from ipsecconf.plan.model import Action, Change, Plan
from ipsecconf.state.store import Store
from ipsecconf.state.writer import Writer, canonical

BATCH = 1000
log = logging.getLogger("ipsecconf.apply")


class ApplyHooks:
    """Callbacks of a running apply; the defaults do nothing."""

    def transaction_begun(self, total: int) -> None:
        """The store transaction is open; ``total`` changes follow."""

    def progress(self, done: int, total: int) -> None:
        """``done`` of ``total`` changes are written (not yet committed)."""

    def committed(self, outcome: ApplyOutcome) -> None:
        """The transaction committed."""


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """What an apply did."""

    serial: int
    summary: str
    plan_digest: str
    sas_torn_down: int


def who() -> str:
    """``user@host`` for the history."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class _Progress:
    def __init__(self, hooks: ApplyHooks, total: int) -> None:
        self.hooks, self.total, self.done = hooks, total, 0

    def step(self, changes: list[Change]) -> None:
        # One audit line per change at -vv (never a value: addresses and actions only).
        if log.isEnabledFor(logging.DEBUG):
            for c in changes:
                log.debug(
                    "%s %s%s",
                    c.action.value,
                    c.address,
                    f" (index {c.index})" if c.index is not None else "",
                )
        self.done += len(changes)
        self.hooks.progress(self.done, self.total)


def _batches(items: list[Change]) -> Iterable[list[Change]]:
    for i in range(0, len(items), BATCH):
        yield items[i : i + BATCH]


def _write_policies(w: Writer, changes: list[Change], progress: _Progress) -> None:
    deletes = [c for c in changes if c.action is Action.DELETE]
    for batch in _batches(deletes):
        w.delete_policies(c.name for c in batch)
        progress.step(batch)
    for c in changes:
        if c.previous_address and c.previous_address != c.address and c.after is not None:
            w.rename_policy(c.previous_address.removeprefix("policy."), c.name, c.after["policy"])
    writes = [c for c in changes if c.action is not Action.DELETE]
    for batch in _batches(writes):
        w.put_policies(
            (c.name, c.after["policy"], c.after["direction"], True, canonical(c.after))
            for c in batch
            if c.after is not None
        )
        progress.step(batch)


def _write_resources(
    w: Writer, changes: list[Change], desired: DesiredState, progress: _Progress
) -> None:
    for c in changes:
        if c.action is Action.DELETE:
            w.delete_resources([(c.kind, c.name)])
            w.delete_secrets_of(c.address)
            if c.kind == "sa":
                w.delete_manual_sa(c.name)
        else:
            res = desired.resources[c.address]
            w.put_resources([(res.kind, res.name, True, canonical(res.data))])
            for fname in c.sensitive:
                value = res.secrets.get(fname)
                address = secret_address(c.address, fname)
                if value is None:
                    w.delete_secrets([address])
                else:
                    w.put_secret(address, value.value, value.reference)
            if c.kind == "sa" and c.action in (Action.CREATE, Action.REPLACE):
                _install_manual_sa(w, res.name, res.data)
        progress.step([c])


def _install_manual_sa(w: Writer, name: str, data: dict[str, object]) -> None:
    # A manual SA is Mature as soon as it exists: there is nothing to negotiate.
    w.delete_manual_sa(name)
    w.add_sa(
        spi=int(data["spi"]),  # type: ignore[call-overload]
        protocol=str(data["protocol"]),
        source=str(data["source"]),
        destination=str(data["destination"]),
        state="M",
        manual=name,
        encryption=str(data["encryption"]),
        authentication=str(data["authentication"]),
        data={
            k: data[k] for k in ("mode", "replay_window", "esn", "udp_encapsulation") if k in data
        },
    )


def apply_plan(
    store: Store,
    plan: Plan,
    desired: DesiredState,
    *,
    hooks: ApplyHooks | None = None,
    command: str = "ipsecconf apply",
) -> ApplyOutcome:
    """Apply ``plan`` to ``store`` in one transaction; refuses a stale plan."""
    h = hooks or ApplyHooks()
    policies = [c for c in plan.changes if c.kind == "policy"]
    others = [c for c in plan.changes if c.kind != "policy"]
    total = len(plan.changes)
    progress = _Progress(h, total)
    digest = plan.digest()
    summary = plan.summary()
    torn: set[int] = {sa.id for c in plan.changes for sa in c.affected_sas}
    with store.transaction(expect=(plan.lineage, plan.serial)) as w:
        h.transaction_begun(total)
        log.info("transaction begun: %d changes against serial %d", total, plan.serial)
        _write_resources(w, others, desired, progress)
        _write_policies(w, policies, progress)
        manual = {c.name for c in others if c.kind == "sa"}
        # Manual SAs were rewritten above; negotiated SAs of changed resources die.
        dead = [
            sa.id
            for c in plan.changes
            for sa in c.affected_sas
            if not (c.kind == "sa" and c.name in manual)
        ]
        w.set_sa_state(dead, "D", now=time.time())
        if plan.changes:
            w.add_history(who=who(), command=command, plan_digest=digest, summary=summary.line())
    outcome = ApplyOutcome(store.serial, summary.line(), digest, len(torn))
    log.info("committed: serial %d, %s", outcome.serial, outcome.summary)
    h.committed(outcome)
    return outcome
