"""Benchmark the engine's dataplane against strongSwan's user-space one: iperf3 TCP
throughput through the tunnel for a pair of ipsecconf engines and for a pair of
strongSwan 5.9.8 peers (charon with kernel-libipsec), on the same namespaces, in one run.

Run as root from the repository root (it builds its own network namespaces with the
RFC 5737 ranges only, and deletes them)::

    sudo PYTHONPATH=. .venv/bin/python scripts/bench_interop.py [--seconds 10] [--rounds 1]

Same settings for both: ESP-in-UDP (strongSwan's user-space dataplane speaks nothing
else), tunnel mode between 198.51.100.0/25 and 198.51.100.128/25, veth MTU 1500, TUN MTU
1400 (both daemons' default), one TCP stream ``iperf3 -c HOST -t SECONDS -O 1 -J``.
Suites: AES-CBC-128 + HMAC-SHA2-256-128 and AES-GCM-128 (IKE: aes128-sha256-modp2048 and
aes128gcm16-prfsha256-ecp256 on both).  With ``--rounds N`` the two are measured
alternately N times and the medians compared, so that the machine's load moves both
alike; the load average is printed with the figures.  Beside each throughput: the CPU
time the two daemons (the engines; the charon processes, all threads) spent per MB of
TCP payload while iperf3 measured -- a figure that other work on the machine moves less
than the throughput, since it counts only what the daemons ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from tests.engine import topo
from tests.interop.charon import Charon, conn

# label: (engine encryption, engine authentication, IKE proposal, strongSwan ESP)
SUITES = {
    "AES-CBC-128 + HMAC-SHA2-256-128": ("aes128", "sha256", "aes128-sha256-modp2048",
                                        "aes128-sha256"),
    "AES-GCM-128": ("aes128gcm", "none", "aes128gcm16-prfsha256-ecp256", "aes128gcm16"),
}  # fmt: skip
PAIRS = {"a": [("site", "198.51.100.0/25", "198.51.100.128/25")],
         "b": [("site", "198.51.100.128/25", "198.51.100.0/25")]}  # fmt: skip
HOST_B = "198.51.100.130"


class Result(NamedTuple):
    """One iperf3 run: Mbit/s received, and the daemons' CPU milliseconds per MB."""

    mbit: float
    cpu_ms_per_mb: float


def cpu_seconds(pids: list[int]) -> float:
    """User and system time of the processes ``pids`` (every thread) so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def iperf(s: topo.Sites, seconds: int, daemons: list[int]) -> Result:
    """Throughput through the tunnel, host A to host B, and the CPU the ``daemons``
    used for it (from the end of iperf3's omitted first second to its end)."""
    server = s.popen("hb", "iperf3", "-s", "-1", "-B", HOST_B)
    time.sleep(0.5)
    try:
        client = s.popen("ha", "iperf3", "-c", HOST_B, "-t", str(seconds), "-O", "1", "-J")
        time.sleep(1.0)
        before = cpu_seconds(daemons)
        out, _err = client.communicate(timeout=seconds + 30)
        used = cpu_seconds(daemons) - before
    finally:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)
    received = json.loads(out)["end"]["sum_received"]
    megabytes = float(received["bytes"]) / 1e6
    return Result(float(received["bits_per_second"]) / 1e6, used * 1e3 / megabytes)


def up(s: topo.Sites) -> None:
    """Wait (bounded) until a ping passes the tunnel."""
    for _ in range(20):
        if s.run("ha", "ping", "-c", "1", "-W", "1", HOST_B, check=False).returncode == 0:
            return
    raise RuntimeError("the tunnel did not come up")


def engines(s: topo.Sites, enc: str, auth: str, ike: str, seconds: int) -> Result:
    """Throughput through a pair of ipsecconf engines."""
    for side in ("a", "b"):
        cfg = s.write_config(side, PAIRS[side], {"site": (enc, auth)}, udp=True)
        text = cfg.read_text().replace(
            "    liveness_interval:", f"    ike_proposals: [{ike}]\n    liveness_interval:"
        )
        cfg.write_text(text)
        s.apply(side, cfg)
    pids = [s.start_engine("b").pid, s.start_engine("a").pid]
    try:
        up(s)
        return iperf(s, seconds, pids)
    finally:
        s.stop_engine("a")
        s.stop_engine("b")


def strongswan(s: topo.Sites, ike: str, esp: str, seconds: int) -> Result:
    """Throughput through a pair of strongSwan peers."""
    peers = {ns: Charon(s, ns, s.workdir / f"ss-{ns}") for ns in ("ga", "gb")}
    try:
        for ns, c in peers.items():
            c.start()
            c.load(conn("gw", ns, ike=ike, esp=esp))
        peers["ga"].swanctl("--initiate", "--ike", "gw", "--child", "net", "--timeout", "15")
        mtu = s.run("ga", "ip", "-o", "link", "show", "ipsec0").stdout.split("mtu ")[1].split()[0]
        if mtu != "1400":
            raise RuntimeError(f"strongSwan's TUN has MTU {mtu}, not 1400")
        up(s)
        return iperf(s, seconds, [c.proc.pid for c in peers.values() if c.proc is not None])
    finally:
        for c in peers.values():
            c.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10, help="iperf3 duration (default 10)")
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds (default 1)")
    args = ap.parse_args()
    why = topo.missing()
    if why is None and not os.path.exists("/usr/lib/ipsec/charon"):
        why = "needs strongSwan (scripts/install-test-deps.sh)"
    if why:
        print(f"bench_interop: {why}", file=sys.stderr)
        return 1
    print(
        f"iperf3 -t {args.seconds} -O 1, one TCP stream, ESP-in-UDP, TUN MTU 1400, "
        f"veth MTU 1500, {os.cpu_count()} CPUs"
    )
    print(f"{'suite':34} {'ipsecconf':>10} {'strongSwan':>11} {'ratio':>6}  "
          f"{'CPU ms/MB (ipsecconf, strongSwan)':>34}  load average")  # fmt: skip
    for label, (enc, auth, ike, esp) in SUITES.items():
        ours: list[Result] = []
        theirs: list[Result] = []
        with tempfile.TemporaryDirectory(prefix="bench-interop") as tmp, topo.sites(Path(tmp)) as s:
            for _ in range(args.rounds):
                ours.append(engines(s, enc, auth, ike, args.seconds))
                theirs.append(strongswan(s, ike, esp, args.seconds))
        a = statistics.median(r.mbit for r in ours)
        b = statistics.median(r.mbit for r in theirs)
        ca = statistics.median(r.cpu_ms_per_mb for r in ours)
        cb = statistics.median(r.cpu_ms_per_mb for r in theirs)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"{label:34} {a:10.1f} {b:11.1f} {a / b:6.2f}  {ca:16.1f} {cb:17.1f}  {load}",
              flush=True)  # fmt: skip
        if args.rounds > 1:
            print(f"{'':34} rounds (Mbit/s): {[round(r.mbit, 1) for r in ours]} "
                  f"{[round(r.mbit, 1) for r in theirs]}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
