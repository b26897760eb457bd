"""Per-packet ESP/AH transforms: the hot path of the user-space dataplane.

:mod:`ipsecconf.crypto.suites` serves IKE's SK payload, where one message at a time and a
fresh context per call are fine.  ESP runs per packet, so this module keeps every
``cryptography`` object alive for the life of the SA and avoids per-packet setup:

* AEAD (AES-GCM-16 per RFC 4106, ChaCha20-Poly1305 per RFC 7634): the key material ends
  with a 4-byte salt, the nonce is ``salt || iv`` with an 8-byte explicit IV, the output
  ``ciphertext || 16-byte ICV``.  The caller chooses the IV (ESP uses the 64-bit sequence
  number, which never repeats under one key, as RFC 4106 section 3.1 permits).
* CBC (AES per RFC 3602, 3DES per RFC 2451, DES per RFC 2405 as TripleDES with the key
  repeated): one encryptor and one decryptor are reused for the whole SA, chained the only
  safe way (DESIGN.md, "Algorithms"): to encrypt, a fresh random block from the injected RNG
  is fed first and its ciphertext becomes the packet's IV; to decrypt, the IV is fed first
  and the first output block is dropped.  The previous packet's last block is never the IV.
* HMAC integrity (RFC 2403, 2404, 4868) truncated to the ICV length, from a keyed HMAC
  context copied per packet; verification is constant time.

Nothing here holds randomness of its own: CBC encryption takes an ``rng(n) -> bytes``.
"""

from __future__ import annotations

import hmac as _hmac
from collections.abc import Callable
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as _chmac
from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ipsecconf.crypto.suites import AuthenticationFailed, CryptoError
from ipsecconf.model.algorithms import Cipher, EncrId, Integrity

Rng = Callable[[int], bytes]
"""The injected randomness source: ``rng(n)`` returns ``n`` unpredictable bytes."""

Buf = bytes | bytearray | memoryview

AeadTagError: Final = InvalidTag
"""What :attr:`EspAead.decrypt_nonce` raises when the ICV does not verify (the hot path
calls the library directly; :meth:`EspAead.open` turns it into AuthenticationFailed)."""

_HASHES: Final[dict[str, Callable[[], hashes.HashAlgorithm]]] = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class EspAead:
    """An AEAD cipher bound to one SA's key and salt (RFC 4106 / RFC 7634)."""

    __slots__ = ("_aead", "_salt", "cipher", "decrypt_nonce", "encrypt_nonce", "salt")

    aead: Final = True

    def __init__(self, cipher: Cipher, key: bytes) -> None:
        if not cipher.aead:
            raise CryptoError(f"{cipher.title} is not an AEAD cipher")
        _check_key(cipher, key)
        self.cipher = cipher
        k, self._salt = key[:-4], key[-4:]
        self._aead: AESGCM | ChaCha20Poly1305 = (
            ChaCha20Poly1305(k) if cipher.encr_id == EncrId.CHACHA20_POLY1305 else AESGCM(k)
        )
        # The hot path calls the library directly with a full 12-byte nonce built in one
        # struct.pack(salt, seq): one Python call less per packet than seal().
        self.encrypt_nonce: Callable[[Buf, Buf, Buf], bytes] = self._aead.encrypt
        self.decrypt_nonce: Callable[[Buf, Buf, Buf], bytes] = self._aead.decrypt
        """The plaintext of ``ciphertext || ICV`` under a full 12-byte nonce; raises
        :data:`AeadTagError` when the ICV does not verify."""
        self.salt = self._salt

    def seal(self, iv: bytes, plaintext: Buf, aad: Buf) -> bytes:
        """``ciphertext || ICV`` of ``plaintext`` under nonce ``salt || iv``."""
        return self._aead.encrypt(self._salt + iv, plaintext, aad)

    def open(self, iv: Buf, ciphertext: Buf, aad: Buf) -> bytes:
        """The plaintext; raises :class:`AuthenticationFailed` when the ICV does not verify."""
        try:
            return self._aead.decrypt(self._salt + bytes(iv), ciphertext, aad)
        except InvalidTag:
            raise AuthenticationFailed("ICV check failed") from None

    def __repr__(self) -> str:
        return f"EspAead({self.cipher.title})"


