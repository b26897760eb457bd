"""Test helper, run as its own process: two TUN devices with offloads, one in each of two
network namespaces, and the packets read from one written to the other -- a wire made of
:class:`~ipsecconf.io.tun.TunDevice` reads (super-packets segmented) and writes (segments
merged).  It relays once a line arrives on its standard input (the devices are up then:
a device that is down refuses writes), stops when the input closes, then prints the
devices' counters.

    python -m tests.engine.tunrelay NS_A NS_B NAME
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import sys

from ipsecconf.io.tun import TunDevice

CLONE_NEWNET = 0x40000000


def enter(ns: str) -> None:
    """Move this process into the network namespace ``ns`` (``ip netns`` names)."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
    finally:
        os.close(fd)


def main(ns_a: str, ns_b: str, name: str) -> None:
    enter(ns_a)
    a = TunDevice.open(name, tso=True)
    enter(ns_b)
    b = TunDevice.open(name, tso=True)
    print("ready", flush=True)
    sys.stdin.readline()
    stdin = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([a.fd, b.fd, stdin], [], [], 1.0)
        if stdin in ready:
            break
        if a.fd in ready:
            b.write_packets(a.read_burst())
        if b.fd in ready:
            a.write_packets(b.read_burst())
    counters = {
        side: {
            k: getattr(dev, k)
            for k in ("super_packets", "merged_writes", "write_errors", "offload_errors")
        }
        for side, dev in (("a", a), ("b", b))
    }
    print(json.dumps(counters), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
