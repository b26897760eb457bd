"""The service interface the CLI talks to: validate, plan, apply, show, export.

DESIGN.md "Who does what": the CLI loads the YAML and resolves the secrets (only it has the
environment), plans, and hands the plan and the secret values to a :class:`Backend`.
Today the backend is the store itself (:class:`StoreBackend`); the engine issue adds a
backend that talks to a running engine over its control socket, with the same methods,
so that neither ``ipsecconf`` nor ``ipsec`` changes.  The imperative methods
(``add_policies``, ``delete_policies``, ``set_certificates``, ``zero_counters``) are
what the classic ``ipsec`` command calls; they write unmanaged entries.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ipsecconf.config import LoadResult, load
from ipsecconf.engine import imperative
from ipsecconf.engine.apply import ApplyHooks, ApplyOutcome, apply_plan
from ipsecconf.errors import ConfigError, IpsecconfError
from ipsecconf.model.spd import PolicyRow
from ipsecconf.plan import planfile
from ipsecconf.plan.desired import DesiredState, build
from ipsecconf.plan.differ import diff
from ipsecconf.plan.model import Plan
from ipsecconf.plan.planfile import Inputs, SavedPlan
from ipsecconf.state import (
    HistoryEntry,
    LockInfo,
    SaRecord,
    Snapshot,
    StateLock,
    Store,
    StoredPolicy,
    StoredResource,
    force_unlock,
)


class StalePlanError(IpsecconfError):
    """A saved plan no longer fits the state or the configuration."""


class Backend(Protocol):
    """What plan/apply/show/export and ``ipsec`` need from where the state lives."""

    location: str

    def snapshot(self) -> Snapshot:
        """The configuration and SAD, consistently."""

    def fingerprint(self, address: str, value: bytes) -> str:
        """The salted fingerprint the state would keep for this secret."""

    def digest(self, items: list[str]) -> str:
        """A keyed digest of fingerprints (for saved plans)."""

    def lock(self, timeout: float, command: str) -> contextlib.AbstractContextManager[LockInfo]:
        """Hold the writer lock (waits up to ``timeout`` seconds)."""

    def apply(
        self, plan: Plan, desired: DesiredState, hooks: ApplyHooks, command: str
    ) -> ApplyOutcome:
        """Apply in one transaction (the caller holds the lock)."""

    def policies(self) -> list[StoredPolicy]:
        """SPD rows by index."""

    def sas(self) -> list[SaRecord]:
        """The SAD."""

    def resources(self, kind: str) -> list[StoredResource]:
        """Peers, PSKs, certificates, manual SAs or settings."""

    def counters(self) -> dict[str, int]:
        """Global counters."""

    def history(self, limit: int | None = None) -> list[HistoryEntry]:
        """Applies, newest first."""

    def secret_references(self) -> dict[str, str]:
        """Stored secret address -> recorded reference (``env:``/``file:``), or ``""``."""

    def add_policies(self, rows: Sequence[PolicyRow], *, managed: bool = False) -> list[int]:
        """Imperative add (``ipsec policy add``); returns index numbers."""

    def delete_policies(self, indexes: Sequence[int]) -> list[str]:
        """Imperative delete by index; returns the names removed."""

    def new_policy_name(self, prefix: str = "ipsec") -> str:
        """A fresh pair name for an imperative add."""

    def set_certificates(
        self,
        node: imperative.NodeCert | None = None,
        roots: Sequence[imperative.CertFile] | None = None,
    ) -> None:
        """``ipsec cert set``: the node's certificate and key, or the roots."""

    def zero_counters(self) -> None:
        """``ipsec stats -z``."""

    def force_unlock(self, lock_id: str) -> str:
        """Remove a stale lock."""

    def close(self) -> None:
        """Release resources."""


class StoreBackend:
    """The backend without an engine: the SQLite store at ``path``."""

    def __init__(
        self, path: str, *, kek: bytes | None = None, create: bool = True, empty: bool = False
    ) -> None:
        """``create`` a missing state file, or (``empty``) stand in for it in memory."""
        self.location = path
        if empty and not os.path.exists(path):
            self.store = Store.empty(path, kek=kek)
        else:
            self.store = Store.open(path, create=create, kek=kek)
        self._lock = StateLock(path)

    def snapshot(self) -> Snapshot:
        return self.store.snapshot()

    def fingerprint(self, address: str, value: bytes) -> str:
        return self.store.fingerprint(address, value)

    def digest(self, items: list[str]) -> str:
        return self.store.digest(items)

    def lock(self, timeout: float, command: str) -> contextlib.AbstractContextManager[LockInfo]:
        return self._lock.held(timeout, command)

    def apply(
        self, plan: Plan, desired: DesiredState, hooks: ApplyHooks, command: str
    ) -> ApplyOutcome:
        return apply_plan(self.store, plan, desired, hooks=hooks, command=command)

    def policies(self) -> list[StoredPolicy]:
        return self.store.policies()

    def sas(self) -> list[SaRecord]:
        return self.store.sas()

    def resources(self, kind: str) -> list[StoredResource]:
        return self.store.resources(kind)

    def counters(self) -> dict[str, int]:
        return self.store.counters()

    def history(self, limit: int | None = None) -> list[HistoryEntry]:
        return self.store.history(limit)

    def secret_references(self) -> dict[str, str]:
        return {
            str(r[0]): str(r[1] or "")
            for r in self.store.conn.execute("SELECT address, reference FROM secrets")
        }

    def add_policies(self, rows: Sequence[PolicyRow], *, managed: bool = False) -> list[int]:
        with self.store.transaction() as w:
            return w.add_policies(rows, managed=managed)

    def delete_policies(self, indexes: Sequence[int]) -> list[str]:
        with self.store.transaction() as w:
            return w.delete_policy_indexes(indexes)

    def new_policy_name(self, prefix: str = "ipsec") -> str:
        with self.store.transaction() as w:
            return w.new_policy_name(prefix)

    def set_certificates(
        self,
        node: imperative.NodeCert | None = None,
        roots: Sequence[imperative.CertFile] | None = None,
    ) -> None:
        with self.store.transaction() as w:
            imperative.set_certificates(w, node, roots)

    def zero_counters(self) -> None:
        with self.store.transaction() as w:
            w.zero_counters()

    def force_unlock(self, lock_id: str) -> str:
        return force_unlock(self.location, lock_id)

    def close(self) -> None:
        self.store.close()


