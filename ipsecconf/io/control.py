"""The control socket: framing, the asyncio server, and the socket's path and permissions.

Framing: every message is a 4-byte big-endian length followed by that many bytes of UTF-8
JSON; one request, one response, then either side may send the next request on the same
connection.  The socket is created under umask 077 and chmod 0600 (root only, as the
engine runs as root); a request is answered by :class:`~ipsecconf.engine.control.Control`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

MAX_MESSAGE = 256 << 20
_LEN = struct.Struct("!I")


def socket_path(state_path: str) -> str:
    """The control socket of the engine running on the store at ``state_path``."""
    return state_path + ".sock"


def encode(message: Any) -> bytes:
    """One framed message."""
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_MESSAGE:
        raise ValueError("control message too large")
    return _LEN.pack(len(body)) + body


async def read_message(reader: asyncio.StreamReader) -> Any:
    """One framed message, or ``None`` at end of stream."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError:
        return None
    (size,) = _LEN.unpack(head)
    if size > MAX_MESSAGE:
        raise ValueError("control message too large")
    return json.loads((await reader.readexactly(size)).decode("utf-8"))


def recv_exact(sock: socket.socket, size: int) -> bytes:
    """Blocking read of exactly ``size`` bytes (client side)."""
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(min(size - got, 1 << 20))
        if not chunk:
            raise ConnectionError("the engine closed the control connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


class ControlServer:
    """Serves control requests on a Unix socket."""

    def __init__(self, path: str, handle: Callable[[Any], dict[str, Any]]) -> None:
        self.path = path
        self.handle = handle
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # a predecessor's socket (the pid lock says it is gone)
        old = os.umask(0o077)
        try:
            self.server = await asyncio.start_unix_server(self._client, path=self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    request = await read_message(reader)
                except (ValueError, UnicodeDecodeError):
                    error = {"type": "UsageError", "message": "malformed control message"}
                    writer.write(encode({"ok": False, "error": error}))
                    break
                if request is None:
                    break
                writer.write(encode(self.handle(request)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
