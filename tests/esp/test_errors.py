"""Dataplane errors: every error carries a typed reason and sits under IpsecconfError."""

from __future__ import annotations

from ipsecconf.errors import IpsecconfError, ProtocolError
from ipsecconf.esp.errors import (
    DecodeError,
    DropReason,
    EspError,
    IntegrityError,
    ReplayError,
    SaConfigError,
    UnknownSpiError,
)


def test_reasons_are_distinct_words() -> None:
    values = [r.value for r in DropReason]
    assert len(values) == len(set(values))
    assert all(v == v.lower() and " " not in v for v in values)


def test_errors_carry_reasons_and_the_hierarchy() -> None:
    assert IntegrityError().reason is DropReason.INTEGRITY_FAILED
    assert UnknownSpiError().reason is DropReason.UNKNOWN_SPI
    err = ReplayError(DropReason.REPLAYED, "sequence number 7 replayed")
    assert str(err) == "sequence number 7 replayed"
    assert str(DecodeError(DropReason.TRUNCATED)) == "truncated"
    for e in (err, IntegrityError(), DecodeError(DropReason.MALFORMED)):
        assert isinstance(e, EspError) and isinstance(e, ProtocolError)
    assert issubclass(SaConfigError, IpsecconfError) and not issubclass(SaConfigError, EspError)
