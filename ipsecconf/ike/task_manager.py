"""Message IDs, the window, retransmission and the response cache (RFC 7296 2.1-2.3).

The window is 1 in each direction: we have at most one request of ours outstanding, and
we answer the peer's requests in order.  Our request is retransmitted after
``timeout * base**n`` seconds (strongSwan's 4 s and 1.8) until ``tries`` retransmissions
have gone unanswered; then the SA fails with ``peer-not-responding``.  A request whose ID
is the last one we answered is a retransmission: the cached response goes out again
unchanged (2.1), provided it is byte for byte the request we answered (a peer
retransmits the same datagram).  An IKE_SA_INIT request that differs from the cached one while no SA
exists yet is a new attempt (after INVALID_KE_PAYLOAD or COOKIE) and is processed.

The manager knows nothing of payload contents: the tasks do.  It needs from the SA a
way to send bytes and a factory of responder tasks per exchange.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from ipsecconf.ike.constants import ExchangeType, Flags, PayloadType
from ipsecconf.ike.context import IkeState, SaContext
from ipsecconf.ike.errors import DropReason, RemoteProtocolError
from ipsecconf.ike.events import FailureReason, IkeSaFailed
from ipsecconf.ike.fragments import Reassembly, encode_fragments
from ipsecconf.ike.message import HEADER_BYTES, Header, Message, decode, encode, pack_header
from ipsecconf.ike.payloads import NotifyPayload, Payload, push_chain
from ipsecconf.ike.tasks.base import Status, Task

Send = Callable[[bytes], None]
PassiveFactory = Callable[[int], list[Task]]

# Enum members as module constants: on Python 3.11 reading one from its class goes
# through EnumType's __getattr__ hook, and the per-message paths here read dozens.
_CREATED = IkeState.CREATED
_CONNECTING = IkeState.CONNECTING
_ESTABLISHED = IkeState.ESTABLISHED
_REKEYED = IkeState.REKEYED
_DELETING = IkeState.DELETING
_DELETED = IkeState.DELETED
_FAILED = IkeState.FAILED
_IKE_SA_INIT = int(ExchangeType.IKE_SA_INIT)
_IKE_AUTH = int(ExchangeType.IKE_AUTH)
_CREATE_CHILD_SA = int(ExchangeType.CREATE_CHILD_SA)
_INFORMATIONAL = int(ExchangeType.INFORMATIONAL)
_TASK_FAILED = Status.FAILED
_INITIATOR_FLAG, _RESPONSE_FLAG = int(Flags.INITIATOR), int(Flags.RESPONSE)
_SK = int(PayloadType.SK)
_ZERO_SPI = bytes(8)
_TASK_NEED_MORE = Status.NEED_MORE


class TaskManager:
    """Runs tasks over exchanges for one IKE SA.

    Attributes whose starting value is an immutable constant are declared on the class
    (as :class:`~ipsecconf.ike.context.SaContext` does): every handshake builds two
    managers, and an instance assigns its own value only when it changes one."""

    _active_mid = 0
    _packets: Sequence[bytes] = ()
    _tries = 0
    _deadline: float | None = None
    my_mid = 0
    peer_mid = 0
    _cached_request = b""
    _cached_response: Sequence[bytes] = ()
    _reassembly: dict[bool, Reassembly] | None = None
    """Fragments being collected, of responses (True) and of requests (False);
    created with the first fragment."""

    def __init__(self, ctx: SaContext, send: Send, passive: PassiveFactory) -> None:
        self.ctx = ctx
        self._send = send
        self._passive = passive
        self.queued: deque[Task] = deque()
        self.active: list[Task] = []

    # -- our requests -----------------------------------------------------------------
    def queue(self, task: Task) -> None:
        """Add a task to initiate; :meth:`initiate` sends it when the window is free."""
        self.queued.append(task)

    def initiate(self, now: float) -> None:
        """Start the next exchange of queued tasks if none is outstanding."""
        if self.active or not self.queued:
            return
        ctx = self.ctx
        if ctx.state is _FAILED or ctx.state is _DELETED:
            self.queued.clear()
            return
        for task in self.queued:
            if task.obsolete(ctx):
                self.queued = deque(t for t in self.queued if not t.obsolete(ctx))
                if not self.queued:
                    return
                break
        exchange = self.queued[0].exchange
        while self.queued and self.queued[0].exchange == exchange:
            self.active.append(self.queued.popleft())
        self._active_mid = self.my_mid
        self._build_and_send(now)

    def _build_and_send(self, now: float) -> None:
        payloads: list[Payload] = []
        for task in self.active:
            payloads += task.build_request(self.ctx)
            if self.ctx.state is _FAILED:
                self._abort()
                return
        exchange = self.active[0].exchange
        ctx = self.ctx
        self._packets = self._encode(
            exchange, self._active_mid, ctx.spi_i, ctx.spi_r, False, payloads
        )
        if exchange == _IKE_SA_INIT:
            self.ctx.init_request = self._packets[0]
        self._tries = 0
        self._deadline = now + self._wait(0)
        for packet in self._packets:
            self._send(packet)

    def _encode(
        self,
        exchange: int,
        message_id: int,
        spi_i: bytes,
        spi_r: bytes,
        response: bool,
        payloads: list[Payload],
    ) -> list[bytes]:
        """The datagrams of a message (encrypted unless IKE_SA_INIT): one, or its RFC
        7383 fragments when both sides support them and it is larger than the
        configured fragment size (then the whole is never sealed)."""
        ctx = self.ctx
        flags = (_INITIATOR_FLAG if ctx.initiator else 0) | (_RESPONSE_FLAG if response else 0)
        if exchange == _IKE_SA_INIT:
            first, chain = push_chain(payloads)
            length = HEADER_BYTES + len(chain)
            return [pack_header(spi_i, spi_r, first, exchange, flags, message_id, length) + chain]
        crypto = ctx.crypto
        if crypto is None:
            raise ValueError("an encrypted message needs SK keys")
        first_inner, inner = push_chain(payloads)
        length = HEADER_BYTES + crypto.sealed_length(len(inner))
        limit = ctx.config.fragment_size
        if ctx.fragmentation and limit and length > limit:
            message = Message(exchange, message_id, spi_i, spi_r, ctx.initiator, response)
            message.payloads, message.encrypted = payloads, True
            return encode_fragments(message, crypto, limit, (first_inner, inner))
        header = pack_header(spi_i, spi_r, _SK, exchange, flags, message_id, length)
        return [header + crypto.seal(header, first_inner, inner)]

    def _wait(self, tries: int) -> float:
        policy = self.ctx.config.retransmit
        wait = policy.timeout * policy.base**tries
        if policy.jitter > 0:
            fraction = int.from_bytes(self.ctx.rng(2), "big") / 65535
            wait -= wait * policy.jitter * fraction
        return wait

    def _abort(self) -> None:
        self.active.clear()
        self.queued.clear()
        self._deadline = None

    def _report(self, notify: int) -> None:
        """Send ``notify`` once in an INFORMATIONAL request; the SA is dead, so nothing
        waits for the answer (RFC 7296 2.21.2)."""
        self.ctx.error_to_report = None
        self.my_mid += 1
        message = Message(
            exchange=_INFORMATIONAL,
            message_id=self.my_mid,
            spi_i=self.ctx.spi_i,
            spi_r=self.ctx.spi_r,
            from_initiator=self.ctx.initiator,
            is_response=False,
            payloads=[NotifyPayload(notify)],
            encrypted=True,
        )
        self._send(encode(message, self.ctx.crypto))

    def timer(self) -> float | None:
        """When :meth:`on_timer` wants to run next."""
        return self._deadline

    def on_timer(self, now: float) -> None:
        """Retransmit the outstanding request, or give up after the last try."""
        if self._deadline is None or now < self._deadline or not self.active:
            return
        if self._tries >= self.ctx.config.retransmit.tries:
            self._abort()
            if self.ctx.state not in (_FAILED, _DELETED):
                self.ctx.transition(_FAILED)
                self.ctx.push(
                    IkeSaFailed(
                        FailureReason.TIMEOUT,
                        f"no answer after {self.ctx.config.retransmit.tries} retransmissions",
                    )
                )
            return
        self._tries += 1
        self._deadline = now + self._wait(self._tries)
        for packet in self._packets:
            self._send(packet)

    def on_fragment(
        self, header: Header, data: bytes, now: float, accepted: Callable[[], None]
    ) -> None:
        """One SKF fragment (RFC 7383): kept until its message is whole, then handled."""
        if header.is_response:
            self._check_response(header)
            message = self._reassembly_of(True).add(data, header, self.ctx.crypto)
            if message is not None:
                self.on_response(header, data, now, message)
            return
        if header.message_id + 1 == self.peer_mid and self._cached_response:
            if data == self._cached_request:  # fragment 1 of a retransmitted request
                for packet in self._cached_response:
                    self._send(packet)
            raise RemoteProtocolError(DropReason.RETRANSMIT, "fragment of an answered request")
        if header.message_id != self.peer_mid:
            raise RemoteProtocolError(
                DropReason.INVALID_MESSAGE_ID,
                f"fragment of request {header.message_id}, expected {self.peer_mid}",
            )
        self._check_exchange(header)
        reassembly = self._reassembly_of(False)
        message = reassembly.add(data, header, self.ctx.crypto)
        if message is not None:
            self.on_request(header, reassembly.first, now, accepted, message)

    def _reassembly_of(self, responses: bool) -> Reassembly:
        if self._reassembly is None:
            self._reassembly = {}
        found = self._reassembly.get(responses)
        if found is None:
            found = self._reassembly[responses] = Reassembly()
        return found

    def _check_response(self, header: Header) -> None:
        if not self.active or header.message_id != self._active_mid:
            raise RemoteProtocolError(DropReason.UNEXPECTED_RESPONSE, "no request with this ID")
        if header.exchange != self.active[0].exchange:
            raise RemoteProtocolError(DropReason.UNEXPECTED_RESPONSE, "wrong exchange type")

    def on_response(
        self, header: Header, data: bytes, now: float, message: Message | None = None
    ) -> None:
        """Process the peer's response to our outstanding request (``message`` when it
        was reassembled from fragments)."""
        self._check_response(header)
        ctx = self.ctx
        init = header.exchange == _IKE_SA_INIT
        if message is None:
            message = decode(data, header, None if init else ctx.crypto)
        if init:
            ctx.init_response = data
        need_more = False
        for task in self.active:
            status = task.process_response(ctx, message)
            if status is _TASK_FAILED:
                self._abort()
                if ctx.error_to_report is not None and not init:
                    self._report(ctx.error_to_report)
                return
            need_more = need_more or status is _TASK_NEED_MORE
        if need_more:
            if not init:  # a retry after INVALID_KE_PAYLOAD is a new exchange: new ID
                self.my_mid += 1
                self._active_mid = self.my_mid
            self._build_and_send(now)
            return
        self.active.clear()
        self._deadline = None
        self.my_mid += 1
        if ctx.followups:
            self.take_followups()
        self.initiate(now)

    def take_followups(self) -> None:
        """Queue the tasks that the tasks just run asked for (the Delete after a rekey)."""
        if self.ctx.followups:
            self.queued.extend(self.ctx.followups)
            self.ctx.followups.clear()

    # -- the peer's requests ----------------------------------------------------------
    def on_request(
        self,
        header: Header,
        data: bytes,
        now: float,
        accepted: Callable[[], None],
        message: Message | None = None,
    ) -> None:
        """Answer the peer's request, or resend the cached answer to a retransmission.

        ``accepted`` runs once the request has decoded (and, when protected, verified),
        before the answer is built: the SA follows the peer's address there (2.23)."""
        init = header.exchange == _IKE_SA_INIT
        if header.message_id + 1 == self.peer_mid and self._cached_response and message is None:
            if data == self._cached_request:
                for packet in self._cached_response:
                    self._send(packet)
                raise RemoteProtocolError(DropReason.RETRANSMIT, "retransmitted request")
            if not (init and self.ctx.state is _CREATED):
                # Peers retransmit byte for byte; anything else reusing the ID is forged
                # or corrupted, and answering it would only amplify.
                raise RemoteProtocolError(
                    DropReason.INVALID_MESSAGE_ID, "request ID already answered, content differs"
                )
            self.peer_mid -= 1  # a new IKE_SA_INIT attempt after our error answer
        if header.message_id != self.peer_mid:
            raise RemoteProtocolError(
                DropReason.INVALID_MESSAGE_ID,
                f"request ID {header.message_id}, expected {self.peer_mid}",
            )
        self._check_exchange(header)
        try:
            if message is None:
                message = decode(data, header, None if init else self.ctx.crypto)
        except RemoteProtocolError as exc:
            if exc.notify is not None and (exc.authenticated or init):
                self._answer(header, data, [NotifyPayload(exc.notify, data=exc.notify_data)])
            raise
        accepted()
        if init:
            self.ctx.init_request = data
        ctx = self.ctx
        ran = self._passive(header.exchange)
        for index, task in enumerate(ran):
            if task.process_request(ctx, message) is _TASK_FAILED:
                del ran[index + 1 :]  # the tasks after a failed one are skipped
                break
        payloads: list[Payload] = []
        for task in ran:
            payloads += task.build_response(ctx)
        response = self._answer(header, data, payloads)
        if init and ctx.state is _CONNECTING:
            ctx.init_response = response
        if ctx.followups:
            self.take_followups()

    def _check_exchange(self, header: Header) -> None:
        state, exchange = self.ctx.state, header.exchange
        if exchange == _IKE_SA_INIT:
            allowed = state is _CREATED and not self.ctx.initiator
        elif exchange == _IKE_AUTH:
            allowed = state is _CONNECTING and not self.ctx.initiator
        elif exchange == _CREATE_CHILD_SA:
            allowed = state is _ESTABLISHED or state is _REKEYED
        elif exchange == _INFORMATIONAL:
            allowed = state is _ESTABLISHED or state is _REKEYED or state is _DELETING
        else:
            allowed = False
        if not allowed:
            raise RemoteProtocolError(
                DropReason.UNEXPECTED_EXCHANGE, f"exchange {header.exchange} in state {state.value}"
            )

    def _answer(self, header: Header, request: bytes, payloads: list[Payload]) -> bytes:
        init = header.exchange == _IKE_SA_INIT
        spi_r = _ZERO_SPI if init and _has_error(payloads) else self.ctx.spi_r
        packets = self._encode(
            header.exchange, header.message_id, header.spi_i, spi_r, True, payloads
        )
        self._cached_request = request
        self._cached_response = packets
        self.peer_mid = header.message_id + 1
        for packet in packets:
            self._send(packet)
        return packets[0]


def _has_error(payloads: list[Payload]) -> bool:
    """True when an error notify (type below 16384) is among ``payloads``: an
    IKE_SA_INIT answer with one creates no SA, so it carries no responder SPI."""
    for p in payloads:  # noqa: SIM110 - a loop: any() of a generator costs a frame here
        if type(p) is NotifyPayload and p.type < 16384:
            return True
    return False
