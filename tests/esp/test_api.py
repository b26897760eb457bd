"""The public API: the documented example works, errors are typed."""

from __future__ import annotations

import os

import pytest

from ipsecconf.esp import api
from ipsecconf.esp.errors import DropReason, EspError, SaConfigError

from .helpers import clear_packet


def test_documented_example() -> None:
    key = os.urandom(20)
    out = api.make_sa(
        spi=0x1001,
        src="198.51.100.1",
        dst="203.0.113.1",
        encryption="aes128gcm",
        enc_key=key,
        rng=os.urandom,
    )
    inn = api.make_sa(
        spi=0x1001,
        src="198.51.100.1",
        dst="203.0.113.1",
        encryption="aes128gcm",
        enc_key=key,
        direction="in",
    )
    clear = clear_packet(4, "198.51.100.50", "203.0.113.60", b"payload")
    wire = api.encapsulate(out, clear)
    assert api.decapsulate(inn, wire) == clear
    with pytest.raises(EspError) as exc:
        api.decapsulate(inn, wire)
    assert exc.value.reason is DropReason.REPLAYED


def test_cbc_needs_an_rng_and_esp_needs_a_cipher() -> None:
    sa = api.make_sa(
        spi=0x1002,
        src="198.51.100.1",
        dst="203.0.113.1",
        encryption="aes128",
        authentication="sha256",
        enc_key=bytes(16),
        integ_key=bytes(32),
    )
    with pytest.raises(SaConfigError):
        api.encapsulate(sa, clear_packet(4, "198.51.100.50", "203.0.113.60", b"x"))
    with pytest.raises(SaConfigError):
        api.make_sa(spi=0x1003, src="198.51.100.1", dst="203.0.113.1", encryption=None)
