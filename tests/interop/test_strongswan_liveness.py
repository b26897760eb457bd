"""strongSwan restarted or killed under a live tunnel: the engine notices and renegotiates.

The engine at site A runs a ``start: immediate`` policy with a 2-second liveness
interval and a 12-second liveness timeout against charon at B. Restarted cleanly, charon
deletes its IKE SA on the way down and the engine renegotiates as soon as the new charon
answers. Killed (SIGKILL) and started again, charon knows nothing of the old SAs and
says nothing: the engine's liveness check (an empty INFORMATIONAL after 2 s without
inbound traffic) goes unanswered through the retransmission schedule (strongSwan's
shape, 1.8^n, scaled to add up to the 12 s), the IKE SA fails, and the engine
renegotiates. Both cases end with traffic both ways, protected on the wire, and the same
new SPIs on both sides.

Needs root and the Debian packages of scripts/install-test-deps.sh; skipped otherwise.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine import topo
from tests.ike.strongswan import missing_requirements
from tests.interop.charon import Charon, conn
from tests.interop.sites import engine_yaml
from tests.interop.test_strongswan_tunnel import check_traffic, engine_live, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.netns]

IKE, ESP = "aes128-sha256-modp2048", "aes128-sha256"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[topo.Sites, Charon]]:
    why = topo.missing() or missing_requirements()
    if why:
        pytest.skip(why)
    with topo.sites(tmp_path_factory.mktemp("liveness")) as s:
        ss = Charon(s, "gb", s.workdir / "strongswan")
        ss.start()
        ss.load(conn("gw", "gb", ike=IKE, esp=ESP))
        s.apply("a", engine_yaml(s, encryption="aes128", authentication="sha256", ike=IKE,
                                 start="immediate", liveness=2,
                                 peer_extra={"liveness_timeout": 12}))  # fmt: skip
        s.start_engine("a")
        try:
            yield s, ss
        finally:
            ss.stop()


def renegotiated(s: topo.Sites, ss: Charon, old: set[int], seconds: float) -> float | None:
    """Seconds until both sides list the same new pair of SPIs, or None."""
    started = time.monotonic()

    def done() -> bool:
        theirs = ss.child_spis()
        return len(theirs) == 2 and not (theirs & old) and set(engine_live(s)) == theirs

    return time.monotonic() - started if wait_for(done, seconds, step=1.0) else None


def test_strongswan_restarted(lab: tuple[topo.Sites, Charon], tmp_path: Path) -> None:
    s, ss = lab
    assert wait_for(lambda: len(engine_live(s)) == 2, 20), s.log("a")[-2000:]
    old = check_traffic(s, ss, tmp_path / "wan.pcap")
    ss.stop(signal.SIGTERM)  # charon deletes its IKE SA with the engine on the way down
    assert wait_for(lambda: not (set(engine_live(s)) & old), 10), s.log("a")[-2000:]
    ss.start()
    ss.load(conn("gw", "gb", ike=IKE, esp=ESP))
    took = renegotiated(s, ss, old, 60)
    assert took is not None, s.log("a")[-3000:]
    print(f"strongSwan restarted: renegotiated {took:.1f} s after it was back")
    check_traffic(s, ss, tmp_path / "wan2.pcap")


def test_strongswan_killed_liveness_notices(lab: tuple[topo.Sites, Charon], tmp_path: Path) -> None:
    s, ss = lab
    old = check_traffic(s, ss, tmp_path / "wan.pcap")
    ss.stop(signal.SIGKILL)
    ss.start()
    ss.load(conn("gw", "gb", ike=IKE, esp=ESP))
    took = renegotiated(s, ss, old, 60)
    assert took is not None, s.log("a")[-3000:]
    assert took < 30  # liveness interval 2 s + liveness timeout 12 s + the negotiation
    assert "not responding" in s.log("a") or "liveness" in s.log("a"), s.log("a")[-3000:]
    print(f"strongSwan killed: the engine's liveness check renegotiated after {took:.1f} s")
    check_traffic(s, ss, tmp_path / "wan2.pcap")
