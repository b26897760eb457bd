"""Rekeys and deletes between an ipsecconf engine and strongSwan 5.9.8, with a ping
running across each.

Started by strongSwan: a child rekey (CREATE_CHILD_SA, RFC 7296 2.8) and an IKE SA rekey
(2.18; the children move to the new IKE SA).  Started by ipsecconf: the engine rekeys a
child in place at its soft lifetime, and the IKE SA at its ``ike_lifetime``.  Deletes
started by each side are in test_strongswan_tunnel.py.  After each, both sides list the
same new SPIs and neither lists the old ones, and the ping (every 50 ms) loses at most a
few packets; the counts are printed.

Needs root and the Debian packages of scripts/install-test-deps.sh; skipped otherwise.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.engine import topo
from tests.engine.wiretools import parse_ping
from tests.ike.strongswan import missing_requirements
from tests.interop.charon import Charon, conn
from tests.interop.sites import HOST_B, engine_yaml
from tests.interop.test_strongswan_tunnel import check_traffic, engine_live, establish, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.netns]

IKE, ESP = "aes128-sha256-modp2048", "aes128-sha256"


def engine_config(s: topo.Sites, **extra: Any) -> Path:
    """Site A's YAML with this module's suite."""
    return engine_yaml(s, encryption="aes128", authentication="sha256", ike=IKE, **extra)


MAX_LOST = 5
"""Pings (of those sent every 50 ms across a rekey) that may be lost."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[topo.Sites, Charon]]:
    why = topo.missing() or missing_requirements()
    if why:
        pytest.skip(why)
    with topo.sites(tmp_path_factory.mktemp("rekey")) as s:
        ss = Charon(s, "gb", s.workdir / "strongswan")
        ss.start()
        ss.load(conn("gw", "gb", ike=IKE, esp=ESP))
        s.apply("a", engine_config(s))
        s.start_engine("a")
        establish(s, ss, "initiator")
        try:
            yield s, ss
        finally:
            ss.stop()


class Pinger:
    """A ping from host A to host B every 50 ms while the block runs."""

    def __init__(self, s: topo.Sites, count: int) -> None:
        self.proc = s.popen(
            "ha", "ping", "-n", "-c", str(count), "-i", "0.05", "-W", "1", HOST_B[0]
        )
        time.sleep(0.5)

    def lost(self) -> tuple[int, int]:
        """(sent, lost) once the ping has finished."""
        out, _ = self.proc.communicate(timeout=60)
        sent, received = parse_ping(out)
        return sent, sent - received


def test_child_rekey_by_strongswan(lab: tuple[topo.Sites, Charon], tmp_path: Path) -> None:
    s, ss = lab
    old = check_traffic(s, ss, tmp_path / "before.pcap")
    pinger = Pinger(s, 60)
    ss.swanctl("--rekey", "--child", "net")
    sent, lost = pinger.lost()
    print(f"child rekey by strongSwan: {lost} of {sent} pings lost")
    assert sent == 60 and lost <= MAX_LOST
    assert wait_for(lambda: set(engine_live(s)) == ss.child_spis(), 10)
    new = check_traffic(s, ss, tmp_path / "after.pcap")
    assert len(new) == 2 and not (new & old), (old, new)


def test_ike_rekey_by_strongswan(lab: tuple[topo.Sites, Charon], tmp_path: Path) -> None:
    s, ss = lab
    [old_ike] = ss.ike_spis()
    children = check_traffic(s, ss, tmp_path / "before.pcap")
    pinger = Pinger(s, 60)
    ss.swanctl("--rekey", "--ike", "gw")
    sent, lost = pinger.lost()
    print(f"IKE rekey by strongSwan: {lost} of {sent} pings lost")
    assert sent == 60 and lost <= MAX_LOST
    [new_ike] = ss.ike_spis()  # one IKE SA: the old one is gone on strongSwan's side
    assert new_ike != old_ike
    # The engine logged the same new IKE SPIs; the children moved over unchanged.
    assert f"SPIs {new_ike[0]}/{new_ike[1]}" in s.log("a"), s.log("a")[-2000:]
    assert check_traffic(s, ss, tmp_path / "after.pcap") == children
    # The engine holds the new IKE SA: a child rekey over it works.
    ss.swanctl("--rekey", "--child", "net")
    assert wait_for(lambda: ss.child_spis() and not (ss.child_spis() & children), 10)
    assert wait_for(lambda: set(engine_live(s)) == ss.child_spis(), 10)
    assert ss.ike_spis() == {new_ike}


def test_child_rekey_by_ipsecconf(lab: tuple[topo.Sites, Charon], tmp_path: Path) -> None:
    s, ss = lab
    # A 24 s child lifetime with a 12 s margin: the engine rekeys the child in place
    # (CREATE_CHILD_SA) 10.8-12 s after it is installed.
    lifetime = "    lifetime:\n      time: 24\n      rekey_margin: 12\n"
    s.apply("a", engine_config(s, policy_extra=lifetime))
    establish(s, ss, "initiator")
    old = check_traffic(s, ss, tmp_path / "before.pcap")
    old_ike = ss.ike_spis()
    pinger = Pinger(s, 300)  # 15 s

    def replaced() -> bool:
        theirs = ss.child_spis()
        return len(theirs) == 2 and not (theirs & old) and set(engine_live(s)) == theirs

    assert wait_for(replaced, 20, step=0.5), s.log("a")[-2000:] + ss.log_text()[-2000:]
    sent, lost = pinger.lost()
    print(f"child rekey by ipsecconf: {lost} of {sent} pings lost")
    assert sent == 300 and lost <= MAX_LOST
    assert ss.ike_spis() == old_ike  # in place: the same IKE SA
    assert re.search(
        r"SA 0x[0-9a-f]{8} of policy site reached its soft seconds lifetime: rekeying", s.log("a")
    )
    check_traffic(s, ss, tmp_path / "after.pcap")


def test_ike_rekey_by_ipsecconf(lab: tuple[topo.Sites, Charon], tmp_path: Path) -> None:
    s, ss = lab
    # A 24 s IKE lifetime with a 12 s margin: the engine rekeys the IKE SA 12 s in.
    s.apply("a", engine_config(s, peer_extra={"ike_lifetime": 24, "rekey_margin": 12}))
    establish(s, ss, "initiator")
    children = check_traffic(s, ss, tmp_path / "before.pcap")
    old_ike = ss.ike_spis()
    pinger = Pinger(s, 300)  # 15 s
    assert wait_for(
        lambda: len(ss.ike_spis()) == 1 and not (ss.ike_spis() & old_ike), 20, step=0.5
    ), s.log("a")[-2000:] + ss.log_text()[-2000:]
    sent, lost = pinger.lost()
    print(f"IKE rekey by ipsecconf: {lost} of {sent} pings lost")
    assert sent == 300 and lost <= MAX_LOST
    [new_ike] = ss.ike_spis()
    assert f"SPIs {new_ike[0]}/{new_ike[1]}" in s.log("a"), s.log("a")[-2000:]
    # The children moved to the new IKE SA unchanged (RFC 7296 2.18).
    assert check_traffic(s, ss, tmp_path / "after.pcap") == children
