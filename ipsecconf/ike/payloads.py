"""IKEv2 payloads and the payload chain (RFC 7296 section 3.2 onwards).

Each payload is a dataclass, an immutable value: the rare ones are frozen; the six that
every handshake decodes and builds by the dozen (KE, Nonce, ID, AUTH, Notify, SK) are
not, only because a frozen dataclass costs a call per field to build, which made them a
large share of a handshake's codec time; they are hashable all the same and nothing
changes one once built.  Bodies are parsed by slicing for those, with a
:class:`~ipsecconf.codec.Buffer` for the others (without the 4-byte generic header), and
encoded by one function per class.  The chain functions add and check the generic
headers:

* a payload of a type this codec does not know is skipped unless its critical bit is set,
  in which case the message is refused with UNSUPPORTED_CRITICAL_PAYLOAD carrying the
  type (RFC 7296 section 2.5);
* the Encrypted payload (SK) is always last; its body is returned raw for
  :mod:`ipsecconf.ike.message` to open;
* counts and sizes are limited (:data:`MAX_PAYLOADS`, and per-payload limits in the
  SA/TS modules) so that a peer cannot make the core allocate without bound.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ipsecconf.codec import Buffer, BufferReadError
from ipsecconf.ike.constants import NotifyType, PayloadType
from ipsecconf.ike.errors import DropReason, RemoteProtocolError, malformed
from ipsecconf.ike.payloads_sa import SaPayload, pull_sa, sa_body, sa_from_bytes, sa_wire
from ipsecconf.ike.payloads_ts import TsPayload, pull_ts, ts_body

MAX_PAYLOADS = 64
NONCE_MIN, NONCE_MAX = 16, 256
_GENERIC = struct.Struct("!BBH")
_U16 = struct.Struct("!H")
_TYPE_AND_RESERVED = struct.Struct("!B3x")  # ID type or AUTH method, 3 reserved bytes


@dataclass(slots=True, unsafe_hash=True)
class KePayload:
    """Key Exchange payload (3.4)."""

    group: int
    data: bytes = b""

    def __repr__(self) -> str:
        return f"KePayload(group={self.group}, {len(self.data)} bytes)"


@dataclass(slots=True, unsafe_hash=True)
class NoncePayload:
    """Nonce payload (3.9): 16 to 256 bytes."""

    nonce: bytes


@dataclass(slots=True, unsafe_hash=True)
class IdPayload:
    """IDi (``initiator=True``) or IDr (3.5)."""

    initiator: bool
    id_type: int
    data: bytes

    def rest(self) -> bytes:
        """``RestOfIDPayload``: type, 3 reserved bytes and data (the AUTH input, 2.15)."""
        return _TYPE_AND_RESERVED.pack(self.id_type) + self.data


@dataclass(slots=True, unsafe_hash=True)
class AuthPayload:
    """Authentication payload (3.8)."""

    method: int
    data: bytes = b""

    def __repr__(self) -> str:
        return f"AuthPayload(method={self.method}, {len(self.data)} bytes)"


@dataclass(slots=True, unsafe_hash=True)
class NotifyPayload:
    """Notify payload (3.10): a type, optional protocol and SPI, and data."""

    type: int
    protocol: int = 0
    spi: bytes = b""
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class DeletePayload:
    """Delete payload (3.11): SPIs of one protocol (none for IKE)."""

    protocol: int
    spis: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class VendorIdPayload:
    """Vendor ID payload (3.12)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class CertPayload:
    """Certificate payload (3.6); used by the certificate issue."""

    encoding: int
    data: bytes


@dataclass(frozen=True, slots=True)
class CertReqPayload:
    """Certificate Request payload (3.7)."""

    encoding: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ConfigAttribute:
    """One configuration attribute (3.15.1)."""

    type: int
    value: bytes


@dataclass(frozen=True, slots=True)
class ConfigPayload:
    """Configuration payload (3.15)."""

    cfg_type: int
    attributes: tuple[ConfigAttribute, ...] = ()


@dataclass(frozen=True, slots=True)
class EapPayload:
    """EAP payload (3.16), kept as raw bytes."""

    data: bytes


@dataclass(slots=True, unsafe_hash=True)
class SkPayload:
    """The Encrypted payload before it is opened: first inner type and the raw body."""

    first_inner: int
    body: bytes


Payload = (
    SaPayload
    | KePayload
    | NoncePayload
    | IdPayload
    | AuthPayload
    | NotifyPayload
    | DeletePayload
    | VendorIdPayload
    | TsPayload
    | CertPayload
    | CertReqPayload
    | ConfigPayload
    | EapPayload
)


