"""X.509 checking, written once: ``validate``, ``ipsec cert set`` and IKE all use it.

It answers the questions an IPsec node must ask of a certificate: does it belong with this
private key, is it valid now, does it chain to one of the configured roots (through the
given intermediates), may it sign (key usage), and does it carry the identity the peer
claims (subjectAltName IP/DNS/email, or the subject DN).  Every function returns a list
of problems in plain words, empty when all is well, so that callers can report all of
them at once; nothing here raises on a bad certificate.  Time is passed in.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509 import Certificate
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertInfo",
    "Certificate",
    "CertificateError",
    "PrivateKey",
    "check_usage",
    "check_validity",
    "fingerprint",
    "identities",
    "identity_matches",
    "info",
    "key_matches",
    "load_certificates",
    "load_private_key",
    "to_pem",
    "verify_chain",
]

MAX_CHAIN = 8

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class CertificateError(ValueError):
    """A file that holds no usable certificate or key; never includes key bytes."""


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What ``cert show`` and plans print about a certificate."""

    subject: str
    issuer: str
    not_before: str
    not_after: str
    fingerprint: str
    """SHA-256 of the DER encoding, hex with colons."""
    serial: str
    is_ca: bool


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM (or single DER) blob; error when there is none."""
    try:
        if b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            certs = [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise CertificateError("no valid X.509 certificate (expected PEM)") from None
    if not certs:
        raise CertificateError("no certificate found")
    return certs


def load_private_key(data: bytes, password: bytes | None = None) -> PrivateKey:
    """A PEM or DER private key (RSA, EC or Ed25519)."""
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_private_key(data, password=password)
        else:
            key = serialization.load_der_private_key(data, password=password)
    except TypeError:
        raise CertificateError("the private key is encrypted and no password was given") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError("no valid private key (expected PEM)") from None
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise CertificateError(f"unsupported private key type {type(key).__name__}")
    return key


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint, colon-separated hex."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def to_pem(cert: x509.Certificate) -> str:
    """The certificate as PEM text (for the store and export)."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def info(cert: x509.Certificate) -> CertInfo:
    """The printable facts of a certificate."""
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc.isoformat(),
        not_after=cert.not_valid_after_utc.isoformat(),
        fingerprint=fingerprint(cert),
        serial=format(cert.serial_number, "x"),
        is_ca=_is_ca(cert),
    )


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    """True when ``key`` is the private half of the certificate's public key."""
    return _spki(cert.public_key()) == _spki(key.public_key())


def check_validity(cert: x509.Certificate, now: datetime.datetime) -> list[str]:
    """Problems with the validity period at ``now`` (timezone-aware)."""
    subject = cert.subject.rfc4514_string()
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        return [f"certificate {subject!r} is not valid before {start:%Y-%m-%d %H:%M} UTC"]
    if now > end:
        return [f"certificate {subject!r} expired on {end:%Y-%m-%d %H:%M} UTC"]
    return []


def check_usage(cert: x509.Certificate, *, ca: bool) -> list[str]:
    """Key usage fit for an IKE end entity (digitalSignature) or a CA (keyCertSign)."""
    return list(_usage_problems(cert, ca))


@functools.lru_cache(maxsize=1024)
def _usage_problems(cert: x509.Certificate, ca: bool) -> tuple[str, ...]:
    # A pure function of the certificate's bytes: cached, as every IKE_AUTH asks again.
    subject = cert.subject.rfc4514_string()
    problems = []
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if ca:
        if not _is_ca(cert):
            problems.append(f"{subject!r} is not a CA certificate (basicConstraints CA:FALSE)")
        if usage is not None and not usage.key_cert_sign:
            problems.append(f"{subject!r} may not sign certificates (no keyCertSign usage)")
    else:
        if usage is not None and not (usage.digital_signature or usage.content_commitment):
            problems.append(f"{subject!r} may not sign (no digitalSignature key usage)")
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = None
        allowed = {
            ExtendedKeyUsageOID.SERVER_AUTH,
            ExtendedKeyUsageOID.CLIENT_AUTH,
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
            x509.ObjectIdentifier("1.3.6.1.5.5.7.3.17"),  # id-kp-ipsecIKE (RFC 4945)
        }
        if eku is not None and not allowed & set(eku):
            problems.append(f"{subject!r} has an extended key usage that excludes IKE")
    return tuple(problems)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    return _signed_by(cert, issuer)


@functools.lru_cache(maxsize=1024)
def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    # Cached like strongSwan's cert_cache: a signature over fixed DER bytes verifies the
    # same way every time, and peers present the same chains at every (re)connection.
    # Validity and usage are still checked on every call of verify_chain.
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def verify_chain(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: list[x509.Certificate],
    now: datetime.datetime,
) -> list[str]:
    """Problems with the path from ``leaf`` to one of ``roots`` at ``now``."""
    if not roots:
        return ["no root certificates are configured to check the chain against"]
    problems = check_validity(leaf, now)
    current = leaf
    pool = list(intermediates)
    for _ in range(MAX_CHAIN):
        for root in roots:
            if current == root or _issued_by(current, root):
                problems += check_validity(root, now)
                return problems
        nxt = next((c for c in pool if _issued_by(current, c)), None)
        if nxt is None:
            issuer = current.issuer.rfc4514_string()
            problems.append(
                f"certificate {leaf.subject.rfc4514_string()!r} does not chain to a configured "
                f"root (no trusted issuer {issuer!r})"
            )
            return problems
        problems += check_validity(nxt, now)
        problems += check_usage(nxt, ca=True)
        pool.remove(nxt)
        current = nxt
    problems.append("certificate chain is longer than allowed")
    return problems


def identities(cert: x509.Certificate) -> dict[str, set[str]]:
    """The identities a certificate carries: ip, fqdn, email (SAN) and dn (subject)."""
    return {kind: set(values) for kind, values in _identities(cert).items()}


@functools.lru_cache(maxsize=1024)
def _identities(cert: x509.Certificate) -> dict[str, frozenset[str]]:
    # Cached (a pure function of the certificate); callers get copies or read only.
    out: dict[str, set[str]] = {"ip": set(), "fqdn": set(), "email": set(), "dn": set()}
    out["dn"].add(cert.subject.rfc4514_string())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        out["ip"] |= {str(a) for a in san.get_values_for_type(x509.IPAddress)}
        out["fqdn"] |= {d.lower() for d in san.get_values_for_type(x509.DNSName)}
        out["email"] |= {e.lower() for e in san.get_values_for_type(x509.RFC822Name)}
    for attr in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS):
        out["email"].add(str(attr.value).lower())
    return {kind: frozenset(values) for kind, values in out.items()}


def _same_dn(a: str, b: str) -> bool:
    def norm(s: str) -> list[str]:
        return sorted(p.strip().lower().replace(" ", "") for p in s.split(","))

    return norm(a) == norm(b)


def identity_matches(cert: x509.Certificate, kind: str, value: str) -> bool:
    """True when the certificate carries the identity ``kind:value``."""
    ids = _identities(cert)
    if kind == "ip":
        try:
            return str(ipaddress.ip_address(value)) in ids["ip"]
        except ValueError:
            return False
    if kind == "dn":
        return any(_same_dn(value, dn) for dn in ids["dn"])
    return value.lower() in ids[kind]
