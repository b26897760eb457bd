"""The running engine, sans-IO: the dataplane processor, the IKE manager, the live
configuration and the store, glued together.

The asyncio daemon (:mod:`ipsecconf.io.daemon`) feeds it clear packets read from the TUN
device (:meth:`Engine.outbound`), packets from the wire (:meth:`Engine.inbound`,
:meth:`Engine.udp_esp`), IKE datagrams (:meth:`Engine.ike_datagram`) and time
(:meth:`Engine.tick`); the engine answers through its ports.  Configuration changes
(:meth:`Engine.reconfigure`) build the new live tables first, then change the host's
routes and firewall, then the store, and only then swap the tables in memory, undoing the
host part when the store refuses: the store and the live tables move together or not at
all.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from ipsecconf.engine import livecfg, pmtu
from ipsecconf.engine.ikemgr import IkeManager
from ipsecconf.engine.livecfg import LiveConfig
from ipsecconf.engine.manual import ManualSas
from ipsecconf.engine.ports import HostNetwork, Tun, Wire
from ipsecconf.engine.records import SaBook
from ipsecconf.esp import ip
from ipsecconf.esp.errors import DropReason
from ipsecconf.esp.packet import push_udp_header
from ipsecconf.esp.processor import (
    Acquire,
    Deliver,
    Drop,
    IkeDatagram,
    Processor,
    Send,
    UnknownSpi,
)
from ipsecconf.esp.sad import SaTable
from ipsecconf.esp.spd import PolicyTable
from ipsecconf.state.store import Store

log = logging.getLogger("ipsecconf.engine")
T = TypeVar("T")

SYNC_INTERVAL = 1.0
DROP_LOG_INTERVAL = 10.0
TICK = 0.25


class Engine:
    """One node's IKE and ESP/AH engine over its store."""

    def __init__(
        self,
        store: Store,
        wire: Wire,
        tun: Tun,
        host: HostNetwork,
        rng: Callable[[int], bytes],
        wall: Callable[[], float],
    ) -> None:
        self.store = store
        self.wire = wire
        self.tun = tun
        self.host = host
        self.sad = SaTable(rng)
        self.proc = Processor(self.sad, PolicyTable())
        self.book = SaBook(store, wall)
        self.ike = IkeManager(self.proc, wire, self.book, rng, self._send_queued)
        self.manual = ManualSas(self.sad, self.book)
        self.config = LiveConfig([], self.proc.spd.default_action, {}, {}, {})
        self._reqids: dict[str, int] = {}
        self._next_sync = 0.0
        self._drop_logged: dict[DropReason, tuple[float, int]] = {}
        self._send_errors: tuple[float, int] = (-DROP_LOG_INTERVAL, 0)
        self._udp_headers: dict[tuple[str, str], tuple[ip.OuterHeader, bytes, bytes]] = {}
        """IP header templates for ESP-in-UDP payloads, by (source, destination)."""
        self.pmtu = pmtu.PathMtu()
        self._fw_drops = 0

    # -- configuration -------------------------------------------------------------
    def reqid(self, pair: str) -> int:
        """A stable reqid per policy pair (for this run)."""
        rid = self._reqids.get(pair)
        if rid is None:
            rid = self._reqids[pair] = len(self._reqids) + 1
        return rid

    def start(self, now: float) -> None:
        """Load the SPD from the store, set up the host, negotiate immediate pairs."""
        stale = self.book.forget_previous()
        if stale:
            log.info("%d SAs of an earlier run marked Dead; they are renegotiated", stale)
        config = livecfg.build(livecfg.from_store(self.store), self.reqid)
        self.host.apply(config.host_config())
        self._swap(config, now)
        log.info(
            "SPD loaded: %d entries, %d protected pairs, default %s",
            len(config.policies),
            len(config.pairs),
            config.default_action.value,
        )
        self.ike.ensure_immediate(now)

    def _swap(self, config: LiveConfig, now: float) -> None:
        spd = PolicyTable(config.policies, default_action=config.default_action)
        self.proc.spd = spd
        self.config = config
        self.ike.config = config
        self.manual.sync(config.manual, now)

    def reconfigure(self, write: Callable[[Callable[[], None]], T], now: float) -> tuple[T, int]:
        """Change the configuration as one step.  ``write`` changes the store inside one
        transaction and calls the ``stage`` function it is given once every change is
        written but not committed: ``stage`` builds the new live tables from the store
        (which validates them) and sets up the host's routes and firewall, raising to
        make ``write`` roll back.  When the store refuses, the host setup is undone.
        Returns ``write``'s result and how many IKE SAs were torn down (those of changed
        or removed pairs, renegotiated on demand or at once)."""
        old = self.config
        staged: list[LiveConfig] = []

        def stage() -> None:
            new = livecfg.build(livecfg.from_store(self.store), self.reqid)
            self.host.apply(new.host_config())
            staged.append(new)

        try:
            result = write(stage)
            if not staged:
                stage()
        except BaseException:
            if staged:
                try:
                    self.host.apply(old.host_config())
                except Exception as exc:  # keep the original error; say what is left
                    log.error("could not restore routes/firewall after a failed change: %s", exc)
            raise
        new = staged[-1]
        changed = livecfg.changed_pairs(old, new)
        self._swap(new, now)
        torn = self.ike.teardown(changed, now)
        if changed:
            log.info(
                "configuration changed: policies %s renegotiate (%d IKE SAs deleted)",
                ", ".join(sorted(changed)),
                torn,
            )
        self.ike.ensure_immediate(now)
        return result, torn

    # -- packets -------------------------------------------------------------------
    def outbound(self, packets: Sequence[bytes], now: float) -> None:
        """Clear packets read from the TUN device."""
        sends: list[bytes] = []
        answers: list[bytes] = []
        check = self.pmtu.active()
        for p, r in zip(packets, self.proc.outbound_batch(packets, now), strict=True):
            if type(r) is Send:
                if check and r.packet is not p and self._too_big(p, r.packet, answers, now):
                    continue
                sends.append(r.packet)
            elif type(r) is Acquire:
                self.ike.acquire(r, now)
            elif type(r) is Drop:
                self._dropped(r, now)
        if sends and (failed := self.wire.send_packets(sends)):
            self._send_failed(failed, now, sends)
        if answers:
            self.tun.write_packets(answers)

    def _too_big(self, inner: bytes, outer: bytes, answers: list[bytes], now: float) -> bool:
        """Whether ``outer`` exceeds the learned path MTU to its destination; if so the
        clear packet's sender gets an ICMP "too big" (appended to ``answers``) and the
        packet is not sent.  A clear IPv4 packet without DF is sent anyway."""
        dst = outer[16:20] if outer[0] >> 4 == 4 else outer[24:40]
        limit = self.pmtu.get(ip_text(dst), now)
        if limit is None or len(outer) <= limit:
            return False
        icmp = pmtu.too_big(inner, pmtu.inner_mtu(limit, len(inner), len(outer)))
        if icmp is None:
            return False
        answers.append(icmp)
        self.proc.drops[DropReason.TOO_BIG] += 1
        self._dropped(Drop(DropReason.TOO_BIG, f"path MTU {limit}"), now)
        return True

    def icmp(self, packet: bytes, version: int, now: float) -> None:
        """An ICMP packet (IPv4, with its header) or ICMPv6 message (without) received:
        a "too big" about one of our packets teaches the path MTU to that peer."""
        learn = self.pmtu.learn_icmp4 if version == 4 else self.pmtu.learn_icmp6
        learned = learn(packet, now)
        if learned is not None:
            log.info('path MTU to %s is %d: larger protected packets get "too big"', *learned)

    def _send_failed(self, count: int, now: float, sent: Sequence[bytes] = ()) -> None:
        # A packet bigger than our own link (EMSGSIZE): ask the kernel for the MTU of the
        # path to each destination of the batch, so the next ones get "too big" instead.
        for dst in {p[16:20] if p[0] >> 4 == 4 else p[24:40] for p in sent}:
            mtu = self.wire.path_mtu(ip_text(dst))
            if mtu is not None and self.pmtu.learn(ip_text(dst), mtu, now):
                log.info("path MTU to %s is %d (the link's)", ip_text(dst), mtu)
        last, pending = self._send_errors
        pending += count
        if now - last >= DROP_LOG_INTERVAL:
            log.info("dropped %d packet(s): could not send (no route, or too big)", pending)
            self._send_errors = (now, 0)
        else:
            self._send_errors = (last, pending)
        self.book.count("esp_errors", count)

    def _send_queued(self, packets: list[bytes], now: float) -> None:
        sends: list[bytes] = []
        answers: list[bytes] = []
        for p, r in zip(packets, self.proc.outbound_batch(packets, now), strict=True):
            if type(r) is Send and not (
                r.packet is not p and self._too_big(p, r.packet, answers, now)
            ):
                sends.append(r.packet)
        if answers:
            self.tun.write_packets(answers)
        if sends and (failed := self.wire.send_packets(sends)):
            self._send_failed(failed, now, sends)

    def inbound(self, packets: Sequence[bytes], now: float) -> None:
        """IP packets from the wire (ESP or AH, or ESP-in-UDP rebuilt by :meth:`udp_esp`)."""
        clear: list[bytes] = []
        for r in self.proc.inbound_batch(packets, now):
            if type(r) is Deliver:
                clear.append(r.packet)
            elif isinstance(r, Drop):
                self._dropped(r, now)
            elif type(r) is IkeDatagram:
                src = ip_text(r.src)
                self.ike.datagram(r.payload, (src, r.sport), ip_text(r.dst), 4500, now)
        if clear:
            self.tun.write_packets(clear)

    def udp_esp(
        self,
        receives: Sequence[tuple[Sequence[bytes], tuple[str, int], str]],
        local_port: int,
        now: float,
    ) -> None:
        """ESP-in-UDP payloads from a port-4500 socket, as (payloads, remote, local address)
        per receive.  Tunnel-mode SAs open the payload as it is; for the rest the processor
        needs the IP packet, so they get their IP and UDP headers back.  What a burst of
        receives delivers goes to the TUN in one call, to be merged across receives."""
        clear: list[bytes] = []
        packets = []
        headers = self._udp_headers
        batch = self.proc.inbound_esp_in_udp_batch
        for payloads, (src, sport), local in receives:
            known = headers.get((src, local))
            if known is None:
                if len(headers) > 1024:
                    headers.clear()
                s_bin, d_bin = ip_packed(src), ip_packed(local)
                header = ip.OuterHeader(s_bin, d_bin, ip.PROTO_UDP)
                known = headers[(src, local)] = (header, s_bin, d_bin)
            outer, s_bin, d_bin = known
            opened, rest = batch(payloads, outer.version, s_bin, d_bin, now)
            clear += opened
            for payload, r in rest:
                if r is None:
                    udp = push_udp_header(sport, local_port, len(payload))
                    packets.append(outer.build(8 + len(payload), 0, 0, False) + udp + payload)
                elif isinstance(r, Drop):
                    self._dropped(r, now)
        if clear:
            self.tun.write_packets(clear)
        if packets:
            self.inbound(packets, now)

    def ike_datagram(
        self, data: bytes, remote: tuple[str, int], local: str, local_port: int, now: float
    ) -> None:
        """A datagram from the IKE sockets (500, or 4500 with the non-ESP marker)."""
        self.ike.datagram(data, remote, local, local_port, now)

    def _dropped(self, drop: Drop, now: float) -> None:
        if isinstance(drop, UnknownSpi) and drop.sender:
            self.ike.invalid_spi(drop.spi, drop.protocol, ip_text(drop.sender), now)
        # One line per reason, then at most one summary line per reason every 10 s.
        reason = drop.reason
        if reason is DropReason.NAT_KEEPALIVE:
            return
        last, count = self._drop_logged.get(reason, (-DROP_LOG_INTERVAL, 0))
        count += 1
        if now - last >= DROP_LOG_INTERVAL:
            log.info("dropped %d packet(s): %s%s", count, reason.value, _detail(drop))
            self._drop_logged[reason] = (now, 0)
        else:
            self._drop_logged[reason] = (last, count)

    # -- time ----------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Timers, lifetimes, retries, and about once a second the store's SAD/counters."""
        self.sad.expire(now)
        self.ike.tick(now)
        if now >= self._next_sync:
            self._next_sync = now + SYNC_INTERVAL
            self.sync()

    def sync(self) -> None:
        """Copy SA states and counters into the store now."""
        self.book.sync(self.sad, self.proc.drops)

    def sync_firewall(self) -> None:
        """Add the clear packets the restrict rules dropped since the last call to the
        ``policy_drops`` counter (read from the firewall only when stats are asked for:
        it is a command, not a memory read), then :meth:`sync`."""
        try:
            total = sum(self.host.drop_counts().values())
        except Exception as exc:  # the counters are informative: never fail a request
            log.warning("cannot read the firewall's drop counters: %s", exc)
            total = self._fw_drops
        if total > self._fw_drops:
            self.book.count("policy_drops", total - self._fw_drops)
        self._fw_drops = total
        self.sync()

    def next_wakeup(self, now: float) -> float:
        """When :meth:`tick` must run next."""
        timer = self.ike.next_timer()
        due = now + TICK
        return min(due, timer) if timer is not None else due

    def zero_counters(self) -> None:
        """``ipsec stats -z``."""
        self.sync()
        self.book.zero()

    # -- shutdown ------------------------------------------------------------------
    def begin_shutdown(self, now: float) -> None:
        """Delete every IKE SA with its peer (the daemon then waits briefly for answers)."""
        log.info("shutting down: deleting %d IKE SAs", len(self.ike.entries))
        self.ike.close_all(now)

    def idle(self) -> bool:
        """True once no IKE SA is left (every Delete answered or given up)."""
        return not self.ike.entries

    def finish(self) -> None:
        """Last store update: every negotiated SA is Dead (renegotiated after a restart)."""
        for entry in list(self.ike.entries.values()):
            self.ike.forget(entry, 0.0)
        self.sync()
        self.book.forget_previous()


def ip_text(packed: bytes) -> str:
    """A packed address as text."""
    return str(ipaddress.ip_address(packed))


def ip_packed(text: str) -> bytes:
    """A textual address packed."""
    return ipaddress.ip_address(text).packed


def _detail(drop: Drop) -> str:
    return f" ({drop.detail})" if drop.detail else ""