def _pull_body(ptype: int, body: Buffer) -> Payload:
    if ptype == PayloadType.SA:
        return pull_sa(body)
    if ptype == PayloadType.KE:
        group = body.pull_uint16()
        body.pull_uint16()
        return KePayload(group, body.pull_bytes(body.remaining()))
    if ptype == PayloadType.NONCE:
        nonce = body.pull_bytes(body.remaining())
        if not NONCE_MIN <= len(nonce) <= NONCE_MAX:
            raise malformed(f"nonce of {len(nonce)} bytes")
        return NoncePayload(nonce)
    if ptype in (PayloadType.IDI, PayloadType.IDR):
        id_type = body.pull_uint8()
        body.pull_bytes(3)
        return IdPayload(ptype == PayloadType.IDI, id_type, body.pull_bytes(body.remaining()))
    if ptype == PayloadType.AUTH:
        method = body.pull_uint8()
        body.pull_bytes(3)
        return AuthPayload(method, body.pull_bytes(body.remaining()))
    if ptype == PayloadType.NOTIFY:
        protocol = body.pull_uint8()
        spi_size = body.pull_uint8()
        ntype = body.pull_uint16()
        spi = body.pull_bytes(spi_size)
        return NotifyPayload(ntype, protocol, spi, body.pull_bytes(body.remaining()))
    if ptype == PayloadType.DELETE:
        protocol = body.pull_uint8()
        spi_size = body.pull_uint8()
        count = body.pull_uint16()
        if spi_size * count != body.remaining():
            raise malformed("delete payload SPI count disagrees with its length")
        return DeletePayload(protocol, tuple(body.pull_bytes(spi_size) for _ in range(count)))
    if ptype == PayloadType.VENDOR_ID:
        return VendorIdPayload(body.pull_bytes(body.remaining()))
    if ptype in (PayloadType.TSI, PayloadType.TSR):
        return pull_ts(body, ptype == PayloadType.TSI)
    if ptype in (PayloadType.CERT, PayloadType.CERTREQ):
        encoding = body.pull_uint8()
        data = body.pull_bytes(body.remaining())
        return (CertPayload if ptype == PayloadType.CERT else CertReqPayload)(encoding, data)
    if ptype == PayloadType.CP:
        cfg_type = body.pull_uint8()
        body.pull_bytes(3)
        attrs = []
        while not body.eof():
            atype = body.pull_uint16() & 0x7FFF
            attrs.append(ConfigAttribute(atype, body.pull_bytes(body.pull_uint16())))
        return ConfigPayload(cfg_type, tuple(attrs))
    if ptype == PayloadType.EAP:
        return EapPayload(body.pull_bytes(body.remaining()))
    raise AssertionError(f"no parser for payload type {ptype}")  # pragma: no cover


_KNOWN = frozenset(
    t for t in PayloadType if t not in (PayloadType.NONE, PayloadType.SK, PayloadType.SKF)
)
# Plain ints for the hot paths (an IntEnum attribute lookup costs a call).
_NONE, _SK = int(PayloadType.NONE), int(PayloadType.SK)
_IDI, _IDR = int(PayloadType.IDI), int(PayloadType.IDR)
_TSI, _TSR = int(PayloadType.TSI), int(PayloadType.TSR)
_SA, _KE, _NONCE = int(PayloadType.SA), int(PayloadType.KE), int(PayloadType.NONCE)
_AUTH, _NOTIFY = int(PayloadType.AUTH), int(PayloadType.NOTIFY)


def payload_type(payload: Payload) -> PayloadType:
    """The Next Payload value that announces ``payload``."""
    if isinstance(payload, IdPayload):
        return PayloadType.IDI if payload.initiator else PayloadType.IDR
    if isinstance(payload, TsPayload):
        return PayloadType.TSI if payload.initiator else PayloadType.TSR
    return _TYPES[type(payload)]


_TYPES: dict[type, PayloadType] = {
    SaPayload: PayloadType.SA,
    KePayload: PayloadType.KE,
    NoncePayload: PayloadType.NONCE,
    AuthPayload: PayloadType.AUTH,
    NotifyPayload: PayloadType.NOTIFY,
    DeletePayload: PayloadType.DELETE,
    VendorIdPayload: PayloadType.VENDOR_ID,
    CertPayload: PayloadType.CERT,
    CertReqPayload: PayloadType.CERTREQ,
    ConfigPayload: PayloadType.CP,
    EapPayload: PayloadType.EAP,
}


# -- encoding: one function per payload class, giving (type, body) ---------------------
def _enc_sa(p: SaPayload) -> tuple[int, bytes]:
    # A child SA's offer or answer carries a fresh SPI: a new object, sent once, not
    # memoised; IKE SA offers and answers (no SPI) are shared values, encoded once.
    proposals = p.proposals
    if proposals and proposals[0].spi:
        return _SA, sa_wire(p)
    return _SA, sa_body(p)


