"""Certificates and private keys for IKE authentication (RFC 7296 2.15, 3.6-3.8; RFC 7427).

:class:`Credentials` is what this side proves itself with (end-entity certificate, its
private key, the intermediates sent along); :class:`TrustAnchors` the roots a peer's
chain must reach.  Both are loaded once from PEM, outside the exchange, and checked
with the shared X.509 code of :mod:`ipsecconf.crypto.x509` (key match here; chain,
validity, usage and identity when a peer presents its certificate).

:class:`SignatureAuthenticator` signs our AUTH payload with the classic method of the
key (1 for RSA, 9-11 for ECDSA) or RFC 7427's method 14, as the configuration and the
peer's SIGNATURE_HASH_ALGORITHMS allow.  Private keys never appear in a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ipsecconf.crypto import signatures, x509
from ipsecconf.crypto.signatures import Scheme
from ipsecconf.ike.constants import AuthMethod
from ipsecconf.ike.errors import LocalProtocolError
from ipsecconf.ike.memo import Memo, recall, remember
from ipsecconf.ike.payloads import AuthPayload, CertPayload, CertReqPayload

X509_SIGNATURE = 4
"""CERT/CERTREQ encoding "X.509 Certificate - Signature" (RFC 7296 3.6)."""

SIGNATURE_MODES = ("auto", "classic", "pkcs1", "pss")
"""How we sign: ``auto`` is RFC 7427 (PKCS#1 v1.5 / ECDSA) when the peer announced
SIGNATURE_HASH_ALGORITHMS with SHA-256 and up, else the key's classic method; ``classic``
always methods 1/9-11; ``pkcs1`` and ``pss`` always RFC 7427 with that RSA padding."""

METHOD_NAMES: dict[int, str] = {
    AuthMethod.RSA_SIGNATURE: "rsa",
    AuthMethod.SHARED_KEY_MIC: "psk",
    AuthMethod.ECDSA_SHA256_P256: "ecdsa",
    AuthMethod.ECDSA_SHA384_P384: "ecdsa",
    AuthMethod.ECDSA_SHA512_P521: "ecdsa",
    AuthMethod.DIGITAL_SIGNATURE: "digital-signature",
}
"""The names by which a configuration allows the peer's AUTH methods."""
SIGNATURE_METHODS = frozenset({"rsa", "ecdsa", "digital-signature"})

_RAW_METHODS = {
    Scheme.ECDSA_P256_RAW: AuthMethod.ECDSA_SHA256_P256,
    Scheme.ECDSA_P384_RAW: AuthMethod.ECDSA_SHA384_P384,
    Scheme.ECDSA_P521_RAW: AuthMethod.ECDSA_SHA512_P521,
}


@dataclass(frozen=True, slots=True)
class Credentials(Memo):
    """Our certificate, its private key and the intermediates we send with it."""

    certificate: x509.Certificate
    key: x509.PrivateKey = field(repr=False)
    intermediates: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_pem(cls, certificate: bytes, key: bytes, intermediates: bytes = b"") -> Credentials:
        """Load from PEM (the first certificate of ``certificate`` is ours, any further
        ones are intermediates); raises LocalProtocolError when key and certificate differ."""
        try:
            certs = x509.load_certificates(certificate)
            extra = x509.load_certificates(intermediates) if intermediates.strip() else []
            private = x509.load_private_key(key)
        except x509.CertificateError as exc:
            raise LocalProtocolError(f"IKE credentials: {exc}") from None
        if not x509.key_matches(certs[0], private):
            raise LocalProtocolError("IKE credentials: the private key is not the certificate's")
        if signatures.key_kind(private)[0] not in ("rsa", "ec"):
            raise LocalProtocolError("IKE credentials: only RSA and ECDSA keys sign IKE AUTH")
        return cls(certs[0], private, tuple(certs[1:] + extra))

    def __repr__(self) -> str:
        return f"Credentials({self.certificate.subject.rfc4514_string()!r}, <private key>)"

    def cert_payloads(self) -> list[CertPayload]:
        """CERT payloads: our certificate first, then the intermediates (3.6).  Encoded
        once (every IKE_AUTH sends them)."""
        known: tuple[CertPayload, ...] | None = recall(self)
        if known is None:
            known = tuple(
                CertPayload(X509_SIGNATURE, signatures.der_certificate(c))
                for c in (self.certificate, *self.intermediates)
            )
            remember(self, known)
        return list(known)


@dataclass(frozen=True, slots=True)
class TrustAnchors(Memo):
    """The root certificates a peer's chain must reach (the seed's 1 to 15 roots)."""

    roots: tuple[x509.Certificate, ...]

    @classmethod
    def from_pem(cls, *pems: bytes) -> TrustAnchors:
        """Every certificate in the given PEM blobs."""
        try:
            roots = [c for pem in pems for c in x509.load_certificates(pem)]
        except x509.CertificateError as exc:
            raise LocalProtocolError(f"IKE roots: {exc}") from None
        return cls(tuple(roots))

    def __repr__(self) -> str:
        return f"TrustAnchors({len(self.roots)} roots)"

    def certreq(self) -> CertReqPayload:
        """A CERTREQ naming our roots by the SHA-1 of their public keys (3.7), computed
        once (IKE_SA_INIT and IKE_AUTH send it)."""
        known: CertReqPayload | None = recall(self)
        if known is None:
            known = CertReqPayload(
                X509_SIGNATURE, b"".join(signatures.spki_sha1(r) for r in self.roots)
            )
            remember(self, known)
        return known


def choose_scheme(
    credentials: Credentials, mode: str, peer_hashes: frozenset[int]
) -> tuple[AuthMethod, Scheme]:
    """The AUTH method and signature scheme we sign with."""
    sha2 = bool(peer_hashes & {2, 3, 4})
    digital = mode in ("pkcs1", "pss") or (mode == "auto" and sha2)
    if digital:
        scheme = signatures.digital_signature_schemes(credentials.key, pss=mode == "pss")
        if scheme is not None:
            return AuthMethod.DIGITAL_SIGNATURE, scheme
    scheme = signatures.classic_scheme(credentials.key)
    if scheme is None:
        raise LocalProtocolError("our key has no classic IKE AUTH method (use RFC 7427)")
    method = _RAW_METHODS.get(scheme, AuthMethod.RSA_SIGNATURE)
    return method, scheme


class SignatureAuthenticator:
    """Signs our AUTH payload with our private key (methods 1, 9-11 or 14)."""

    __slots__ = ("_credentials", "method", "scheme")

    def __init__(self, credentials: Credentials, method: AuthMethod, scheme: Scheme) -> None:
        self._credentials = credentials
        self.method = method
        self.scheme = scheme

    def __repr__(self) -> str:
        return f"SignatureAuthenticator({self.method.name}, {self.scheme.value})"

    def sign(self, octets: bytes) -> AuthPayload:
        signature = signatures.sign(self._credentials.key, self.scheme, octets)
        if self.method == AuthMethod.DIGITAL_SIGNATURE:
            identifier = signatures.algorithm_identifier(self.scheme)
            signature = bytes((len(identifier),)) + identifier + signature
        return AuthPayload(self.method, signature)

    def verify(self, auth: AuthPayload, octets: bytes) -> bool:
        """We never verify with our own key: the peer's AUTH goes to :func:`verify_signature`."""
        return False


def scheme_of_auth(auth: AuthPayload) -> tuple[Scheme | None, bytes]:
    """The scheme a peer's signature AUTH payload uses and its bare signature."""
    if auth.method == AuthMethod.RSA_SIGNATURE:
        return Scheme.RSA_PKCS1_SHA1, auth.data
    for scheme, method in _RAW_METHODS.items():
        if auth.method == method:
            return scheme, auth.data
    if auth.method == AuthMethod.DIGITAL_SIGNATURE and auth.data:
        size = auth.data[0]
        if len(auth.data) > 1 + size:
            named = signatures.scheme_of_identifier(auth.data[1 : 1 + size])
            return named, auth.data[1 + size :]
    return None, b""
