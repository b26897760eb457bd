"""The TUN device: open it (``TUNSETIFF`` on ``/dev/net/tun``), read bursts of clear
packets, write decapsulated ones.

The device is created without ``IFF_PERSIST``, so it disappears with the file descriptor:
even an engine killed with SIGKILL leaves no TUN behind (its routes go with it; the ip
rules and the nftables table are what :mod:`.hostnet` cleans up).  ``IFF_NO_PI``: packets
are bare IP packets, as the dataplane expects.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Sequence

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
READ_SIZE = 65535
BURST = 64


class TunDevice:
    """An open, non-blocking TUN device."""

    def __init__(self, name: str) -> None:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            ifr = struct.pack("16sH", name.encode("ascii"), IFF_TUN | IFF_NO_PI)
            res = fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError:
            os.close(fd)
            raise
        self.fd = fd
        self.name = res[:16].rstrip(b"\0").decode("ascii")
        self.write_errors = 0

    def read_burst(self) -> list[bytes]:
        """Up to :data:`BURST` packets that are ready now (possibly none)."""
        out: list[bytes] = []
        read, fd = os.read, self.fd
        try:
            for _ in range(BURST):
                out.append(read(fd, READ_SIZE))
        except BlockingIOError:
            pass
        return out

    def write_packets(self, packets: Sequence[bytes]) -> None:
        """Hand packets to the kernel; a full queue drops (and counts) the packet."""
        write, fd = os.write, self.fd
        for p in packets:
            try:
                write(fd, p)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EINVAL, errno.EIO):
                    raise
                self.write_errors += 1

    def close(self) -> None:
        """Close the descriptor: the device goes away."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
