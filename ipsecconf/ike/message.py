"""IKE messages: the header, the payload chain, and sealing/opening the SK payload.

RFC 7296 section 3.1 gives the header; section 3.14 the Encrypted payload for CBC
ciphers with an HMAC checksum over the whole message; RFC 5282 the AEAD form, where the
associated data is everything from the IKE header to the end of the SK payload's generic
header and the nonce is ``salt | IV``.  The IV comes from the injected rng.

A message is decoded in two steps so that the IKE SA can check the SPIs and message ID
before it spends work on decryption: :func:`pull_header` then :func:`decode`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ipsecconf.crypto.suites import CryptoError, IntegrityContext, encryption
from ipsecconf.ike.constants import ExchangeType, Flags, PayloadType
from ipsecconf.ike.errors import DropReason, RemoteProtocolError
from ipsecconf.ike.payloads import Payload, SkPayload, pull_chain, push_chain
from ipsecconf.model.algorithms import Cipher, Integrity

HEADER_BYTES = 28
_HEADER = struct.Struct("!8s8sBBBBII")
_GENERIC = struct.Struct("!BBH")  # a payload's generic header
_INITIATOR, _RESPONSE = int(Flags.INITIATOR), int(Flags.RESPONSE)  # plain ints: hot path
MAX_MESSAGE_BYTES = 65535
"""An IKE message never exceeds one UDP datagram (fragmentation is RFC 7383)."""
IKE_VERSION = 0x20
_ZERO_SPI = bytes(8)
_NONE: list[Any] = []  # what find() returns for an absent class (never modified)
_IKE_SA_INIT, _SK = int(ExchangeType.IKE_SA_INIT), int(PayloadType.SK)
T = TypeVar("T")


@dataclass(slots=True)
class Header:
    """The fixed IKE header (not frozen: a frozen dataclass costs a call per field to
    build, and four are built per handshake; nothing changes one after parsing)."""

    spi_i: bytes
    spi_r: bytes
    next_payload: int
    version: int
    exchange: int
    flags: int
    message_id: int
    length: int
    is_response: bool = False
    """The Response flag."""
    from_initiator: bool = False
    """The Initiator flag: sent by the original initiator of the IKE SA."""


def pull_header(data: bytes) -> Header:
    """Parse and check the header; raises :class:`RemoteProtocolError` when unusable."""
    if len(data) < HEADER_BYTES:
        raise RemoteProtocolError(DropReason.TRUNCATED, f"{len(data)} bytes is no IKE header")
    if len(data) > MAX_MESSAGE_BYTES:
        raise RemoteProtocolError(DropReason.TOO_LARGE, f"{len(data)}-byte message")
    spi_i, spi_r, next_payload, version, exchange, flags, message_id, length = _HEADER.unpack_from(
        data
    )
    if version >> 4 != 2:
        raise RemoteProtocolError(DropReason.BAD_VERSION, f"IKE version {version:#x}")
    if length != len(data):
        raise RemoteProtocolError(
            DropReason.BAD_LENGTH, f"header says {length} bytes, datagram has {len(data)}"
        )
    if spi_i == _ZERO_SPI:
        raise RemoteProtocolError(DropReason.UNKNOWN_SPI, "initiator SPI is zero")
    return Header(
        spi_i,
        spi_r,
        next_payload,
        version,
        exchange,
        flags,
        message_id,
        length,
        bool(flags & _RESPONSE),
        bool(flags & _INITIATOR),
    )


@dataclass(slots=True)
class Message:
    """A decoded (or to-be-encoded) IKE message (not frozen, for the same reason as
    :class:`Header`; its payload list was never immutable)."""

    exchange: int
    message_id: int
    spi_i: bytes
    spi_r: bytes
    from_initiator: bool
    is_response: bool
    payloads: list[Payload] = field(default_factory=list)
    encrypted: bool = False
    """True when ``payloads`` were (or are to be) carried inside an SK payload."""
    _index: dict[type, list[Any]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    """The payloads by class, built by the first :meth:`find` (tasks look a message's
    payloads up a dozen times; ``payloads`` must not change after that)."""

    def find(self, kind: type[T]) -> list[T]:
        """All payloads of one class, in order (do not modify the list)."""
        index = self._index
        if index is None:
            index = self._build_index()
        return index.get(kind, _NONE)

    def first(self, kind: type[T]) -> T | None:
        """The first payload of one class, or ``None``."""
        index = self._index
        if index is None:
            index = self._build_index()
        found = index.get(kind)
        return found[0] if found else None

    def _build_index(self) -> dict[type, list[Any]]:
        index: dict[type, list[Any]] = {}
        for p in self.payloads:
            index.setdefault(type(p), []).append(p)
        self._index = index
        return index


class SkCrypto:
    """The SK payload transforms of one IKE SA: our outbound keys and the peer's inbound."""

    __slots__ = ("_enc_in", "_enc_out", "_mac_in", "_mac_out", "_rng", "cipher", "integrity")

    def __init__(
        self,
        cipher: Cipher,
        integrity: Integrity | None,
        *,
        encr_out: bytes,
        encr_in: bytes,
        integ_out: bytes,
        integ_in: bytes,
        rng: Callable[[int], bytes],
    ) -> None:
        self.cipher = cipher
        self.integrity = integrity
        self._enc_out = encryption(cipher, encr_out)
        self._enc_in = encryption(cipher, encr_in)
        self._mac_out = IntegrityContext(integrity, integ_out) if integrity else None
        self._mac_in = IntegrityContext(integrity, integ_in) if integrity else None
        self._rng = rng

    def __repr__(self) -> str:
        return f"SkCrypto({self.cipher.name}, {self.integrity.name if self.integrity else None})"

    @property
    def _icv_bytes(self) -> int:
        return self.integrity.icv_bytes if self.integrity else 0

    def seal(self, prefix: bytes, first_inner: int, inner: bytes, extra: bytes = b"") -> bytes:
        """The SK payload (with generic header) for ``inner``; ``prefix`` is the header
        plus any payloads before SK, with the final length already in the header.
        ``extra`` follows the generic header (an SKF's fragment numbers, RFC 7383 2.5)
        and is authenticated with it."""
        block = 1 if self.cipher.aead else self.cipher.block_bytes
        pad = (-(len(inner) + 1)) % block
        plaintext = inner + bytes(pad) + bytes((pad,))
        iv = self._rng(self.cipher.iv_bytes)
        tag = self.cipher.icv_bytes if self.cipher.aead else self._icv_bytes
        sk_len = 4 + len(extra) + len(iv) + len(plaintext) + tag
        sk_header = bytes((first_inner, 0)) + sk_len.to_bytes(2, "big") + extra
        if self.cipher.aead:
            return sk_header + iv + self._enc_out.encrypt(iv, plaintext, prefix + sk_header)
        body = sk_header + iv + self._enc_out.encrypt(iv, plaintext)
        assert self._mac_out is not None
        return body + self._mac_out.compute(prefix + body)

    def sealed_length(self, inner_length: int) -> int:
        """Bytes :meth:`seal` will produce for an inner chain of ``inner_length`` bytes."""
        block = 1 if self.cipher.aead else self.cipher.block_bytes
        padded = inner_length + 1 + (-(inner_length + 1)) % block
        tag = self.cipher.icv_bytes if self.cipher.aead else self._icv_bytes
        return 4 + self.cipher.iv_bytes + padded + tag

    def open(self, data: bytes, body: bytes, extra: int = 0) -> bytes:
        """The inner payload chain of a message whose last payload is SK with ``body``
        (after ``extra`` header bytes: 4 for an SKF fragment)."""
        sk_start = len(data) - len(body) - 4 - extra
        iv_len = self.cipher.iv_bytes
        try:
            if self.cipher.aead:
                if len(body) < iv_len + self.cipher.icv_bytes + 1:
                    raise RemoteProtocolError(DropReason.INTEGRITY, "SK payload too short")
                iv = body[:iv_len]
                aad = data[: sk_start + 4 + extra]
                plaintext = self._enc_in.decrypt(iv, body[iv_len:], aad)
            else:
                icv = self._icv_bytes
                if len(body) < iv_len + icv + self.cipher.block_bytes:
                    raise RemoteProtocolError(DropReason.INTEGRITY, "SK payload too short")
                assert self._mac_in is not None
                if not self._mac_in.verify(data[:-icv], data[-icv:]):
                    raise RemoteProtocolError(DropReason.INTEGRITY, "SK checksum mismatch")
                ciphertext = body[iv_len:-icv]
                if len(ciphertext) % self.cipher.block_bytes:
                    raise RemoteProtocolError(DropReason.INTEGRITY, "SK data not block-aligned")
                plaintext = self._enc_in.decrypt(body[:iv_len], ciphertext)
        except CryptoError:
            raise RemoteProtocolError(DropReason.INTEGRITY, "SK payload did not verify") from None
        pad = plaintext[-1]
        if pad + 1 > len(plaintext):
            raise RemoteProtocolError(DropReason.INTEGRITY, "SK pad length exceeds the data")
        return plaintext[: -(pad + 1)]


