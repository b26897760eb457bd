"""Bulk TCP through two engines over ESP-in-UDP, in network namespaces: the data arrives
intact through merged TUN writes and UDP_SEGMENT / UDP_GRO batches, over IPv4 and IPv6
inside, both ways."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine import topo
from tests.engine.wiretools import tcp_transfer

pytestmark = [pytest.mark.slow, pytest.mark.netns]

PAIRS = {"a": [("site", "198.51.100.0/25", "198.51.100.128/25")],
         "b": [("site", "198.51.100.128/25", "198.51.100.0/25")]}  # fmt: skip


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[topo.Sites]:
    why = topo.missing()
    if why:
        pytest.skip(why)
    with topo.sites(tmp_path_factory.mktemp("offload")) as s:
        for side in ("a", "b"):
            s.apply(side, s.write_config(side, PAIRS[side], ipv6=True, udp=True))
        s.start_engine("a")
        s.start_engine("b")
        yield s


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("src", "dst", "address", "port"),
    [
        ("ha", "hb", "198.51.100.130", 5101),
        ("hb", "ha", "198.51.100.10", 5102),
        ("ha", "hb", "2001:db8:b::10", 5103),
    ],
)
def test_bulk_transfer_arrives_intact(
    pair: topo.Sites, src: str, dst: str, address: str, port: int
) -> None:
    payload = os.urandom(3 << 20)
    got = tcp_transfer(pair, src, dst, address, payload, port=port)
    assert len(got) == len(payload) and _digest(got) == _digest(payload)


def test_the_engines_used_the_offloads(pair: topo.Sites, tmp_path: Path) -> None:
    counts = {}
    for side in ("a", "b"):
        pair.stop_engine(side)
        line = re.search(r"dataplane offloads: (\d+) merged TUN writes, (\d+) TCP super-packets "
                         r"read, (\d+) ESP-in-UDP runs", pair.log(side))  # fmt: skip
        assert line, pair.log(side)
        counts[side] = tuple(int(x) for x in line.groups())
    # Each side received a bulk transfer (merged writes) and sent one (UDP batches); the
    # TUN's segmentation offload is off by default, so no super-packets were read.
    for side in ("a", "b"):
        merged, supers, runs = counts[side]
        assert merged > 10 and runs > 10 and supers == 0, counts
