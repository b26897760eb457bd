"""What the engine does with each IKE event and each SA expiry event.

* IKE SA established: logged; with the peer's INITIAL_CONTACT, older IKE SAs with that
  peer are dropped at once (RFC 7296 2.4).
* Child SA established: the inbound and outbound SAs are installed in the SAD (keys from
  the event, lifetimes from the policy, soft lifetime a little before the hard one with a
  random spread so that two peers rarely rekey at once), recorded Mature, and the queued
  packets are sent.  For a rekey the IKE core deletes the old pair next (ChildSaDeleted).
* Failures: logged with the reason, counted, queued packets dropped; permit policies fall
  back to clear traffic; ``start: immediate`` pairs retry with a growing backoff.
* Deletes and hard expiries: the SAs turn Dead (visible 60 s); a soft expiry marks the SAs
  Dying and rekeys the child in place (CREATE_CHILD_SA, RFC 7296 2.8) from whichever side
  gets there first -- the random spread makes a collision rare and the IKE core resolves
  one (2.8.1) -- and the IKE SA's own lifetime rekeys it in place (2.18).
* Liveness: a peer that sent nothing for ``liveness_interval`` is asked (RFC 7296 2.4).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from typing import TYPE_CHECKING

from ipsecconf.engine import keylog
from ipsecconf.esp.errors import SaConfigError
from ipsecconf.esp.sa import Lifetimes, Mode, Protocol, SaConfig, SaEvent, SaEventKind, UdpEncap
from ipsecconf.esp.sad import LarvalSa, sa_key
from ipsecconf.esp.spd import Direction, Level
from ipsecconf.ike.constants import ProtocolId
from ipsecconf.ike.errors import LocalProtocolError
from ipsecconf.ike.events import (
    ChildSaDeleted,
    ChildSaEstablished,
    ChildSaFailed,
    IkeEvent,
    IkeRekeyFailed,
    IkeSaDeleted,
    IkeSaEstablished,
    IkeSaFailed,
    IkeSaRekeyed,
)
from ipsecconf.model.algorithms import INTEGRITIES

if TYPE_CHECKING:
    from ipsecconf.engine.ikemgr import Child, IkeEntry, IkeManager
    from ipsecconf.engine.livecfg import PairSpec

log = logging.getLogger("ipsecconf.engine")


def handle(mgr: IkeManager, entry: IkeEntry, event: IkeEvent, now: float) -> None:
    """Act on one event of ``entry``'s IKE SA."""
    if isinstance(event, IkeSaEstablished):
        entry.established = True
        entry.next_liveness = now + entry.liveness
        _schedule_ike_rekey(entry, now)
        mgr.book.count("ike_succeeded")
        log.info(
            "IKE SA with %s established as %s: %s, SPIs %s/%s%s",
            entry.remote,
            "initiator" if event.initiator else "responder",
            event.algorithms,
            event.spi_i.hex(),
            event.spi_r.hex(),
            ", UDP-encapsulated" if event.udp_encap else "",
        )
        if event.initial_contact:
            for other in list(mgr.entries.values()):
                if other is not entry and other.remote == entry.remote:
                    log.info("INITIAL_CONTACT from %s: dropping an older IKE SA", entry.remote)
                    mgr.forget(other, now)
    elif isinstance(event, ChildSaEstablished):
        _install(mgr, entry, event, now)
    elif isinstance(event, ChildSaFailed | IkeSaFailed):
        _failed(mgr, entry, event, now)
    elif isinstance(event, ChildSaDeleted):
        for child in list(entry.children):
            if child.spi_in == event.spi_in:
                remove_child(mgr, entry, child, now)
                log.info(
                    "child SA of policy %s deleted by %s: SPIs in 0x%08x out 0x%08x",
                    child.pair,
                    "the peer" if event.by_peer else "us",
                    child.spi_in,
                    child.spi_out,
                )
                _retry_soon(mgr, child.pair, entry.remote, now)
    elif isinstance(event, IkeSaRekeyed):
        _rekeyed(mgr, entry, event, now)
    elif isinstance(event, IkeRekeyFailed):
        entry.rekeying = False
        lifetime, margin = entry.ike_lifetime
        # The old IKE SA stays in use; try again a tenth of the margin later.
        entry.rekey_at = now + max(min(margin, lifetime / 2) / 10, 1.0)
        log.warning(
            "rekey of the IKE SA with %s failed: %s (%s)%s",
            entry.remote,
            event.reason.value,
            event.detail,
            f", notify {event.notify}" if event.notify is not None else "",
        )
    elif isinstance(event, IkeSaDeleted) and event.rekeyed:
        # Its children live on in the successor (moved at IkeSaRekeyed): keep them.
        log.info("IKE SA with %s replaced by its rekey, old SA deleted", entry.remote)
        entry.children.clear()
        mgr.forget(entry, now)
    elif isinstance(event, IkeSaDeleted):
        log.info(
            "IKE SA with %s deleted by %s", entry.remote, "the peer" if event.by_peer else "us"
        )
        pairs = [c.pair for c in entry.children]
        mgr.forget(entry, now)
        for pair in pairs:
            _retry_soon(mgr, pair, entry.remote, now)


