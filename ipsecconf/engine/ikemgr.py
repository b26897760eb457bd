"""IKE SAs of the running engine: acquire, responders, events into the dataplane, rekey,
liveness, retries (strongSwan's trap manager and ike_sa_manager, much reduced).

One IKE SA carries one child SA (one policy pair), negotiated in IKE_AUTH; a second pair
with the same peer gets an IKE SA of its own.  Rekeys happen in place with CREATE_CHILD_SA
(RFC 7296 2.8 for the child at its soft lifetime, 2.18 for the IKE SA at its own), make
before break: the new SAs are installed before the old ones are deleted.  INITIAL_CONTACT
goes only in the first IKE_AUTH with each peer after a start; receiving it drops older SAs
with that peer at once.

Outbound packets that find no SA are queued (32 per pair and peer) while the negotiation
runs and sent once the SA is installed; the rest are dropped and counted.  Keys travel
from the IKE event straight into :class:`~ipsecconf.esp.saconfig.SaConfig` and are never
logged.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ipsecconf.engine import certauth, ikeevents
from ipsecconf.engine.livecfg import LiveConfig, PairSpec, PeerSpec
from ipsecconf.engine.ports import Wire
from ipsecconf.engine.records import SaBook
from ipsecconf.esp.errors import SaConfigError
from ipsecconf.esp.processor import Acquire, Processor
from ipsecconf.esp.sa import Protocol
from ipsecconf.esp.sad import LarvalSa, SaKey, sa_key
from ipsecconf.ike.config import ChildConfig, IkeConfig, RetransmitPolicy, TriggerPacket
from ipsecconf.ike.context import IkeState
from ipsecconf.ike.errors import LocalProtocolError
from ipsecconf.ike.sa import IkeSa, route
from ipsecconf.model.proposals import default_ike

log = logging.getLogger("ipsecconf.engine")

QUEUE_PER_FLOW = 32
INVALID_SPI_INTERVAL = 1.0
"""Seconds between two INVALID_SPI notifications to one peer."""
RETRY_FIRST = 0.5
RETRY_MAX = 30.0
Resend = Callable[[list[bytes], float], None]


@dataclass(eq=False, slots=True)
class Child:
    """An installed child SA pair."""

    pair: str
    proto: Protocol
    key_in: SaKey
    key_out: SaKey
    spi_in: int
    spi_out: int


@dataclass(eq=False, slots=True)
class IkeEntry:
    """One IKE SA and what the engine knows about it."""

    sa: IkeSa
    remote: str
    local: str
    pair: str | None
    initiator: bool
    peer_name: str
    liveness: float
    larval: list[SaKey] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    rekeying: bool = False
    """A CREATE_CHILD_SA rekey (of a child or of the IKE SA) we started is running."""
    creating: bool = False
    """A CREATE_CHILD_SA for a new child we started is running."""
    established: bool = False
    next_liveness: float = 0.0
    seen_packets: int = -1
    rekey_at: float = float("inf")
    """When the IKE SA's own lifetime asks for its rekey (initiator side)."""
    ike_lifetime: tuple[float, float] = (0.0, 0.0)

    @property
    def key(self) -> tuple[str, str] | None:
        return (self.pair, self.remote) if self.pair else None


