"""SA configuration validation and counters."""

from __future__ import annotations

import pytest

from ipsecconf.esp.errors import DropReason, SaConfigError
from ipsecconf.esp.saconfig import Counters, Protocol, SaConfig, UdpEncap
from ipsecconf.esp.spd import Direction
from ipsecconf.model.algorithms import cipher, integrity


def test_config_validation() -> None:
    base = dict(spi=0x1000, direction=Direction.IN, src="198.51.100.1", dst="203.0.113.1")
    c = cipher("aes128gcm")
    with pytest.raises(SaConfigError):
        SaConfig(**base, cipher=c, enc_key=bytes(20), replay_window=0)  # type: ignore[arg-type]
    SaConfig(**base, cipher=c, enc_key=bytes(20), replay_window=0, manual=True)  # type: ignore[arg-type]
    with pytest.raises(SaConfigError):
        SaConfig(**{**base, "spi": 7}, cipher=c, enc_key=bytes(20))  # type: ignore[arg-type]
    with pytest.raises(SaConfigError):
        SaConfig(**{**base, "dst": "2001:db8::1"}, cipher=c, enc_key=bytes(20))  # type: ignore[arg-type]
    with pytest.raises(SaConfigError):
        SaConfig(
            **base,
            protocol=Protocol.AH,
            integrity=integrity("sha1"),
            integ_key=bytes(20),
            encap=UdpEncap(),
        )  # type: ignore[arg-type]
    with pytest.raises(SaConfigError):
        SaConfig(**base)  # type: ignore[arg-type]


def test_counters_count_drops_by_kind() -> None:
    c = Counters()
    for reason in (
        DropReason.INTEGRITY_FAILED,
        DropReason.REPLAYED,
        DropReason.TOO_OLD,
        DropReason.POLICY_MISMATCH,
        DropReason.TRUNCATED,
    ):
        c.count_drop(reason)
    assert c.as_dict() == {
        "bytes": 0,
        "integrity_failures": 1,
        "other_drops": 1,
        "packets": 0,
        "policy_drops": 1,
        "replay_drops": 2,
    }
