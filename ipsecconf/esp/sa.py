"""A security association: its configuration, state, lifetimes, counters, and the
encapsulation and decapsulation of one packet in transport or tunnel mode (strongSwan
``ipsec_sa.c``).

States (DESIGN.md): Larval = SPI reserved, negotiation running (no keys, no traffic);
Mature = in use; Dying = a soft lifetime was reached and a rekey is under way (traffic still
flows); Dead = hard lifetime reached, sequence space exhausted or deleted (no traffic; the
SAD keeps it visible for 60 seconds).  Soft and hard lifetimes count bytes, packets and
seconds from the injected ``now``; crossing one appends an :class:`SaEvent` once.  The
outbound sequence number never wraps: a soft rekey event fires 2**16 numbers before the
end, and exhaustion kills the SA.  Keys never appear in a repr or message.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from ipsecconf.crypto.transforms import Rng
from ipsecconf.esp import ip
from ipsecconf.esp.ah import AhContext
from ipsecconf.esp.context import EspContext
from ipsecconf.esp.errors import DecodeError, DropReason, EspError, SaStateError
from ipsecconf.esp.fastpath import Encapsulate, EncapsulateBatch, aead_tunnel_v4
from ipsecconf.esp.fastpath_cbc import cbc_tunnel_v4
from ipsecconf.esp.fastpath_cbc_in import cbc_tunnel_in
from ipsecconf.esp.fastpath_in import Decapsulate, aead_tunnel_in
from ipsecconf.esp.packet import push_udp_header
from ipsecconf.esp.saconfig import (
    Counters,
    Lifetimes,
    LimitKind,
    Mode,
    Protocol,
    SaConfig,
    SaEvent,
    SaEventKind,
    SaState,
    UdpEncap,
)
from ipsecconf.esp.spd import CompiledSelector, compile_selector

_ADMITTED_FLOWS = 4096
"""Flows whose selector decision an SA keeps (all forgotten at once when full)."""

__all__ = [
    "Counters",
    "Lifetimes",
    "LimitKind",
    "Mode",
    "Protocol",
    "SaConfig",
    "SaEvent",
    "SaEventKind",
    "SaState",
    "SecurityAssociation",
    "UdpEncap",
]

_NO_LIMIT = float("inf")


class SecurityAssociation:
    """One installed SA with its crypto context, state and counters."""

    def __init__(
        self, config: SaConfig, now: float, rng: Rng, events: list[SaEvent] | None = None
    ) -> None:
        self.config = config
        self._state = SaState.MATURE
        self._on_state: list[Callable[[], None]] = []
        self.created = now
        self.dead_since: float | None = None
        self.counters = Counters()
        self.events: list[SaEvent] = events if events is not None else []
        """Where expiry events go (the SAD shares one list across its SAs)."""
        self._src = ipaddress.ip_address(config.src).packed
        self._dst = ipaddress.ip_address(config.dst).packed
        self._tunnel = config.mode is Mode.TUNNEL
        self._ah = config.protocol is Protocol.AH
        self.ctx: EspContext | AhContext
        if self._ah:
            self.ctx = AhContext(
                config.spi,
                config.integrity,
                config.integ_key,
                esn=config.esn,
                replay_window=config.replay_window,
            )
        else:
            assert config.cipher is not None
            self.ctx = EspContext(
                config.spi,
                config.cipher,
                config.enc_key,
                config.integrity,
                config.integ_key,
                rng=rng,
                esn=config.esn,
                replay_window=config.replay_window,
            )
        self._encap = config.encap
        if isinstance(self.ctx, EspContext):
            self.esp_context = self.ctx
        outer_proto = 51 if self._ah else (ip.PROTO_UDP if self._encap else ip.PROTO_ESP)
        self.outer_header = ip.OuterHeader(self._src, self._dst, outer_proto)
        self._ident = 0
        self._selectors: list[CompiledSelector] = [
            c for s in config.selectors for c in compile_selector(s)
        ]
        self._admitted: dict[bytes, bool] = {}
        """:meth:`admits` decisions by flow."""
        lt = config.lifetimes
        self._soft_fired = False
        self.seq_soft = (0xFFFFFFFFFFFFFFFF if config.esn else 0xFFFFFFFF) - (1 << 16)
        """Sequence number at which a rekey (soft expiry) is requested."""
        self._marks(lt.soft_bytes, lt.soft_packets, lt.soft_seconds)
        self.encapsulate: Encapsulate = self.encapsulate_general
        """Protect one clear IP packet at time ``now``; returns the packet to send."""
        self.encapsulate_batch: EncapsulateBatch = self._batch_general
        """Protect a burst of packets sharing one ``now``; raises on the first failure."""
        self.decapsulate: Decapsulate = self.decapsulate_general
        """Verify and strip one protected packet (already parsed as an ``ip.IpInfo``) at
        time ``now``; returns the inner packet (tunnel) or the rebuilt clear packet
        (transport)."""
        if not self._tunnel:
            self._out = self._transport_out
        elif self._ah or self._encap is not None:
            self._out = self._tunnel_out
        else:
            self._out = self._esp_tunnel_out
        self._fast_paths()

    def _fast_paths(self) -> None:
        # Tunnel-mode ESP SAs with 32-bit sequence numbers get closures specialised for the
        # common packet, for AEAD and for CBC with an HMAC: outbound with an IPv4 outer
        # header, inbound with either, both with or without UDP encapsulation.  They keep
        # the state and the lifetime marks in cells, which the ``state`` setter refreshes.
        self._on_state = []
        self.encapsulate = self.encapsulate_general
        self.encapsulate_batch = self._batch_general
        self.decapsulate = self.decapsulate_general
        config = self.config
        cipher = config.cipher
        if not self._tunnel or cipher is None or config.esn:
            return
        out = None
        if self.outer_header.version == 4:
            if cipher.aead:
                out = aead_tunnel_v4(self, self.encapsulate_general)
            elif cipher.key_bits and config.integrity.icv_bytes:
                out = cbc_tunnel_v4(self, self.encapsulate_general)
        if out is not None:
            self.encapsulate, self.encapsulate_batch, refresh = out
            self._on_state.append(refresh)
        inbound = None
        if cipher.aead:
            inbound = aead_tunnel_in(self, self.decapsulate_general)
        elif cipher.key_bits and config.integrity.icv_bytes:
            inbound = cbc_tunnel_in(self, self.decapsulate_general)
        if inbound is not None:
            self.decapsulate, refresh = inbound
            self._on_state.append(refresh)

    @property
    def state(self) -> SaState:
        """Larval, Mature, Dying or Dead (see the module docstring)."""
        return self._state

    @state.setter
    def state(self, value: SaState) -> None:
        self._state = value
        for hook in self._on_state:
            hook()

    def adopt(self, old: SecurityAssociation) -> None:
        """Take over the keys' state of ``old`` (same SPI and keys, other hosts or UDP
        encapsulation): the crypto context with its sequence numbers and replay window,
        the counters and the state.  The fast paths are rebuilt around them, so that a
        sequence number -- an AEAD nonce -- is never used twice under one key."""
        self.ctx = old.ctx
        if isinstance(old.ctx, EspContext):
            self.esp_context = old.ctx
        self.counters = old.counters
        self._soft_fired = old._soft_fired
        if old._soft_fired:  # the soft marks are spent: the hard ones are next
            self._marks(0, 0, 0)
        self._state = old.state
        self.dead_since = old.dead_since
        self._fast_paths()

    # -- lifetimes -----------------------------------------------------------------
    def _marks(self, nbytes: int, packets: int, seconds: float) -> None:
        lt = self.config.lifetimes
        self.bytes_mark = nbytes or lt.hard_bytes or _NO_LIMIT
        self.packets_mark = packets or lt.hard_packets or _NO_LIMIT
        secs = seconds or lt.hard_seconds
        self.time_mark = self.created + secs if secs else _NO_LIMIT

    def _check(self, now: float) -> None:
        c, lt = self.counters, self.config.lifetimes
        hits = [
            (LimitKind.BYTES, c.bytes, lt.soft_bytes, lt.hard_bytes),
            (LimitKind.PACKETS, c.packets, lt.soft_packets, lt.hard_packets),
            (LimitKind.SECONDS, now - self.created, lt.soft_seconds, lt.hard_seconds),
        ]
        for kind, value, _soft, hard in hits:
            if hard and value >= hard:
                self.kill(now, kind)
                return
        for kind, value, soft, _hard in hits:
            if soft and value >= soft and not self._soft_fired:
                self._soft(kind)
        if self.ctx.seq >= self.seq_soft and not self._soft_fired:
            self._soft(LimitKind.SEQUENCE)
        self._marks(0, 0, 0)

    def _soft(self, kind: LimitKind) -> None:
        self._soft_fired = True
        if self.state is SaState.MATURE:
            self.state = SaState.DYING
        self._emit(SaEventKind.SOFT_EXPIRE, kind)

    def _emit(self, kind: SaEventKind, limit: LimitKind) -> None:
        c = self.config
        self.events.append(SaEvent(kind, limit, c.spi, c.dst, c.protocol, c.reqid, c.direction))

    def kill(self, now: float, limit: LimitKind | None = None) -> None:
        """Make the SA Dead (hard lifetime, exhaustion or deletion); idempotent."""
        if self.state is SaState.DEAD:
            return
        self.state = SaState.DEAD
        self.dead_since = now
        if limit is not None:
            self._emit(SaEventKind.HARD_EXPIRE, limit)

    def expire(self, now: float) -> None:
        """Apply time-based lifetimes without traffic (called periodically by the SAD)."""
        if self.state in (SaState.MATURE, SaState.DYING) and now >= self.time_mark:
            self._check(now)

    def _account(self, nbytes: int, now: float) -> None:
        c = self.counters
        c.packets += 1
        c.bytes += nbytes
        if c.bytes >= self.bytes_mark or c.packets >= self.packets_mark or now >= self.time_mark:
            self._check(now)

    def _usable(self, now: float) -> None:
        if self.state is SaState.DEAD:
            raise SaStateError(DropReason.SA_EXPIRED, "SA is dead")
        if now >= self.time_mark:
            self._check(now)
            if self.dead_since is not None:  # _check() killed it
                raise SaStateError(DropReason.SA_EXPIRED, "SA reached its hard lifetime")

    # -- outbound ------------------------------------------------------------------
    def encapsulate_general(self, packet: bytes, now: float) -> bytes:
        """Protect one clear IP packet; returns the packet to send (every case)."""
        state = self._state  # not the property: this runs once per packet
        if state is not SaState.MATURE and state is not SaState.DYING:
            raise SaStateError(
                DropReason.SA_EXPIRED if state is SaState.DEAD else DropReason.SA_NOT_MATURE
            )
        if now >= self.time_mark:
            self._usable(now)
        try:
            out = self._out(packet)
        except SaStateError as exc:
            if exc.reason is DropReason.SEQUENCE_EXHAUSTED:
                self.kill(now, LimitKind.SEQUENCE)
            raise
        # _account inlined: this runs once per packet.
        c = self.counters
        c.packets += 1
        c.bytes += len(packet)
        if (
            c.bytes >= self.bytes_mark
            or c.packets >= self.packets_mark
            or (self.ctx.seq >= self.seq_soft and not self._soft_fired)
        ):
            self._check(now)
        return out

    def _batch_general(self, packets: list[bytes], now: float) -> list[bytes]:
        enc = self.encapsulate_general
        return [enc(p, now) for p in packets]

    def check_lifetimes(self, now: float) -> None:
        """Apply lifetimes now (after a mark was crossed)."""
        self._check(now)

    def _esp_tunnel_out(self, packet: bytes) -> bytes:
        # The fast path: ESP tunnel mode without UDP encapsulation.
        v = packet[0] >> 4 if packet else 0
        ctx = self.esp_context
        if v == 4 and len(packet) >= 20:
            df = bool(packet[6] & 0x40)
            outer = self.outer_header.build(
                ctx.esp_length(len(packet)), packet[1], self._next_ident(df), df
            )
            return ctx.seal(packet, ip.PROTO_IPV4, outer)
        if v == 6 and len(packet) >= 40:
            outer = self.outer_header.build(
                ctx.esp_length(len(packet)),
                ip.traffic_class(packet),
                self._next_ident(False),
                False,
            )
            return ctx.seal(packet, ip.PROTO_IPV6, outer)
        raise DecodeError(DropReason.MALFORMED, "not an IP packet")

    def _next_ident(self, df: bool) -> int:
        # Atomic datagrams (DF set) carry identification 0 (RFC 6864 section 4.1).
        if df:
            return 0
        self._ident = ident = (self._ident + 1) & 0xFFFF
        return ident

    def _tunnel_out(self, packet: bytes) -> bytes:
        v = packet[0] >> 4 if packet else 0
        if v == 4 and len(packet) >= 20:
            nh, df, tos = ip.PROTO_IPV4, bool(packet[6] & 0x40), packet[1]
        elif v == 6 and len(packet) >= 40:
            nh, df, tos = ip.PROTO_IPV6, False, ip.traffic_class(packet)
        else:
            raise DecodeError(DropReason.MALFORMED, "not an IP packet")
        ident = self._next_ident(df)
        if self._ah:
            ctx = self.ctx
            assert isinstance(ctx, AhContext)
            outer = self.outer_header.build(
                ctx.length(self.outer_header.version) + len(packet), tos, ident, df
            )
            return ctx.protect(outer, nh, packet)
        esp = self._udp(self.esp_context.seal(packet, nh))
        return self.outer_header.build(len(esp), tos, ident, df) + esp

    def _udp(self, esp: bytes) -> bytes:
        e = self._encap
        assert e is not None
        if self.outer_header.version == 4:
            return push_udp_header(e.sport, e.dport, len(esp)) + esp
        seg = push_udp_header(e.sport, e.dport, len(esp)) + esp
        csum = ip.udp_checksum_v6(self._src, self._dst, seg)
        return seg[:6] + csum.to_bytes(2, "big") + seg[8:]

    def _transport_out(self, packet: bytes) -> bytes:
        info = ip.parse(packet)
        header, payload = packet[: info.split], packet[info.split : info.length]
        nh = packet[info.nh_offset]
        if self._ah:
            ctx = self.ctx
            assert isinstance(ctx, AhContext)
            hdr = ip.rewrite_header(header, info, 51, ctx.length(info.version) + len(payload))
            return ctx.protect(hdr, nh, payload)
        esp = self.esp_context.seal(payload, nh)
        if self._encap is not None:
            esp = self._udp(esp)
            return ip.rewrite_header(header, info, ip.PROTO_UDP, len(esp)) + esp
        return ip.rewrite_header(header, info, ip.PROTO_ESP, len(esp)) + esp

    # -- inbound -------------------------------------------------------------------
    def decapsulate_general(self, packet: bytes, info: ip.IpInfo, now: float) -> bytes:
        """Verify and strip one protected packet (already parsed as ``info``); returns the
        inner packet (tunnel) or the rebuilt clear packet (transport).  Every case."""
        state = self._state  # not the property: this runs once per packet
        if state is not SaState.MATURE and state is not SaState.DYING:
            raise SaStateError(
                DropReason.SA_EXPIRED if state is SaState.DEAD else DropReason.SA_NOT_MATURE
            )
        if now >= self.time_mark:
            self._usable(now)
        off = info.l4 + 8 if info.proto == ip.PROTO_UDP else info.l4
        end = info.length
        if self._ah:
            ctx = self.ctx
            assert isinstance(ctx, AhContext)
            nh, ah_len, _ = ctx.verify(packet, off, end)
            payload = packet[off + ah_len : end]
        else:
            view = memoryview(packet)[:end]
            payload, nh, _ = self.ctx.open(view, off)  # type: ignore[union-attr]
        if nh == ip.PROTO_NONE:
            raise EspError(DropReason.DUMMY_PACKET, "dummy packet (next header 59)")
        if self._tunnel:
            if nh not in (ip.PROTO_IPV4, ip.PROTO_IPV6):
                raise EspError(DropReason.BAD_NEXT_HEADER, f"next header {nh} in tunnel mode")
            out = payload
        else:
            if info.split != info.l4:
                raise EspError(DropReason.UNSUPPORTED, "IPsec header after a Destination Options")
            out = ip.rewrite_header(packet[: info.l4], info, nh, len(payload)) + payload
        self._account(len(out), now)
        return out

    def admits(self, inner: bytes) -> bool:
        """The inbound check of a decapsulated packet (RFC 4301 section 5.2): whether it
        is IP inside the SA's selectors; raises :class:`DecodeError` when it is not IP.

        Decisions for TCP, UDP and the other protocols with ports, over IPv4 without
        options or fragmentation, are kept per flow (protocol, addresses and ports: all
        the selectors look at), so a flow's later packets cost a dictionary lookup
        instead of a parse; the kernel still validates every header the TUN hands it."""
        key = ip.flow_key(inner)
        if key is not None:
            known = self._admitted.get(key)
            if known is not None:
                return known
        i = ip.parse(inner)
        ok = not self._selectors or self.allows(
            i.version,
            int.from_bytes(i.src, "big"),
            int.from_bytes(i.dst, "big"),
            i.proto,
            i.sport,
            i.dport,
        )
        if key is not None:
            if len(self._admitted) >= _ADMITTED_FLOWS:
                self._admitted.clear()
            self._admitted[key] = ok
        return ok

    def allows(self, version: int, src: int, dst: int, proto: int, sport: int, dport: int) -> bool:
        """The inbound selector check of a decapsulated packet (RFC 4301 section 5.2)."""
        if not self._selectors:
            return True
        for c in self._selectors:
            if c.version == version and c.matches(src, dst, proto, sport, dport):
                return True
        return False

    @property
    def spi(self) -> int:
        """The SA's SPI."""
        return self.config.spi

    def __repr__(self) -> str:
        c = self.config
        algs = f"{c.cipher.name if c.cipher else '-'}/{c.integrity.name}"
        return (
            f"SecurityAssociation(spi=0x{c.spi:08x}, {c.protocol.name} {c.mode} "
            f"{c.direction} {c.src}->{c.dst}, {algs}, state={self.state.name})"
        )