def encode(message: Message, crypto: SkCrypto | None) -> bytes:
    """Serialise ``message``; encrypted messages need ``crypto``."""
    flags = (_INITIATOR if message.from_initiator else 0) | (
        _RESPONSE if message.is_response else 0
    )
    if message.encrypted:
        if crypto is None:
            raise ValueError("an encrypted message needs SK keys")
        first_inner, inner = push_chain(message.payloads)
        length = HEADER_BYTES + crypto.sealed_length(len(inner))
        header = _header(message, PayloadType.SK, int(flags), length)
        return header + crypto.seal(header, first_inner, inner)
    first, chain = push_chain(message.payloads)
    return _header(message, first, int(flags), HEADER_BYTES + len(chain)) + chain


def header_bytes(message: Message, first: int, length: int) -> bytes:
    """The IKE header of ``message`` with Next Payload ``first`` and ``length``."""
    flags = (_INITIATOR if message.from_initiator else 0) | (
        _RESPONSE if message.is_response else 0
    )
    return _header(message, first, flags, length)


def _header(message: Message, first: int, flags: int, length: int) -> bytes:
    return _HEADER.pack(
        message.spi_i,
        message.spi_r,
        first,
        IKE_VERSION,
        message.exchange,
        flags,
        message.message_id,
        length,
    )