def _schedule_ike_rekey(entry: IkeEntry, now: float) -> None:
    """The IKE SA's own lifetime: its initiator rekeys it a margin (at most half the
    lifetime) before it runs out."""
    lifetime, margin = entry.ike_lifetime
    if lifetime and entry.initiator:
        entry.rekey_at = now + max(lifetime - min(margin, lifetime / 2), 1.0)


def _rekeyed(mgr: IkeManager, entry: IkeEntry, ev: IkeSaRekeyed, now: float) -> None:
    """A CREATE_CHILD_SA rekey of the IKE SA (RFC 7296 2.18) made a successor: register
    it, and move the children to it (the old SA's Delete follows and must not take
    them); the loser of a simultaneous rekey (2.8.1) gets no children."""
    from ipsecconf.engine.ikemgr import IkeEntry  # ikemgr imports this module

    new = IkeEntry(
        ev.successor, entry.remote, entry.local, entry.pair, not ev.by_peer,
        entry.peer_name, entry.liveness,
    )  # fmt: skip
    new.established = True
    new.next_liveness = now + new.liveness
    new.ike_lifetime = entry.ike_lifetime
    _schedule_ike_rekey(new, now)
    if not ev.redundant:
        new.children, entry.children = entry.children, []
    mgr.entries[ev.successor.spi_i] = new
    log.info(
        "IKE SA with %s rekeyed by %s: %s, SPIs %s/%s",
        entry.remote,
        "the peer" if ev.by_peer else "us",
        ev.algorithms,
        ev.spi_i.hex(),
        ev.spi_r.hex(),
    )
    mgr.flush(new, now)


def _retry_soon(mgr: IkeManager, pair: str, remote: str, now: float) -> None:
    spec = mgr.config.pairs.get(pair)
    if spec is not None and spec.start_immediate and not mgr.closing:
        mgr.retry[(pair, remote)] = (now + 0.5, 0.5)


def _lifetimes(mgr: IkeManager, pair: PairSpec) -> Lifetimes:
    seconds, nbytes, packets, margin = pair.lifetime
    spread = int.from_bytes(mgr.rng(2), "big") / 65535.0
    soft = 0.0
    if seconds:
        # A rekey margin at most half the lifetime, less a random tenth of the margin.
        margin = min(margin, seconds / 2)
        soft = max(seconds - margin - spread * margin * 0.1, 1.0)
    return Lifetimes(
        soft_seconds=soft,
        hard_seconds=float(seconds),
        soft_bytes=int(nbytes * (0.9 - 0.05 * spread)) if nbytes else 0,
        hard_bytes=nbytes,
        soft_packets=int(packets * (0.9 - 0.05 * spread)) if packets else 0,
        hard_packets=packets,
    )


