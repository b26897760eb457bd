"""Test helper: make X.509 roots, intermediates and end-entity certificates on the fly.

Used by the tests for good and bad certificates (expired, wrong key, untrusted, wrong
identity) and, once, to make the committed example PKI of examples/site-to-site.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)


@dataclass
class Issued:
    cert: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ipsecconf tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def make_key(kind: str = "ec") -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def issue(
    cn: str,
    *,
    issuer: Issued | None = None,
    ca: bool = False,
    key_kind: str = "ec",
    days: int = 3650,
    not_before: datetime.datetime | None = None,
    ips: tuple[str, ...] = (),
    dns: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    digital_signature: bool | None = None,
    extended_usages: tuple[x509.ObjectIdentifier, ...] = (),
) -> Issued:
    """A certificate for ``cn`` (self-signed unless ``issuer``).

    ``key`` re-certifies an existing key (a renewed certificate); ``digital_signature``
    overrides the key usage's bit (default: set on end entities, not on CAs);
    ``extended_usages`` adds an extendedKeyUsage extension with those purposes.
    """
    key = key or make_key(key_kind)
    start = not_before or NOW - datetime.timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca if digital_signature is None else digital_signature,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    sans += [x509.DNSName(d) for d in dns] + [x509.RFC822Name(e) for e in emails]
    if extended_usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended_usages), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    signer = issuer.key if issuer else key
    cert = builder.sign(signer, hashes.SHA256())
    return Issued(cert, key)