class IkeManager:
    """Every IKE SA of the engine."""

    def __init__(
        self,
        processor: Processor,
        wire: Wire,
        book: SaBook,
        rng: Callable[[int], bytes],
        resend: Resend,
    ) -> None:
        self.proc = processor
        self.sad = processor.sad
        self.wire = wire
        self.book = book
        self.rng = rng
        self.resend = resend
        self.config = LiveConfig([], processor.spd.default_action, {}, {}, {})
        self.entries: dict[bytes, IkeEntry] = {}
        self.queues: dict[tuple[str, str], list[bytes]] = {}
        self.retry: dict[tuple[str, str], tuple[float, float]] = {}
        """(pair, remote) -> (next attempt, current backoff)."""
        self.contacted: set[str] = set()
        self.triggers: dict[tuple[str, str], TriggerPacket] = {}  # last acquire's, for retries
        self.retransmit = RetransmitPolicy()
        self.queue_drops = 0
        self._invalid_spi_sent: dict[str, float] = {}
        self.closing = False
        self.now = 0.0

    # -- starting negotiations ---------------------------------------------------------
    def acquire(self, acq: Acquire, now: float) -> None:
        """An outbound packet needs an SA: queue it and negotiate unless one runs."""
        self.now = now
        pair = self._pair_by_reqid(acq.reqid)
        if pair is None:
            return
        remote = pair.remote or str(ipaddress.ip_address(acq.dst))
        key = (pair.name, remote)
        queue = self.queues.setdefault(key, [])
        if len(queue) < QUEUE_PER_FLOW:
            queue.append(acq.packet)
        else:
            self.queue_drops += 1
            self.book.count("policy_drops")
        if self._pending(key) or self.closing:
            return
        due = self.retry.get(key)
        if due is not None and due[0] > now:
            return
        trigger = TriggerPacket(
            ipaddress.ip_address(acq.src),
            ipaddress.ip_address(acq.dst),
            acq.proto,
            max(acq.sport, 0),
            max(acq.dport, 0),
        )
        if len(self.triggers) > 4096:
            self.triggers.clear()
        self.triggers[key] = trigger
        idle = self._idle(key)
        if idle is None:
            self.initiate(pair, remote, now, trigger=trigger)
            return
        # The peer deleted the child (or told us its SPI is gone) and kept the IKE SA: a
        # new child over it (CREATE_CHILD_SA, RFC 7296 1.3.1), no new IKE SA.
        try:
            idle.sa.create_child(now, child=pair.name, trigger=trigger)
        except LocalProtocolError as exc:
            log.warning("cannot negotiate policy %s with %s: %s", pair.name, remote, exc)
            self.close(idle, now)
            return
        idle.creating = True
        log.info("CREATE_CHILD_SA to %s for policy %s", remote, pair.name)
        self.flush(idle, now)

    def _pair_by_reqid(self, reqid: int) -> PairSpec | None:
        for pair in self.config.pairs.values():
            if pair.reqid == reqid:
                return pair
        return None

    def _pending(self, key: tuple[str, str]) -> bool:
        """A negotiation for the pair runs: an IKE SA being set up, or a new child."""
        return any(
            e.key == key and not e.children and (not e.established or e.creating)
            for e in self.entries.values()
        )

    def _idle(self, key: tuple[str, str]) -> IkeEntry | None:
        """Our established IKE SA for the pair that carries no child any more."""
        for e in self.entries.values():
            if e.key == key and e.established and not e.children and e.initiator:
                return e
        return None

    def _carried(self, key: tuple[str, str]) -> bool:
        return any(
            e.key == key or any(c.pair == key[0] for c in e.children)
            for e in self.entries.values()
            if e.remote == key[1]
        )

    def initiate(
        self,
        pair: PairSpec,
        remote: str,
        now: float,
        *,
        trigger: TriggerPacket | None = None,
    ) -> IkeEntry | None:
        """Start an IKE SA with ``remote`` for ``pair``."""
        cfg = self.config
        peer = cfg.peers.get(pair.peer) if pair.peer else cfg.peer_by_address(remote)
        source = str(trigger.source) if trigger else None
        local = pair.local_for(peer, source) or self.wire.source_for(remote)
        if local is None:
            log.warning("no route to peer %s for policy %s", remote, pair.name)
            self._failed_key((pair.name, remote), now)
            return None
        try:
            config = self._ike_config(
                peer,
                local,
                remote,
                (pair.child,),
                certauth.signing(self.config, peer),
                force_encap=pair.udp_encap or bool(peer and peer.udp_encap),
            )
            entry = self._new_entry(config, True, remote, local, pair.name, peer)
            entry.sa.connect(now, trigger=trigger)
        except LocalProtocolError as exc:
            log.warning("cannot negotiate policy %s with %s: %s", pair.name, remote, exc)
            self._failed_key((pair.name, remote), now)
            return None
        self.contacted.add(remote)
        self.entries[entry.sa.spi_i] = entry
        self.book.count("ike_started")
        log.info("IKE_SA_INIT to %s for policy %s", remote, pair.name)
        self.flush(entry, now)
        return entry

    def _new_entry(
        self,
        config: IkeConfig,
        initiator: bool,
        remote: str,
        local: str,
        pair: str | None,
        peer: PeerSpec | None,
    ) -> IkeEntry:
        holder: list[IkeEntry] = []
        proto = Protocol.AH if all(c.protocol == 2 for c in config.children) else Protocol.ESP

        def allocate() -> int:
            entry = holder[0]
            for _ in range(64):
                spi = int.from_bytes(self.rng(4), "big")
                if spi < 256:
                    continue
                try:
                    larval = self.sad.reserve(spi, local, proto, self.now)
                except SaConfigError:
                    continue
                entry.larval.append(sa_key(spi, local, proto))
                self.book.larval(larval, remote, entry.pair or "", entry.peer_name)
                return spi
            raise LocalProtocolError("no free SPI")

        sa = IkeSa(config, initiator=initiator, rng=self.rng, spi_allocator=allocate)
        name, liveness = (peer.name, peer.liveness) if peer else (remote, 30.0)
        entry = IkeEntry(sa, remote, local, pair, initiator, name, liveness)
        if peer is not None and peer.ike_lifetime:
            entry.ike_lifetime = (peer.ike_lifetime, peer.ike_rekey_margin)
        holder.append(entry)
        return entry

    def ensure_immediate(self, now: float) -> None:
        """Negotiate every ``start: immediate`` pair that has no SA and no negotiation."""
        if self.closing:
            return
        for pair in self.config.pairs.values():
            if not pair.start_immediate or pair.remote is None:
                continue
            key = (pair.name, pair.remote)
            due = self.retry.get(key)
            if self._carried(key) or (due is not None and due[0] > now):
                continue
            self.initiate(pair, pair.remote, now)

    # -- incoming IKE ----------------------------------------------------------------
    def datagram(
        self, data: bytes, remote: tuple[str, int], local: str, local_port: int, now: float
    ) -> None:
        """One IKE UDP payload (with the non-ESP marker when it came on 4500)."""
        self.now = now
        info = route(data)
        if info is None:
            log.debug("not an IKE message from %s", remote[0])
            return
        entry = self.entries.get(info.spi_i)
        if entry is None or entry.remote != remote[0]:
            if not info.is_new_sa or self.closing:
                log.debug("IKE message from %s for an unknown IKE SA", remote[0])
                return
            entry = self._responder(remote[0], local)
            if entry is None:
                return
            self.entries[info.spi_i] = entry
        entry.sa.receive_datagram(data, remote, now)
        self.flush(entry, now)

    def _ike_config(
        self,
        peer: PeerSpec | None,
        local: str,
        remote: str,
        children: tuple[ChildConfig, ...],
        signing: dict[str, Any],
        force_encap: bool = False,
    ) -> IkeConfig:
        """One IKE SA's configuration, either role; a peerless (seed host) policy uses
        the psk table by address and the default proposals."""
        return IkeConfig(
            local_address=ipaddress.ip_address(local),
            remote_address=ipaddress.ip_address(remote),
            psk=self.config.psk_lookup(peer),
            remote_port=peer.port if peer else 500,
            local_id=peer.local_id if peer else None,
            remote_id=peer.remote_id if peer else None,
            proposals=peer.ike_proposals if peer else tuple(default_ike()),
            children=children,
            force_encap=force_encap,
            initial_contact=remote not in self.contacted,
            retransmit=peer.retransmit if peer and peer.retransmit else self.retransmit,
            **signing,
        )

    def _responder(self, remote: str, local: str) -> IkeEntry | None:
        cfg = self.config
        pairs = cfg.pairs_for_remote(remote)
        peer = cfg.peer_by_address(remote)
        signing = certauth.responder_signing(self.config, peer, remote)
        if signing is None:
            return None
        if not pairs or (cfg.psk_for(remote, peer) is None and not signing):
            log.warning("IKE_SA_INIT from %s refused: no policy or key for this peer", remote)
            return None
        config = self._ike_config(peer, local, remote, tuple(p.child for p in pairs), signing)
        self.contacted.add(remote)
        log.info("IKE_SA_INIT from %s", remote)
        return self._new_entry(config, False, remote, local, None, peer)

    # -- output and events -------------------------------------------------------------
    def flush(self, entry: IkeEntry, now: float) -> None:
        """Send what the SA produced and act on its events."""
        for _ in range(8):  # events may make more datagrams (bounded)
            for d in entry.sa.datagrams_to_send(now):
                self.wire.send_ike(d.data, d.local_port, d.remote)
            event = entry.sa.next_event()
            if event is None:
                break
            while event is not None:
                ikeevents.handle(self, entry, event, now)
                event = entry.sa.next_event()
        if entry.sa.state in (IkeState.DELETED, IkeState.FAILED):
            self.forget(entry, now)

    def invalid_spi(self, spi: int, protocol: int, peer: str, now: float) -> None:
        """ESP (50) or AH (51) from ``peer`` with an SPI we hold no SA for: say so over an
        established IKE SA with it (RFC 7296 2.21.4), at most once a second per peer, so
        that a peer still sending on SAs we lost can delete them and negotiate again."""
        if now - self._invalid_spi_sent.get(peer, -INVALID_SPI_INTERVAL) < INVALID_SPI_INTERVAL:
            return
        for entry in self.entries.values():
            if entry.remote == peer and entry.sa.state is IkeState.ESTABLISHED:
                if len(self._invalid_spi_sent) > 1024:
                    self._invalid_spi_sent.clear()
                self._invalid_spi_sent[peer] = now
                stale = any(c.spi_in == spi for c in entry.children)
                try:
                    if stale:  # the IKE SA still has the pair the dataplane lost: delete it
                        entry.sa.delete_child(now, spi)
                    else:
                        entry.sa.report_invalid_spi(now, spi, 2 if protocol == 51 else 3)
                except LocalProtocolError:
                    return
                what = "Delete of its pair" if stale else "INVALID_SPI"
                log.info("ESP/AH for unknown SPI 0x%08x from %s: %s sent", spi, peer, what)
                self.flush(entry, now)
                return

    def forget(self, entry: IkeEntry, now: float) -> None:
        """Remove an IKE SA locally: its child SAs die, its reservations are released."""
        for child in list(entry.children):
            ikeevents.remove_child(self, entry, child, now)
        for key in entry.larval:
            if not isinstance(self.sad.get(key), LarvalSa):
                continue
            self.sad.delete(key[0], str(ipaddress.ip_address(key[1])), Protocol(key[2]), now)
            self.book.release(key)
        entry.larval.clear()
        for spi, e in list(self.entries.items()):
            if e is entry:
                del self.entries[spi]

    def _failed_key(self, key: tuple[str, str], now: float) -> None:
        _, backoff = self.retry.get(key, (0.0, RETRY_FIRST / 2))
        backoff = min(backoff * 2, RETRY_MAX)
        self.retry[key] = (now + backoff, backoff)
        dropped = self.queues.pop(key, [])
        if dropped:
            self.queue_drops += len(dropped)
            self.book.count("policy_drops", len(dropped))

    # -- time ------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Timers, rekeys, liveness checks and retries due at ``now``."""
        self.now = now
        for entry in list(self.entries.values()):
            timer = entry.sa.get_timer()
            if timer is not None and timer <= now:
                entry.sa.handle_timer(now)
                self.flush(entry, now)
            if entry.established and entry.liveness > 0 and now >= entry.next_liveness:
                ikeevents.liveness(self, entry, now)
            if now >= entry.rekey_at:
                entry.rekey_at = float("inf")
                ikeevents.rekey_ike(self, entry, now)
        for event in self.sad.drain_events():
            ikeevents.sa_expired(self, event, now)
        self.ensure_immediate(now)
        ikeevents.retry_permit(self, now)

    def next_timer(self) -> float | None:
        """The earliest IKE timer."""
        timers = [t for e in self.entries.values() if (t := e.sa.get_timer()) is not None]
        return min(timers, default=None)

    # -- teardown ----------------------------------------------------------------------
    def teardown(self, pairs: set[str], now: float) -> int:
        """Delete the IKE SAs carrying these pairs (with Delete to the peer); returns how
        many.  Queued packets of those pairs are dropped."""
        n = 0
        for entry in list(self.entries.values()):
            names = {c.pair for c in entry.children} | ({entry.pair} if entry.pair else set())
            if names & pairs:
                self.close(entry, now)
                n += 1
        for key in [k for k in self.queues if k[0] in pairs]:
            del self.queues[key]
        for key in [k for k in self.retry if k[0] in pairs]:
            del self.retry[key]  # a failure under the old configuration says nothing now
        return n

    def close(self, entry: IkeEntry, now: float) -> None:
        """Delete one IKE SA: an INFORMATIONAL Delete when established, else locally."""
        if entry.sa.state is IkeState.ESTABLISHED:
            for child in list(entry.children):
                ikeevents.remove_child(self, entry, child, now)
            entry.sa.close(now)
            self.flush(entry, now)
        else:
            self.forget(entry, now)

    def close_all(self, now: float) -> None:
        """Shutdown: delete every IKE SA with its peer."""
        self.closing = True
        for entry in list(self.entries.values()):
            self.close(entry, now)
