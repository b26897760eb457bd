"""Signatures for IKE authentication: RSA (PKCS#1 v1.5 and PSS) and ECDSA.

IKE signs with three families of AUTH methods and this module gives each its bytes:

* method 1, "RSA Digital Signature" (RFC 7296 3.8): RSASSA-PKCS1-v1_5 with SHA-1, the
  classic form every IKEv2 peer speaks;
* methods 9, 10, 11 (RFC 4754): ECDSA on P-256/P-384/P-521 with SHA-256/384/512, the
  signature being ``r | s`` as fixed-size integers;
* method 14, "Digital Signature" (RFC 7427): the AUTH data starts with the length of an
  ASN.1 AlgorithmIdentifier and the identifier itself, then the signature (ECDSA there is
  DER-encoded).  The identifiers are built here from their OIDs with a small DER encoder,
  and a received one is recognised by comparing bytes with the ones we build.

A :class:`Scheme` names what is signed how; :func:`sign` and :func:`verify` do it.
Nothing here raises on a bad signature: :func:`verify` returns False.
"""

from __future__ import annotations

import enum
import functools
import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509 import Certificate

from ipsecconf.crypto.x509 import PrivateKey

__all__ = [
    "HASH_IDS",
    "Scheme",
    "algorithm_identifier",
    "classic_scheme",
    "der_certificate",
    "load_der_certificate",
    "subject_der",
    "digital_signature_schemes",
    "key_kind",
    "scheme_of_identifier",
    "sign",
    "spki_sha1",
    "verify",
]


class Scheme(enum.Enum):
    """A signature scheme: key type, padding, hash and encoding."""

    RSA_PKCS1_SHA1 = "rsa-pkcs1-sha1"
    RSA_PKCS1_SHA256 = "rsa-pkcs1-sha256"
    RSA_PKCS1_SHA384 = "rsa-pkcs1-sha384"
    RSA_PKCS1_SHA512 = "rsa-pkcs1-sha512"
    RSA_PSS_SHA256 = "rsa-pss-sha256"
    RSA_PSS_SHA384 = "rsa-pss-sha384"
    RSA_PSS_SHA512 = "rsa-pss-sha512"
    ECDSA_SHA256 = "ecdsa-sha256"
    """DER-encoded ECDSA-Sig-Value (RFC 7427)."""
    ECDSA_SHA384 = "ecdsa-sha384"
    ECDSA_SHA512 = "ecdsa-sha512"
    ECDSA_P256_RAW = "ecdsa-p256"
    """``r | s`` on P-256 with SHA-256 (RFC 4754, AUTH method 9)."""
    ECDSA_P384_RAW = "ecdsa-p384"
    ECDSA_P521_RAW = "ecdsa-p521"

    @property
    def is_rsa(self) -> bool:
        """True for the RSA schemes."""
        return self.value.startswith("rsa")


HASH_IDS = {"sha1": 1, "sha256": 2, "sha384": 3, "sha512": 4}
"""RFC 7427 hash algorithm numbers, as sent in SIGNATURE_HASH_ALGORITHMS."""

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_RAW_CURVES = {
    Scheme.ECDSA_P256_RAW: ("secp256r1", "sha256", 32),
    Scheme.ECDSA_P384_RAW: ("secp384r1", "sha384", 48),
    Scheme.ECDSA_P521_RAW: ("secp521r1", "sha512", 66),
}


def _hash_name(scheme: Scheme) -> str:
    if scheme in _RAW_CURVES:
        return _RAW_CURVES[scheme][1]
    return scheme.value.rsplit("-", 1)[1]


