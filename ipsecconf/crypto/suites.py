"""Cipher and integrity contexts for ESP, AH and the IKE SK payload, keyed by algorithm.

This is the one place that turns an :mod:`ipsecconf.model.algorithms` entry plus key
material into a working transform.  Callers supply IVs (from their injected RNG); this
module holds no randomness of its own.

* AEAD (AES-GCM-16 per RFC 4106/5282, ChaCha20-Poly1305 per RFC 7634/7634): the key
  material ends with a 4-byte salt; the nonce is ``salt || iv`` (8-byte IV); the output is
  ``ciphertext || 16-byte ICV``.
* CBC (AES per RFC 3602, 3DES/DES per RFC 2451/2405): the output has the same length as the
  block-aligned input.  Single DES is TripleDES with the key repeated (K1=K2=K3), which
  the cryptography library accepts and which is exactly DES.
* HMAC integrity truncated to the ICV length (RFC 2403, 2404, 4868); verification runs in
  constant time.
"""

from __future__ import annotations

import hmac as _hmac
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from ipsecconf.model.algorithms import Cipher, EncrId, Integrity


class CryptoError(ValueError):
    """Bad key length, IV, or an authentication failure; never carries key material."""


class AuthenticationFailed(CryptoError):
    """An AEAD tag or HMAC ICV did not verify."""


class EncryptionContext(Protocol):
    """One direction's cipher: encrypt or decrypt one message with a caller-chosen IV."""

    cipher: Cipher

    def encrypt(self, iv: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
        """Encrypt; AEAD output carries the ICV at the end, CBC input must be aligned."""

    def decrypt(self, iv: bytes, ciphertext: bytes, aad: bytes = b"") -> bytes:
        """Decrypt; AEAD raises :class:`AuthenticationFailed` on a bad ICV."""


class _Aead:
    __slots__ = ("cipher", "_aead", "_salt")

    def __init__(self, cipher: Cipher, key: bytes) -> None:
        self.cipher = cipher
        k, self._salt = key[:-4], key[-4:]
        self._aead: AESGCM | ChaCha20Poly1305 = (
            ChaCha20Poly1305(k) if cipher.encr_id == EncrId.CHACHA20_POLY1305 else AESGCM(k)
        )

    def encrypt(self, iv: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
        return self._aead.encrypt(self._salt + iv, plaintext, aad or None)

    def decrypt(self, iv: bytes, ciphertext: bytes, aad: bytes = b"") -> bytes:
        try:
            return self._aead.decrypt(self._salt + iv, ciphertext, aad or None)
        except InvalidTag:
            raise AuthenticationFailed("ICV check failed") from None


class _Cbc:
    __slots__ = ("cipher", "_algo")

    def __init__(self, cipher: Cipher, key: bytes) -> None:
        self.cipher = cipher
        if cipher.encr_id == EncrId.AES_CBC:
            self._algo: algorithms.AES | TripleDES = algorithms.AES(key)
        elif cipher.encr_id == EncrId.DES3:
            self._algo = TripleDES(key)
        else:
            self._algo = TripleDES(key * 3)

    def _check(self, iv: bytes, data: bytes) -> None:
        if len(iv) != self.cipher.iv_bytes:
            raise CryptoError(f"{self.cipher.title}: IV must be {self.cipher.iv_bytes} bytes")
        if len(data) % self.cipher.block_bytes:
            raise CryptoError(f"{self.cipher.title}: data is not a multiple of the block size")

    def encrypt(self, iv: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
        self._check(iv, plaintext)
        enc = _Cipher(self._algo, modes.CBC(iv)).encryptor()
        return enc.update(plaintext) + enc.finalize()

    def decrypt(self, iv: bytes, ciphertext: bytes, aad: bytes = b"") -> bytes:
        self._check(iv, ciphertext)
        dec = _Cipher(self._algo, modes.CBC(iv)).decryptor()
        return dec.update(ciphertext) + dec.finalize()


class _Null:
    __slots__ = ("cipher",)

    def __init__(self, cipher: Cipher, key: bytes) -> None:
        self.cipher = cipher

    def encrypt(self, iv: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
        return plaintext

    def decrypt(self, iv: bytes, ciphertext: bytes, aad: bytes = b"") -> bytes:
        return ciphertext


def encryption(cipher: Cipher, key: bytes) -> EncryptionContext:
    """A context for ``cipher`` with ``key`` (cipher key plus salt for AEAD)."""
    if len(key) != cipher.key_bytes:
        raise CryptoError(
            f"{cipher.title} needs {cipher.key_bytes} bytes of key material, got {len(key)}"
        )
    if cipher.aead:
        return _Aead(cipher, key)
    if cipher.encr_id == EncrId.NULL:
        return _Null(cipher, key)
    return _Cbc(cipher, key)


class IntegrityContext:
    """HMAC truncated to the algorithm's ICV length."""

    __slots__ = ("integrity", "_key", "_digest")

    def __init__(self, integrity: Integrity, key: bytes) -> None:
        if integrity.icv_bytes == 0:
            raise CryptoError("no integrity context for algorithm none")
        if len(key) != integrity.key_bytes:
            raise CryptoError(
                f"{integrity.title} needs a {integrity.key_bytes}-byte key, got {len(key)}"
            )
        self.integrity = integrity
        self._key = key
        self._digest = integrity.hash_name

    def compute(self, data: bytes) -> bytes:
        """The truncated ICV of ``data``."""
        return _hmac.digest(self._key, data, self._digest)[: self.integrity.icv_bytes]

    def verify(self, data: bytes, icv: bytes) -> bool:
        """Constant-time comparison of ``icv`` with the ICV of ``data``."""
        return _hmac.compare_digest(self.compute(data), icv)
