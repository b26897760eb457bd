"""Checks of peers, keys, manual SAs and certificates; secret references are resolved here.

Problems that strongSwan or a filer would only find at negotiation time (a PSK peer
without a key, a certificate that does not chain to the roots, a manual key of the wrong
length) are found now.  With ``offline`` (CI runners that do not hold the secrets) only
the form of each reference is checked and no secret is read.
"""

from __future__ import annotations

import datetime
import os

from ipsecconf.config import secrets as sec
from ipsecconf.config.checks import CheckContext, duplicate_names
from ipsecconf.config.yamlread import Path
from ipsecconf.crypto import x509
from ipsecconf.crypto.x509 import Certificate
from ipsecconf.errors import SecretError
from ipsecconf.model import algorithms as alg
from ipsecconf.model import proposals as prop
from ipsecconf.model.desired import MAX_ROOTS
from ipsecconf.model.secrets import SecretRef


def check_peers(ctx: CheckContext) -> None:
    """Names, addresses, methods and IKE proposals of the peers."""
    peers = ctx.document.peers
    duplicate_names(ctx, "peers", [p.name for p in peers], "peer")
    by_address: dict[str, str] = {}
    for i, peer in enumerate(peers):
        path = ctx.path("peers", i)
        addr = str(peer.address)
        if addr in by_address:
            ctx.error(
                (*path, "address"),
                f"peer {peer.name} has the same address as "
                f"{by_address[addr]}; one peer per address",
            )
        by_address.setdefault(addr, peer.name)
        if peer.auth == "kerberos":
            ctx.error(
                (*path, "auth"),
                "kerberos: not supported: Kerberos IKE authentication is "
                "Windows-only in the original; use psk or certificate",
            )
        if peer.ike_version == 1:
            ctx.warning(
                (*path, "ike_version"),
                "IKEv1 is not spoken by the engine yet; this "
                "peer validates but will not negotiate until it is",
            )
        for k, text in enumerate(peer.ike_proposals or []):
            try:
                proposal = prop.parse(text, "ike")
            except prop.ProposalError as exc:
                ctx.error((*path, "ike_proposals", k), str(exc))
                continue
            for weak in proposal.weak_names():
                ctx.warning(
                    (*path, "ike_proposals", k), f"weak algorithm {weak} for IKE (RFC 8247)"
                )
        uses_cert = peer.auth == "certificate" or "certificate" in (peer.remote_auth or [])
        certs = ctx.document.certificates
        if peer.auth == "certificate" and (certs is None or not certs.certificate):
            ctx.error(
                (*path, "auth"),
                "certificate authentication but no node certificate "
                "is configured (certificates.certificate and private_key)",
            )
        if uses_cert and (certs is None or not certs.roots):
            ctx.error(
                (*path, "auth"),
                "certificate authentication needs root certificates "
                "(certificates.roots) to check the peer against",
            )
    for i, policy in enumerate(ctx.document.policies):
        peer_model = next((p for p in peers if p.name == policy.peer), None)
        if peer_model and peer_model.udp_encapsulation and policy.protocol == "ah":
            ctx.error(
                ctx.path("policies", i, "protocol"),
                f"AH cannot cross NAT, and peer {peer_model.name} forces UDP encapsulation",
            )


def _refs(ctx: CheckContext) -> list[tuple[Path, SecretRef]]:
    doc = ctx.document
    refs: list[tuple[Path, SecretRef]] = []
    refs += [(ctx.path("peers", i, "psk"), p.psk) for i, p in enumerate(doc.peers) if p.psk]
    refs += [(ctx.path("psks", i, "key"), e.key) for i, e in enumerate(doc.psks)]
    for i, sa in enumerate(doc.manual_sas):
        for field in ("encryption_key", "authentication_key"):
            ref = getattr(sa, field)
            if ref is not None:
                refs.append((ctx.path("manual_sas", i, field), ref))
    if doc.certificates and doc.certificates.private_key:
        refs.append((("certificates", "private_key"), doc.certificates.private_key))
    return refs


