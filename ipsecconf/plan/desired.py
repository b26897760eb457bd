"""The desired state as plan resources: address, canonical data, and secret values.

Built from a loaded (and error-free) desired state.  Each resource's ``data`` is the
JSON-friendly form the store keeps (as canonical JSON); the differ compares it with the
decoded stored form, so an unchanged resource costs one dict comparison.  Secret values
travel beside the data in
:class:`SecretValue` objects whose repr never shows them; the plan keeps only their
salted fingerprints.  Certificates are read here (their files are named in the YAML) and
compared by fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ipsecconf.config import LoadResult
from ipsecconf.config.secrets import PskFileError, decode_key, read_psk_file
from ipsecconf.crypto import x509
from ipsecconf.errors import ConfigError, Diagnostic, SecretError, Severity
from ipsecconf.model.secrets import SecretRef
from ipsecconf.state.writer import canonical

Fingerprinter = Callable[[str, bytes], str]


@dataclass(frozen=True, slots=True)
class SecretValue:
    """One resolved secret: its value, and the reference it came from (for export)."""

    value: bytes = field(repr=False)
    reference: str | None

    def __repr__(self) -> str:
        return f"SecretValue({self.reference or 'unrecorded'}, sensitive)"


@dataclass(slots=True)
class Resource:
    """One desired resource (everything but SPD rows, which stay PolicyRows for speed)."""

    kind: str
    name: str
    data: dict[str, Any]
    secrets: dict[str, SecretValue] = field(default_factory=dict)
    """Field name -> value; stored under the address ``<kind>.<name>#<field>``."""

    @property
    def address(self) -> str:
        """``kind.name``."""
        return f"{self.kind}.{self.name}"


@dataclass(slots=True)
class DesiredState:
    """All desired resources, by address."""

    policies: dict[str, dict[str, Any]]
    """SPD row name -> row dict (:meth:`PolicyRow.to_dict`)."""
    resources: dict[str, Resource]

    def __repr__(self) -> str:
        return f"DesiredState({len(self.policies)} SPD rows, {len(self.resources)} resources)"

    def secret_values(self) -> dict[str, SecretValue]:
        """Secret address -> value."""
        return {
            secret_address(r.address, f): v
            for r in self.resources.values()
            for f, v in r.secrets.items()
        }

    def digest(self) -> str:
        """SHA-256 of the desired configuration (no secret values in it)."""
        h = hashlib.sha256()
        for name in sorted(self.policies):
            h.update(canonical(self.policies[name]).encode())
        for address in sorted(self.resources):
            h.update(address.encode() + canonical(self.resources[address].data).encode())
        return h.hexdigest()

    def secrets_digest(self, fingerprint: Fingerprinter, digest: Callable[[list[str]], str]) -> str:
        """Keyed digest of every secret's fingerprint (a saved plan records only this)."""
        items = sorted(f"{a}={fingerprint(a, v.value)}" for a, v in self.secret_values().items())
        return digest(items)


def secret_address(address: str, field_name: str) -> str:
    """Where a resource's secret field is stored: ``psk.198.51.100.2#key``."""
    return f"{address}#{field_name}"


def _reference(ref: SecretRef) -> str | None:
    if ref.kind == "env":
        return f"env:{ref.target}"
    if ref.kind == "file":
        path = ref.target
        if not os.path.isabs(path) and ref.base_dir:
            path = os.path.join(ref.base_dir, path)
        return f"file:{os.path.abspath(path)}"
    return None  # a literal is not recorded anywhere