# -- RFC 7427 AlgorithmIdentifiers, DER-encoded from their OIDs ---------------------------
def _der(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + body


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray((40 * parts[0] + parts[1],))
    for value in parts[2:]:
        chunk = [value & 0x7F]
        value >>= 7
        while value:
            chunk.append(0x80 | (value & 0x7F))
            value >>= 7
        out += bytes(reversed(chunk))
    return _der(0x06, bytes(out))


_NULL = b"\x05\x00"
_HASH_OIDS = {
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2",
    "sha512": "2.16.840.1.101.3.4.2.3",
}
_SALT = {"sha256": 32, "sha384": 48, "sha512": 64}


def _pss_identifier(hash_name: str) -> bytes:
    """RSASSA-PSS with MGF1 over the same hash and a salt of the hash's length
    (RFC 4055), the parameters strongSwan and most peers use."""
    hash_id = _der(0x30, _oid(_HASH_OIDS[hash_name]) + _NULL)
    mgf = _der(0x30, _oid("1.2.840.113549.1.1.8") + hash_id)
    params = (
        _der(0xA0, hash_id) + _der(0xA1, mgf) + _der(0xA2, _der(0x02, bytes((_SALT[hash_name],))))
    )
    return _der(0x30, _oid("1.2.840.113549.1.1.10") + _der(0x30, params))


_IDENTIFIERS: dict[Scheme, bytes] = {
    Scheme.RSA_PKCS1_SHA256: _der(0x30, _oid("1.2.840.113549.1.1.11") + _NULL),
    Scheme.RSA_PKCS1_SHA384: _der(0x30, _oid("1.2.840.113549.1.1.12") + _NULL),
    Scheme.RSA_PKCS1_SHA512: _der(0x30, _oid("1.2.840.113549.1.1.13") + _NULL),
    Scheme.RSA_PSS_SHA256: _pss_identifier("sha256"),
    Scheme.RSA_PSS_SHA384: _pss_identifier("sha384"),
    Scheme.RSA_PSS_SHA512: _pss_identifier("sha512"),
    Scheme.ECDSA_SHA256: _der(0x30, _oid("1.2.840.10045.4.3.2")),
    Scheme.ECDSA_SHA384: _der(0x30, _oid("1.2.840.10045.4.3.3")),
    Scheme.ECDSA_SHA512: _der(0x30, _oid("1.2.840.10045.4.3.4")),
}
# Some encoders omit the NULL parameters of the PKCS#1 identifiers: accept both.
_RECOGNISED = {v: k for k, v in _IDENTIFIERS.items()} | {
    _der(0x30, _oid(oid)): scheme
    for oid, scheme in (
        ("1.2.840.113549.1.1.11", Scheme.RSA_PKCS1_SHA256),
        ("1.2.840.113549.1.1.12", Scheme.RSA_PKCS1_SHA384),
        ("1.2.840.113549.1.1.13", Scheme.RSA_PKCS1_SHA512),
    )
}


def algorithm_identifier(scheme: Scheme) -> bytes:
    """The DER AlgorithmIdentifier of an RFC 7427 scheme."""
    return _IDENTIFIERS[scheme]


def scheme_of_identifier(der: bytes) -> Scheme | None:
    """The scheme a received AlgorithmIdentifier names, or ``None`` when unknown."""
    return _RECOGNISED.get(bytes(der))


# -- keys -----------------------------------------------------------------------------
def key_kind(key: object) -> tuple[str, int]:
    """("rsa", modulus bits) or ("ec", curve bits) of a private key, public key or
    certificate; ("other", 0) for anything else."""
    if isinstance(key, Certificate):
        key = key.public_key()
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "rsa", key.key_size
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "ec", key.curve.key_size
    return "other", 0


_EC_HASH = {256: "sha256", 384: "sha384", 521: "sha512"}


def classic_scheme(key: object) -> Scheme | None:
    """The scheme of the key's classic AUTH method (1 for RSA, 9-11 for ECDSA)."""
    kind, bits = key_kind(key)
    if kind == "rsa":
        return Scheme.RSA_PKCS1_SHA1
    return {
        256: Scheme.ECDSA_P256_RAW,
        384: Scheme.ECDSA_P384_RAW,
        521: Scheme.ECDSA_P521_RAW,
    }.get(bits)


def digital_signature_schemes(key: object, *, pss: bool = False) -> Scheme | None:
    """The RFC 7427 scheme we sign with for ``key``: SHA-256 (PKCS#1 v1.5, or PSS
    when asked) for RSA; ECDSA with the hash of the curve's size for EC keys."""
    kind, bits = key_kind(key)
    if kind == "rsa":
        return Scheme.RSA_PSS_SHA256 if pss else Scheme.RSA_PKCS1_SHA256
    if kind == "ec":
        return {
            "sha256": Scheme.ECDSA_SHA256,
            "sha384": Scheme.ECDSA_SHA384,
            "sha512": Scheme.ECDSA_SHA512,
        }[_EC_HASH.get(bits, "sha512")]
    return None


def spki_sha1(cert: Certificate) -> bytes:
    """SHA-1 of the certificate's SubjectPublicKeyInfo: a CERTREQ entry (RFC 7296 3.7)."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha1(spki).digest()


# -- sign and verify ------------------------------------------------------------------
def _pss(hash_name: str) -> padding.PSS:
    algorithm = _HASHES[hash_name]()
    return padding.PSS(mgf=padding.MGF1(algorithm), salt_length=_SALT[hash_name])


def sign(key: PrivateKey, scheme: Scheme, data: bytes) -> bytes:
    """Sign ``data``; raise ValueError when the key cannot do ``scheme``."""
    hash_name = _hash_name(scheme)
    algorithm = _HASHES[hash_name]()
    if scheme.is_rsa:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{scheme.value} needs an RSA key")
        pad = _pss(hash_name) if "pss" in scheme.value else padding.PKCS1v15()
        return key.sign(data, pad, algorithm)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{scheme.value} needs an EC key")
    der = key.sign(data, ec.ECDSA(algorithm))
    if scheme not in _RAW_CURVES:
        return der
    curve, _, size = _RAW_CURVES[scheme]
    if key.curve.name != curve:
        raise ValueError(f"{scheme.value} needs a {curve} key")
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def verify(cert: Certificate, scheme: Scheme, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` over ``data`` verifies with the certificate's key."""
    hash_name = _hash_name(scheme)
    algorithm = _HASHES[hash_name]()
    public = cert.public_key()
    try:
        if scheme.is_rsa:
            if not isinstance(public, rsa.RSAPublicKey):
                return False
            pad = _pss(hash_name) if "pss" in scheme.value else padding.PKCS1v15()
            public.verify(signature, data, pad, algorithm)
            return True
        if not isinstance(public, ec.EllipticCurvePublicKey):
            return False
        if scheme in _RAW_CURVES:
            curve, _, size = _RAW_CURVES[scheme]
            if public.curve.name != curve or len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            signature = utils.encode_dss_signature(r, s)
        public.verify(signature, data, ec.ECDSA(algorithm))
        return True
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False


def subject_der(cert: Certificate) -> bytes:
    """The DER encoding of the certificate's subject: an ID_DER_ASN1_DN identity."""
    return cert.subject.public_bytes()


@functools.lru_cache(maxsize=256)
def load_der_certificate(data: bytes) -> Certificate | None:
    """A certificate from a CERT payload's DER bytes, or ``None`` when it does not parse
    (cached by the bytes: certificates are immutable and peers resend theirs)."""
    try:
        return x509.load_der_x509_certificate(bytes(data))
    except ValueError:
        return None


@functools.lru_cache(maxsize=256)
def der_certificate(cert: Certificate) -> bytes:
    """The DER encoding of a certificate, for a CERT payload (cached: ours goes out in
    every IKE_AUTH)."""
    return cert.public_bytes(serialization.Encoding.DER)
