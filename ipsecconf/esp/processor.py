"""The dataplane processor: packets and ``now`` in, result values out (strongSwan
``ipsec_processor.c`` without threads or callbacks).

Outbound (:meth:`Processor.outbound`, a clear packet from the TUN device): the SPD decides;
bypass gives :class:`Send` of the packet as is, discard a :class:`Drop`, protect the packet
encapsulated by the policy's SA, or :class:`Acquire` when no usable SA exists (``pending``
when a negotiation already runs).  With level permit, a flow whose negotiation failed is
sent in clear.

Inbound (:meth:`Processor.inbound`, a packet from the wire): ESP (protocol 50, or UDP 4500
per RFC 3948) and AH are looked up by (SPI, destination, protocol), verified, decapsulated
and checked against the SA's selectors; IKE behind the non-ESP marker comes back as
:class:`IkeDatagram`; clear packets are checked against inbound protect policies.

Nothing raises for a peer's packet: every failure becomes ``Drop(reason)`` and is counted
globally (per reason) and on the SA.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ipsecconf.esp import ip
from ipsecconf.esp.errors import DecodeError, DropReason, EspError
from ipsecconf.esp.packet import ESP_HEADER, NATT_PORT, UdpKind, classify_udp4500
from ipsecconf.esp.sa import Counters, Mode, SaState, SecurityAssociation
from ipsecconf.esp.sad import LarvalSa, SaTable
from ipsecconf.esp.spd import Action, Direction, Level, Policy, PolicyTable

# Send and Deliver are made once per packet: not frozen, since a frozen dataclass's
# __init__ (object.__setattr__ per field) costs four times a plain one.  Treat them as
# values all the same.


@dataclass(slots=True)
class Send:
    """A packet to put on the wire (protected, or clear when ``spi`` is ``None``)."""

    packet: bytes
    spi: int | None = None


@dataclass(slots=True)
class Deliver:
    """A clear packet for the local stack (written to the TUN device)."""

    packet: bytes
    spi: int | None = None


@dataclass(frozen=True, slots=True)
class Drop:
    """A dropped packet and why."""

    reason: DropReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class UnknownSpi(Drop):
    """ESP or AH for an SPI without an SA: who sent it, so that the engine can tell the
    peer (INVALID_SPI, RFC 7296 2.21.4)."""

    spi: int = 0
    protocol: int = 0
    """50 (ESP, ESP-in-UDP included) or 51 (AH)."""
    sender: bytes = b""
    """The outer source address, packed."""


@dataclass(frozen=True, slots=True)
class Acquire:
    """Protect policy without a usable SA: negotiate (unless ``pending``), queue or drop."""

    policy: str
    reqid: int
    src: bytes
    dst: bytes
    proto: int
    sport: int
    dport: int
    packet: bytes = field(repr=False)
    pending: bool = False


@dataclass(frozen=True, slots=True)
class IkeDatagram:
    """An IKE message that arrived on UDP 4500 behind the non-ESP marker (marker removed)."""

    payload: bytes
    src: bytes
    dst: bytes
    sport: int


Result = Send | Deliver | Drop | Acquire | IkeDatagram

# Bound once: the per-packet paths below would otherwise pay an enum class lookup (slow in
# Python 3.11) or NamedTuple._make's checks for every packet.
_DEAD = SaState.DEAD
_MATURE = SaState.MATURE
_TUNNEL = Mode.TUNNEL
_OUT = Direction.OUT
_BYPASS = Action.BYPASS
_DISCARD = Action.DISCARD
_ESP = ip.PROTO_ESP
_OPAQUE = ip.OPAQUE_PORT
_IpInfo = ip.IpInfo
_new_tuple = tuple.__new__
_flow_key = ip.flow_key
_FLOWS = 4096
"""Outbound flows whose decision is remembered (all forgotten at once when full)."""


class Processor:
    """Outbound and inbound packet processing over one SAD and SPD."""

    def __init__(self, sad: SaTable, spd: PolicyTable) -> None:
        self.sad = sad
        self._flows: dict[bytes, tuple[int, int, SecurityAssociation | None]] = {}
        """Outbound decisions by flow (see :meth:`outbound`): the SPD's and the SAD's
        generations when made, and the SA (``None``: bypass)."""
        self._spd = spd
        self.counters = Counters()
        """Global counters (protected packets and bytes, drops by kind)."""
        self.drops: dict[DropReason, int] = dict.fromkeys(DropReason, 0)
        """Drops per reason."""
        self._failed: set[tuple[str, bytes]] = set()

    @property
    def spd(self) -> PolicyTable:
        """The SPD; replacing it forgets every remembered outbound decision."""
        return self._spd

    @spd.setter
    def spd(self, table: PolicyTable) -> None:
        self._spd = table
        self._flows.clear()

    def negotiation_failed(self, policy: str, peer: bytes, failed: bool = True) -> None:
        """Record (or clear) a failed negotiation for a permit-level policy and peer address
        (packed).  Record it for both rows of a mirrored pair: the ``out`` row lets outbound
        traffic go in clear, the ``in`` row accepts clear traffic from that peer."""
        if failed:
            self._failed.add((policy, peer))
        else:
            self._failed.discard((policy, peer))

    def failed_with(self, pair: str, peer: bytes) -> bool:
        """Whether the pair ``pair`` (its ``.out`` row) is in clear with ``peer`` after a
        failed negotiation."""
        return (f"{pair}.out", peer) in self._failed

    def _drop(
        self, reason: DropReason, detail: str = "", sa: SecurityAssociation | None = None
    ) -> Drop:
        self.drops[reason] += 1
        self.counters.count_drop(reason)
        if sa is not None:
            sa.counters.count_drop(reason)
        return Drop(reason, detail)

    def _unknown_spi(
        self, spi: int, protocol: int, sender: bytes, sa: SecurityAssociation | None
    ) -> Drop:
        # A Dead SA (deleted, still listed for a minute) is as unknown as a missing one.
        reason = DropReason.UNKNOWN_SPI if sa is None else DropReason.SA_EXPIRED
        self._drop(reason, sa=sa)
        return UnknownSpi(reason, f"SPI 0x{spi:08x}", spi, protocol, sender)

    # -- outbound ------------------------------------------------------------------
    def outbound(self, packet: bytes, now: float) -> Result:
        """Process one clear packet leaving the host.

        A flow's decision -- bypass, or protect with a Mature SA -- is remembered for TCP,
        UDP and the other protocols with ports over IPv4 without options or fragments
        (protocol, addresses and ports: all the SPD and the SAD look at), until the SPD or
        the outbound SAs change or the SA leaves Mature: a flow's later packets skip the
        parse and both lookups."""
        key = _flow_key(packet)
        if key is not None:
            known = self._flows.get(key)
            if (
                known is not None
                and known[0] == self._spd.generation
                and known[1] == self.sad.generation
            ):
                cached = known[2]
                if cached is None:
                    return Send(packet)
                if cached.state is _MATURE:
                    return self._protect(cached, packet, now)
        try:
            info = ip.parse(packet)
        except DecodeError as exc:
            return self._drop(exc.reason, str(exc))
        v, src_b, dst_b, proto, _, _, _, _, sp, dp = info  # one unpack: runs per packet
        src = int.from_bytes(src_b, "big")
        dst = int.from_bytes(dst_b, "big")
        spd = self._spd
        policy = spd.lookup(_OUT, v, src, dst, proto, sp, dp)
        action = policy.action if policy is not None else spd.default_action
        if action is _BYPASS:
            if key is not None:
                self._remember(key, None)
            return Send(packet)
        if action is _DISCARD or policy is None:
            return self._drop(DropReason.POLICY_DISCARD)
        sa = self.sad.outbound(policy.reqid, v, src, dst, proto, sp, dp)
        if sa is None:
            if policy.level is Level.PERMIT and (policy.name, dst_b) in self._failed:
                return Send(packet)
            return Acquire(
                policy.name,
                policy.reqid,
                src_b,
                dst_b,
                proto,
                sp,
                dp,
                packet,
                self.sad.pending(policy.reqid),
            )
        if key is not None and sa.state is _MATURE:
            self._remember(key, sa)
        return self._protect(sa, packet, now)

    def _remember(self, key: bytes, sa: SecurityAssociation | None) -> None:
        if len(self._flows) >= _FLOWS:
            self._flows.clear()
        self._flows[key] = (self._spd.generation, self.sad.generation, sa)

    def _protect(self, sa: SecurityAssociation, packet: bytes, now: float) -> Result:
        try:
            out = sa.encapsulate(packet, now)
        except EspError as exc:
            return self._drop(exc.reason, str(exc), sa)
        c = self.counters
        c.packets += 1
        c.bytes += len(packet)
        return Send(out, sa.config.spi)

    def outbound_batch(self, packets: Iterable[bytes], now: float) -> list[Result]:
        """:meth:`outbound` for a burst of packets, results in order."""
        out = self.outbound
        return [out(p, now) for p in packets]

    # -- inbound -------------------------------------------------------------------
    def inbound(self, packet: bytes, now: float) -> Result:
        """Process one packet received from the network."""
        try:
            info = ip.parse(packet)
            proto = info.proto
            if proto == ip.PROTO_UDP and info.dport == NATT_PORT:
                payload = memoryview(packet)[info.l4 + 8 : info.length]
                kind = classify_udp4500(payload)
                if kind is UdpKind.IKE:
                    return IkeDatagram(bytes(payload[4:]), info.src, info.dst, info.sport)
                if kind is UdpKind.KEEPALIVE:
                    return self._drop(DropReason.NAT_KEEPALIVE)
                spi = ESP_HEADER.unpack_from(packet, info.l4 + 8)[0]
                key = (spi, info.dst, ip.PROTO_ESP)
            elif proto == ip.PROTO_ESP or proto == ip.PROTO_AH:
                if info.version == 4 and (packet[6] & 0x3F or packet[7]):
                    return self._drop(DropReason.UNSUPPORTED, "fragmented IPsec packet")
                at = info.l4 + (4 if proto == ip.PROTO_AH else 0)
                if info.length < at + 8:
                    return self._drop(
                        DropReason.TRUNCATED, "no room for an SPI and a sequence number"
                    )
                spi = ESP_HEADER.unpack_from(packet, at)[0]
                key = (spi, info.dst, proto)
            else:
                return self._clear_inbound(packet, info)
        except DecodeError as exc:
            return self._drop(exc.reason, str(exc))
        sa = self.sad.get(key)
        if sa is None or isinstance(sa, LarvalSa):
            return self._unknown_spi(key[0], key[2], info.src, None)
        if sa.state is _DEAD:
            return self._unknown_spi(key[0], key[2], info.src, sa)
        return self._open(sa, packet, info, key[0], now)

    def inbound_esp_in_udp(
        self, payload: bytes, version: int, src: bytes, dst: bytes, now: float
    ) -> Result | None:
        """:meth:`inbound` for the payload of an ESP-in-UDP datagram (not IKE, not a
        keepalive) that reached ``dst`` from ``src``, without an IP header rebuilt around
        it; ``None`` when it needs the general path (a transport-mode SA, whose clear
        packet is rebuilt from the outer header)."""
        if len(payload) < 8:
            return self._drop(DropReason.TRUNCATED, "no room for an SPI")
        spi = ESP_HEADER.unpack_from(payload)[0]
        sa = self.sad.get((spi, dst, _ESP))
        if sa is None or isinstance(sa, LarvalSa):
            return self._unknown_spi(spi, _ESP, src, None)
        if sa.state is _DEAD:
            return self._unknown_spi(spi, _ESP, src, sa)
        if sa.config.mode is not _TUNNEL:
            return None
        n = len(payload)
        info = _new_tuple(_IpInfo, (version, src, dst, _ESP, 0, 0, 0, n, _OPAQUE, _OPAQUE))
        return self._open(sa, payload, info, spi, now)

    def inbound_esp_in_udp_batch(
        self, payloads: Iterable[bytes], version: int, src: bytes, dst: bytes, now: float
    ) -> tuple[list[bytes], list[tuple[bytes, Result | None]]]:
        """:meth:`inbound_esp_in_udp` for the datagrams of one sender to one address (one
        receive): the clear packets to deliver, in order, and every other outcome with
        its payload.  A run of datagrams for the SA of the one before skips the SAD and
        the checks that SA has passed (tunnel mode; it is checked for Dead each time)."""
        clear: list[bytes] = []
        rest: list[tuple[bytes, Result | None]] = []
        sa: SecurityAssociation | None = None
        spi_bytes = b""
        info_len = -1
        info = _new_tuple(_IpInfo, (version, src, dst, _ESP, 0, 0, 0, -1, _OPAQUE, _OPAQUE))
        unwrap = self._unwrap
        for payload in payloads:
            n = len(payload)
            if sa is None or n < 8 or not payload.startswith(spi_bytes) or sa.state is _DEAD:
                r = self.inbound_esp_in_udp(payload, version, src, dst, now)
                if type(r) is Deliver:
                    clear.append(r.packet)
                    spi_bytes = payload[:4]
                    found = self.sad.get((r.spi or 0, dst, _ESP))
                    sa = found if isinstance(found, SecurityAssociation) else None
                else:
                    rest.append((payload, r))
                continue
            if n != info_len:
                info_len = n
                info = _new_tuple(_IpInfo, (version, src, dst, _ESP, 0, 0, 0, n, _OPAQUE, _OPAQUE))
            out = unwrap(sa, payload, info, now)
            if isinstance(out, bytes):
                clear.append(out)
            else:
                rest.append((payload, out))
        return clear, rest

    def _open(
        self, sa: SecurityAssociation, packet: bytes, info: ip.IpInfo, spi: int, now: float
    ) -> Result:
        out = self._unwrap(sa, packet, info, now)
        return Deliver(out, spi) if isinstance(out, bytes) else out

    def _unwrap(
        self, sa: SecurityAssociation, packet: bytes, info: ip.IpInfo, now: float
    ) -> bytes | Drop:
        """The clear packet inside ``packet``, checked against the SA's selectors and
        counted, or the drop."""
        try:
            inner = sa.decapsulate(packet, info, now)
            if not sa.admits(inner):
                return self._drop(DropReason.POLICY_MISMATCH, "outside the SA's selectors", sa)
        except EspError as exc:
            return self._drop(exc.reason, str(exc), sa)
        c = self.counters
        c.packets += 1
        c.bytes += len(inner)
        return inner

    def _clear_inbound(self, packet: bytes, info: ip.IpInfo) -> Result:
        policy: Policy | None = self._spd.lookup(
            Direction.IN,
            info.version,
            int.from_bytes(info.src, "big"),
            int.from_bytes(info.dst, "big"),
            info.proto,
            info.sport,
            info.dport,
        )
        action = policy.action if policy is not None else self._spd.default_action
        if action is Action.BYPASS:
            return Deliver(packet)
        if action is Action.PROTECT and policy is not None:
            if policy.level is Level.PERMIT and (policy.name, info.src) in self._failed:
                return Deliver(packet)
            return self._drop(DropReason.CLEAR_PROTECTED, f"policy {policy.name}")
        return self._drop(DropReason.POLICY_DISCARD)

    def inbound_batch(self, packets: Iterable[bytes], now: float) -> list[Result]:
        """:meth:`inbound` for a burst of packets, results in order."""
        inb = self.inbound
        return [inb(p, now) for p in packets]
