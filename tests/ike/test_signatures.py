"""The signature schemes of IKE AUTH (crypto.signatures) and their RFC 7427 identifiers."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ipsecconf.crypto import signatures
from ipsecconf.crypto.signatures import Scheme
from ipsecconf.ike.constants import AuthMethod
from ipsecconf.ike.credentials import Credentials, SignatureAuthenticator, scheme_of_auth
from tests.certgen import issue

RSA = issue("rsa-signer", key_kind="rsa")
EC = issue("ec-signer")


@pytest.mark.parametrize("scheme", [s for s in Scheme if s.is_rsa])
def test_rsa_schemes_round_trip_and_reject_tampering(scheme: Scheme) -> None:
    sig = signatures.sign(RSA.key, scheme, b"octets")  # type: ignore[arg-type]
    assert signatures.verify(RSA.cert, scheme, b"octets", sig)
    assert not signatures.verify(RSA.cert, scheme, b"octetS", sig)
    assert not signatures.verify(EC.cert, scheme, b"octets", sig)


@pytest.mark.parametrize(
    "scheme", [Scheme.ECDSA_SHA256, Scheme.ECDSA_SHA384, Scheme.ECDSA_P256_RAW]
)
def test_ecdsa_schemes_round_trip(scheme: Scheme) -> None:
    sig = signatures.sign(EC.key, scheme, b"octets")  # type: ignore[arg-type]
    if scheme is Scheme.ECDSA_P256_RAW:
        assert len(sig) == 64  # r | s, 32 bytes each (RFC 4754)
    assert signatures.verify(EC.cert, scheme, b"octets", sig)
    assert not signatures.verify(EC.cert, scheme, b"other", sig)


def test_raw_ecdsa_needs_the_matching_curve() -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ValueError, match="secp256r1"):
        signatures.sign(p384, Scheme.ECDSA_P256_RAW, b"x")


def test_rfc7427_identifiers_are_the_published_bytes() -> None:
    # RFC 7427 Appendix A: sha256WithRSAEncryption and ecdsa-with-SHA256.
    assert signatures.algorithm_identifier(Scheme.RSA_PKCS1_SHA256).hex() == (
        "300d06092a864886f70d01010b0500"
    )
    assert signatures.algorithm_identifier(Scheme.ECDSA_SHA256).hex() == "300a06082a8648ce3d040302"
    pss = signatures.algorithm_identifier(Scheme.RSA_PSS_SHA256)
    assert pss.startswith(bytes.fromhex("304106092a864886f70d01010a"))
    for scheme in Scheme:
        if scheme.value.startswith("rsa-pkcs1-sha1") or scheme.value.endswith(
            ("p256", "p384", "p521")
        ):
            continue
        assert signatures.scheme_of_identifier(signatures.algorithm_identifier(scheme)) is scheme
    assert signatures.scheme_of_identifier(b"\x30\x00") is None


@pytest.mark.parametrize(
    ("method", "scheme"),
    [
        (AuthMethod.DIGITAL_SIGNATURE, Scheme.RSA_PSS_SHA256),
        (AuthMethod.DIGITAL_SIGNATURE, Scheme.RSA_PKCS1_SHA256),
        (AuthMethod.RSA_SIGNATURE, Scheme.RSA_PKCS1_SHA1),
    ],
)
def test_auth_payload_names_its_scheme(method: AuthMethod, scheme: Scheme) -> None:
    credentials = Credentials.from_pem(RSA.cert_pem(), RSA.key_pem())
    auth = SignatureAuthenticator(credentials, method, scheme).sign(b"octets")
    assert auth.method == method
    named, sig = scheme_of_auth(auth)
    assert named is scheme and signatures.verify(RSA.cert, scheme, b"octets", sig)
    assert "key" not in repr(SignatureAuthenticator(credentials, method, scheme)).lower()