def pack_header(
    spi_i: bytes, spi_r: bytes, first: int, exchange: int, flags: int, message_id: int, length: int
) -> bytes:
    """An IKE header from its fields (``flags`` as on the wire)."""
    return _HEADER.pack(spi_i, spi_r, first, IKE_VERSION, exchange, flags, message_id, length)


def decode(data: bytes, header: Header, crypto: SkCrypto | None) -> Message:
    """Decode the payloads of a datagram whose header passed :func:`pull_header`.

    An exchange other than IKE_SA_INIT must be encrypted; without ``crypto`` (keys not
    yet derived) such a message is refused.
    """
    if header.exchange == _IKE_SA_INIT:
        payloads, sk = pull_chain(data[HEADER_BYTES:], header.next_payload)
        if sk is not None:
            raise RemoteProtocolError(DropReason.MALFORMED, "IKE_SA_INIT with an SK payload")
        return _message(header, payloads, False)
    sk = _lone_sk(data, header.next_payload)
    if sk is None:
        payloads, sk = pull_chain(data[HEADER_BYTES:], header.next_payload)
        if sk is None or payloads:
            raise RemoteProtocolError(
                DropReason.MALFORMED, "protected exchange without a lone SK payload"
            )
    if crypto is None:
        raise RemoteProtocolError(DropReason.STATE, "encrypted message before keys exist")
    inner = crypto.open(data, sk.body)
    return _message(header, pull_inner(inner, sk.first_inner, "SK payload"), True)


def pull_inner(inner: bytes, first: int, where: str) -> list[Payload]:
    """The payloads of a decrypted SK body (``where`` names it in errors).  Its errors are
    marked authenticated: the ICV held, so they are the peer's, not an attacker's."""
    try:
        payloads, nested = pull_chain(inner, first)
    except RemoteProtocolError as exc:
        exc.authenticated = True
        raise
    if nested is not None:
        error = RemoteProtocolError(DropReason.MALFORMED, f"SK payload inside {where}")
        error.authenticated = True
        raise error
    return payloads


def _lone_sk(data: bytes, first: int) -> SkPayload | None:
    """The SK payload when it is the only payload and spans the rest of the datagram
    (every well-formed protected message), found without walking a chain; ``None``
    for anything else, which :func:`pull_chain` then checks and reports in full."""
    if first != _SK or len(data) < HEADER_BYTES + 4:
        return None
    next_type, _, length = _GENERIC.unpack_from(data, HEADER_BYTES)
    if length < 4 or HEADER_BYTES + length != len(data):
        return None
    return SkPayload(next_type, data[HEADER_BYTES + 4 :])


def _message(header: Header, payloads: list[Payload], encrypted: bool) -> Message:
    return Message(
        header.exchange,
        header.message_id,
        header.spi_i,
        header.spi_r,
        header.from_initiator,
        header.is_response,
        payloads,
        encrypted,
    )
