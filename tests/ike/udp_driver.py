"""Drive one IkeSa over plain UDP sockets (test helper for the strongSwan interop test).

Run inside a network namespace as ``python -m tests.ike.udp_driver <json-spec>``; it binds
UDP 500 and 4500 on the local address, runs the exchange as initiator or responder, and
prints one JSON line describing the events (SPIs, algorithms, key fingerprints; never
keys).  Then it reads one line from stdin: ``close`` deletes the IKE SA, and a last JSON
line says whether the peer confirmed.  Every wait is bounded.

With ``"interactive": true`` it is a tiny engine instead (:func:`interactive`): each event
is printed as it happens (``{"event": ...}``), IKE SAs born from rekeys are followed, and
commands on stdin (``status``, ``rekey_child``, ``rekey_ike``, ``delete_child``,
``close``, ``stop``) act on the current IKE SA; ``hold`` and ``release`` park and then
replay traffic so that two requests cross (collision tests).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import os
import select
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ipsecconf.ike.config import ChildConfig, Identity, IkeConfig, Mode, PskTable
from ipsecconf.ike.context import IkeState
from ipsecconf.ike.credentials import Credentials, TrustAnchors
from ipsecconf.ike.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    ChildSaFailed,
    IkeRekeyFailed,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    IkeSaRekeyed,
)
from ipsecconf.ike.sa import IkeSa, route
from ipsecconf.model.proposals import child_proposals, default_ike, parse
from ipsecconf.model.selectors import Endpoint, Selector


def _auth(spec: dict[str, Any]) -> dict[str, Any]:
    """Certificate settings of a spec (file paths), as IkeConfig fields."""
    out: dict[str, Any] = {}
    if spec.get("cert"):
        chain = Path(spec["intermediates"]).read_bytes() if spec.get("intermediates") else b""
        out["credentials"] = Credentials.from_pem(
            Path(spec["cert"]).read_bytes(), Path(spec["key"]).read_bytes(), chain
        )
        out["signature"] = spec.get("signature", "auto")
    if spec.get("roots"):
        out["trust"] = TrustAnchors.from_pem(*(Path(p).read_bytes() for p in spec["roots"]))
        out["clock"] = lambda: datetime.datetime.now(datetime.UTC)
    if spec.get("remote_auth"):
        out["remote_auth"] = frozenset(spec["remote_auth"])
    return out


def build_config(spec: dict[str, Any]) -> IkeConfig:
    """The IkeConfig a JSON spec describes."""
    child = ChildConfig(
        name=spec["child"],
        selectors=(
            Selector(Endpoint.parse(spec["local_ts"]), Endpoint.parse(spec["remote_ts"]), 0),
        ),
        proposals=tuple(
            [parse(p, "esp") for p in spec["esp"]]
            if spec.get("esp")
            else child_proposals("esp", "auto", "auto")
        ),
        mode=Mode(spec.get("mode", "tunnel")),
    )
    return IkeConfig(
        local_address=ipaddress.ip_address(spec["local"]),
        remote_address=ipaddress.ip_address(spec["remote"]),
        psk=PskTable({spec["remote"]: spec["psk"].encode()}),
        local_id=Identity.parse(spec["local_id"]) if spec.get("local_id") else None,
        remote_id=Identity.parse(spec["remote_id"]) if spec.get("remote_id") else None,
        proposals=tuple(parse(p, "ike") for p in spec["ike"]) or tuple(default_ike()),
        children=(child,),
        force_encap=bool(spec.get("force_encap", False)),
        **_auth(spec),
    )


def fingerprint(key: bytes) -> str:
    """A short SHA-256 fingerprint, so that keys can be compared without printing them."""
    return hashlib.sha256(key).hexdigest()[:32]


def describe(event: object) -> dict[str, Any]:
    """A JSON-able summary of an event, without keys."""
    if isinstance(event, IkeSaEstablished):
        return {
            "type": "ike",
            "spi_i": event.spi_i.hex(),
            "spi_r": event.spi_r.hex(),
            "algorithms": str(event.algorithms),
            "encr": event.algorithms.cipher.name,
            "integ": event.algorithms.integrity.name if event.algorithms.integrity else None,
            "prf": event.algorithms.prf.name,
            "dh": event.algorithms.dh.name,
            "remote_port": event.remote_port,
            "local_port": event.local_port,
            "nat_remote": event.nat_remote,
        }
    if isinstance(event, ChildSaEstablished):
        return {
            "type": "child",
            "spi_in": f"{event.spi_in:08x}",
            "spi_out": f"{event.spi_out:08x}",
            "encr": event.algorithms.cipher.name if event.algorithms.cipher else None,
            "integ": event.algorithms.integrity.name if event.algorithms.integrity else None,
            "esn": event.algorithms.esn,
            "mode": event.mode.value,
            "rekey_of": f"{event.rekey_of:08x}" if event.rekey_of is not None else None,
            "udp_encap": event.udp_encap,
            "local_ts": [str(t) for t in event.local_ts],
            "remote_ts": [str(t) for t in event.remote_ts],
            "keys": {
                "encr_in": fingerprint(event.encr_key_in),
                "encr_out": fingerprint(event.encr_key_out),
                "integ_in": fingerprint(event.integ_key_in),
                "integ_out": fingerprint(event.integ_key_out),
            },
        }
    if isinstance(event, IkeSaRekeyed):
        return {
            "type": "ike-rekeyed",
            "spi_i": event.spi_i.hex(),
            "spi_r": event.spi_r.hex(),
            "old_spi_i": event.old_spi_i.hex(),
            "redundant": event.redundant,
            "by_peer": event.by_peer,
        }
    if isinstance(event, ChildSaDeleted):
        return {
            "type": "child-deleted",
            "spi_in": f"{event.spi_in:08x}",
            "spi_out": f"{event.spi_out:08x}",
            "by_peer": event.by_peer,
        }
    if isinstance(event, IkeSaDeleted):
        return {"type": "ike-deleted", "by_peer": event.by_peer, "rekeyed": event.rekeyed}
    if isinstance(event, IkeSaFailed | ChildSaFailed | IkeRekeyFailed):
        return {
            "type": "failed",
            "reason": event.reason.value,
            "detail": event.detail,
            "notify": event.notify,
        }
    return {"type": type(event).__name__}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the exchange the spec asks for; the outcome as a dict."""
    config = build_config(spec)
    local = spec["local"]
    socks: dict[int, socket.socket] = {}
    for port in (500, 4500):
        s = socket.socket(socket.AF_INET6 if ":" in local else socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((local, port))
        socks[port] = s
    deadline = time.monotonic() + float(spec.get("timeout", 20))
    sa: IkeSa | None = None
    if spec["role"] == "initiator":
        sa = IkeSa(config, initiator=True, rng=os.urandom)
        sa.connect(time.monotonic())
    print(json.dumps({"ready": True}), flush=True)
    events: list[dict[str, Any]] = []
    done_at: float | None = None
    while time.monotonic() < deadline:
        now = time.monotonic()
        if sa is not None:
            for d in sa.datagrams_to_send(now):
                socks[d.local_port].sendto(d.data, d.remote)
            while (event := sa.next_event()) is not None:
                events.append(describe(event))
                if isinstance(event, IkeSaEstablished):
                    # Test-only peek at the SK_* keys, to compare with charon's level-4 log.
                    keys = sa._ctx.keys
                    assert keys is not None
                    events[-1]["keys"] = {
                        name: fingerprint(getattr(keys, name))
                        for name in ("sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr")
                    }
                if events[-1]["type"] in ("child", "failed") and done_at is None:
                    done_at = now + float(spec.get("linger", 1.0))
        if done_at is not None and now >= done_at:
            break
        timer = sa.get_timer() if sa is not None else None
        wait = 0.2 if timer is None else max(0.0, min(0.2, timer - now))
        readable, _, _ = select.select(list(socks.values()), [], [], wait)
        for s in readable:
            data, addr = s.recvfrom(65535)
            if sa is None:
                info = route(data)
                if info is None or not info.is_new_sa:
                    continue
                sa = IkeSa(config, initiator=False, rng=os.urandom)
            sa.receive_datagram(data, (addr[0], addr[1]), time.monotonic())
        if sa is not None and timer is not None and time.monotonic() >= timer:
            sa.handle_timer(time.monotonic())
    drops = {str(k): v for k, v in sa.drops.items()} if sa is not None else {}
    print(json.dumps({"events": events, "drops": drops}), flush=True)
    # Then, on "close" from the test, delete the IKE SA (INFORMATIONAL Delete).
    deleted = False
    if (
        sa is not None
        and sa.state is IkeState.ESTABLISHED
        and sys.stdin.readline().strip() == ("close")
    ):
        sa.close(time.monotonic())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not deleted:
            now = time.monotonic()
            for d in sa.datagrams_to_send(now):
                socks[d.local_port].sendto(d.data, d.remote)
            while (event := sa.next_event()) is not None:
                deleted = deleted or isinstance(event, IkeSaDeleted)
            readable, _, _ = select.select(list(socks.values()), [], [], 0.1)
            for s in readable:
                data, addr = s.recvfrom(65535)
                sa.receive_datagram(data, (addr[0], addr[1]), time.monotonic())
            timer = sa.get_timer()
            if timer is not None and time.monotonic() >= timer:
                sa.handle_timer(time.monotonic())
    for s in socks.values():
        s.close()
    return {"deleted": deleted}


def _bind(local: str) -> dict[int, socket.socket]:
    socks: dict[int, socket.socket] = {}
    for port in (500, 4500):
        s = socket.socket(socket.AF_INET6 if ":" in local else socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((local, port))
        socks[port] = s
    return socks


def _status(sas: list[IkeSa]) -> dict[str, Any]:
    live = [sa for sa in sas if sa.state is IkeState.ESTABLISHED]
    return {
        "ike": [
            {
                "spi_i": sa.spi_i.hex(),
                "spi_r": sa.spi_r.hex(),
                "children": [
                    {"spi_in": f"{c.spi_in:08x}", "spi_out": f"{c.spi_out:08x}", "state": c.state}
                    for c in sa.children
                ],
            }
            for sa in live
        ]
    }


def _command(line: str, sas: list[IkeSa], now: float) -> dict[str, Any]:
    """Run one command on the current IKE SA (the newest established one)."""
    live = [sa for sa in sas if sa.state is IkeState.ESTABLISHED and sa.children]
    live = live or [sa for sa in sas if sa.state is IkeState.ESTABLISHED]
    if line == "status" or not live:
        return {"status": _status(sas)}
    sa = live[-1]
    if line == "rekey_child":
        sa.rekey_child(now, sa.children[0].spi_in)
    elif line == "delete_child":
        sa.delete_child(now, sa.children[0].spi_in)
    elif line == "rekey_ike":
        sa.rekey_ike(now)
    elif line == "close":
        sa.close(now)
    return {"done": line}


def interactive(spec: dict[str, Any]) -> None:
    """Run as a small engine until ``stop`` or the spec's timeout (bounded)."""
    config = build_config(spec)
    socks = _bind(spec["local"])
    sas: list[IkeSa] = []
    if spec["role"] == "initiator":
        sas.append(IkeSa(config, initiator=True, rng=os.urandom))
        sas[0].connect(time.monotonic())
    print(json.dumps({"ready": True}), flush=True)
    deadline = time.monotonic() + float(spec.get("timeout", 120))
    # "hold" parks every datagram in and out until "release", which sends ours first and
    # then processes the peer's: a way to make two requests cross on the wire (2.8.1).
    held: tuple[list[Any], list[Any]] | None = None
    while time.monotonic() < deadline:
        now = time.monotonic()
        for sa in list(sas):
            for d in sa.datagrams_to_send(now):
                if held is not None:
                    held[0].append(d)
                    continue
                socks[d.local_port].sendto(d.data, d.remote)
            while (event := sa.next_event()) is not None:
                if isinstance(event, IkeSaRekeyed):
                    sas.append(event.successor)
                print(json.dumps({"event": describe(event)}), flush=True)
        timers = [t for t in (sa.get_timer() for sa in sas) if t is not None]
        wait = max(0.0, min([0.1, *(t - now for t in timers)]))
        readable, _, _ = select.select([*socks.values(), sys.stdin], [], [], wait)
        for s in readable:
            if s is sys.stdin:
                line = sys.stdin.readline().strip()
                if line in ("stop", ""):
                    print(json.dumps({"drops": _drops(sas)}), flush=True)
                    return
                if line == "hold":
                    held = ([], [])
                    print(json.dumps({"held": True}), flush=True)
                    continue
                if line == "release" and held is not None:
                    out, inbound = held
                    held = None
                    for d in out:
                        socks[d.local_port].sendto(d.data, d.remote)
                    for data, addr in inbound:
                        target = _target(data, sas, config)
                        if target is not None:
                            target.receive_datagram(data, addr, time.monotonic())
                    print(json.dumps({"released": [len(out), len(inbound)]}), flush=True)
                    continue
                print(json.dumps(_command(line, sas, time.monotonic())), flush=True)
                continue
            data, addr = s.recvfrom(65535)  # type: ignore[union-attr]
            if held is not None:
                held[1].append((data, (addr[0], addr[1])))
                continue
            target = _target(data, sas, config)
            if target is not None:
                target.receive_datagram(data, (addr[0], addr[1]), time.monotonic())
        now = time.monotonic()
        for sa in sas:
            timer = sa.get_timer()
            if timer is not None and now >= timer:
                sa.handle_timer(now)


def _drops(sas: list[IkeSa]) -> dict[str, int]:
    total: dict[str, int] = {}
    for sa in sas:
        for reason, count in sa.drops.items():
            total[str(reason)] = total.get(str(reason), 0) + count
    return total


def _target(data: bytes, sas: list[IkeSa], config: IkeConfig) -> IkeSa | None:
    info = route(data)
    if info is None:
        return None
    for sa in sas:
        if sa.spi_i == info.spi_i and (
            sa.spi_r in (info.spi_r, bytes(8)) or info.spi_r == bytes(8)
        ):
            return sa
    if info.is_new_sa and not sas:
        sas.append(IkeSa(config, initiator=False, rng=os.urandom))
        return sas[-1]
    return None


def main() -> None:
    """Entry point: one JSON spec argument, one JSON result line."""
    spec = json.loads(sys.argv[1])
    if spec.get("interactive"):
        interactive(spec)
        return
    print(json.dumps(run(spec)), flush=True)


if __name__ == "__main__":
    main()
