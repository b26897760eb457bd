"""ESP per-SA context: one packet's encryption, ICV and sequence numbers (strongSwan
``esp_context.c`` + ``esp_packet.c``).

Outbound, :meth:`EspContext.seal` allocates the next sequence number (never wrapping: at
2**32 - 1, or 2**64 - 1 with ESN, it raises ``SEQUENCE_EXHAUSTED`` so the SA gets rekeyed),
pads, encrypts and appends the ICV.  AEAD suites use the 64-bit sequence number as the
explicit IV (unique per key, RFC 4106 section 3.1 / RFC 7634 section 2); CBC suites draw a
fresh IV through the chained context (see :mod:`ipsecconf.crypto.transforms`).  The AAD is
``SPI || seq`` or, with ESN, ``SPI || seq_hi || seq_lo`` (RFC 4106 section 5); HMAC covers
``header || IV || ciphertext`` and, with ESN, the high 32 bits appended (RFC 4303 2.2.1).

Inbound, :meth:`EspContext.open` checks the replay window (pure), verifies the ICV in
constant time *before* decrypting, only then moves the window, and finally checks padding
and pad length.  Errors are typed (:mod:`ipsecconf.esp.errors`).
"""

from __future__ import annotations

import struct

from ipsecconf.crypto.suites import AuthenticationFailed
from ipsecconf.crypto.transforms import EspAead, EspCbc, EspCipher, Hmac, Rng, esp_cipher
from ipsecconf.esp.errors import (
    DecodeError,
    DropReason,
    IntegrityError,
    ReplayError,
    SaConfigError,
    SaStateError,
)
from ipsecconf.esp.packet import ESP_HEADER, EspPayload, strip_trailer, trailer
from ipsecconf.esp.replay import REPLAYED, ReplayWindow
from ipsecconf.model.algorithms import Cipher, Integrity

_Q = struct.Struct("!Q")
_HDR_IV = struct.Struct("!IIQ")
_NONCE = struct.Struct("!4sQ")
_I = struct.Struct("!I")
_AAD_ESN = struct.Struct("!III")
_M32 = 0xFFFFFFFF