def check_secrets(ctx: CheckContext) -> None:
    """Warn on literals; resolve every reference (or only check its form when offline)."""
    for ref_path, ref in _refs(ctx):
        if ref.is_literal:
            ctx.warning(
                ref_path,
                "secret written in the file; use env:NAME or file:PATH so that it stays out of git",
            )
        if ctx.offline:
            problem = sec.check_reference(ref)
            if problem:
                ctx.error(ref_path, problem)
            continue
        try:
            ctx.secrets.values[ref_path] = sec.resolve(ref)
        except SecretError as exc:
            ctx.error(ref_path, str(exc))
    table = ctx.secrets.psk_by_address
    for i, rel in enumerate(ctx.document.psk_file):
        path: Path = ("psk_file", i)
        if ctx.offline:
            continue
        full = rel if os.path.isabs(rel) else os.path.join(ctx.locator.base_dir(path), rel)
        try:
            lines = sec.read_psk_file(full)
        except sec.PskFileError as exc:
            where = f" (line {exc.line})" if exc.line else ""
            ctx.error(path, f"{rel}{where}: {exc}")
            continue
        for line in lines:
            table.setdefault(str(line.address), line.key)
    for i, entry in enumerate(ctx.document.psks):
        value = ctx.secrets.values.get(ctx.path("psks", i, "key"))  # psks: override files
        if value is not None:
            table[str(entry.address)] = value


def _has_psk(ctx: CheckContext, address: str) -> bool:
    if address in ctx.secrets.psk_by_address:
        return True
    if ctx.offline:
        # Offline nothing is read: a psks entry or any psk file may hold it.
        return bool(ctx.document.psk_file) or any(
            str(e.address) == address for e in ctx.document.psks
        )
    return False


def check_policy_keys(ctx: CheckContext) -> None:
    """Every PSK peer, and every peerless host policy, must have a key now."""
    have_cert = bool(ctx.document.certificates and ctx.document.certificates.certificate)
    # A host with manually keyed SAs needs no IKE, hence no key.
    manual = {str(sa.destination) for sa in ctx.document.manual_sas}
    manual |= {str(sa.source) for sa in ctx.document.manual_sas}
    for i, peer in enumerate(ctx.document.peers):
        if peer.auth != "psk" or peer.psk is not None:
            continue
        if not _has_psk(ctx, str(peer.address)):
            ctx.error(
                ctx.path("peers", i),
                f"no pre-shared key for peer {peer.name} "
                f"({peer.address}): set psk:, or add the address to psks: or a psk_file",
            )
    for i, p in enumerate(ctx.document.policies):
        if p.peer is not None or p.protocol not in ("esp", "ah") or have_cert:
            continue
        remote = p.destination if p.direction == "out" else p.source
        net = remote.network
        if net is not None and net.num_addresses == 1:
            address = str(net.network_address)
            if address not in manual and not _has_psk(ctx, address):
                ctx.error(
                    ctx.path("policies", i),
                    f"no pre-shared key for {address}, the IKE "
                    f"peer of this policy: add it to psks: or a psk_file (psk.txt)",
                )


def _check_manual_key(ctx: CheckContext, path: Path, size: int, title: str, note: str) -> None:
    value = ctx.secrets.values.get(path)
    if value is None:
        return
    try:
        key = sec.decode_key(value)
    except SecretError as exc:
        ctx.error(path, str(exc))
        return
    if len(key) != size:
        ctx.error(path, f"the key is {len(key)} bytes; {title} needs {size}{note}")


