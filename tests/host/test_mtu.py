"""A 10 MB TCP transfer with DF set, protected by the CIFS policy (transport mode ESP),
through a router whose link to the filer has an MTU of 1400: the client's engine learns
the path MTU from the router's "fragmentation needed", answers the too-big packets with
its own "fragmentation needed" to the local TCP, and the transfer completes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.engine import topo
from tests.host import bulk, hosttopo

pytestmark = [pytest.mark.slow, pytest.mark.netns]

SIZE = 10 << 20


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[hosttopo.Hosts]:
    why = topo.missing()
    if why:
        pytest.skip(why)
    with hosttopo.hosts(tmp_path_factory.mktemp("mtu"), wan_mtu=1400) as h:
        h.apply("a", h.write_hosts("a"))
        h.apply("b", h.write_hosts("b"))
        h.start_engine("a")
        h.start_engine("b")
        yield h


def test_10mb_with_df_through_path_mtu_1400(pair: hosttopo.Hosts) -> None:
    started = time.monotonic()
    got = bulk.transfer(pair, "ga", "gb", hosttopo.FILER, 139, SIZE, timeout=90)
    took = time.monotonic() - started
    assert got == bulk.expected(SIZE), pair.log("a")
    print(f"10 MB through path MTU 1400: {took:.1f} s")
    log = pair.log("a")
    assert f"path MTU to {hosttopo.FILER} is 1400" in log
    assert "too-big-for-path" in log
    # The other way (the filer's replies are small ACKs) never needed it.
    assert "path MTU" not in pair.log("b")


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[topo.Sites]:
    why = topo.missing()
    if why:
        pytest.skip(why)
    with topo.sites(tmp_path_factory.mktemp("mtu-tunnel")) as s:
        # The gateways' own link has an MTU of 1400: the kernel refuses bigger ESP packets
        # (EMSGSIZE) and the engine asks it for the link's MTU.
        for ns, dev in (("ga", "wan0"), ("gb", "wan1")):
            s.ip(ns, "link", "set", dev, "mtu", "1400")
        pairs = [("site", "198.51.100.0/25", "198.51.100.128/25")]
        s.apply("a", s.write_config("a", pairs, {"site": ("aes128", "sha256")}))
        s.apply("b", s.write_config("b", [(n, d, r) for n, r, d in pairs],
                                    {"site": ("aes128", "sha256")}))  # fmt: skip
        s.start_engine("a")
        s.start_engine("b")
        yield s


def test_10mb_with_df_through_a_tunnel_over_a_1400_link(sites: topo.Sites) -> None:
    """Tunnel mode, AES-CBC + HMAC (padding to 16 bytes): the hosts behind the gateways
    get "fragmentation needed" forwarded from the gateway's TUN and shrink their MSS."""
    started = time.monotonic()
    got = bulk.transfer(sites, "ha", "hb", "198.51.100.130", 5010, SIZE, timeout=90)
    took = time.monotonic() - started
    assert got == bulk.expected(SIZE), sites.log("a")
    print(f"10 MB through a tunnel over a 1400-byte link: {took:.1f} s")
    assert "path MTU to 203.0.113.2 is 1400 (the link's)" in sites.log("a")
