"""The responder's gate for new IKE SAs: cookies and half-open limits (RFC 7296 2.6).

Every IKE_SA_INIT request that would create a responder SA passes through one
:class:`IkeResponderGate` *before* any state or Diffie-Hellman work exists for it (the
engine first routes retransmissions to SAs it already has, by initiator SPI and
address).  The gate answers with a :class:`GateDecision`:

* ``admit``: create the responder :class:`~ipsecconf.ike.sa.IkeSa` and feed it the
  datagram; the SA counts as half-open until the engine calls :meth:`settled` (when the
  SA is established, failed or deleted) or until ``half_open_timeout`` passes;
* ``reply``: send this datagram (an IKE_SA_INIT response carrying only N(COOKIE)) and
  keep nothing: once more than ``cookie_threshold`` SAs are half-open, an initiator must
  prove that it receives at its address by returning the cookie;
* neither: drop (``reason`` says why), e.g. over ``per_peer_limit`` half-open SAs from
  one address.

The cookie is ``<version> | HMAC-SHA-256(secret, Ni | IPi | SPIi)`` truncated to 16
bytes, as section 2.6 suggests; the secret comes from the injected rng and is replaced
every ``secret_lifetime`` seconds, the previous one staying valid for one more period so
that a cookie handed out just before the change still works.  Nothing here raises on
peer data.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections import Counter, deque
from dataclasses import dataclass

from ipsecconf.crypto.dh import Rng
from ipsecconf.ike.constants import NON_ESP_MARKER, ExchangeType, NotifyType
from ipsecconf.ike.errors import DropReason, RemoteProtocolError
from ipsecconf.ike.message import Message, decode, encode, pull_header
from ipsecconf.ike.payloads import NoncePayload, NotifyPayload
from ipsecconf.ike.routing import Address, Datagram

COOKIE_BYTES = 16
SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class GateDecision:
    """What to do with one IKE_SA_INIT request."""

    admit: bool
    reply: Datagram | None = None
    reason: DropReason | None = None
    detail: str = ""


class IkeResponderGate:
    """Decides which IKE_SA_INIT requests may create responder state (sans-IO)."""

    def __init__(
        self,
        rng: Rng,
        *,
        cookie_threshold: int = 50,
        per_peer_limit: int = 10,
        half_open_timeout: float = 30.0,
        secret_lifetime: float = 120.0,
    ) -> None:
        self._rng = rng
        self.cookie_threshold = cookie_threshold
        self.per_peer_limit = per_peer_limit
        self.half_open_timeout = half_open_timeout
        self.secret_lifetime = secret_lifetime
        self._secrets: dict[int, bytes] = {}
        self._version = 0
        self._rotate_at: float | None = None
        self._half_open: dict[bytes, tuple[str, float]] = {}
        self._expiry: deque[tuple[float, bytes]] = deque()
        self._per_host: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        """admitted, cookies-sent, cookie-accepted, bad-cookie, over-peer-limit, malformed."""

    def __repr__(self) -> str:
        return f"IkeResponderGate({len(self._half_open)} half-open)"

    @property
    def half_open(self) -> int:
        """IKE SAs admitted and not yet settled or expired."""
        return len(self._half_open)

    # -- the engine's calls -------------------------------------------------------------
    def check(self, data: bytes, addr: Address, now: float, local_port: int = 500) -> GateDecision:
        """Decide on one datagram that :func:`~ipsecconf.ike.routing.route` calls a new SA."""
        self._expire(now)
        self._maybe_rotate(now)
        try:
            return self._check(data, addr, now, local_port)
        except RemoteProtocolError as exc:
            self.stats["malformed"] += 1
            return GateDecision(False, reason=exc.reason, detail=exc.detail)
        except (ValueError, IndexError, KeyError, OverflowError) as exc:
            self.stats["malformed"] += 1
            return GateDecision(False, reason=DropReason.MALFORMED, detail=type(exc).__name__)

    def settled(self, spi_i: bytes) -> None:
        """The SA with this initiator SPI is no longer half-open (up, failed or gone)."""
        entry = self._half_open.pop(spi_i, None)
        if entry is not None:
            self._release(entry[0])

    # -- internals ----------------------------------------------------------------------
    def _check(self, data: bytes, addr: Address, now: float, local_port: int) -> GateDecision:
        marker = data.startswith(NON_ESP_MARKER)
        raw = data[4:] if marker else data
        header = pull_header(raw)
        if (
            header.exchange != ExchangeType.IKE_SA_INIT
            or header.is_response
            or header.message_id != 0
            or header.spi_r != bytes(8)
        ):
            return GateDecision(False, reason=DropReason.UNEXPECTED_EXCHANGE, detail="not a new SA")
        host = _host(addr[0])
        if self._per_host[host] >= self.per_peer_limit:
            self.stats["over-peer-limit"] += 1
            return GateDecision(
                False, reason=DropReason.STATE, detail=f"{host} has too many half-open IKE SAs"
            )
        if len(self._half_open) >= self.cookie_threshold:
            message = decode(raw, header, None)
            nonce = next((p for p in message.payloads if isinstance(p, NoncePayload)), None)
            if nonce is None:
                raise RemoteProtocolError(DropReason.MISSING_PAYLOAD, "IKE_SA_INIT without Nonce")
            first = message.payloads[0] if message.payloads else None
            offered = (
                first.data
                if isinstance(first, NotifyPayload) and first.type == NotifyType.COOKIE
                else b""
            )
            if not offered or not self._valid(offered, nonce.nonce, host, header.spi_i):
                self.stats["bad-cookie" if offered else "cookies-sent"] += 1
                cookie = self._cookie(self._version, nonce.nonce, host, header.spi_i)
                reply = encode(
                    Message(
                        exchange=ExchangeType.IKE_SA_INIT,
                        message_id=0,
                        spi_i=header.spi_i,
                        spi_r=bytes(8),
                        from_initiator=False,
                        is_response=True,
                        payloads=[NotifyPayload(NotifyType.COOKIE, data=cookie)],
                    ),
                    None,
                )
                reply = NON_ESP_MARKER + reply if marker else reply
                return GateDecision(False, Datagram(reply, addr, local_port), detail="cookie")
            self.stats["cookie-accepted"] += 1
        self._admit(header.spi_i, host, now)
        return GateDecision(True)

    def _admit(self, spi_i: bytes, host: str, now: float) -> None:
        self.settled(spi_i)  # a retried SPI replaces its own entry
        deadline = now + self.half_open_timeout
        self._half_open[spi_i] = (host, deadline)
        self._expiry.append((deadline, spi_i))
        self._per_host[host] += 1
        self.stats["admitted"] += 1

    def _release(self, host: str) -> None:
        self._per_host[host] -= 1
        if self._per_host[host] <= 0:
            del self._per_host[host]

    def _expire(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            deadline, spi = self._expiry.popleft()
            entry = self._half_open.get(spi)
            if entry is not None and entry[1] == deadline:
                del self._half_open[spi]
                self._release(entry[0])

    def _maybe_rotate(self, now: float) -> None:
        if self._rotate_at is not None and now < self._rotate_at:
            return
        self._version = (self._version + 1) % 256
        self._secrets = {v: s for v, s in self._secrets.items() if v == (self._version - 1) % 256}
        self._secrets[self._version] = self._rng(SECRET_BYTES)
        self._rotate_at = now + self.secret_lifetime

    def _cookie(self, version: int, nonce: bytes, host: str, spi_i: bytes) -> bytes:
        secret = self._secrets[version]
        mac = hmac.new(secret, nonce + host.encode() + spi_i, hashlib.sha256).digest()
        return bytes((version,)) + mac[:COOKIE_BYTES]

    def _valid(self, cookie: bytes, nonce: bytes, host: str, spi_i: bytes) -> bool:
        if len(cookie) != 1 + COOKIE_BYTES or cookie[0] not in self._secrets:
            return False
        return hmac.compare_digest(cookie, self._cookie(cookie[0], nonce, host, spi_i))


def _host(text: str) -> str:
    """A canonical address text (so that one host has one counter)."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text
