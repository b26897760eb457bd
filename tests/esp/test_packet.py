"""ESP wire helpers: padding and trailer, NAT-T classification."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipsecconf.esp.errors import DecodeError, DropReason
from ipsecconf.esp.packet import (
    UdpKind,
    classify_udp4500,
    natt_keepalive,
    pull_esp_header,
    push_udp_header,
    strip_trailer,
    trailer,
)


@given(st.binary(max_size=100), st.sampled_from([4, 8, 16]), st.integers(0, 255))
def test_trailer_roundtrip_and_alignment(payload: bytes, block: int, nh: int) -> None:
    plain = payload + trailer(len(payload), block, nh)
    assert len(plain) % block == 0
    assert strip_trailer(plain) == (len(payload), nh)


def test_strip_trailer_rejects_bad_padding() -> None:
    with pytest.raises(DecodeError) as exc:
        strip_trailer(b"\x01")
    assert exc.value.reason is DropReason.TRUNCATED
    with pytest.raises(DecodeError) as exc:
        strip_trailer(b"ab\x05\x04")
    assert exc.value.reason is DropReason.BAD_PADDING
    with pytest.raises(DecodeError) as exc:
        strip_trailer(b"a\x01\x03\x02\x04")
    assert exc.value.reason is DropReason.BAD_PADDING


def test_nat_t_classification_rfc3948() -> None:
    assert classify_udp4500(natt_keepalive()) is UdpKind.KEEPALIVE
    assert classify_udp4500(b"\x00\x00\x00\x00IKEv2 header...") is UdpKind.IKE
    assert classify_udp4500(b"\x00\x00\x10\x01\x00\x00\x00\x01data") is UdpKind.ESP
    with pytest.raises(DecodeError):
        classify_udp4500(b"\x12\x34")
    assert push_udp_header(4500, 4501, 10) == bytes.fromhex("1194119500120000")
    assert pull_esp_header(bytes.fromhex("0000100100000002")) == (0x1001, 2)
    with pytest.raises(DecodeError):
        pull_esp_header(b"\x00" * 7)
