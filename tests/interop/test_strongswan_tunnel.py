"""An ipsecconf engine and strongSwan 5.9.8 protect two sites' traffic between them.

One set of namespaces for the module (:class:`tests.engine.topo.Sites`): the engine runs
in gateway ``ga``, charon with its user-space dataplane (kernel-libipsec, ESP-in-UDP
only) in ``gb``.  For each suite (AES-CBC-128/SHA-256 with modp2048, AES-GCM-16 with
ecp256, ChaCha20-Poly1305 with x25519, the seed's 3DES/SHA-1 and DES/MD5 with modp1024)
in both roles, with a PSK, over IPv4 and IPv6: pings both ways and a TCP transfer each
way carrying a random marker; the capture of the outer link holds only ESP-in-UDP, never
the marker nor an inner address; both sides list the same child SPIs.  Each case ends
with a Delete started by one side (alternating) after which neither side lists the
old SPIs.  Then ``auto`` against a strongSwan that offers several suites.  (strongSwan
restarted or killed: test_strongswan_liveness.py.)

Needs root and the Debian packages of scripts/install-test-deps.sh; skipped otherwise.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine import topo
from tests.ike.strongswan import missing_requirements
from tests.interop.charon import Charon, conn
from tests.interop.sites import HOST_B, both_ways, engine_yaml

pytestmark = [pytest.mark.slow, pytest.mark.netns]

# name: (engine encryption, engine authentication, engine IKE proposal, strongSwan IKE, ESP)
SUITES: dict[str, tuple[str, str, str, str, str]] = {
    "cbc-modp2048": ("aes128", "sha256", "aes128-sha256-modp2048",
                     "aes128-sha256-modp2048", "aes128-sha256"),
    "gcm-ecp256": ("aes128gcm", "none", "aes128gcm-prfsha256-ecp256",
                   "aes128gcm16-prfsha256-ecp256", "aes128gcm16"),
    "chacha-x25519": ("chacha20poly1305", "none", "chacha20poly1305-prfsha256-x25519",
                      "chacha20poly1305-prfsha256-x25519", "chacha20poly1305"),
    "3des-sha1-modp1024": ("3des", "sha1", "3des-sha1-modp1024",
                           "3des-sha1-modp1024", "3des-sha1"),
    "des-md5-modp1024": ("des", "md5", "des-md5-modp1024", "des-md5-modp1024", "des-md5"),
}  # fmt: skip
CASES = [(suite, role) for suite in SUITES for role in ("responder", "initiator")]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[topo.Sites, Charon]]:
    why = topo.missing() or missing_requirements()
    if why:
        pytest.skip(why)
    with topo.sites(tmp_path_factory.mktemp("interop")) as s:
        ss = Charon(s, "gb", s.workdir / "strongswan")
        ss.start()
        s.apply("a", engine_yaml(s, encryption="aes128", authentication="sha256"))
        s.start_engine("a")
        try:
            yield s, ss
        finally:
            ss.stop()


def engine_live(s: topo.Sites) -> dict[int, dict[str, Any]]:
    """The engine's Mature SAs by SPI."""
    out = s.cli("a", "show", "sas", "--json", "--state", s.state("a")).stdout
    return {sa["spi"]: sa for sa in json.loads(out) if sa["state"] == "M"}