def _enc_ke(p: KePayload) -> tuple[int, bytes]:
    return _KE, _U16.pack(p.group) + b"\0\0" + p.data


def _enc_nonce(p: NoncePayload) -> tuple[int, bytes]:
    return _NONCE, p.nonce


def _enc_id(p: IdPayload) -> tuple[int, bytes]:
    return (_IDI if p.initiator else _IDR), _TYPE_AND_RESERVED.pack(p.id_type) + p.data


def _enc_auth(p: AuthPayload) -> tuple[int, bytes]:
    return _AUTH, _TYPE_AND_RESERVED.pack(p.method) + p.data


def _enc_notify(p: NotifyPayload) -> tuple[int, bytes]:
    return _NOTIFY, _GENERIC.pack(p.protocol, len(p.spi), p.type) + p.spi + p.data


def _enc_delete(p: DeletePayload) -> tuple[int, bytes]:
    buf = Buffer()
    buf.push_uint8(p.protocol)
    buf.push_uint8(len(p.spis[0]) if p.spis else 0)
    buf.push_uint16(len(p.spis))
    for spi in p.spis:
        buf.push_bytes(spi)
    return PayloadType.DELETE, buf.data()


def _enc_ts(p: TsPayload) -> tuple[int, bytes]:
    return (_TSI if p.initiator else _TSR), ts_body(p)


def _enc_cert(p: CertPayload | CertReqPayload) -> tuple[int, bytes]:
    return _TYPES[type(p)], bytes((p.encoding,)) + p.data


def _enc_config(p: ConfigPayload) -> tuple[int, bytes]:
    buf = Buffer()
    buf.push_bytes(bytes((p.cfg_type, 0, 0, 0)))
    for attr in p.attributes:
        buf.push_uint16(attr.type)
        buf.push_uint16(len(attr.value))
        buf.push_bytes(attr.value)
    return PayloadType.CP, buf.data()


def _enc_raw(p: VendorIdPayload | EapPayload) -> tuple[int, bytes]:
    return _TYPES[type(p)], p.data


_ENCODERS: dict[type, Callable[[Any], tuple[int, bytes]]] = {
    SaPayload: _enc_sa,
    KePayload: _enc_ke,
    NoncePayload: _enc_nonce,
    IdPayload: _enc_id,
    AuthPayload: _enc_auth,
    NotifyPayload: _enc_notify,
    DeletePayload: _enc_delete,
    TsPayload: _enc_ts,
    CertPayload: _enc_cert,
    CertReqPayload: _enc_cert,
    ConfigPayload: _enc_config,
    VendorIdPayload: _enc_raw,
    EapPayload: _enc_raw,
}


def _encode(payload: Payload) -> tuple[int, bytes]:
    encoder = _ENCODERS.get(type(payload))
    if encoder is None:
        raise TypeError(f"no serialiser for {type(payload).__name__}")
    return encoder(payload)


def push_body(buf: Buffer, payload: Payload) -> None:
    """Serialise one payload body (no generic header)."""
    buf.push_bytes(_encode(payload)[1])


# -- decoding --------------------------------------------------------------------------
# The payloads of every handshake are parsed by slicing (the codec's hot path); a parser
# returns ``None`` to hand a short body to the Buffer parser, which reports it.
def _dec_nonce(ptype: int, body: bytes) -> Payload | None:
    if not NONCE_MIN <= len(body) <= NONCE_MAX:
        raise malformed(f"nonce of {len(body)} bytes")
    return NoncePayload(body)


def _dec_notify(ptype: int, body: bytes) -> Payload | None:
    if len(body) == 4:
        # A bare status notify (FRAGMENTATION_SUPPORTED, USE_TRANSPORT_MODE, ...): one
        # shared value per distinct body (a few dozen types exist).
        known = _BARE_NOTIFIES.get(body)
        if known is None:
            protocol, spi_size, ntype = _GENERIC.unpack_from(body)
            if spi_size:
                return None
            known = NotifyPayload(ntype, protocol)
            if len(_BARE_NOTIFIES) < 256:
                _BARE_NOTIFIES[body] = known
        return known
    if len(body) < 4:
        return None
    protocol, spi_size, ntype = _GENERIC.unpack_from(body)
    if 4 + spi_size > len(body):
        return None
    return NotifyPayload(ntype, protocol, body[4 : 4 + spi_size], body[4 + spi_size :])


def _dec_ke(ptype: int, body: bytes) -> Payload | None:
    return KePayload(_U16.unpack_from(body)[0], body[4:]) if len(body) >= 4 else None


def _dec_id(ptype: int, body: bytes) -> Payload | None:
    return IdPayload(ptype == _IDI, body[0], body[4:]) if len(body) >= 4 else None


