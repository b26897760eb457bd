"""Key exchange groups: the MODP primes, agreement, replay, and refusal of bad values."""

from __future__ import annotations

import os
import random

import pytest

from ipsecconf.crypto import dh
from ipsecconf.model.algorithms import DH_GROUPS, DhId

# RFC 2409 6.1/6.2 and RFC 3526 2-5: p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + k)
_MODP_K = {
    DhId.MODP768: (768, 149686),
    DhId.MODP1024: (1024, 129093),
    DhId.MODP1536: (1536, 741804),
    DhId.MODP2048: (2048, 124476),
    DhId.MODP3072: (3072, 1690314),
    DhId.MODP4096: (4096, 240904),
}


def _pi_times_2_to(bits: int) -> int:
    """floor(pi * 2^bits) by Machin's formula in integer arithmetic (64 guard bits)."""
    one = 1 << (bits + 64)

    def arctan_inv(x: int) -> int:
        total = term = one // x
        n, sign = 1, -1
        while term:
            term //= x * x
            total += sign * (term // (2 * n + 1))
            sign, n = -sign, n + 1
        return total

    return (4 * (4 * arctan_inv(5) - arctan_inv(239))) >> 64


@pytest.mark.parametrize("dh_id", list(_MODP_K))
def test_modp_prime_matches_the_rfc_formula(dh_id: DhId) -> None:
    n, k = _MODP_K[dh_id]
    expected = 2**n - 2 ** (n - 64) - 1 + 2**64 * (_pi_times_2_to(n - 130) + k)
    assert dh.MODP_PRIMES[dh_id] == expected
    # A Fermat check of p and q = (p-1)/2 with a few bases (safe prime, RFC 3526).
    p = dh.MODP_PRIMES[dh_id]
    for base in (2, 3, 5):
        assert pow(base, p - 1, p) == 1
        q = (p - 1) // 2
        assert pow(base, q - 1, q) == 1


def test_modp2048_known_words() -> None:
    text = f"{dh.MODP_PRIMES[DhId.MODP2048]:X}"
    assert text.startswith("FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1")
    assert text.endswith("15728E5A8AACAA68FFFFFFFFFFFFFFFF")


@pytest.mark.parametrize("name", list(DH_GROUPS))
def test_both_sides_agree(name: str) -> None:
    group = DH_GROUPS[name]
    a = dh.create(group, os.urandom)
    b = dh.create(group, os.urandom)
    assert len(a.public_key()) == group.public_bytes
    secret = a.shared_secret(b.public_key())
    assert secret == b.shared_secret(a.public_key())
    expected = group.public_bytes // 2 if group.kind == "ecp" else group.public_bytes
    assert len(secret) == expected
    assert "secret" not in repr(a).lower() or "KeyExchange" in repr(a)


@pytest.mark.parametrize("name", ["modp2048", "ecp256", "x25519"])
def test_the_injected_rng_replays(name: str) -> None:
    group = DH_GROUPS[name]
    first = dh.create(group, random.Random(7).randbytes).public_key()
    again = dh.create(group, random.Random(7).randbytes).public_key()
    assert first == again


def test_x25519_rfc7748_section_6_1() -> None:
    # RFC 7748 section 6.1 (Alice and Bob).
    alice_private = bytes.fromhex(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
    )
    bob_public = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    alice = dh.create(DH_GROUPS["x25519"], lambda n: alice_private[:n])
    assert alice.public_key().hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    assert alice.shared_secret(bob_public).hex() == (
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    )


def test_bad_peer_values_are_refused() -> None:
    modp = dh.create(DH_GROUPS["modp2048"], os.urandom)
    p = dh.MODP_PRIMES[DhId.MODP2048]
    for y in (0, 1, p - 1, p):
        with pytest.raises(dh.KeyExchangeError):
            modp.shared_secret(y.to_bytes(256, "big"))
    with pytest.raises(dh.KeyExchangeError):
        modp.shared_secret(b"\x02" * 255)
    ecp = dh.create(DH_GROUPS["ecp256"], os.urandom)
    with pytest.raises(dh.KeyExchangeError):
        ecp.shared_secret(b"\x01" * 64)  # not on the curve
    with pytest.raises(dh.KeyExchangeError):
        ecp.shared_secret(b"\x01" * 63)
    x = dh.create(DH_GROUPS["x25519"], os.urandom)
    with pytest.raises(dh.KeyExchangeError):
        x.shared_secret(bytes(32))  # small-order point: all-zero secret (RFC 8031 2.3)


def test_factory_and_lookup() -> None:
    make = dh.factory(os.urandom)
    assert make(DH_GROUPS["ecp384"]).group.name == "ecp384"
    assert dh.group_by_id(31) == DH_GROUPS["x25519"]
    assert dh.group_by_id(9999) is None
    assert all(dh.supported(g) for g in DH_GROUPS.values())