def wait_for(check: Any, seconds: float, step: float = 0.2) -> bool:
    """Poll ``check()`` until it is true or ``seconds`` pass (bounded)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return bool(check())


def establish(s: topo.Sites, ss: Charon, role: str, family: int = 4) -> None:
    """Bring the child SA up with the engine in ``role``."""
    if role == "responder":
        ss.swanctl("--initiate", "--ike", "gw", "--child", "net", "--timeout", "15")
    else:
        # The first packet makes the engine negotiate (acquire); it may be queued or lost.
        s.run("ha", "ping", "-c", "1", "-W", "5", HOST_B[0 if family == 4 else 1], check=False)
    assert wait_for(lambda: len(engine_live(s)) == 2 and len(ss.child_spis()) == 2, 15), (
        s.log("a")[-3000:] + ss.log_text()[-3000:]
    )


def check_traffic(s: topo.Sites, ss: Charon, pcap: Path, family: int = 4) -> set[int]:
    """Traffic both ways is protected on the wire; returns the SPIs both sides agree on."""
    t = both_ways(s, pcap, family)
    assert t.pings == ((4, 4), (4, 4)), (t, s.log("a")[-2000:], ss.log_text()[-2000:])
    assert t.transfers_ok
    assert not t.marker_seen and t.clear_inner == 0 and t.clear_esp == 0, t
    assert t.esp_in_udp >= 16 + 2 * 6000 // 1400, t
    spis = set(engine_live(s))
    assert spis == ss.child_spis(), (spis, ss.list_sas())
    return spis


def delete_and_check(s: topo.Sites, ss: Charon, old: set[int], by: str) -> None:
    """Wait for a Delete started by ``by`` (strongSwan: started here; ipsecconf: by the
    apply the caller made); afterwards neither side lists the old SPIs."""
    if by == "strongswan":
        ss.swanctl("--terminate", "--ike", "gw", "--timeout", "10")
    assert wait_for(lambda: not (set(engine_live(s)) & old) and not (ss.child_spis() & old), 10), (
        by,
        s.log("a")[-2000:] + ss.log_text()[-2000:],
    )


def reconfigure(s: topo.Sites, ss: Charon, cfg: Path) -> None:
    """Apply ``cfg`` at A, and make sure the previous case's SAs are gone: a changed
    policy makes the engine delete them with strongSwan (a Delete started by
    ipsecconf); otherwise strongSwan deletes them."""
    before = set(engine_live(s))
    out = s.apply("a", cfg).stdout
    if before:
        changed = re.search(r"(\d+) to change", out)
        by = "ipsecconf" if changed and int(changed.group(1)) > 0 else "strongswan"
        delete_and_check(s, ss, before, by=by)


@pytest.mark.parametrize(("suite", "role"), CASES)
def test_psk_suite_and_role(
    lab: tuple[topo.Sites, Charon], tmp_path: Path, suite: str, role: str
) -> None:
    s, ss = lab
    enc, auth, ike, ss_ike, ss_esp = SUITES[suite]
    reconfigure(s, ss, engine_yaml(s, encryption=enc, authentication=auth, ike=ike))
    ss.load(conn("gw", "gb", ike=ss_ike, esp=ss_esp))
    establish(s, ss, role)
    spis = check_traffic(s, ss, tmp_path / "wan.pcap")
    [ike_sa] = [sa for sa in ss.list_sas() if sa.get("state") == "ESTABLISHED"]
    assert ike_sa["remote-port"] == "4500"
    sas = engine_live(s)
    assert {sa["encryption"] for sa in sas.values()} == {enc}
    assert spis


def test_psk_ipv6_both_roles(lab: tuple[topo.Sites, Charon], tmp_path: Path) -> None:
    s, ss = lab
    cfg = engine_yaml(s, encryption="aes128gcm", authentication="none", family=6,
                      ike="aes128gcm-prfsha256-x25519")  # fmt: skip
    reconfigure(s, ss, cfg)
    ss.load(conn("gw", "gb", ike="aes128gcm16-prfsha256-x25519", esp="aes128gcm16", family=6))
    for role in ("initiator", "responder"):
        establish(s, ss, role, family=6)
        spis = check_traffic(s, ss, tmp_path / f"wan6-{role}.pcap", family=6)
        [ike_sa] = [sa for sa in ss.list_sas() if sa.get("state") == "ESTABLISHED"]
        assert ike_sa["remote-host"] == "2001:db8:f::1"
        assert all(sa["destination"].startswith("2001:db8:f::") for sa in engine_live(s).values())
        delete_and_check(s, ss, spis, by="strongswan")


def test_auto_picks_the_strongest_suite_strongswan_offers(
    lab: tuple[topo.Sites, Charon], tmp_path: Path
) -> None:
    s, ss = lab
    reconfigure(s, ss, engine_yaml(s, encryption="auto", authentication="auto"))
    # strongSwan accepts a weak and a strong suite, weak first; as responder it follows
    # the initiator's order (prefer_configured_proposals = no on its side).
    ss.load(conn("gw", "gb", ike="aes128-sha256-modp2048,aes256gcm16-prfsha384-ecp384",
                 esp="aes128-sha256,aes256gcm16"))  # fmt: skip
    establish(s, ss, "initiator")
    check_traffic(s, ss, tmp_path / "wan.pcap")
    [ike_sa] = [sa for sa in ss.list_sas() if sa.get("state") == "ESTABLISHED"]
    assert (ike_sa["encr-alg"], ike_sa["encr-keysize"]) == ("AES_GCM_16", "256"), ike_sa
    assert {sa["encryption"] for sa in engine_live(s).values()} == {"aes256gcm"}
