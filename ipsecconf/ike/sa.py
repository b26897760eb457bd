"""The public sans-IO IKE SA (aioquic's QuicConnection contract).

The engine drives an :class:`IkeSa` with bytes and time and pulls what it produces::

    sa = IkeSa(config, initiator=True, rng=os.urandom)
    sa.connect(now)
    for d in sa.datagrams_to_send(now): sock.sendto(d.data, d.remote)   # from d.local_port
    sa.receive_datagram(data, (host, port), now)
    timer = sa.get_timer(); ... sa.handle_timer(now)
    while (event := sa.next_event()) is not None: ...

Datagrams on port 4500 carry the non-ESP marker (RFC 3948 2.2): outgoing ones get it
here, and an incoming datagram that starts with it is known to have arrived on 4500.  So
the engine passes UDP payloads as they are: everything from port 500, and from port 4500
what starts with the marker (the rest is ESP for the dataplane; a one-byte 0xFF payload
is a NAT-T keepalive, counted and ignored here).  :func:`route` tells which SA a datagram
belongs to, or that it starts a new responder SA; such a request goes through an
:class:`~ipsecconf.ike.gate.IkeResponderGate` first (cookies, half-open limits), and the
engine calls ``gate.settled(spi_i)`` when that SA is established, failed or deleted.

After establishment the engine calls :meth:`IkeSa.rekey_child` at a child's soft
lifetime, :meth:`IkeSa.rekey_ike`, :meth:`IkeSa.create_child`, :meth:`IkeSa.delete_child`,
:meth:`IkeSa.close`, :meth:`IkeSa.report_invalid_spi` for ESP with an unknown SPI, and
:meth:`IkeSa.note_activity` when authentic ESP arrives (liveness probes run by
themselves every ``liveness_interval`` of silence).  A rekeyed child arrives as a
``ChildSaEstablished`` with ``rekey_of``: install it and send with it, keep the old pair
for inbound until its ``ChildSaDeleted``.  A rekeyed IKE SA arrives as ``IkeSaRekeyed``:
register its ``successor`` (route by its SPIs, drive its timers); the old one ends with
``IkeSaDeleted(rekeyed=True)``, which must not tear the children down.

Nothing a peer sends escapes as an exception: every refused datagram is counted in
:attr:`IkeSa.drops` under a :class:`~ipsecconf.ike.errors.DropReason`.  Misuse by the
caller raises :class:`~ipsecconf.ike.errors.LocalProtocolError`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ipsecconf.crypto import dh
from ipsecconf.crypto.dh import KeyExchangeFactory, Rng
from ipsecconf.ike.config import IkeConfig, TriggerPacket
from ipsecconf.ike.constants import NATT_PORT, NON_ESP_MARKER, ExchangeType, PayloadType
from ipsecconf.ike.context import ChildRecord, ChildState, IkeState, SaContext
from ipsecconf.ike.errors import DropReason, LocalProtocolError, RemoteProtocolError
from ipsecconf.ike.events import FailureReason, IkeEvent, IkeSaFailed
from ipsecconf.ike.message import Header, pull_header
from ipsecconf.ike.peer_auth import psk_for
from ipsecconf.ike.routing import Address, ChildInfo, Datagram, RouteInfo, random_spi, route
from ipsecconf.ike.task_manager import TaskManager
from ipsecconf.ike.tasks.base import Task
from ipsecconf.ike.tasks.child_create import ChildCreateInitiator, ChildCreateResponder
from ipsecconf.ike.tasks.child_sa import ChildDelete, CreateChild
from ipsecconf.ike.tasks.ike_auth import IkeAuthInitiator, IkeAuthResponder
from ipsecconf.ike.tasks.ike_init import IkeInitInitiator, IkeInitResponder
from ipsecconf.ike.tasks.ike_rekey import CreateChildSaResponder, IkeRekey
from ipsecconf.ike.tasks.informational import (
    IkeDelete,
    InformationalResponder,
    InvalidSpiReport,
    Liveness,
)

__all__ = ["Address", "ChildInfo", "Datagram", "IkeSa", "RouteInfo", "route"]

# Enum members as module constants: on Python 3.11 reading one from its class goes
# through EnumType's __getattr__ hook, and the per-message paths here read dozens.
_CREATED = IkeState.CREATED
_CONNECTING = IkeState.CONNECTING
_ESTABLISHED = IkeState.ESTABLISHED
_FAILED = IkeState.FAILED
_IKE_SA_INIT = int(ExchangeType.IKE_SA_INIT)
_IKE_AUTH = int(ExchangeType.IKE_AUTH)
_CREATE_CHILD_SA = int(ExchangeType.CREATE_CHILD_SA)
_SKF = int(PayloadType.SKF)
_ZERO_SPI = bytes(8)


class _Outbox:
    """The datagrams an IKE SA has produced and the engine has not yet taken."""

    __slots__ = ("ctx", "datagrams")

    def __init__(self, ctx: SaContext) -> None:
        self.ctx = ctx
        self.datagrams: list[Datagram] = []

    def send(self, data: bytes) -> None:
        """Queue one IKE message for the peer (with the non-ESP marker on port 4500)."""
        ctx = self.ctx
        payload = NON_ESP_MARKER + data if ctx.local_port == NATT_PORT else data
        self.datagrams.append(Datagram(payload, (ctx.remote_text, ctx.remote_port), ctx.local_port))

    def take(self) -> list[Datagram]:
        """Everything queued, emptying the outbox."""
        out = self.datagrams
        self.datagrams = []
        return out


def _passive_tasks(exchange: int) -> list[Task]:
    """The responder tasks that answer a request of ``exchange``."""
    if exchange == _IKE_SA_INIT:
        return [IkeInitResponder()]
    if exchange == _IKE_AUTH:
        return [IkeAuthResponder(), ChildCreateResponder()]
    if exchange == _CREATE_CHILD_SA:
        return [CreateChildSaResponder()]
    return [InformationalResponder()]


class IkeSa:
    """One IKE SA, initiator or responder, with its child SAs' negotiation."""

    # Immutable starting values on the class (an instance assigns its own on change).
    _drops: Counter[DropReason] | None = None
    last_drop_detail = ""
    """The detail of the latest refused datagram (for debug logs; never secret)."""
    _connected = False
    _keepalive_at: float | None = None
    _probe_at: float | None = None
    _half_open_until: float | None = None
    _orphan_at: float | None = None
    """When to delete a collision's redundant SA that the peer did not delete."""

    def __init__(
        self,
        config: IkeConfig,
        *,
        initiator: bool,
        rng: Rng,
        ke_factory: KeyExchangeFactory | None = None,
        spi_allocator: Callable[[], int] | None = None,
    ) -> None:
        """``rng`` supplies every random byte (SPIs, nonces, IVs, DH private values unless
        ``ke_factory`` is given); ``spi_allocator`` reserves inbound child SPIs in the
        dataplane (default: random from ``rng``, above 255 as RFC 4303 reserves)."""
        ctx = SaContext(
            config,
            initiator,
            rng,
            ke_factory or dh.factory(rng),
            spi_allocator or (lambda: random_spi(rng)),
        )
        self._setup(ctx)

    @classmethod
    def _adopt(cls, ctx: SaContext) -> IkeSa:
        """Wrap the context of an IKE SA born from a rekey (already established); tasks
        it must start at once (the Delete of a redundant SA) go out now."""
        sa = cls.__new__(cls)
        sa._setup(ctx)
        sa._connected = True
        sa._orphan_at = ctx.redundant_until
        sa._manager.take_followups()
        sa._manager.initiate(ctx.now)
        sa._arm_timers(ctx.now)
        return sa

    def _setup(self, ctx: SaContext) -> None:
        self._ctx = ctx
        ctx.adopt = IkeSa._adopt
        # The manager gets the outbox's method and a plain function, never a method of
        # this object: an SA and its manager in a reference cycle would wait for the
        # cyclic garbage collector, whose passes cost more than a handshake's codec.
        self._outbox = _Outbox(ctx)
        self._manager = TaskManager(ctx, self._outbox.send, _passive_tasks)
        self._heard_at = ctx.now

    def __repr__(self) -> str:
        role = "initiator" if self._ctx.initiator else "responder"
        return f"IkeSa({role}, {self._ctx.state.value}, {self._ctx.remote_address})"

    # -- introspection ----------------------------------------------------------------
    @property
    def state(self) -> IkeState:
        """The SA's life-cycle state."""
        return self._ctx.state

    @property
    def spi_i(self) -> bytes:
        """The initiator's IKE SPI (empty before the first message)."""
        return self._ctx.spi_i

    @property
    def spi_r(self) -> bytes:
        """The responder's IKE SPI (zero until IKE_SA_INIT completes)."""
        return self._ctx.spi_r

    @property
    def initiator(self) -> bool:
        """True for the original initiator."""
        return self._ctx.initiator

    @property
    def udp_encap(self) -> bool:
        """True when IKE and ESP run over UDP 4500."""
        return self._ctx.udp_encap

    @property
    def children(self) -> tuple[ChildInfo, ...]:
        """The child SA pairs this IKE SA holds now (after a rekey: the successor's)."""
        return tuple(
            ChildInfo(c.name, c.spi_in, c.spi_out, c.protocol, c.state.value)
            for c in self._ctx.children
        )

    # -- commands ---------------------------------------------------------------------
    def connect(
        self, now: float, *, child: str | None = None, trigger: TriggerPacket | None = None
    ) -> None:
        """Start IKE_SA_INIT and IKE_AUTH with the first child (or the one named)."""
        ctx = self._ctx
        if not ctx.initiator or self._connected:
            raise LocalProtocolError("connect() is for a new initiator SA, once")
        if ctx.config.credentials is None and psk_for(ctx, ctx.config.remote_id) is None:
            raise LocalProtocolError(f"no pre-shared key for peer {ctx.remote_address}")
        self._connected = True
        self._manager.queue(IkeInitInitiator(ctx))
        self._manager.queue(IkeAuthInitiator())
        children = ctx.config.children
        if child is not None:
            children = tuple(c for c in children if c.name == child)
            if not children:
                raise LocalProtocolError(f"no child named {child!r}")
        if children:
            self._manager.queue(ChildCreateInitiator(children[0], trigger))
        self._manager.initiate(now)

    def check_liveness(self, now: float) -> None:
        """Send an empty INFORMATIONAL; no answer after the retries fails the SA (2.4)."""
        self._require_established()
        self._start(Liveness(), now)

    def close(self, now: float) -> None:
        """Delete the IKE SA and its children with an INFORMATIONAL Delete (1.4.1)."""
        self._require_established()
        self._start(IkeDelete(), now)

    def create_child(self, now: float, *, child: str, trigger: TriggerPacket | None = None) -> None:
        """Negotiate another child SA (CREATE_CHILD_SA, 1.3.1) for the child named;
        ``ChildSaEstablished`` or ``ChildSaFailed`` follows."""
        self._require_established()
        found = [c for c in self._ctx.config.children if c.name == child]
        if not found:
            raise LocalProtocolError(f"no child named {child!r}")
        self._start(CreateChild(found[0], trigger=trigger), now)

    def rekey_child(self, now: float, spi_in: int) -> None:
        """Rekey the child pair whose inbound SPI is ``spi_in`` (the engine calls this
        at the soft lifetime).  A ``ChildSaEstablished`` with ``rekey_of=spi_in`` brings
        the new pair; the old one is deleted after it (``ChildSaDeleted``).  A failure is
        a ``ChildSaFailed`` and the old pair stays."""
        self._require_established()
        record = self._child(spi_in)
        if record.state is not ChildState.INSTALLED or record.config is None:
            raise LocalProtocolError(f"child SA {spi_in:#x} is {record.state.value}")
        self._start(CreateChild(record.config, rekey=record), now)

    def delete_child(self, now: float, spi_in: int) -> None:
        """Delete the child pair whose inbound SPI is ``spi_in`` (INFORMATIONAL Delete)."""
        self._require_established()
        self._start(ChildDelete(self._child(spi_in)), now)

    def rekey_ike(self, now: float) -> None:
        """Rekey this IKE SA (2.18).  ``IkeSaRekeyed`` brings the successor ``IkeSa``
        (register it), then this SA ends with ``IkeSaDeleted(rekeyed=True)``; a failure
        is ``IkeRekeyFailed`` and this SA stays in use."""
        self._require_established()
        self._start(IkeRekey(), now)

    def report_invalid_spi(self, now: float, spi: int, protocol: int = 3) -> None:
        """Tell the peer that ESP (3) or AH (2) came with an SPI we have no SA for
        (2.21.4); the engine calls this, rate-limited, for SPIs the peer owns."""
        self._require_established()
        self._start(InvalidSpiReport(spi, protocol), now)

    def note_activity(self, now: float) -> None:
        """The dataplane received authentic ESP/AH from the peer: no liveness probe is
        needed before ``now + liveness_interval``."""
        self._heard_at = max(self._heard_at, now)

    def _child(self, spi_in: int) -> ChildRecord:
        record = self._ctx.find_child(spi_in, inbound=True)
        if record is None:
            raise LocalProtocolError(f"no child SA with inbound SPI {spi_in:#x}")
        return record

    def _start(self, task: Task, now: float) -> None:
        self._ctx.now = now
        self._manager.queue(task)
        self._manager.initiate(now)

    def _require_established(self) -> None:
        if self._ctx.state is not _ESTABLISHED:
            raise LocalProtocolError(f"the IKE SA is {self._ctx.state.value}, not established")

    # -- sans-IO contract -------------------------------------------------------------
    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """Feed one UDP payload received from ``addr``."""
        self._ctx.now = now
        if self._half_open_until is None and not self._ctx.initiator and not self._connected:
            self._connected = True
            self._half_open_until = now + self._ctx.config.half_open_timeout
        try:
            self._receive(bytes(data), addr, now)
        except RemoteProtocolError as exc:
            self._drop(exc.reason, exc.detail)
        except (ValueError, IndexError, KeyError, OverflowError) as exc:
            # Defence in depth: the codec converts these, but a peer must never crash us.
            self._drop(DropReason.MALFORMED, type(exc).__name__)
        else:
            self._heard_at = now
        self._arm_timers(now)

    def datagrams_to_send(self, now: float) -> list[Datagram]:
        """Datagrams produced since the last call."""
        return self._outbox.take()

    def get_timer(self) -> float | None:
        """The time at which :meth:`handle_timer` must be called, or ``None``."""
        timers = [
            t
            for t in (
                self._manager.timer(),
                self._keepalive_at,
                self._probe_at,
                self._half_open_until,
                self._orphan_at,
            )
            if t is not None
        ]
        return min(timers) if timers else None

    def handle_timer(self, now: float) -> None:
        """Retransmit or give up, as the schedule says; send a NAT-T keepalive or a
        liveness probe when due."""
        self._ctx.now = now
        self._manager.on_timer(now)
        if self._orphan_at is not None and now >= self._orphan_at:
            self._orphan_at = None
            if self._ctx.state is _ESTABLISHED and not self._manager.active:
                self._start(IkeDelete(), now)
        if self._half_open_until is not None and now >= self._half_open_until:
            self._half_open_until = None
            if self._ctx.state in (_CREATED, _CONNECTING):
                # A responder whose initiator never finished IKE_AUTH (2.6): give it up,
                # so that the engine forgets it and the gate counts it no longer.
                self._ctx.transition(_FAILED)
                self._ctx.push(
                    IkeSaFailed(FailureReason.TIMEOUT, "half-open: IKE_AUTH never completed")
                )
        if self._probe_at is not None and now >= self._probe_at:
            self._probe_at = now + self._ctx.config.liveness_interval
            if now - self._heard_at >= self._ctx.config.liveness_interval and not (
                self._manager.active or self._manager.queued
            ):
                self._start(Liveness(), now)
        if self._keepalive_at is not None and now >= self._keepalive_at:
            ctx = self._ctx
            # One 0xFF byte, no marker, keeps our NAT mapping for port 4500 open.
            self._outbox.datagrams.append(
                Datagram(b"\xff", (ctx.remote_text, ctx.remote_port), ctx.local_port)
            )
            self._keepalive_at = None
        self._arm_timers(now)

    def _arm_timers(self, now: float) -> None:
        ctx = self._ctx
        state, config = ctx.state, ctx.config
        if state is not _ESTABLISHED:
            if state is not _CREATED and state is not _CONNECTING:
                self._half_open_until = None
            self._probe_at = self._keepalive_at = None
            return
        self._half_open_until = None
        live = config.liveness_interval
        if live <= 0:
            self._probe_at = None
        elif self._probe_at is None or self._probe_at < self._heard_at + live:
            self._probe_at = max(now, self._heard_at + live)
        interval = config.keepalive_interval
        if not ctx.nat_local or interval <= 0:
            self._keepalive_at = None
        elif self._keepalive_at is None:
            self._keepalive_at = now + interval

    def next_event(self) -> IkeEvent | None:
        """The next event, or ``None``."""
        return self._ctx.events.popleft() if self._ctx.events else None

    # -- internals --------------------------------------------------------------------
    @property
    def drops(self) -> Counter[DropReason]:
        """Refused datagrams by reason (created on first use: most SAs refuse none)."""
        if self._drops is None:
            self._drops = Counter()
        return self._drops

    def _drop(self, reason: DropReason, detail: str) -> None:
        self.drops[reason] += 1
        self.last_drop_detail = detail

    def _receive(self, data: bytes, addr: Address, now: float) -> None:
        ctx = self._ctx
        natt = data.startswith(NON_ESP_MARKER)
        if natt:
            data = data[4:]
        elif data == b"\xff":
            raise RemoteProtocolError(DropReason.KEEPALIVE, "NAT-T keepalive")
        header = pull_header(data)
        if header.from_initiator == ctx.initiator:
            raise RemoteProtocolError(DropReason.WRONG_ROLE, "initiator flag of our own role")
        self._check_spis(header)
        if header.is_response:
            if header.next_payload == _SKF:
                self._manager.on_fragment(header, data, now, lambda: None)
            else:
                self._manager.on_response(header, data, now)
            self._manager.initiate(now)
            return

        def accepted() -> None:
            # Answer where the request came from and follow NAT mappings (2.11, 2.23).
            ctx.update_remote(addr[0], addr[1])
            if natt:
                ctx.local_port = NATT_PORT

        if header.next_payload == _SKF:
            self._manager.on_fragment(header, data, now, accepted)
        else:
            self._manager.on_request(header, data, now, accepted)
        self._manager.initiate(now)

    def _check_spis(self, header: Header) -> None:
        ctx = self._ctx
        if ctx.spi_i and header.spi_i != ctx.spi_i:
            raise RemoteProtocolError(DropReason.UNKNOWN_SPI, "initiator SPI is not ours")
        if header.exchange == _IKE_SA_INIT:
            if not header.is_response and header.spi_r != _ZERO_SPI:
                raise RemoteProtocolError(
                    DropReason.UNKNOWN_SPI, "IKE_SA_INIT with a responder SPI"
                )
            return
        if header.spi_r != ctx.spi_r or ctx.spi_r == _ZERO_SPI:
            raise RemoteProtocolError(DropReason.UNKNOWN_SPI, "responder SPI is not ours")
        if ctx.state is _CREATED:
            raise RemoteProtocolError(DropReason.STATE, "no IKE SA yet")