def _install(mgr: IkeManager, entry: IkeEntry, ev: ChildSaEstablished, now: float) -> None:
    from ipsecconf.engine.ikemgr import Child  # ikemgr imports this module

    pair = mgr.config.pairs.get(ev.name)
    if pair is None:
        log.warning("child SA for unknown policy %s ignored", ev.name)
        return
    local = str(ev.local_address or entry.local)
    remote = str(ev.remote_address or entry.remote)
    proto = Protocol.AH if ev.protocol == ProtocolId.AH else Protocol.ESP
    algs = ev.algorithms
    lifetimes = _lifetimes(mgr, pair)
    common = {
        "protocol": proto,
        "mode": Mode(ev.mode.value),
        "cipher": algs.cipher,
        "integrity": algs.integrity or INTEGRITIES["none"],
        "esn": algs.esn,
        "replay_window": pair.replay_window or 64,
        "lifetimes": lifetimes,
        "reqid": pair.reqid,
    }
    try:
        in_cfg = SaConfig(
            spi=ev.spi_in,
            direction=Direction.IN,
            src=remote,
            dst=local,
            enc_key=ev.encr_key_in,
            integ_key=ev.integ_key_in,
            encap=UdpEncap(ev.remote_port, ev.local_port) if ev.udp_encap else None,
            selectors=tuple(s.reversed() for s in ev.selectors),
            **common,  # type: ignore[arg-type]
        )
        out_cfg = SaConfig(
            spi=ev.spi_out,
            direction=Direction.OUT,
            src=local,
            dst=remote,
            enc_key=ev.encr_key_out,
            integ_key=ev.integ_key_out,
            encap=UdpEncap(ev.local_port, ev.remote_port) if ev.udp_encap else None,
            selectors=ev.selectors,
            **common,  # type: ignore[arg-type]
        )
        sa_in = mgr.sad.add(in_cfg, now)
        sa_out = mgr.sad.add(out_cfg, now)
    except SaConfigError as exc:
        log.error("cannot install the SAs of policy %s: %s", pair.name, exc)
        return
    target = keylog.path()
    if target is not None:  # test-only (see keylog): the test's oracle checks the wire
        for c in (in_cfg, out_cfg):
            public: dict[str, object] = {
                "spi": c.spi, "protocol": proto.name.lower(), "mode": ev.mode.value,
                "src": c.src, "dst": c.dst,
                "cipher": algs.cipher.name if algs.cipher else "null",
                "integrity": (algs.integrity or INTEGRITIES["none"]).name,
            }  # fmt: skip
            keylog.record(target, public, c.enc_key, c.integ_key)
    key_in = sa_key(ev.spi_in, local, proto)
    if key_in in entry.larval:
        entry.larval.remove(key_in)
    peer = entry.peer_name
    mgr.book.installed(sa_in, pair.name, peer)
    mgr.book.installed(sa_out, pair.name, peer)
    child = Child(
        pair.name, proto, key_in, sa_key(ev.spi_out, remote, proto), ev.spi_in, ev.spi_out
    )
    entry.children.append(child)
    entry.pair = entry.pair or pair.name
    packed = ipaddress.ip_address(remote).packed
    if mgr.proc.failed_with(pair.name, packed):
        log.info("policy %s is permit: traffic with %s is protected again", pair.name, remote)
    for row in (f"{pair.name}.out", f"{pair.name}.in"):
        mgr.proc.negotiation_failed(row, packed, False)
    log.info(
        "SA installed for policy %s with %s: %s %s %s, SPIs in 0x%08x out 0x%08x%s",
        pair.name,
        remote,
        proto.name,
        ev.mode.value,
        algs,
        ev.spi_in,
        ev.spi_out,
        ", ESP-in-UDP" if ev.udp_encap else "",
    )
    key = (pair.name, remote)
    mgr.retry.pop(key, None)
    queued = mgr.queues.pop(key, [])
    if queued:
        mgr.resend(queued, now)
    entry.creating = False
    if ev.rekey_of is not None:
        entry.rekeying = False
        log.info("rekeyed policy %s with %s: old SPI in 0x%08x", pair.name, remote, ev.rekey_of)


def _failed(mgr: IkeManager, entry: IkeEntry, ev: ChildSaFailed | IkeSaFailed, now: float) -> None:
    what = "child SA" if isinstance(ev, ChildSaFailed) else "IKE SA"
    pair = entry.pair or (ev.name if isinstance(ev, ChildSaFailed) else None)
    log.warning(
        "%s with %s%s failed: %s (%s)%s%s",
        what,
        entry.remote,
        f" for policy {pair}" if pair else "",
        ev.reason.value,
        ev.detail,
        f", notify {ev.notify}" if ev.notify is not None else "",
        " by the peer" if ev.by_peer else "",
    )
    mgr.book.count("ike_failed")
    if pair is None:
        return
    spec = mgr.config.pairs.get(pair)
    mgr._failed_key((pair, entry.remote), now)
    if spec is not None and spec.level is Level.PERMIT:
        log.warning("policy %s is permit: traffic to %s goes in clear", pair, entry.remote)
        mgr.proc.negotiation_failed(f"{pair}.out", ipaddress.ip_address(entry.remote).packed)
        mgr.proc.negotiation_failed(f"{pair}.in", ipaddress.ip_address(entry.remote).packed)
    entry.rekeying = False  # a failed rekey leaves the old SAs in use until they expire
    entry.creating = False
    if isinstance(ev, ChildSaFailed) and entry.initiator and not entry.children:
        # One child per IKE SA: an IKE SA whose child failed has no use; delete it, so
        # that the next packet (after the backoff) negotiates afresh.
        mgr.close(entry, now)


