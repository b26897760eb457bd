"""Key exchange methods for IKEv2: MODP (RFC 2409, 3526), ECP (RFC 5903) and Curve25519 (RFC 8031).

A :class:`KeyExchange` holds one private value and offers the public value for the KE
payload and the shared secret ``g^ir`` for a peer's public value.  The private value is
drawn from an injected ``rng(n) -> bytes`` so that a test can replay an exchange; the
cores never create randomness of their own.  A :data:`KeyExchangeFactory` builds one per
group; the default one is :func:`factory`.

Wire formats (what RFC 7296 section 3.4 and the group RFCs put in the KE payload):

* MODP: the public value ``g^x mod p`` left-padded with zeros to the prime's length; the
  shared secret likewise (RFC 7296 2.14 says it is the full prime length).
* ECP: ``x | y``, each coordinate the field length, no point-format octet; the shared
  secret is the x coordinate only (RFC 5903 section 7 and 9).
* Curve25519: the 32-byte u coordinate (RFC 8031 section 2); an all-zero shared secret is
  refused (RFC 8031 section 2.3).

Peer values are checked (1 < y < p-1 for MODP, on-curve for ECP) and a bad one raises
:class:`KeyExchangeError`, which the IKE core turns into INVALID_SYNTAX.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dh, ec, x25519
from cryptography.utils import CryptographyDeprecationWarning

from ipsecconf.model.algorithms import DH_BY_ID, DhGroup, DhId

Rng = Callable[[int], bytes]
"""The injected randomness: ``rng(n)`` returns ``n`` random bytes."""


class KeyExchangeError(ValueError):
    """A peer's public value is invalid, or the group is unsupported; no key material inside."""


class KeyExchange(Protocol):
    """One side of a key exchange in one group."""

    group: DhGroup

    def public_key(self) -> bytes:
        """The key exchange data for the KE payload."""

    def shared_secret(self, peer_public: bytes) -> bytes:
        """``g^ir`` for the peer's key exchange data; raises :class:`KeyExchangeError`."""


KeyExchangeFactory = Callable[[DhGroup], KeyExchange]
"""Builds a fresh :class:`KeyExchange` for a group (a test may replay or fake it)."""

# The MODP primes: p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + k), with
# generator 2 (RFC 2409 section 6.1/6.2, RFC 3526 sections 2-5).  tests/crypto/test_dh.py
# recomputes each one from that formula and checks it is a safe prime.
MODP_PRIMES: dict[DhId, int] = {
    DhId.MODP768: int(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3620FFFFFFFFFFFFFFFF",
        16,
    ),
    DhId.MODP1024: int(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
        16,
    ),
    DhId.MODP1536: int(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
        "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
        "9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF",
        16,
    ),
    DhId.MODP2048: int(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
        "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
        "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
        "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
        "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF",
        16,
    ),
    DhId.MODP3072: int(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
        "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
        "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
        "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
        "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
        "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
        "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
        "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
        "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
        16,
    ),
    DhId.MODP4096: int(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
        "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
        "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
        "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
        "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
        "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
        "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
        "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
        "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7"
        "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA2583E9CA2AD44CE8"
        "DBBBC2DB04DE8EF92E8EFC141FBECAA6287C59474E6BC05D99B2964FA090C3A2"
        "233BA186515BE7ED1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9"
        "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199FFFFFFFFFFFFFFFF",
        16,
    ),
}

# Private exponent length in bytes: twice the group's symmetric strength, as RFC 3526
# section 8 advises (at least 256 bits).
_MODP_EXPONENT_BYTES: dict[DhId, int] = {
    DhId.MODP768: 32,
    DhId.MODP1024: 32,
    DhId.MODP1536: 32,
    DhId.MODP2048: 32,
    DhId.MODP3072: 48,
    DhId.MODP4096: 64,
}

_CURVES: dict[DhId, ec.EllipticCurve] = {
    DhId.ECP256: ec.SECP256R1(),
    DhId.ECP384: ec.SECP384R1(),
    DhId.ECP521: ec.SECP521R1(),
}

# Field sizes in bits: a scalar is drawn with this many bits and drawn again when it is
# not below the curve order (rejection sampling, FIPS 186-4 B.4.2).
_CURVE_BITS: dict[DhId, int] = {DhId.ECP256: 256, DhId.ECP384: 384, DhId.ECP521: 521}
_MAX_DRAWS = 64


