"""The CLI's side of the control socket: :class:`EngineBackend`, the same
:class:`~ipsecconf.engine.service.Backend` as the store's, talking to a running engine.

:func:`connect` returns a backend only when the socket exists *and* answers a ping (a
socket file left by a killed engine is not trusted); otherwise the CLI falls back to the
store.  The apply lock stays the store's file lock (same host, same path), so applies
are serialised the same way with or without an engine.  Errors come back typed: the
engine's message (never a secret) raised as the matching ipsecconf error.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence
from typing import Any

from ipsecconf.engine import imperative, wire
from ipsecconf.engine.apply import ApplyHooks, ApplyOutcome
from ipsecconf.errors import IpsecconfError, StateError, UsageError
from ipsecconf.io.control import _LEN, encode, recv_exact, socket_path
from ipsecconf.model.spd import PolicyRow
from ipsecconf.plan.desired import DesiredState
from ipsecconf.plan.model import Plan
from ipsecconf.state import (
    HistoryEntry,
    LockInfo,
    SaRecord,
    Snapshot,
    StateLock,
    StoredPolicy,
    StoredResource,
    force_unlock,
)
from ipsecconf.state.store import StaleStateError

TIMEOUT = 120.0


class EngineError(IpsecconfError):
    """The engine refused a request or failed."""


_ERRORS: dict[str, type[IpsecconfError]] = {
    "CertificateSetError": imperative.CertificateSetError,
    "StaleStateError": StaleStateError,
    "StateError": StateError,
    "UsageError": UsageError,
}


class EngineBackend:
    """A Backend over a running engine's control socket."""

    def __init__(self, state_path: str, sock: socket.socket) -> None:
        self.location = f"{state_path} (engine)"
        self.state_path = state_path
        self._sock = sock
        self._lock = StateLock(state_path)

    def call(self, method: str, **params: Any) -> Any:
        """One request; the result, or the engine's error raised."""
        import json

        self._sock.sendall(encode({"method": method, "params": params}))
        (size,) = _LEN.unpack(recv_exact(self._sock, 4))
        response = json.loads(recv_exact(self._sock, size).decode("utf-8"))
        if response.get("ok"):
            return response.get("result")
        err = response.get("error") or {}
        cls = _ERRORS.get(str(err.get("type")), EngineError)
        raise cls(f"engine: {err.get('message', 'request failed')}")

    # -- Backend -------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        return wire.snapshot_from_json(self.call("snapshot"))

    def fingerprint(self, address: str, value: bytes) -> str:
        return str(self.call("fingerprint", address=address, value=wire.b64(value)))

    def digest(self, items: list[str]) -> str:
        return str(self.call("digest", items=items))

    def lock(self, timeout: float, command: str) -> contextlib.AbstractContextManager[LockInfo]:
        return self._lock.held(timeout, command)

    def apply(
        self, plan: Plan, desired: DesiredState, hooks: ApplyHooks, command: str
    ) -> ApplyOutcome:
        hooks.transaction_begun(len(plan.changes))
        outcome = wire.outcome_from_json(
            self.call(
                "apply",
                plan=wire.plan_to_json(plan),
                desired=wire.desired_to_json(desired),
                command=command,
            )
        )
        hooks.progress(len(plan.changes), len(plan.changes))
        hooks.committed(outcome)
        return outcome

    def policies(self) -> list[StoredPolicy]:
        return wire.policies_from(self.call("policies"))

    def sas(self) -> list[SaRecord]:
        return wire.sas_from(self.call("sas"))

    def resources(self, kind: str) -> list[StoredResource]:
        return wire.resources_from(self.call("resources", kind=kind))

    def counters(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.call("counters").items()}

    def history(self, limit: int | None = None) -> list[HistoryEntry]:
        return wire.history_from(self.call("history", limit=limit))

    def secret_references(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self.call("secret_references").items()}

    def add_policies(self, rows: Sequence[PolicyRow], *, managed: bool = False) -> list[int]:
        return [
            int(i)
            for i in self.call("add_policies", rows=[r.to_dict() for r in rows], managed=managed)
        ]

    def delete_policies(self, indexes: Sequence[int]) -> list[str]:
        return [str(n) for n in self.call("delete_policies", indexes=list(indexes))]

    def new_policy_name(self, prefix: str = "ipsec") -> str:
        return str(self.call("new_policy_name", prefix=prefix))

    def set_certificates(
        self,
        node: imperative.NodeCert | None = None,
        roots: Sequence[imperative.CertFile] | None = None,
    ) -> None:
        params: dict[str, Any] = {}
        if node is not None:
            params["node"] = {
                "pem": wire.b64(node.cert.pem),
                "source": node.cert.source,
                "key": wire.b64(node.key),
                "key_reference": node.key_reference,
            }
        if roots is not None:
            params["roots"] = [{"pem": wire.b64(r.pem), "source": r.source} for r in roots]
        self.call("set_certificates", **params)

    def zero_counters(self) -> None:
        self.call("zero_counters")

    def force_unlock(self, lock_id: str) -> str:
        return force_unlock(self.state_path, lock_id)

    def close(self) -> None:
        self._sock.close()


def connect(state_path: str, timeout: float = 2.0) -> EngineBackend | None:
    """A backend over the engine of ``state_path`` if one runs and answers, else None."""
    path = socket_path(state_path)
    if not os.path.exists(path):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        backend = EngineBackend(state_path, sock)
        backend.call("ping")
    except (OSError, ValueError, IpsecconfError):
        sock.close()
        return None
    sock.settimeout(TIMEOUT)
    return backend
