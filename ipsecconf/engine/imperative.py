"""Imperative certificate changes (``ipsec cert set``), shared by every backend.

Entries written here are unmanaged (``managed = 0``): ``ipsecconf plan`` shows them as
drift, and ``ipsecconf export`` writes them out so that a configuration can adopt them.
The key and certificate are checked together with the shared X.509 code first, and
nothing is written unless every check passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ipsecconf.crypto import x509
from ipsecconf.errors import UsageError
from ipsecconf.model.desired import MAX_ROOTS
from ipsecconf.plan.desired import cert_data, fp_name, secret_address
from ipsecconf.state.writer import Writer, canonical


class CertificateSetError(UsageError):
    """``cert set`` input that cannot be used; names the file, never key bytes.

    A usage error: the files given on the command line are wrong, so ``ipsec`` answers
    with the usage line of ``cert set``."""


@dataclass(frozen=True, slots=True)
class CertFile:
    """A PEM certificate file's content and its path (recorded for export)."""

    pem: bytes
    source: str


@dataclass(frozen=True, slots=True)
class NodeCert:
    """The node's certificate and private key (``ipsec cert set -c FILE -k FILE``)."""

    cert: CertFile
    key: bytes = field(repr=False)
    key_reference: str | None = None
    """How export refers to the key, e.g. ``file:/etc/ipsec/node.key``."""


def _load(cf: CertFile) -> list[x509.Certificate]:
    try:
        return x509.load_certificates(cf.pem)
    except x509.CertificateError as exc:
        raise CertificateSetError(f"{cf.source}: {exc}") from None


_Item = tuple[str, str, bool, str]


def _node_items(node: NodeCert) -> list[_Item]:
    """The resources of the node certificate and its chain, once the key is checked."""
    chain = _load(node.cert)
    try:
        key = x509.load_private_key(node.key)
    except x509.CertificateError as exc:
        raise CertificateSetError(f"private key: {exc}") from None
    if not x509.key_matches(chain[0], key):
        raise CertificateSetError(
            f"the private key does not belong to the certificate in {node.cert.source}"
        )
    items = [("cert", "node", False, canonical(cert_data(chain[0], node.cert.source)))]
    for c in chain[1:]:
        d = cert_data(c, node.cert.source)
        items.append(("cert", f"intermediate.{fp_name(d['fingerprint'])}", False, canonical(d)))
    return items


def _root_items(roots: Sequence[CertFile]) -> list[_Item]:
    """The resources of the root set: 1 to MAX_ROOTS certificates, counted in the files."""
    if not 1 <= len(roots) <= MAX_ROOTS:
        raise CertificateSetError(
            f"{len(roots)} root certificates given: 1 to {MAX_ROOTS} are allowed"
        )
    loaded = [(c, cf.source) for cf in roots for c in _load(cf)]
    if len(loaded) > MAX_ROOTS:
        raise CertificateSetError(
            f"the files hold {len(loaded)} root certificates: at most {MAX_ROOTS} are allowed"
        )
    return [
        ("cert", f"root.{fp_name(d['fingerprint'])}", False, canonical(d))
        for d in (cert_data(c, src) for c, src in loaded)
    ]


def check_certificates(node: NodeCert | None, roots: Sequence[CertFile] | None) -> None:
    """Every check :func:`set_certificates` makes, writing nothing: a command refuses bad
    files before it opens (or creates) a store."""
    if node is not None:
        _node_items(node)
    if roots is not None:
        _root_items(roots)


def set_certificates(w: Writer, node: NodeCert | None, roots: Sequence[CertFile] | None) -> None:
    """Replace the node certificate (and key) and/or the root set, as unmanaged entries."""
    if node is not None:
        w.put_resources(_node_items(node))
        w.put_secret(secret_address("cert.node", "private_key"), node.key, node.key_reference)
    if roots is not None:
        items = _root_items(roots)
        old = w.conn.execute(
            "SELECT kind, name FROM resources WHERE kind = 'cert' AND name LIKE 'root.%'"
        ).fetchall()
        w.delete_resources([(str(k), str(n)) for k, n in old])
        w.put_resources(items)
