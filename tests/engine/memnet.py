"""Two engines over an in-memory network (test helper, no root needed).

The engines are the real :class:`~ipsecconf.engine.runtime.Engine` on real stores; only
the wire is in memory: :class:`MemWire` (the engine's Wire port) queues what an engine
sends, :meth:`MemNet.deliver` hands each IKE datagram and IP packet to the engine owning
the destination address, as the kernel would.  Time is a number the test moves, so
lifetimes, rekeys and liveness timeouts run in milliseconds.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ipsecconf.engine.ports import HostConfig
from ipsecconf.engine.runtime import Engine
from ipsecconf.engine.service import Service, StoreBackend
from ipsecconf.plan.planfile import Inputs
from ipsecconf.state.store import Store

A_OUT, B_OUT = "203.0.113.1", "203.0.113.2"
IkeItem = tuple[str, int, tuple[str, int], bytes]
"""An IKE datagram in flight: source address, source port, destination, payload."""


@dataclass
class Clock:
    """The test's time."""

    t: float = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class MemTun:
    """Decapsulated packets handed to the local stack."""

    packets: list[bytes] = field(default_factory=list)

    def write_packets(self, packets: Sequence[bytes]) -> None:
        self.packets.extend(packets)


@dataclass
class MemHost:
    """The host configuration the engine asked for."""

    config: HostConfig | None = None
    fail: bool = False

    def apply(self, config: HostConfig) -> None:
        if self.fail:
            raise OSError("host configuration refused (test)")
        self.config = config

    def drop_counts(self) -> dict[str, int]:
        return {}


class MemNet:
    """The link between the engines, with a switch to cut one of them off."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        """Seeds every engine's randomness, so that a failing run replays exactly."""
        self.queue: list[IkeItem | bytes] = []
        self.nodes: dict[str, Engine] = {}
        self.down: set[str] = set()
        self.wire_log: list[bytes] = []
        """Every IP packet that crossed the link (what a capture would hold)."""

    def deliver(self, now: float, rounds: int = 50) -> None:
        """Hand queued datagrams and packets to their destination (bounded rounds)."""
        for _ in range(rounds):
            if not self.queue:
                return
            batch, self.queue = self.queue, []
            for item in batch:
                if isinstance(item, tuple):
                    src, port, remote, data = item
                    node = self.nodes.get(remote[0])
                    if node is not None and remote[0] not in self.down and src not in self.down:
                        node.ike_datagram(data, (src, port), remote[0], remote[1], now)
                else:
                    packet = item
                    self.wire_log.append(packet)
                    dst, src = (
                        str(ipaddress.ip_address(packet[16:20])),
                        str(ipaddress.ip_address(packet[12:16])),
                    )
                    node = self.nodes.get(dst)
                    if node is None or dst in self.down or src in self.down:
                        continue
                    if packet[9] == 17 and packet[22:24] == b"\x11\x94":
                        # UDP 4500 arrives on the engine's socket: the payload only.
                        payload, sport = packet[28:], int.from_bytes(packet[20:22], "big")
                        if payload[:4] == bytes(4):
                            node.ike_datagram(payload, (src, sport), dst, 4500, now)
                        else:
                            node.udp_esp([([payload], (src, sport), dst)], 4500, now)
                    else:
                        node.inbound([packet], now)


@dataclass
class MemWire:
    """One engine's Wire port on the in-memory link."""

    net: MemNet
    address: str

    def send_ike(self, data: bytes, local_port: int, remote: tuple[str, int]) -> None:
        self.net.queue.append((self.address, local_port, remote, data))

    def send_packets(self, packets: Sequence[bytes]) -> int:
        self.net.queue.extend(packets)
        return 0

    def source_for(self, remote: str) -> str | None:
        return self.address

    def path_mtu(self, remote: str) -> int | None:
        return None


CONFIG = """\
peers:
  - name: gw
    address: {peer}
    local_address: {local}
    auth: psk
    psk: file:psk.txt
    liveness_interval: 10
    ike_lifetime: {ike_lifetime}
{extra}policies:
  - name: site
    source: {src}
    destination: {dst}
    mode: tunnel
    peer: gw
    tunnel: {{local: {local}, remote: {peer}}}
    encryption: {encryption}
    authentication: none
    lifetime: {{time: {lifetime}, rekey_margin: 20}}
    start: {start}
    udp_encapsulation: {udp}
"""


def write_config(
    d: Path,
    side: str,
    encryption: str = "aes128gcm",
    lifetime: int = 3600,
    start: str = "on_demand",
    ike_lifetime: int = 14400,
    udp: bool = False,
    liveness_timeout: int | None = None,
) -> Path:
    """The YAML of site ``a`` (198.51.100.0/25) or ``b`` (198.51.100.128/25)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "psk.txt").write_text("memnet-test-psk-0123456789\n")
    local, peer = (A_OUT, B_OUT) if side == "a" else (B_OUT, A_OUT)
    src, dst = ("198.51.100.0/25", "198.51.100.128/25")[:: 1 if side == "a" else -1]
    cfg = d / "ipsec.yaml"
    cfg.write_text(
        CONFIG.format(peer=peer, local=local, src=src, dst=dst, encryption=encryption,
                      lifetime=lifetime, start=start, ike_lifetime=ike_lifetime,
                      udp=str(udp).lower(),
                      extra=f"    liveness_timeout: {liveness_timeout}\n" * bool(liveness_timeout))
    )  # fmt: skip
    return cfg


def apply_to_store(state: str, cfg: Path) -> None:
    """``ipsecconf apply`` without an engine."""
    svc = Service(StoreBackend(state))
    try:
        svc.apply(svc.plan(Inputs.make([str(cfg)], {}, [], False)))
    finally:
        svc.backend.close()


@dataclass
class Node:
    """One engine with its store and ports."""

    engine: Engine
    store: Store
    tun: MemTun
    host: MemHost
    state: str


def node(net: MemNet, clock: Clock, workdir: Path, side: str, **cfg: object) -> Node:
    """Configure site ``side``'s store and start an engine on it."""
    state = str(workdir / side / "state.db")
    apply_to_store(state, write_config(workdir / side, side, **cfg))  # type: ignore[arg-type]
    return start(net, clock, state, side)


def start(net: MemNet, clock: Clock, state: str, side: str, seed: int | None = None) -> Node:
    """An engine on an existing store, its randomness from ``seed`` (else the net's)."""
    address = A_OUT if side == "a" else B_OUT
    store = Store.open(state)
    tun, host = MemTun(), MemHost()
    rng = random.Random(f"{net.seed if seed is None else seed}:{side}:{len(net.nodes)}")
    engine = Engine(store, MemWire(net, address), tun, host, rng.randbytes, clock)
    net.nodes[address] = engine
    engine.start(clock.t)
    return Node(engine, store, tun, host, state)


def icmp(src: str, dst: str, seq: int, payload: bytes = b"memnet") -> bytes:
    """An IPv4 ICMP echo request."""
    body = struct.pack("!BBHHH", 8, 0, 0, 0x1234, seq) + payload
    body = body[:2] + struct.pack("!H", _csum(body)) + body[4:]
    hdr = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), seq, 0x4000, 64, 1, 0,
        ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed,
    )  # fmt: skip
    hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
    return hdr + body


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def run(
    net: MemNet, clock: Clock, nodes: Sequence[Node], seconds: float, step: float = 0.25
) -> None:
    """Let time pass: ticks and deliveries."""
    end = clock.t + seconds
    while clock.t < end:
        clock.t = min(end, clock.t + step)
        for n in nodes:
            n.engine.tick(clock.t)
        net.deliver(clock.t)
