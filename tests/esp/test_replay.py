"""Anti-replay window (RFC 4303 section 3.4.3 and Appendix A)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipsecconf.esp.errors import DropReason, ReplayError, SaConfigError
from ipsecconf.esp.replay import REPLAYED, TOO_OLD, ReplayWindow


def test_sizes() -> None:
    for size in (0, 32, 64, 4096, 10000):
        ReplayWindow(size)
    with pytest.raises(SaConfigError):
        ReplayWindow(31)


def test_check_is_pure_accept_moves() -> None:
    w = ReplayWindow(32)
    assert w.check(5) == 5
    assert w.check(5) == 5  # still new: check never changes the window
    w.accept(5)
    assert w.check(5) == REPLAYED
    assert w.check(0) == TOO_OLD
    w.accept(100)
    assert w.check(68) == TOO_OLD and w.check(69) == 69 and w.check(5) == TOO_OLD
    with pytest.raises(ReplayError) as exc:
        w.verify(100)
    assert exc.value.reason is DropReason.REPLAYED


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([32, 64, 128]), st.lists(st.integers(1, 400), max_size=200))
def test_window_equals_a_set_model(size: int, seqs: list[int]) -> None:
    """Against a trivially correct model: a set of accepted numbers and the highest."""
    w = ReplayWindow(size)
    seen: set[int] = set()
    top = 0
    for s in seqs:
        got = w.check(s)
        if s > top:
            assert got == s
        elif top - s >= size:
            assert got == TOO_OLD
        elif s in seen:
            assert got == REPLAYED
        else:
            assert got == s
        if got > 0:
            w.accept(got)
            seen.add(s)
            top = max(top, s)


def test_window_off_accepts_everything_but_tracks_top() -> None:
    w = ReplayWindow(0, esn=True)
    for s in (5, 5, 1, 3):
        assert w.check(s) == s
        w.accept(s)
    assert w.top == 5


def test_esn_inference_appendix_a() -> None:
    w = ReplayWindow(64, esn=True)
    w.accept((3 << 32) + 1000)
    # Window inside one subspace: low numbers below the window belong to the next block.
    assert w.check(1500) == (3 << 32) + 1500
    assert w.check(950) == (3 << 32) + 950
    assert w.check(5) == (4 << 32) + 5
    # Window spanning two subspaces (top's low half is below the window size).
    w2 = ReplayWindow(64, esn=True)
    w2.accept((3 << 32) + 10)
    assert w2.check(0xFFFFFFF0) == (2 << 32) + 0xFFFFFFF0
    assert w2.check(20) == (3 << 32) + 20
    w2.accept((2 << 32) + 0xFFFFFFF0)
    assert w2.check(0xFFFFFFF0) == REPLAYED
