"""Anti-replay window of RFC 4303 section 3.4.3, with extended sequence numbers (Appendix A).

The receiver keeps the highest authenticated sequence number ``top`` and a bitmap of the
``size`` numbers at and below it.  :meth:`ReplayWindow.check` is pure: it infers the high
32 bits of an ESN from the low 32 bits on the wire (RFC 4303 Appendix A.2.2) and says
whether the number is new, replayed or too old.  :meth:`ReplayWindow.accept` updates the
window and must be called only after the ICV verified (strongSwan's verify_seqno /
set_authenticated_seqno split), so a forged packet can never move the window.

Sizes (DESIGN.md): default 64, any size from 32 up (4096 and more), or 0 = off, which only
manual SAs may use; with the window off every number is accepted, yet ``top`` still tracks
the highest one so that ESN inference keeps working.
"""

from __future__ import annotations

from typing import Final

from ipsecconf.esp.errors import DropReason, ReplayError, SaConfigError

DEFAULT_WINDOW: Final = 64
MIN_WINDOW: Final = 32
REPLAYED: Final = -1
"""Sentinel returned by :meth:`ReplayWindow.check` for a number already received."""
TOO_OLD: Final = -2
"""Sentinel returned by :meth:`ReplayWindow.check` for a number left of the window."""
_INFER_WINDOW: Final = DEFAULT_WINDOW
_M32: Final = 0xFFFFFFFF


class ReplayWindow:
    """The receive-side sliding window of one inbound SA."""

    __slots__ = ("_mask", "bitmap", "esn", "size", "top")

    def __init__(self, size: int = DEFAULT_WINDOW, *, esn: bool = False) -> None:
        if size != 0 and size < MIN_WINDOW:
            raise SaConfigError(f"replay window {size} is below {MIN_WINDOW} (use 0 for off)")
        self.size = size
        self.esn = esn
        self.top = 0
        """Highest authenticated sequence number (64-bit with ESN)."""
        self.bitmap = 0
        """Bit i set = sequence number ``top - i`` was received."""
        self._mask = (1 << size) - 1 if size else 0

    def infer(self, seq_low: int) -> int:
        """The full sequence number for ``seq_low`` (RFC 4303 Appendix A.2.2)."""
        if not self.esn:
            return seq_low
        w = self.size or _INFER_WINDOW
        tl = self.top & _M32
        th = self.top >> 32
        if tl >= w - 1:
            # Window within one 2**32 subspace.
            seqh = th if seq_low >= tl - w + 1 else th + 1
        else:
            # Window spans two subspaces.
            seqh = th - 1 if seq_low >= (tl - w + 1) & _M32 else th
        if seqh < 0:
            seqh = 0
        return (seqh << 32) | seq_low

    def check(self, seq_low: int) -> int:
        """The full sequence number if new, else :data:`REPLAYED` or :data:`TOO_OLD`.

        Pure: the window does not change.
        """
        seq = self.infer(seq_low) if self.esn else seq_low
        if seq == 0:
            # Sequence numbers start at 1 (RFC 4303 section 3.3.3); 0 is never sent.
            return TOO_OLD
        if not self.size:
            return seq
        top = self.top
        if seq > top:
            return seq
        diff = top - seq
        if diff >= self.size:
            return TOO_OLD
        if (self.bitmap >> diff) & 1:
            return REPLAYED
        return seq

    def accept(self, seq: int) -> None:
        """Record an authenticated ``seq`` (the value :meth:`check` returned)."""
        top = self.top
        if seq > top:
            if self.size:
                shift = seq - top
                self.bitmap = ((self.bitmap << shift) | 1) & self._mask if shift < self.size else 1
            self.top = seq
        elif self.size:
            self.bitmap |= 1 << (top - seq)

    def verify(self, seq_low: int) -> int:
        """:meth:`check` that raises :class:`ReplayError` instead of returning a sentinel."""
        seq = self.check(seq_low)
        if seq == REPLAYED:
            raise ReplayError(DropReason.REPLAYED, f"sequence number {seq_low} replayed")
        if seq == TOO_OLD:
            raise ReplayError(DropReason.TOO_OLD, f"sequence number {seq_low} too old")
        return seq