class EspContext:
    """Crypto state of one ESP SA in one direction."""

    __slots__ = (
        "_aead",
        "_block",
        "_cbc",
        "_cipher",
        "_hmac",
        "_icv",
        "_iv",
        "_rng",
        "aead_decrypt",
        "aead_encrypt",
        "aead_salt",
        "esn",
        "replay",
        "seq",
        "seq_max",
        "spi",
    )

    def __init__(
        self,
        spi: int,
        cipher: Cipher,
        enc_key: bytes,
        integrity: Integrity,
        integ_key: bytes,
        *,
        rng: Rng,
        esn: bool = False,
        replay_window: int = 64,
    ) -> None:
        if cipher.aead and integrity.icv_bytes:
            raise SaConfigError(
                f"{cipher.title} is an AEAD cipher; it takes no integrity algorithm"
            )
        if not cipher.aead and cipher.key_bits == 0 and not integrity.icv_bytes:
            raise SaConfigError("ESP with neither encryption nor integrity protects nothing")
        self.spi = spi
        self.esn = esn
        self._rng = rng
        self._cipher: EspCipher = esp_cipher(cipher, enc_key)
        self._aead = isinstance(self._cipher, EspAead)
        if isinstance(self._cipher, EspAead):
            self.aead_encrypt = self._cipher.encrypt_nonce
            self.aead_decrypt = self._cipher.decrypt_nonce
            self.aead_salt = self._cipher.salt
        self._cbc = isinstance(self._cipher, EspCbc)
        self._hmac = Hmac(integrity, integ_key) if integrity.icv_bytes else None
        self._iv = cipher.iv_bytes
        self._block = cipher.block_bytes
        self._icv = cipher.icv_bytes if cipher.aead else integrity.icv_bytes
        self.seq_max = 0xFFFFFFFFFFFFFFFF if esn else _M32
        self.seq = 0
        """Last sequence number sent (outbound)."""
        self.replay = ReplayWindow(replay_window, esn=esn)
        """The inbound anti-replay window."""

    @property
    def cbc(self) -> EspCbc | None:
        """The CBC cipher, for the CBC fast path (``None`` for AEAD and NULL)."""
        return self._cipher if isinstance(self._cipher, EspCbc) else None

    @property
    def hmac(self) -> Hmac | None:
        """The integrity transform (``None`` for AEAD ciphers)."""
        return self._hmac

    @property
    def rng(self) -> Rng:
        """The injected randomness source (CBC IVs)."""
        return self._rng

    @property
    def overhead(self) -> int:
        """Bytes ESP adds beyond padding: header, IV, trailer and ICV."""
        return 8 + self._iv + 2 + self._icv

    # -- outbound ----------------------------------------------------------------------
    def next_seq(self) -> int:
        """Allocate the next sequence number; raises when the space is exhausted."""
        seq = self.seq + 1
        if seq > self.seq_max:
            raise SaStateError(DropReason.SEQUENCE_EXHAUSTED, "sequence number space exhausted")
        self.seq = seq
        return seq

    def esp_length(self, payload_len: int) -> int:
        """Length of the ESP packet that :meth:`seal` makes of ``payload_len`` bytes."""
        block = 4 if self._aead else self._block
        return 8 + self._iv + payload_len + 2 + (-(payload_len + 2) % block) + self._icv

    def seal(self, payload: bytes, nh: int, prefix: bytes = b"") -> bytes:
        """``prefix`` + the ESP packet (header to ICV) carrying ``payload`` with next header
        ``nh``.  Taking the outer headers as ``prefix`` saves one copy of the packet."""
        seq = self.seq + 1
        if seq > self.seq_max:
            raise SaStateError(DropReason.SEQUENCE_EXHAUSTED, "sequence number space exhausted")
        self.seq = seq
        if self._aead:
            lo = seq & _M32
            hdr = _HDR_IV.pack(self.spi, lo, seq)
            aad = (
                _AAD_ESN.pack(self.spi, seq >> 32, lo)
                if self.esn
                else ESP_HEADER.pack(self.spi, lo)
            )
            sealed = self.aead_encrypt(
                _NONCE.pack(self.aead_salt, seq), payload + trailer(len(payload), 4, nh), aad
            )
            return b"".join((prefix, hdr, sealed))
        hdr = ESP_HEADER.pack(self.spi, seq & _M32)
        ct = self._cipher.encrypt(  # type: ignore[union-attr]
            payload, self._rng, trailer(len(payload), self._block, nh)
        )
        if self._hmac is None:
            return b"".join((prefix, hdr, ct))
        tail = (_I.pack(seq >> 32),) if self.esn else ()
        return b"".join((prefix, hdr, ct, self._hmac.compute(hdr, ct, *tail)))

    def seal_with(self, seq: int, iv: bytes, payload: bytes, nh: int) -> bytes:
        """Seal with a caller-chosen sequence number and IV (known-answer tests only: reusing
        an IV under one key is never safe in production)."""
        hdr = ESP_HEADER.pack(self.spi, seq & _M32)
        if self._aead:
            aad = _AAD_ESN.pack(self.spi, seq >> 32, seq & _M32) if self.esn else hdr
            sealed = self._cipher.seal(  # type: ignore[union-attr]
                iv, payload + trailer(len(payload), 4, nh), aad
            )
            return hdr + iv + sealed
        plain = payload + trailer(len(payload), self._block, nh)
        ct = self._cipher.encrypt_with_iv(iv, plain) if self._cbc else plain  # type: ignore[union-attr]
        body = hdr + (iv if self._cbc else b"") + ct
        if self._hmac is None:
            return body
        tail = (_I.pack(seq >> 32),) if self.esn else ()
        return body + self._hmac.compute(body, *tail)

    # -- inbound -----------------------------------------------------------------------
    def open(self, packet: bytes | memoryview, offset: int = 0) -> tuple[bytes, int, int]:
        """``(payload, next header, sequence number)`` of the ESP packet at ``offset``.

        Order (RFC 4303 section 3.4): replay check, ICV, window update, padding check.
        """
        view = memoryview(packet)
        n = len(view) - offset
        ivl, icv = self._iv, self._icv
        body = n - 8 - ivl - icv
        if body < 2:
            raise DecodeError(DropReason.TRUNCATED, f"ESP packet of {n} bytes is too short")
        if self._cbc and body % self._block:
            raise DecodeError(DropReason.MALFORMED, "ciphertext is not block-aligned")
        spi, seq_low = ESP_HEADER.unpack_from(view, offset)
        seq = self.replay.check(seq_low)
        if seq < 0:
            reason = DropReason.REPLAYED if seq == REPLAYED else DropReason.TOO_OLD
            raise ReplayError(reason, f"sequence number {seq_low} rejected ({reason.value})")
        end = offset + n
        if self._aead:
            aad = _AAD_ESN.pack(spi, seq >> 32, seq_low) if self.esn else view[offset : offset + 8]
            try:
                plain = self._cipher.open(  # type: ignore[union-attr]
                    view[offset + 8 : offset + 16], view[offset + 16 : end], aad
                )
            except AuthenticationFailed:
                raise IntegrityError() from None
        else:
            if self._hmac is not None:
                covered = view[offset : end - icv]
                ok = (
                    self._hmac.verify(view[end - icv : end], covered, _I.pack(seq >> 32))
                    if self.esn
                    else self._hmac.verify(view[end - icv : end], covered)
                )
                if not ok:
                    raise IntegrityError()
            plain = self._cipher.decrypt(view[offset + 8 : end - icv])  # type: ignore[union-attr]
        self.replay.accept(seq)
        plen, nh = strip_trailer(plain)
        return plain[:plen], nh, seq

    def parse(self, packet: bytes | memoryview, offset: int = 0) -> EspPayload:
        """Open a packet and return every field (tests and diagnostics; slower than
        :meth:`open`)."""
        view = memoryview(packet)
        spi, _ = ESP_HEADER.unpack_from(view, offset)
        data, nh, seq = self.open(view, offset)
        icv = bytes(view[len(view) - self._icv :]) if self._icv else b""
        iv = bytes(view[offset + 8 : offset + 8 + self._iv])
        padlen = (len(view) - offset - 8 - self._iv - self._icv) - len(data) - 2
        return EspPayload(spi, seq, iv, data, bytes(range(1, padlen + 1)), padlen, nh, icv)

    def __repr__(self) -> str:
        return f"EspContext(spi=0x{self.spi:08x}, {self._cipher!r}, {self._hmac!r}, seq={self.seq})"