def remove_child(mgr: IkeManager, entry: IkeEntry, child: Child, now: float) -> None:
    """Delete a child's SAs from the SAD (they stay visible as Dead for 60 s)."""
    for key in (child.key_in, child.key_out):
        with contextlib.suppress(SaConfigError):  # already gone (deleted by the peer)
            mgr.sad.delete(key[0], str(ipaddress.ip_address(key[1])), Protocol(key[2]), now)
    mgr.book.set_state([child.key_in, child.key_out], "D")
    if child in entry.children:
        entry.children.remove(child)


def rekey_ike(mgr: IkeManager, entry: IkeEntry, now: float) -> None:
    """Rekey an IKE SA whose lifetime is running out, in place (RFC 7296 2.18)."""
    if entry.rekeying or mgr.closing or not entry.established:
        return
    try:
        entry.sa.rekey_ike(now)
    except LocalProtocolError as exc:
        log.warning("cannot rekey the IKE SA with %s: %s", entry.remote, exc)
        return
    entry.rekeying = True
    log.info("IKE SA with %s due for a rekey: CREATE_CHILD_SA", entry.remote)
    mgr.flush(entry, now)


def sa_expired(mgr: IkeManager, event: SaEvent, now: float) -> None:
    """A soft expiry rekeys the child in place; a hard one is logged."""
    key = sa_key(event.spi, event.dst, event.protocol)
    for entry in list(mgr.entries.values()):
        for child in entry.children:
            if key not in (child.key_in, child.key_out):
                continue
            if event.kind is SaEventKind.HARD_EXPIRE:
                log.info(
                    "SA 0x%08x of policy %s reached its hard %s lifetime",
                    event.spi,
                    child.pair,
                    event.limit.value,
                )
                mgr.book.set_state([key], "D")
                return
            mgr.book.set_state([child.key_in, child.key_out], "d")
            if entry.rekeying or mgr.closing:
                return
            try:
                entry.sa.rekey_child(now, child.spi_in)
            except LocalProtocolError as exc:  # e.g. the peer is rekeying it already
                log.info("SA 0x%08x of policy %s not rekeyed: %s", event.spi, child.pair, exc)
                return
            entry.rekeying = True
            log.info(
                "SA 0x%08x of policy %s reached its soft %s lifetime: rekeying",
                event.spi,
                child.pair,
                event.limit.value,
            )
            mgr.flush(entry, now)
            return


def liveness(mgr: IkeManager, entry: IkeEntry, now: float) -> None:
    """Every ``liveness_interval``: traffic received on the IKE SA's child SAs since the
    last check proves the peer alive; otherwise an empty INFORMATIONAL asks (RFC 7296
    2.4), and a peer that never answers fails the IKE SA."""
    entry.next_liveness = now + entry.liveness
    seen = 0
    for child in entry.children:
        sa = mgr.sad.get(child.key_in)
        if sa is not None and not isinstance(sa, LarvalSa):
            seen += sa.counters.packets
    if seen != entry.seen_packets:
        entry.seen_packets = seen
        return
    try:
        entry.sa.check_liveness(now)
    except LocalProtocolError:
        return
    mgr.flush(entry, now)


def retry_permit(mgr: IkeManager, now: float) -> None:
    """Renegotiate permit flows that fell back to clear once their backoff is over: their
    packets go in clear and ask for nothing, so the retry is the engine's."""
    if mgr.closing:
        return
    for key, (due, _backoff) in list(mgr.retry.items()):
        pair = mgr.config.pairs.get(key[0])
        trigger = mgr.triggers.get(key)
        if due > now or pair is None or pair.level is not Level.PERMIT or trigger is None:
            continue
        if mgr._pending(key) or mgr._carried(key):
            continue
        log.info("policy %s is permit: negotiating again with %s", pair.name, key[1])
        mgr.initiate(pair, key[1], now, trigger=trigger)