class EspCbc:
    """A CBC block cipher with chained, reused contexts (see the module docstring)."""

    __slots__ = ("_algo", "_dec", "_enc", "_pool", "_pool_pos", "block", "cipher")

    aead: Final = False
    POOL_BLOCKS: Final = 64
    """Random blocks drawn from the RNG per call: one ``rng()`` call per 64 packets."""

    def __init__(self, cipher: Cipher, key: bytes) -> None:
        _check_key(cipher, key)
        self.cipher = cipher
        self.block = cipher.block_bytes
        if cipher.encr_id == EncrId.AES_CBC:
            self._algo: algorithms.AES | TripleDES = algorithms.AES(key)
        elif cipher.encr_id == EncrId.DES3:
            self._algo = TripleDES(key)
        elif cipher.encr_id == EncrId.DES:
            self._algo = TripleDES(key * 3)
        else:
            raise CryptoError(f"{cipher.title} is not a CBC cipher")
        zero = bytes(self.block)
        # The initial chaining value is irrelevant: the first block fed is always random
        # (encrypt) or the packet's own IV (decrypt), and its output is the IV or dropped.
        self._enc = _Cipher(self._algo, modes.CBC(zero)).encryptor()
        self._dec = _Cipher(self._algo, modes.CBC(zero)).decryptor()
        self._pool = b""
        self._pool_pos = 0

    def encrypt(self, plaintext: Buf, rng: Rng, tail: bytes = b"") -> bytes:
        """``IV || ciphertext`` of ``plaintext || tail`` with a fresh unpredictable IV; the
        input must be block-aligned.  Each packet consumes one fresh random block, never
        reused; they are drawn from ``rng`` 64 at a time (one call instead of 64)."""
        b = self.block
        if (len(plaintext) + len(tail)) % b:
            raise CryptoError(f"{self.cipher.title}: data is not a multiple of the block size")
        i = self._pool_pos
        if i >= len(self._pool):
            self._pool = rng(b * self.POOL_BLOCKS)
            i = 0
        self._pool_pos = i + b
        return self._enc.update(b"".join((self._pool[i : i + b], plaintext, tail)))

    def decrypt(self, iv_and_ciphertext: Buf) -> bytes:
        """The plaintext of ``IV || ciphertext`` (the IV block's own output is dropped)."""
        if len(iv_and_ciphertext) % self.block or len(iv_and_ciphertext) < self.block:
            raise CryptoError(f"{self.cipher.title}: data is not a multiple of the block size")
        return self._dec.update(iv_and_ciphertext)[self.block :]

    def encrypt_with_iv(self, iv: bytes, plaintext: Buf) -> bytes:
        """Encrypt with a caller-given IV (known-answer tests); a fresh context, no chaining."""
        if len(iv) != self.block or len(plaintext) % self.block:
            raise CryptoError(f"{self.cipher.title}: bad IV or unaligned data")
        enc = _Cipher(self._algo, modes.CBC(iv)).encryptor()
        return enc.update(plaintext) + enc.finalize()

    def __repr__(self) -> str:
        return f"EspCbc({self.cipher.title})"


class EspNull:
    """ENCR_NULL (RFC 2410): no IV, no confidentiality; integrity must come from HMAC."""

    __slots__ = ("cipher",)

    aead: Final = False
    block: Final = 4

    def __init__(self, cipher: Cipher, key: bytes) -> None:
        _check_key(cipher, key)
        self.cipher = cipher

    def encrypt(self, plaintext: Buf, rng: Rng, tail: bytes = b"") -> bytes:
        """The plaintext itself."""
        return bytes(plaintext) + tail

    def decrypt(self, iv_and_ciphertext: Buf) -> bytes:
        """The data itself."""
        return bytes(iv_and_ciphertext)

    def __repr__(self) -> str:
        return "EspNull()"


class Hmac:
    """Truncated HMAC with a keyed context copied per packet (faster than re-keying)."""

    __slots__ = ("_ctx", "icv_bytes", "integrity", "keyed")

    def __init__(self, integrity: Integrity, key: bytes) -> None:
        if integrity.icv_bytes == 0:
            raise CryptoError("no integrity transform for algorithm none")
        if len(key) != integrity.key_bytes:
            raise CryptoError(
                f"{integrity.title} needs a {integrity.key_bytes}-byte key, got {len(key)}"
            )
        self.integrity = integrity
        self.icv_bytes = integrity.icv_bytes
        self._ctx = _chmac.HMAC(key, _HASHES[integrity.hash_name]())
        self.keyed: Callable[[], _chmac.HMAC] = self._ctx.copy
        """A fresh copy of the keyed context (update, then finalize and truncate)."""

    def compute1(self, data: Buf) -> bytes:
        """The truncated ICV over ``data`` (the one-part hot path)."""
        ctx = self._ctx.copy()
        ctx.update(data)
        return ctx.finalize()[: self.icv_bytes]

    def compute(self, *parts: Buf) -> bytes:
        """The truncated ICV over the concatenation of ``parts``."""
        ctx = self._ctx.copy()
        for part in parts:
            ctx.update(part)
        return ctx.finalize()[: self.icv_bytes]

    def verify(self, icv: Buf, *parts: Buf) -> bool:
        """Constant-time check of ``icv`` against the ICV over ``parts``."""
        return _hmac.compare_digest(self.compute(*parts), bytes(icv))

    def __repr__(self) -> str:
        return f"Hmac({self.integrity.title})"


EspCipher = EspAead | EspCbc | EspNull


def esp_cipher(cipher: Cipher, key: bytes) -> EspCipher:
    """The per-SA cipher object for ``cipher`` with ``key`` (cipher key plus salt for AEAD)."""
    if cipher.aead:
        return EspAead(cipher, key)
    if cipher.encr_id == EncrId.NULL:
        return EspNull(cipher, key)
    return EspCbc(cipher, key)


def _check_key(cipher: Cipher, key: bytes) -> None:
    if len(key) != cipher.key_bytes:
        raise CryptoError(
            f"{cipher.title} needs {cipher.key_bytes} bytes of key material, got {len(key)}"
        )
