"""The IKEv2 pseudorandom functions: ``prf`` and ``prf+`` (RFC 7296 section 2.13).

Every IKEv2 PRF this product negotiates is an HMAC (RFC 2104) over the hash the
:class:`~ipsecconf.model.algorithms.Prf` names, so ``prf(K, S)`` is ``HMAC-hash(K, S)``
with a key of any length.  ``prf+`` expands it:

    prf+ (K,S) = T1 | T2 | T3 | ...
    T1 = prf (K, S | 0x01),  Tn = prf (K, Tn-1 | S | n)

The counter is one octet, so at most 255 blocks may be produced; asking for more is a
local error (RFC 7296 2.13 says the function is undefined beyond that).
"""

from __future__ import annotations

import hmac

from ipsecconf.model.algorithms import Prf


class PrfError(ValueError):
    """More key material was asked of prf+ than 255 blocks allow."""


def prf(algorithm: Prf, key: bytes, data: bytes) -> bytes:
    """``prf(key, data)``: the full HMAC output of the PRF's hash."""
    return hmac.digest(key, data, algorithm.hash_name)


def prf_plus(algorithm: Prf, key: bytes, seed: bytes, length: int) -> bytes:
    """``prf+(key, seed)`` truncated to ``length`` bytes."""
    if length < 0:
        raise PrfError("prf+ length must not be negative")
    blocks = -(-length // algorithm.output_bytes)
    if blocks > 255:
        raise PrfError(f"prf+ can produce at most 255 blocks, {blocks} were asked")
    out = bytearray()
    previous = b""
    for counter in range(1, blocks + 1):
        previous = hmac.digest(key, previous + seed + bytes((counter,)), algorithm.hash_name)
        out += previous
    return bytes(out[:length])
