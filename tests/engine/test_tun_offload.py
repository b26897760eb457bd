"""The TUN device with segmentation offload against the real kernel, in network
namespaces: two devices joined by a relay of TunDevice reads and writes
(:mod:`tests.engine.tunrelay`) carry TCP intact both ways, over IPv4 and IPv6; the kernel
handed over super-packets and took merged segments."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.engine import topo
from tests.engine.wiretools import CLIENT, SERVER

pytestmark = [pytest.mark.slow, pytest.mark.netns]

ADDRS = {"a": ("198.51.100.1", "2001:db8:1::1"), "b": ("198.51.100.2", "2001:db8:1::2")}
DEV = "tunofl0"


def _ip(ns: str, *args: str) -> None:
    topo.sh("ip", "-n", ns, *args)


@pytest.fixture(scope="module")
def link() -> Iterator[tuple[dict[str, str], subprocess.Popen[str]]]:
    why = topo.missing()
    if why:
        pytest.skip(why)
    ns = {side: f"ipcofl{side}{os.getpid() % 100000}" for side in ("a", "b")}
    relay: subprocess.Popen[str] | None = None
    try:
        for name in ns.values():
            topo.sh("ip", "netns", "add", name)
        relay = subprocess.Popen(
            [sys.executable, "-m", "tests.engine.tunrelay", ns["a"], ns["b"], DEV],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(topo.ROOT)},
        )  # fmt: skip
        assert relay.stdout is not None and relay.stdout.readline().strip() == "ready"
        for side, other in (("a", "b"), ("b", "a")):
            for mine, peer, plen in zip(ADDRS[side], ADDRS[other], ("32", "128"), strict=True):
                _ip(ns[side], "addr", "add", f"{mine}/{plen}", "dev", DEV, "nodad")
                _ip(ns[side], "link", "set", DEV, "up")
                _ip(ns[side], "route", "add", f"{peer}/{plen}", "dev", DEV)
            _ip(ns[side], "link", "set", "lo", "up")
        assert relay.stdin is not None
        relay.stdin.write("go\n")
        relay.stdin.flush()
        yield ns, relay
    finally:
        if relay is not None and relay.poll() is None:
            relay.kill()
            relay.wait(timeout=10)
        for name in ns.values():
            topo.sh("ip", "netns", "del", name, check=False)


def _transfer(ns: dict[str, str], src: str, dst: str, address: str, payload: bytes) -> bytes:
    server = subprocess.Popen(
        ["ip", "netns", "exec", ns[dst], sys.executable, "-c", SERVER, address, "5201"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        client = subprocess.run(
            ["ip", "netns", "exec", ns[src], sys.executable, "-c", CLIENT, address, "5201"],
            input=payload.hex(), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr
        out, _err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
    return bytes.fromhex(out.strip())


@pytest.mark.parametrize(
    ("src", "dst", "family"), [("a", "b", 0), ("b", "a", 0), ("a", "b", 1), ("b", "a", 1)]
)
def test_tcp_through_offloading_tuns(
    link: tuple[dict[str, str], subprocess.Popen[str]], src: str, dst: str, family: int
) -> None:
    payload = os.urandom(2 << 20)
    got = _transfer(link[0], src, dst, ADDRS[dst][family], payload)
    assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()


def test_the_kernel_handed_super_packets_and_took_merged_ones(  # after the transfers
    link: tuple[dict[str, str], subprocess.Popen[str]],
) -> None:
    _ns, relay = link
    out, _err = relay.communicate(input="", timeout=30)
    counters = json.loads(out.strip().splitlines()[-1])
    for side in ("a", "b"):
        c = counters[side]
        assert c["super_packets"] > 0 and c["merged_writes"] > 0, counters
        assert c["offload_errors"] == 0 and c["write_errors"] == 0, counters