def _dec_auth(ptype: int, body: bytes) -> Payload | None:
    return AuthPayload(body[0], body[4:]) if len(body) >= 4 else None


def _dec_sa(ptype: int, body: bytes) -> Payload | None:
    # An IKE_SA_INIT offer (no SPIs) repeats byte for byte in every handshake: parsed
    # once; a child offer carries a fresh SPI, so caching it would only evict.
    if len(body) > 6 and body[6] == 0:
        return _pull_buffered(_SA, body)
    return sa_from_bytes(body)


_BARE_NOTIFIES: dict[bytes, NotifyPayload] = {}


@functools.lru_cache(maxsize=256)
def _pull_buffered(ptype: int, body: bytes) -> Payload:
    # Cached by the raw bytes: payloads are immutable, and peers send the same SA and TS
    # payloads in every handshake (a miss costs nothing more than the parse itself).
    inner = Buffer(body)
    payload = _pull_body(ptype, inner)
    if not inner.eof():
        raise malformed(f"payload {ptype} has trailing data")
    return payload


# Every known type's parser: the slicing ones above, the Buffer parser for the others.
_DECODERS: dict[int, Callable[[int, bytes], Payload | None]] = {t: _pull_buffered for t in _KNOWN}
_DECODERS.update(
    {
        PayloadType.NONCE: _dec_nonce,
        PayloadType.NOTIFY: _dec_notify,
        PayloadType.KE: _dec_ke,
        PayloadType.IDI: _dec_id,
        PayloadType.IDR: _dec_id,
        PayloadType.AUTH: _dec_auth,
        PayloadType.SA: _dec_sa,
    }
)
_PAYLOAD_SLOTS = range(MAX_PAYLOADS)


def pull_chain(data: bytes, first: int) -> tuple[list[Payload], SkPayload | None]:
    """Parse a payload chain starting with type ``first``; an SK payload ends it.

    Raises :class:`RemoteProtocolError` for malformed data and for an unknown critical
    payload (with UNSUPPORTED_CRITICAL_PAYLOAD and the type as notification data).
    """
    data = bytes(data)
    payloads: list[Payload] = []
    append = payloads.append
    ptype, pos, end = first, 0, len(data)
    unpack, decoders = _GENERIC.unpack_from, _DECODERS
    try:
        for _ in _PAYLOAD_SLOTS:
            if ptype == _NONE:
                break
            # struct.error when fewer than 4 bytes are left: no generic header.
            next_type, flags, length = unpack(data, pos)
            stop = pos + length
            if length < 4 or stop > end:
                raise RemoteProtocolError(
                    DropReason.BAD_LENGTH, f"payload {ptype} length {length} at offset {pos}"
                )
            decoder = decoders.get(ptype)
            if decoder is not None:
                body = data[pos + 4 : stop]
                payload = decoder(ptype, body)
                # A slicing parser hands a short body to the Buffer parser, which reports it.
                append(payload if payload is not None else _pull_buffered(ptype, body))
            elif ptype == _SK:
                if stop != end:
                    raise malformed("data after the encrypted payload")
                return payloads, SkPayload(next_type, data[pos + 4 : stop])
            elif flags & 0x80:
                raise RemoteProtocolError(
                    DropReason.UNSUPPORTED_CRITICAL,
                    f"unknown critical payload type {ptype}",
                    notify=NotifyType.UNSUPPORTED_CRITICAL_PAYLOAD,
                    notify_data=bytes((ptype & 0xFF,)),
                )
            pos, ptype = stop, next_type
        else:
            if ptype != _NONE:
                raise RemoteProtocolError(DropReason.TOO_LARGE, "too many payloads")
    except struct.error:
        raise RemoteProtocolError(
            DropReason.TRUNCATED, f"payload chain: no generic header at offset {pos}"
        ) from None
    except BufferReadError as exc:
        raise RemoteProtocolError(DropReason.TRUNCATED, f"payload chain: {exc}") from None
    if pos != end:
        raise malformed("data after the last payload")
    return payloads, None


def push_chain(payloads: list[Payload], trailer: int = _NONE) -> tuple[int, bytes]:
    """Serialise ``payloads`` with generic headers; returns (first type, bytes).

    ``trailer`` is the Next Payload of the last one (SK when an Encrypted payload follows).
    """
    # One pass from the last payload back: each generic header names the type of the
    # payload after it, which is then already known.
    encoders, pack = _ENCODERS, _GENERIC.pack
    parts: list[bytes] = []
    next_type = trailer
    try:
        for payload in reversed(payloads):
            ptype, raw = encoders[type(payload)](payload)
            parts += (raw, pack(next_type, 0, 4 + len(raw)))
            next_type = ptype
    except KeyError as exc:
        raise TypeError(f"no serialiser for {exc}") from None
    parts.reverse()
    return next_type, b"".join(parts)
