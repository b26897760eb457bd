"""The control API of a running engine, without the socket: one request in, one response
out (:mod:`ipsecconf.io.control` frames them on the Unix socket).

Protocol (documented in ``docs/control-api.md``): a request is ``{"method": NAME,
"params": {...}}``; the response is ``{"ok": true, "result": ...}`` or ``{"ok": false,
"error": {"type": CLASS, "message": TEXT}}``.  Methods mirror
:class:`~ipsecconf.engine.service.Backend`, so that :class:`EngineBackend
<ipsecconf.io.client.EngineBackend>` is a drop-in for the store.  Reads of the SAD and
counters first copy the live values into the store; writes go through
:meth:`Engine.reconfigure`, so the store and the live tables change together.  Error
messages are those of ipsecconf's own errors (which never carry secret values); anything
else answers "internal error" and is logged by type only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from ipsecconf.engine import imperative, wire
from ipsecconf.engine.apply import ApplyHooks, ApplyOutcome, apply_plan
from ipsecconf.engine.runtime import Engine
from ipsecconf.errors import IpsecconfError
from ipsecconf.model.spd import PolicyRow

log = logging.getLogger("ipsecconf.engine")

PROTOCOL_VERSION = 1


class _StageHooks(ApplyHooks):
    """Calls ``stage`` once every change is written, before the commit."""

    def __init__(self, stage: Callable[[], None]) -> None:
        self.stage = stage

    def progress(self, done: int, total: int) -> None:
        if done == total:
            self.stage()


class Control:
    """Dispatches control requests to an engine."""

    def __init__(self, engine: Engine, clock: Callable[[], float], location: str) -> None:
        self.engine = engine
        self.store = engine.store
        self.clock = clock
        self.location = location

    def handle(self, request: Any) -> dict[str, Any]:
        """One request -> one response (never raises)."""
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error("UsageError", 'a request is {"method": NAME, "params": {...}}')
        method = request["method"]
        params = request.get("params") or {}
        fn = getattr(self, f"do_{method}", None)
        if fn is None or not isinstance(params, dict):
            return _error("UsageError", f"unknown control method {method!r}")
        try:
            return {"ok": True, "result": fn(**params)}
        except IpsecconfError as exc:
            return _error(type(exc).__name__, str(exc))
        except (TypeError, KeyError, ValueError) as exc:
            log.warning("control request %s refused: %s", method, type(exc).__name__)
            return _error("UsageError", f"malformed parameters for {method}")
        except Exception as exc:  # the engine must keep running
            log.error("control request %s failed: %s", method, type(exc).__name__)
            return _error("EngineError", f"internal error in {method} (see the engine log)")

    # -- reads ---------------------------------------------------------------------
    def do_ping(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "state": self.location, "protocol": PROTOCOL_VERSION}

    def do_snapshot(self) -> dict[str, Any]:
        self.engine.sync()
        return wire.snapshot_to_json(self.store.snapshot())

    def do_fingerprint(self, address: str, value: str) -> str:
        return self.store.fingerprint(address, wire.unb64(value))

    def do_digest(self, items: list[str]) -> str:
        return self.store.digest(list(items))

    def do_policies(self) -> Any:
        return wire.as_json(self.store.policies())

    def do_sas(self) -> Any:
        self.engine.sync()
        return wire.as_json(self.store.sas())

    def do_resources(self, kind: str) -> Any:
        return wire.as_json(self.store.resources(kind))

    def do_counters(self) -> dict[str, int]:
        self.engine.sync_firewall()
        return self.store.counters()

    def do_history(self, limit: int | None = None) -> Any:
        return wire.as_json(self.store.history(limit))

    def do_secret_references(self) -> dict[str, str]:
        return {
            str(r[0]): str(r[1] or "")
            for r in self.store.conn.execute("SELECT address, reference FROM secrets")
        }

    # -- writes --------------------------------------------------------------------
    def do_apply(self, plan: dict[str, Any], desired: dict[str, Any], command: str) -> Any:
        p = wire.plan_from_json(plan)
        d = wire.desired_from_json(desired)

        def write(stage: Callable[[], None]) -> ApplyOutcome:
            return apply_plan(self.store, p, d, hooks=_StageHooks(stage), command=command)

        outcome, _torn = self.engine.reconfigure(write, self.clock())
        log.info("apply (%s): %s; serial %d", command, outcome.summary, outcome.serial)
        return wire.as_json(outcome)

    def do_add_policies(self, rows: list[dict[str, Any]], managed: bool = False) -> list[int]:
        parsed = [PolicyRow.from_dict(r) for r in rows]

        def write(stage: Callable[[], None]) -> list[int]:
            with self.store.transaction() as w:
                out = w.add_policies(parsed, managed=managed)
                stage()
            return out

        result, _ = self.engine.reconfigure(write, self.clock())
        log.info("policy add: %s", ", ".join(r.name for r in parsed))
        return result

    def do_delete_policies(self, indexes: list[int]) -> list[str]:
        def write(stage: Callable[[], None]) -> list[str]:
            with self.store.transaction() as w:
                out = w.delete_policy_indexes([int(i) for i in indexes])
                stage()
            return out

        result, _ = self.engine.reconfigure(write, self.clock())
        log.info("policy delete: %s", ", ".join(result))
        return result

    def do_new_policy_name(self, prefix: str = "ipsec") -> str:
        with self.store.transaction() as w:
            return w.new_policy_name(prefix)

    def do_set_certificates(
        self, node: dict[str, Any] | None = None, roots: list[dict[str, Any]] | None = None
    ) -> None:
        node_cert = None
        if node is not None:
            node_cert = imperative.NodeCert(
                imperative.CertFile(wire.unb64(node["pem"]), node["source"]),
                wire.unb64(node["key"]),
                node.get("key_reference"),
            )
        root_files = (
            [imperative.CertFile(wire.unb64(r["pem"]), r["source"]) for r in roots]
            if roots is not None
            else None
        )
        with self.store.transaction() as w:
            imperative.set_certificates(w, node_cert, root_files)

    def do_zero_counters(self) -> None:
        self.engine.zero_counters()
        log.info("counters zeroed")


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"type": kind, "message": message}}
