"""Sealing secrets at rest: AES-256-GCM under a key derived from a key-encryption key.

The state store keeps the secrets the engine needs after a reboot (PSKs, the node's
private key, manual SA keys).  When the operator supplies a key-encryption key (KEK), the
store seals each value with it.  The KEK itself is never stored: a key kept next to the
database would protect nothing.  The randomness for nonces is passed in, as everywhere in
this layer, so the caller decides where it comes from.

Blob layout: ``b"S1" || nonce (12 bytes) || ciphertext || tag (16 bytes)``; the address of
the secret is the associated data, so a sealed value cannot be moved to another resource.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"S1"
NONCE_BYTES = 12


class SealError(ValueError):
    """A sealed value does not open (wrong key or tampered data); never holds key bytes."""


def derive_key(material: bytes, salt: bytes) -> bytes:
    """A 256-bit sealing key from operator-supplied KEK material and the store's salt."""
    if not material:
        raise SealError("the key-encryption key is empty")
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"ipsecconf kek v1")
    return hkdf.derive(material)


def seal(key: bytes, plaintext: bytes, aad: bytes, nonce: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` bound to ``aad``."""
    if len(nonce) != NONCE_BYTES:
        raise SealError(f"a sealing nonce is {NONCE_BYTES} bytes")
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`seal`; :class:`SealError` when the key or the data is wrong."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + NONCE_BYTES + 16:
        raise SealError("not a sealed value")
    nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES :], aad)
    except InvalidTag:
        raise SealError("the sealed value does not open with this key") from None
