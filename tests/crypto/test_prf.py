"""prf and prf+ (RFC 7296 2.13) against published HMAC and IKEv2 KDF vectors."""

from __future__ import annotations

import hmac

import pytest

from ipsecconf.crypto.prf import PrfError, prf, prf_plus
from ipsecconf.model.algorithms import PRFS

SHA1 = PRFS["prfsha1"]
SHA256 = PRFS["prfsha256"]


def test_prf_is_hmac_rfc4231_case_1() -> None:
    # RFC 4231 section 4.2, test case 1 (HMAC-SHA-256).
    assert prf(SHA256, b"\x0b" * 20, b"Hi There").hex() == (
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    )


def test_prf_is_hmac_rfc4231_case_2() -> None:
    # RFC 4231 section 4.3, test case 2 (HMAC-SHA-256, key shorter than the block).
    assert prf(SHA256, b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_prf_plus_follows_the_rfc_7296_construction() -> None:
    key, seed = b"k" * 32, b"seed"
    t1 = hmac.digest(key, seed + b"\x01", "sha256")
    t2 = hmac.digest(key, t1 + seed + b"\x02", "sha256")
    t3 = hmac.digest(key, t2 + seed + b"\x03", "sha256")
    assert prf_plus(SHA256, key, seed, 80) == (t1 + t2 + t3)[:80]
    assert prf_plus(SHA256, key, seed, 0) == b""


def test_prf_plus_nist_cavp_ikev2_sha1() -> None:
    # NIST CAVP SP 800-135 IKEv2 KDF vectors (ikev2.zip, SHA-1, first case), as copied in
    # the public test suite of the Rust "kdfs" work citing
    # https://csrc.nist.gov/CSRC/media/Projects/Cryptographic-Algorithm-Validation-Program/
    # documents/components/800-135testvectors/ikev2.zip
    skeyseed = bytes.fromhex("cd2e8050137832245f1dbacc6e4f0a92f94d45d6")
    seed = bytes.fromhex("3651fef5c9c35e93c09a8b90a3f04d598e5c3ae507221684b1f201bb155c3acd")
    t1 = "6f1b12cad3cbe097b35430356d869d54cddb0198"
    t2 = "ec859174d53ceb92dddedbe2436db69f60977c58"
    assert prf_plus(SHA1, skeyseed, seed, 40).hex() == t1 + t2


def test_prf_plus_refuses_more_than_255_blocks() -> None:
    assert len(prf_plus(SHA1, b"k", b"s", 255 * 20)) == 255 * 20
    with pytest.raises(PrfError):
        prf_plus(SHA1, b"k", b"s", 255 * 20 + 1)
