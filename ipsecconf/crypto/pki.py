"""A throw-away PKI in memory: a root and end-entity certificates, as PEM.

For ``ipsecconf bench ike`` (certificate handshakes need certificates) and for examples;
never for production credentials, which come from the desired state.  Keys are
RSA-2048 or EC P-256, certificates valid from a day before ``now`` for a year, with the
subjectAltName IP addresses given.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True)
class Issued:
    """One certificate and its private key, both PEM."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)


def _key(kind: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if kind == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ecp256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key kind {kind!r} (rsa2048, ecp256)")


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_pki(
    now: datetime.datetime, hosts: tuple[str, ...], kind: str = "rsa2048"
) -> tuple[Issued, list[Issued]]:
    """A root and one end-entity certificate per host address (SAN IP), all of ``kind``."""
    root_key = _key(kind)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ipsecconf bench root")])
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=365)

    def build(subject: x509.Name, public: object, ca: bool) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(root_name)
            .public_key(public)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )

    root = build(root_name, root_key.public_key(), True).sign(root_key, hashes.SHA256())
    leaves = []
    for host in hosts:
        key = _key(kind)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))])
        cert = (
            build(name, key.public_key(), False)
            .add_extension(san, critical=False)
            .sign(root_key, hashes.SHA256())
        )
        leaves.append(Issued(cert.public_bytes(serialization.Encoding.PEM), _pem(key)))
    return Issued(root.public_bytes(serialization.Encoding.PEM), _pem(root_key)), leaves