def _cert_file(base: str, name: str) -> tuple[str, list[Any]]:
    full = name if os.path.isabs(name) else os.path.join(base, name)
    try:
        with open(full, "rb") as fh:
            return os.path.abspath(full), x509.load_certificates(fh.read())
    except (OSError, x509.CertificateError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigError([Diagnostic(Severity.ERROR, f"certificate {name}: {reason}")]) from None


def cert_data(cert: Any, source: str) -> dict[str, Any]:
    inf = x509.info(cert)
    return {
        "fingerprint": inf.fingerprint,
        "subject": inf.subject,
        "issuer": inf.issuer,
        "not_before": inf.not_before,
        "not_after": inf.not_after,
        "serial": inf.serial,
        "_source": source,
        "_pem": x509.to_pem(cert),
    }


def fp_name(fingerprint: str) -> str:
    """The name suffix of a root/intermediate: 16 hex digits of its fingerprint."""
    return fingerprint.replace(":", "").lower()[:16]


def _psk_file_origins(result: LoadResult) -> dict[str, str]:
    """Address -> ``psk_file:PATH`` of the psk.txt it came from (first file wins, as in
    the loader), so that export can name the file again instead of inventing references."""
    assert result.document is not None
    out: dict[str, str] = {}
    for i, rel in enumerate(result.document.psk_file):
        base = result.locator.base_dir(("psk_file", i))
        full = os.path.abspath(rel if os.path.isabs(rel) else os.path.join(base, rel))
        try:
            lines = read_psk_file(full)
        except PskFileError:
            continue  # the loader reported it already
        for line in lines:
            out.setdefault(str(line.address), f"psk_file:{full}")
    return out


def build(result: LoadResult) -> DesiredState:
    """The plan resources of an error-free load result."""
    doc = result.document
    if doc is None or result.errors:
        raise ConfigError(result.diagnostics)
    values = result.secrets.values
    policies = {row.name: row.to_dict() for row in result.rows}
    res: dict[str, Resource] = {}

    def add(r: Resource) -> None:
        res[r.address] = r

    def secret(path: tuple[Any, ...], ref: SecretRef) -> SecretValue:
        value = values.get(path)
        if value is None:  # validate resolved every reference; offline loads cannot plan
            raise SecretError(f"the secret {ref.describe()} was not resolved")
        return SecretValue(value, _reference(ref))

    add(Resource("setting", "default_action", {"value": doc.default_action}))
    for i, peer in enumerate(doc.peers):
        data = json.loads(peer.model_dump_json(exclude={"psk"}))
        r = Resource("peer", peer.name, data)
        if peer.psk is not None:
            r.secrets["psk"] = secret(("peers", i, "psk"), peer.psk)
        add(r)
    refs = {str(e.address): _reference(e.key) for e in doc.psks}
    from_files = _psk_file_origins(result)
    for address, value in result.secrets.psk_by_address.items():
        ref = refs[address] if address in refs else from_files.get(address)
        add(Resource("psk", address, {"address": address}, {"key": SecretValue(value, ref)}))
    for i, sa in enumerate(doc.manual_sas):
        data = json.loads(sa.model_dump_json(exclude={"encryption_key", "authentication_key"}))
        r = Resource("sa", sa.name, data)
        for fname in ("encryption_key", "authentication_key"):
            ref = getattr(sa, fname)
            if ref is not None:
                raw = secret(("manual_sas", i, fname), ref)
                r.secrets[fname] = SecretValue(decode_key(raw.value), raw.reference)
        add(r)
    certs = doc.certificates
    if certs is not None:
        base = result.locator.base_dir(("certificates",))
        for group, names in (("root", certs.roots), ("intermediate", certs.intermediates)):
            for name in names:
                source, loaded = _cert_file(base, name)
                for cert in loaded:
                    data = cert_data(cert, source)
                    add(Resource("cert", f"{group}.{fp_name(data['fingerprint'])}", data))
        if certs.certificate:
            source, loaded = _cert_file(base, certs.certificate)
            r = Resource("cert", "node", cert_data(loaded[0], source))
            for cert in loaded[1:]:
                data = cert_data(cert, source)
                add(Resource("cert", f"intermediate.{fp_name(data['fingerprint'])}", data))
            if certs.private_key is not None:
                r.secrets["private_key"] = secret(
                    ("certificates", "private_key"), certs.private_key
                )
            add(r)
    return DesiredState(policies, res)