def check_manual_sas(ctx: CheckContext) -> None:
    """Manual SAs: explicit algorithms, key presence and sizes, unique (dst, SPI, proto)."""
    sas = ctx.document.manual_sas
    duplicate_names(ctx, "manual_sas", [s.name for s in sas], "manual SA")
    seen: dict[tuple[str, int, str], str] = {}
    for i, sa in enumerate(sas):
        path = ctx.path("manual_sas", i)
        ident = (str(sa.destination), sa.spi, sa.protocol)
        if ident in seen:
            ctx.error(
                (*path, "spi"),
                f"SPI {sa.spi:#x} to {sa.destination} is already used by {seen[ident]}",
            )
        seen.setdefault(ident, sa.name)
        if sa.source.version != sa.destination.version:
            ctx.error((*path, "destination"), "source and destination are of different IP versions")
        if sa.encryption == "auto" or sa.authentication == "auto":
            ctx.error(path, "a manual SA has no negotiation: name its algorithms (not auto)")
            continue
        if sa.replay_window and sa.replay_window < 32:
            ctx.error((*path, "replay_window"), "replay_window is 0 (off) or at least 32")
        cipher = alg.cipher(sa.encryption)
        integ = alg.integrity(sa.authentication)
        if sa.protocol == "ah":
            if cipher.name != "null":
                ctx.error((*path, "encryption"), "AH authenticates only and cannot encrypt")
            if integ.name == "none":
                ctx.error((*path, "authentication"), "AH needs an integrity algorithm")
            if sa.udp_encapsulation:
                ctx.error((*path, "udp_encapsulation"), "AH cannot cross NAT")
        elif cipher.name == "null" and integ.name == "none":
            ctx.error(
                (*path, "authentication"),
                "ESP with null encryption and no integrity protects nothing",
            )
        elif cipher.aead and integ.name != "none":
            ctx.error(
                (*path, "authentication"),
                f"{cipher.name} is AEAD and takes no integrity algorithm (RFC 7296 section 3.3)",
            )
        for field, need, title, size, note in (
            (
                "encryption_key",
                cipher.key_bytes > 0,
                cipher.title,
                cipher.key_bytes,
                f" ({cipher.key_bits // 8} + {cipher.salt_bytes}-byte salt)"
                if cipher.salt_bytes
                else "",
            ),
            ("authentication_key", integ.key_bytes > 0, integ.title, integ.key_bytes, ""),
        ):
            has = getattr(sa, field) is not None
            if need and not has:
                ctx.error(path, f"{field} is missing: {title} needs a {size}-byte key")
            elif has and not need:
                ctx.error((*path, field), f"{field} is set but {title} takes no key")
            elif has:
                _check_manual_key(ctx, (*path, field), size, title, note)
        for weak in (cipher, integ):
            if weak.weak:
                ctx.warning(path, f"weak algorithm {weak.name} (RFC 8221)")


def _load_cert_file(ctx: CheckContext, path: Path, name: str) -> list[Certificate]:
    full = name if os.path.isabs(name) else os.path.join(ctx.locator.base_dir(path), name)
    try:
        with open(full, "rb") as fh:
            return x509.load_certificates(fh.read())
    except OSError as exc:
        ctx.error(path, f"cannot read certificate {name}: {exc.strerror}")
    except x509.CertificateError as exc:
        ctx.error(path, f"{name}: {exc}")
    return []


def check_certificates(ctx: CheckContext) -> None:
    """The node's certificate, key and roots, with the shared X.509 checks."""
    certs = ctx.document.certificates
    if certs is None or not ctx.check_certificates:
        return
    now = datetime.datetime.now(datetime.UTC)
    if len(certs.roots) > MAX_ROOTS:
        ctx.error(
            ("certificates", "roots"),
            f"{len(certs.roots)} root certificates: at most {MAX_ROOTS} are allowed",
        )
    roots = []
    for k, name in enumerate(certs.roots):
        for root in _load_cert_file(ctx, ("certificates", "roots", k), name):
            roots.append(root)
            for problem in x509.check_validity(root, now) + x509.check_usage(root, ca=True):
                ctx.error(("certificates", "roots", k), problem)
    inter = [
        c
        for k, n in enumerate(certs.intermediates)
        for c in _load_cert_file(ctx, ("certificates", "intermediates", k), n)
    ]
    if bool(certs.certificate) != bool(certs.private_key):
        ctx.error(("certificates",), "certificate and private_key go together: set both")
    if not certs.certificate:
        return
    leaf_list = _load_cert_file(ctx, ("certificates", "certificate"), certs.certificate)
    if not leaf_list:
        return
    leaf = leaf_list[0]
    inter += leaf_list[1:]
    path = ("certificates", "certificate")
    for problem in x509.check_usage(leaf, ca=False) + x509.verify_chain(leaf, inter, roots, now):
        ctx.error(path, problem)
    key_bytes = ctx.secrets.values.get(("certificates", "private_key"))
    if key_bytes is not None:
        try:
            key = x509.load_private_key(key_bytes)
        except x509.CertificateError as exc:
            ctx.error(("certificates", "private_key"), str(exc))
        else:
            if not x509.key_matches(leaf, key):
                ctx.error(
                    ("certificates", "private_key"),
                    "the private key does not belong to the certificate",
                )
    for i, peer in enumerate(ctx.document.peers):
        if peer.auth == "certificate" and peer.local_id is not None:
            ident = peer.local_id
            if not x509.identity_matches(leaf, ident.kind, ident.value):
                ctx.error(
                    ctx.path("peers", i, "local_id"),
                    f"the node certificate does not "
                    f"carry the identity {ident} (subjectAltName or subject DN)",
                )