class ModpKeyExchange:
    """Finite-field Diffie-Hellman over a MODP group with generator 2."""

    __slots__ = ("_prime", "_private", "_public", "group")

    def __init__(self, group: DhGroup, rng: Rng) -> None:
        self.group = group
        self._prime = MODP_PRIMES[group.dh_id]
        size = _MODP_EXPONENT_BYTES[group.dh_id]
        exponent = int.from_bytes(rng(size), "big") % (self._prime - 3) + 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            numbers = dh.DHParameterNumbers(self._prime, 2)
            public = pow(2, exponent, self._prime)
            self._private = dh.DHPrivateNumbers(
                exponent, dh.DHPublicNumbers(public, numbers)
            ).private_key()
        self._public = public.to_bytes(group.public_bytes, "big")

    def __repr__(self) -> str:
        return f"ModpKeyExchange({self.group.name})"

    def public_key(self) -> bytes:
        return self._public

    def shared_secret(self, peer_public: bytes) -> bytes:
        if len(peer_public) != self.group.public_bytes:
            raise KeyExchangeError(
                f"{self.group.name} key exchange data must be {self.group.public_bytes} bytes"
            )
        y = int.from_bytes(peer_public, "big")
        if not 1 < y < self._prime - 1:
            raise KeyExchangeError(f"{self.group.name} public value out of range")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            try:
                peer = dh.DHPublicNumbers(y, dh.DHParameterNumbers(self._prime, 2)).public_key()
                secret = self._private.exchange(peer)
            except (ValueError, UnsupportedAlgorithm):
                raise KeyExchangeError(f"{self.group.name} public value refused") from None
        # OpenSSL strips leading zeros; RFC 7296 2.14 wants the full prime length.
        return secret.rjust(self.group.public_bytes, b"\0")


class EcpKeyExchange:
    """Elliptic-curve Diffie-Hellman over a NIST prime curve (RFC 5903)."""

    __slots__ = ("_curve", "_private", "_public", "group")

    def __init__(self, group: DhGroup, rng: Rng) -> None:
        self.group = group
        self._curve = _CURVES[group.dh_id]
        bits = _CURVE_BITS[group.dh_id]
        for _ in range(_MAX_DRAWS):
            scalar = int.from_bytes(rng((bits + 7) // 8), "big") >> (-bits % 8)
            try:
                self._private = ec.derive_private_key(scalar, self._curve)
                break
            except ValueError:
                continue  # zero or not below the order: draw again
        else:
            raise KeyExchangeError(f"{group.name}: the rng gave no usable private value")
        point = self._private.public_key().public_numbers()
        half = group.public_bytes // 2
        self._public = point.x.to_bytes(half, "big") + point.y.to_bytes(half, "big")

    def __repr__(self) -> str:
        return f"EcpKeyExchange({self.group.name})"

    def public_key(self) -> bytes:
        return self._public

    def shared_secret(self, peer_public: bytes) -> bytes:
        if len(peer_public) != self.group.public_bytes:
            raise KeyExchangeError(
                f"{self.group.name} key exchange data must be {self.group.public_bytes} bytes"
            )
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(self._curve, b"\x04" + peer_public)
            secret = self._private.exchange(ec.ECDH(), peer)
        except ValueError:
            raise KeyExchangeError(f"{self.group.name} point is not on the curve") from None
        return secret.rjust(self.group.public_bytes // 2, b"\0")


class Curve25519KeyExchange:
    """X25519 (RFC 7748) as IKEv2 uses it (RFC 8031)."""

    __slots__ = ("_private", "_public", "group")

    def __init__(self, group: DhGroup, rng: Rng) -> None:
        self.group = group
        self._private = x25519.X25519PrivateKey.from_private_bytes(rng(32))
        self._public = self._private.public_key().public_bytes_raw()

    def __repr__(self) -> str:
        return "Curve25519KeyExchange()"

    def public_key(self) -> bytes:
        return self._public

    def shared_secret(self, peer_public: bytes) -> bytes:
        if len(peer_public) != 32:
            raise KeyExchangeError("curve25519 key exchange data must be 32 bytes")
        try:
            peer = x25519.X25519PublicKey.from_public_bytes(peer_public)
            secret = self._private.exchange(peer)
        except ValueError:
            # cryptography refuses an all-zero result, as RFC 8031 2.3 requires.
            raise KeyExchangeError("curve25519 public value refused") from None
        return secret


def supported(group: DhGroup) -> bool:
    """True when :func:`create` can build a key exchange for ``group``."""
    return group.dh_id in MODP_PRIMES or group.dh_id in _CURVES or group.kind == "curve25519"


def create(group: DhGroup, rng: Rng) -> KeyExchange:
    """A fresh key exchange in ``group`` whose private value comes from ``rng``."""
    if group.dh_id in MODP_PRIMES:
        return ModpKeyExchange(group, rng)
    if group.dh_id in _CURVES:
        return EcpKeyExchange(group, rng)
    if group.kind == "curve25519":
        return Curve25519KeyExchange(group, rng)
    raise KeyExchangeError(f"unsupported key exchange method {group.name}")


def factory(rng: Rng) -> KeyExchangeFactory:
    """The default :data:`KeyExchangeFactory`: :func:`create` with ``rng``."""

    def make(group: DhGroup) -> KeyExchange:
        return create(group, rng)

    return make


def group_by_id(dh_id: int) -> DhGroup | None:
    """The group for an IANA transform id, or ``None`` when unknown."""
    try:
        return DH_BY_ID.get(DhId(dh_id))
    except ValueError:
        return None