def connect(
    path: str, *, kek: bytes | None = None, create: bool = True, empty: bool = False
) -> Backend:
    """The store backend for the state at ``path`` (no engine); see :class:`StoreBackend`.

    Whether an engine holds this state and answers its control socket is asked one layer
    up, by ``cli.state_args.service`` through ``io.client.connect``: the engine layer
    cannot import the I/O adapters.
    """
    return StoreBackend(path, kek=kek, create=create, empty=empty)


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic collector while building/diffing tens of thousands of dicts.

    None of them is garbage until the command ends, and with the collector running each
    allocation burst rescans the whole heap (measured: to_dict of 20,000 rows 0.9 s with
    it, 0.26 s without).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass
class Planned:
    """A plan with what it was made from; ``desired`` holds secret values (never printed)."""

    plan: Plan
    desired: DesiredState
    load: LoadResult
    inputs: Inputs


class Service:
    """validate / plan / apply / show / export over a :class:`Backend`."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def load(self, inputs: Inputs, *, offline: bool = False) -> LoadResult:
        """Load and check the configuration; :class:`ConfigError` on errors."""
        result = load(
            inputs.paths, variables=inputs.variables, vars_files=inputs.vars_files, offline=offline
        )
        result.raise_for_errors()
        return result

    def plan(self, inputs: Inputs) -> Planned:
        """Plan the configuration ``inputs`` names against the backend's state."""
        result = self.load(inputs)
        with paused_gc():
            desired = build(result)
            snap = self.backend.snapshot()
            plan = diff(desired, snap, self.backend.fingerprint, prune=inputs.prune)
        return Planned(plan, desired, result, inputs)

    def _seal_digests(self, planned: Planned) -> None:
        # Only saved plans need these; a plain plan skips encoding every row again.
        plan, desired = planned.plan, planned.desired
        if not plan.desired_digest:
            with paused_gc():
                plan.desired_digest = desired.digest()
            plan.secrets_digest = desired.secrets_digest(
                self.backend.fingerprint, self.backend.digest
            )

    def save(self, planned: Planned, path: str) -> None:
        """Write a saved plan (no secret values)."""
        self._seal_digests(planned)
        planfile.write(path, planned.plan, planned.inputs)

    def replan_saved(self, saved: SavedPlan) -> Planned:
        """Re-resolve a saved plan's inputs and check that it still holds exactly.

        Refused when the state moved on (lineage/serial), when the configuration or a
        secret changed since, or when planning again would not give the same changes.
        """
        snap = self.backend.snapshot()
        if snap.lineage != saved.lineage:
            raise StalePlanError(
                f"{saved.path} was made for another state (lineage {saved.lineage}); this "
                f"state is {snap.lineage} at {self.backend.location}"
            )
        if snap.serial != saved.serial:
            raise StalePlanError(
                f"saved plan {saved.path} is stale: it was made at serial {saved.serial}, the "
                f"state is now at serial {snap.serial}; run plan again"
            )
        try:
            planned = self.plan(saved.inputs)
        except ConfigError as exc:
            raise StalePlanError(
                f"the configuration of saved plan {saved.path} no longer loads: {exc}"
            ) from None
        self._seal_digests(planned)
        if planned.plan.desired_digest != saved.desired_digest:
            raise StalePlanError(
                f"the configuration changed since {saved.path} was made; run plan again"
            )
        if planned.plan.secrets_digest != saved.secrets_digest:
            raise StalePlanError(
                f"a secret changed since {saved.path} was made (its fingerprint differs); "
                "run plan again"
            )
        if planned.plan.digest() != saved.plan_digest:
            raise StalePlanError(f"{saved.path} no longer matches the state; run plan again")
        return planned

    def apply(
        self, planned: Planned, hooks: ApplyHooks | None = None, command: str = "apply"
    ) -> ApplyOutcome:
        """Apply (the caller holds :meth:`Backend.lock`)."""
        with paused_gc():
            return self.backend.apply(planned.plan, planned.desired, hooks or ApplyHooks(), command)

    def export(self) -> str:
        """The state as YAML (see :mod:`ipsecconf.plan.export`)."""
        from ipsecconf.plan.export import export_yaml

        b = self.backend
        kinds = ("setting", "cert", "peer", "psk", "sa")
        return export_yaml(
            b.policies(), {k: b.resources(k) for k in kinds}, b.secret_references().get
        )

    def show(self, what: str) -> Any:
        """Data for ``show policies|sas|certs|stats|history`` (JSON-friendly)."""
        from ipsecconf.engine import show

        return show.collect(self.backend, what)
