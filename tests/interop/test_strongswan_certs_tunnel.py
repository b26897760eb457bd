"""An ipsecconf engine and strongSwan 5.9.8 authenticate with RSA certificates (a root
and an intermediate CA, made by tests/certgen.py) and protect the sites' traffic, with
ipsecconf as initiator and as responder.

Each side holds its own end-entity certificate (subjectAltName: its outer address, the
IKE identity), its key and the intermediate, and trusts only the root; each sends its
intermediate along, so the peer builds the chain root -> intermediate -> end entity.
Traffic both ways is protected on the wire (no marker, no inner address, only
ESP-in-UDP) and both sides list the same SPIs.

Needs root and the Debian packages of scripts/install-test-deps.sh; skipped otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.certgen import issue
from tests.engine import topo
from tests.ike.strongswan import missing_requirements
from tests.interop.charon import Charon, conn
from tests.interop.sites import engine_yaml
from tests.interop.test_strongswan_tunnel import (
    check_traffic,
    delete_and_check,
    engine_live,
    establish,
)

pytestmark = [pytest.mark.slow, pytest.mark.netns]

IKE, ESP = "aes128-sha256-modp2048", "aes128-sha256"


def make_pki(d: Path) -> dict[str, Path]:
    """Root, intermediate, and an RSA end entity for each gateway, as PEM files."""
    d.mkdir(parents=True, exist_ok=True)
    root = issue("Interop Root CA", ca=True, key_kind="rsa")
    inter = issue("Interop Intermediate CA", ca=True, key_kind="rsa", issuer=root)
    files = {"root": d / "root.pem", "inter": d / "inter.pem"}
    files["root"].write_bytes(root.cert_pem())
    files["inter"].write_bytes(inter.cert_pem())
    for side, addr in (("a", "203.0.113.1"), ("b", "203.0.113.2")):
        leaf = issue(f"gateway-{side}", issuer=inter, key_kind="rsa", ips=(addr,))
        files[f"{side}.cert"] = d / f"{side}.pem"
        files[f"{side}.key"] = d / f"{side}.key"
        files[f"{side}.cert"].write_bytes(leaf.cert_pem())
        files[f"{side}.key"].write_bytes(leaf.key_pem())
        os.chmod(files[f"{side}.key"], 0o600)
    return files


def engine_cert_yaml(s: topo.Sites, pki: dict[str, Path]) -> Path:
    """Site A's desired state: the PSK tunnel of :func:`engine_yaml`, authenticated with
    the node certificate instead."""
    cfg = engine_yaml(s, encryption="aes128", authentication="sha256", ike=IKE)
    text = cfg.read_text().replace(
        "    auth: psk\n    psk: file:psk.txt\n", "    auth: certificate\n"
    )
    certs = (
        "certificates:\n"
        f"  certificate: {pki['a.cert']}\n"
        f"  private_key: file:{pki['a.key']}\n"
        f"  intermediates: [{pki['inter']}]\n"
        f"  roots: [{pki['root']}]\n"
    )
    cfg.write_text(certs + text)
    return cfg


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[topo.Sites, Charon]]:
    why = topo.missing() or missing_requirements()
    if why:
        pytest.skip(why)
    with topo.sites(tmp_path_factory.mktemp("certs")) as s:
        pki = make_pki(s.workdir / "pki")
        ss = Charon(s, "gb", s.workdir / "strongswan")
        # strongSwan sends the intermediate from its x509ca folder along with its own.
        x509ca = ss.dir / "x509ca"
        x509ca.mkdir(parents=True, exist_ok=True)
        (x509ca / "inter.pem").write_bytes(pki["inter"].read_bytes())
        ss.start()
        ss.load(
            conn("gw", "gb", ike=IKE, esp=ESP, auth="pubkey", cert=str(pki["b.cert"]),
                 cacert=str(pki["root"])),
            key=str(pki["b.key"]),
        )  # fmt: skip
        s.apply("a", engine_cert_yaml(s, pki))
        s.start_engine("a")
        try:
            yield s, ss
        finally:
            ss.stop()


@pytest.mark.parametrize("role", ["initiator", "responder"])
def test_rsa_certificates_with_an_intermediate(
    lab: tuple[topo.Sites, Charon], tmp_path: Path, role: str
) -> None:
    s, ss = lab
    mark = len(ss.log_text())
    establish(s, ss, role)
    spis = check_traffic(s, ss, tmp_path / "wan.pcap")
    log = ss.log_text()[mark:]
    assert "authentication of '203.0.113.1' with RSA" in log, log[-3000:]
    assert "CN=Interop Intermediate CA" in log, log[-3000:]  # the chain it built
    [ike_sa] = [sa for sa in ss.list_sas() if sa.get("state") == "ESTABLISHED"]
    assert ike_sa["remote-id"] == "203.0.113.1"
    assert set(engine_live(s)) == spis
    delete_and_check(s, ss, spis, by="strongswan")
