"""A byte cursor for the wire codecs (IKE, ESP, AH): pull_*/push_* of fixed-size ints and bytes.

Reads past the end raise :class:`BufferReadError`; the protocol cores turn it into a typed
decode error.  Network byte order throughout.  Stdlib only.
"""

from __future__ import annotations

import struct

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")


class BufferReadError(ValueError):
    """A read ran past the end of the data."""


class BufferWriteError(ValueError):
    """A value does not fit the field it is written to."""


class Buffer:
    """A read cursor over ``data`` or a growing write buffer when ``data`` is omitted."""

    __slots__ = ("_data", "_out", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview | None = None) -> None:
        self._data = memoryview(bytes(data) if isinstance(data, bytearray) else data or b"")
        self._pos = 0
        self._out = bytearray()

    # -- reading -----------------------------------------------------------------
    def tell(self) -> int:
        """Current read offset."""
        return self._pos

    def seek(self, pos: int) -> None:
        """Move the read offset; it must stay inside the data."""
        if not 0 <= pos <= len(self._data):
            raise BufferReadError(f"seek to {pos} outside 0..{len(self._data)}")
        self._pos = pos

    def eof(self) -> bool:
        """True when every byte has been read."""
        return self._pos >= len(self._data)

    def remaining(self) -> int:
        """Bytes left to read."""
        return len(self._data) - self._pos

    def _take(self, n: int) -> memoryview:
        if n < 0 or self._pos + n > len(self._data):
            raise BufferReadError(
                f"need {n} bytes at offset {self._pos}, have {len(self._data) - self._pos}"
            )
        view = self._data[self._pos : self._pos + n]
        self._pos += n
        return view

    def pull_bytes(self, n: int) -> bytes:
        """Read ``n`` bytes."""
        return bytes(self._take(n))

    def pull_uint8(self) -> int:
        """Read one unsigned byte."""
        return self._take(1)[0]

    def pull_uint16(self) -> int:
        """Read a big-endian 16-bit unsigned int."""
        return int(_U16.unpack(self._take(2))[0])

    def pull_uint32(self) -> int:
        """Read a big-endian 32-bit unsigned int."""
        return int(_U32.unpack(self._take(4))[0])

    def pull_uint64(self) -> int:
        """Read a big-endian 64-bit unsigned int."""
        return int(_U64.unpack(self._take(8))[0])

    # -- writing -----------------------------------------------------------------
    def push_bytes(self, value: bytes | bytearray | memoryview) -> None:
        """Append raw bytes."""
        self._out += value

    def push_uint8(self, value: int) -> None:
        """Append one unsigned byte."""
        if not 0 <= value <= 0xFF:
            raise BufferWriteError(f"{value} does not fit 8 bits")
        self._out.append(value)

    def push_uint16(self, value: int) -> None:
        """Append a big-endian 16-bit unsigned int."""
        if not 0 <= value <= 0xFFFF:
            raise BufferWriteError(f"{value} does not fit 16 bits")
        self._out += _U16.pack(value)

    def push_uint32(self, value: int) -> None:
        """Append a big-endian 32-bit unsigned int."""
        if not 0 <= value <= 0xFFFFFFFF:
            raise BufferWriteError(f"{value} does not fit 32 bits")
        self._out += _U32.pack(value)

    def push_uint64(self, value: int) -> None:
        """Append a big-endian 64-bit unsigned int."""
        if not 0 <= value <= 0xFFFFFFFFFFFFFFFF:
            raise BufferWriteError(f"{value} does not fit 64 bits")
        self._out += _U64.pack(value)

    def data(self) -> bytes:
        """Everything written so far."""
        return bytes(self._out)

    def written(self) -> int:
        """How many bytes have been written."""
        return len(self._out)

    def patch_uint16(self, offset: int, value: int) -> None:
        """Overwrite a 16-bit field already written (lengths known only at the end)."""
        self._out[offset : offset + 2] = _U16.pack(value)

    def patch_uint32(self, offset: int, value: int) -> None:
        """Overwrite a 32-bit field already written."""
        self._out[offset : offset + 4] = _U32.pack(value)
