"""``ipsecconf engine run``: the asyncio daemon around :class:`~ipsecconf.engine.runtime.Engine`.

Start: take the pid lock file (``<state>.engine.pid``, an flock the kernel releases even
on SIGKILL), remove what a killed predecessor left on the host (rules, routes, nftables
table by the engine's own names), open the TUN device and the marked sockets, load the
SPD, start the control socket.  Run: readers on the TUN, raw ESP/AH and UDP 500/4500
sockets feed the engine in bursts; a timer task ticks it.  Stop (SIGTERM/SIGINT): every
IKE SA is deleted with its peer (up to :data:`SHUTDOWN_WAIT` seconds for the answers),
the SAs are recorded Dead, and rules, routes, nftables table, TUN and socket are removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import IO

from ipsecconf.engine.control import Control
from ipsecconf.engine.runtime import Engine
from ipsecconf.errors import IpsecconfError, StateError
from ipsecconf.ike.config import RetransmitPolicy
from ipsecconf.io.control import ControlServer, socket_path
from ipsecconf.io.hostnet import HostNet, Names
from ipsecconf.io.sockets import Sockets
from ipsecconf.io.tun import TunDevice
from ipsecconf.state.store import Store

log = logging.getLogger("ipsecconf.engine")

SHUTDOWN_WAIT = 3.0


class EngineStartError(IpsecconfError):
    """The engine cannot start (no TUN device, ports in use, no privileges)."""


class PidLock:
    """``<state>.engine.pid``: held (flock) while the engine runs, holding its pid."""

    def __init__(self, state_path: str) -> None:
        self.path = state_path + ".engine.pid"
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        try:
            os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(f"cannot create {self.path}: {exc.strerror}") from None
        fh = os.fdopen(fd, "r+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise StateError(f"an engine already runs on this state (pid {holder})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self._fh.close()
            self._fh = None


class Daemon:
    """One engine process."""

    def __init__(
        self,
        state_path: str,
        names: Names,
        kek: bytes | None = None,
        retransmit: RetransmitPolicy | None = None,
    ) -> None:
        self.state_path = state_path
        self.retransmit = retransmit
        self.names = names
        self.kek = kek
        self.stopping = asyncio.Event()

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit status."""
        lock = PidLock(self.state_path)
        lock.acquire()
        try:
            return asyncio.run(self._main())
        finally:
            lock.release()

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        clock = time.monotonic
        store = Store.open(self.state_path, kek=self.kek)
        host = HostNet(self.names)
        left = host.cleanup()
        if left:
            log.info("removed what an earlier engine left: %s", "; ".join(left))
        try:
            tun = TunDevice.open(self.names.tun, tso=self.names.tso)
        except OSError as exc:
            store.close()
            raise EngineStartError(f"cannot create TUN device {self.names.tun}: {exc}") from None
        try:
            socks = Sockets(self.names.mark)
        except OSError as exc:
            tun.close()
            store.close()
            raise EngineStartError(f"cannot open the IKE/ESP sockets: {exc}") from None
        engine = Engine(store, socks, tun, host, os.urandom, time.time)
        if self.retransmit is not None:
            engine.ike.retransmit = self.retransmit
        control = ControlServer(
            socket_path(self.state_path), Control(engine, clock, self.state_path).handle
        )
        try:
            host.setup()
            engine.start(clock())
            await control.start()
            self._readers(loop, engine, tun, socks, clock)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stopping.set)
            log.info(
                "engine running: pid %d, TUN %s (MTU %d), control socket %s",
                os.getpid(),
                tun.name,
                self.names.mtu,
                control.path,
            )
            await self._ticks(engine, clock)
            await self._shutdown(engine, clock)
            log.info(
                "dataplane offloads: %d merged TUN writes, %d TCP super-packets read, "
                "%d ESP-in-UDP runs sent with UDP_SEGMENT",
                tun.merged_writes,
                tun.super_packets,
                socks.batches,
            )
        finally:
            self._remove_readers(loop, tun, socks)
            await control.stop()
            host.teardown()
            tun.close()
            socks.close()
            store.close()
        log.info("engine stopped")
        return 0

    def _readers(
        self,
        loop: asyncio.AbstractEventLoop,
        engine: Engine,
        tun: TunDevice,
        socks: Sockets,
        clock: Callable[[], float],
    ) -> None:
        def guarded(fn: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                try:
                    fn()
                except Exception:  # one bad packet or bug must not stop the engine
                    log.exception("error while processing packets")

            return run

        def tun_ready() -> None:
            engine.outbound(tun.read_burst(), clock())

        def raw4_ready(sock: socket.socket) -> Callable[[], None]:
            return lambda: engine.inbound(Sockets.recv_raw4(sock), clock())

        def raw6_ready(sock: socket.socket, proto: int) -> Callable[[], None]:
            return lambda: engine.inbound(Sockets.recv_raw6(sock, proto), clock())

        def udp_ready(sock: socket.socket, port: int) -> Callable[[], None]:
            return lambda: _udp(engine, sock, port, clock)

        def icmp_ready(sock: socket.socket, version: int) -> Callable[[], None]:
            def run() -> None:
                now = clock()
                for packet in Sockets.recv_raw4(sock, 16):
                    engine.icmp(packet, version, now)

            return run

        def ah6_ready(sock: socket.socket) -> Callable[[], None]:
            return lambda: engine.inbound(Sockets.recv_ah6(sock), clock())

        loop.add_reader(tun.fd, guarded(tun_ready))
        if socks.ah6 is not None:
            loop.add_reader(socks.ah6.fileno(), guarded(ah6_ready(socks.ah6)))
        for fam, sock in socks.icmp_in.items():
            version = 4 if fam == socket.AF_INET else 6
            loop.add_reader(sock.fileno(), guarded(icmp_ready(sock, version)))
        for (fam, proto), sock in socks.raw_in.items():
            ready = raw4_ready(sock) if fam == socket.AF_INET else raw6_ready(sock, proto)
            loop.add_reader(sock.fileno(), guarded(ready))
        for (_fam, port), sock in socks.udp.items():
            loop.add_reader(sock.fileno(), guarded(udp_ready(sock, port)))

    @staticmethod
    def _remove_readers(loop: asyncio.AbstractEventLoop, tun: TunDevice, socks: Sockets) -> None:
        if tun.fd >= 0:
            loop.remove_reader(tun.fd)
        extra = [socks.ah6] if socks.ah6 is not None else []
        for sock in [*socks.raw_in.values(), *socks.udp.values(), *socks.icmp_in.values(), *extra]:
            if sock.fileno() >= 0:
                loop.remove_reader(sock.fileno())

    async def _ticks(self, engine: Engine, clock: Callable[[], float]) -> None:
        while not self.stopping.is_set():
            now = clock()
            try:
                engine.tick(now)
            except Exception:
                log.exception("error in the engine's timers")
            delay = max(0.0, engine.next_wakeup(clock()) - clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=delay)

    async def _shutdown(self, engine: Engine, clock: Callable[[], float]) -> None:
        engine.begin_shutdown(clock())
        deadline = clock() + SHUTDOWN_WAIT
        while not engine.idle() and clock() < deadline:
            await asyncio.sleep(0.05)
            engine.tick(clock())
        engine.finish()


def _udp(engine: Engine, sock: socket.socket, port: int, clock: Callable[[], float]) -> None:
    now = clock()
    receives = []
    for datagrams, remote, local in Sockets.recv_udp(sock):
        esp = []
        for data in datagrams:
            if port == 500 or data.startswith(b"\0\0\0\0"):
                engine.ike_datagram(data, remote, local, port, now)
            elif data != b"\xff":  # a NAT-T keepalive carries nothing
                esp.append(data)
        if esp:
            receives.append((esp, remote, local))
    if receives:
        engine.udp_esp(receives, port, now)
