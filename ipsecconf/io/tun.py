"""The TUN device: open it (``TUNSETIFF`` on ``/dev/net/tun``) with offloads, read bursts
of clear packets, write decapsulated ones.

The device is created without ``IFF_PERSIST``, so it disappears with the file descriptor:
even an engine killed with SIGKILL leaves no TUN behind (its routes go with it; the ip
rules and the nftables table are what :mod:`.hostnet` cleans up).  ``IFF_NO_PI``: packets
are bare IP packets, as the dataplane expects.

Offloads (``IFF_VNET_HDR`` and ``TUNSETOFFLOAD`` with checksum and TCP segmentation
offload, as wireguard-go does): every packet crossing the device carries a virtio header,
the kernel hands over TCP super-packets of up to 64 KB and leaves checksums for us to
finish, and we hand it back merged segments; the packet logic is
:mod:`ipsecconf.esp.offload`.  One read and one trip through the kernel's TCP stack then
carry 64 KB instead of one MSS.  A kernel that refuses the offloads still gets the virtio
header (plain packets behind it), so the dataplane works the same, only slower.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
from collections.abc import Sequence

from ipsecconf.esp import offload

log = logging.getLogger("ipsecconf.engine")

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
READ_SIZE = offload.VNET_HDR_LEN + 40 + 0xFFFF
"""The largest frame: virtio header, IPv6 header, 64 KB of payload."""
BURST = 64
_WRITE_ERRORS = (errno.EAGAIN, errno.EINVAL, errno.EIO)


class TunDevice:
    """An open, non-blocking TUN device with offloads."""

    def __init__(self, name: str) -> None:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            ifr = struct.pack("16sH", name.encode("ascii"), IFF_TUN | IFF_NO_PI | IFF_VNET_HDR)
            res = fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError:
            os.close(fd)
            raise
        self.fd = fd
        self.name = res[:16].rstrip(b"\0").decode("ascii")
        self.write_errors = 0
        self.offload_errors = 0
        """Frames read that could not be segmented or finished (dropped)."""
        try:
            fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
            self.offloads = True
        except OSError as exc:
            log.info("TUN %s without offloads (%s): one packet per read", self.name, exc)
            self.offloads = False

    def read_burst(self) -> list[bytes]:
        """Packets ready now (possibly none), from up to :data:`BURST` reads; a super-
        packet comes out as its segments."""
        out: list[bytes] = []
        read, fd, split = os.read, self.fd, offload.split
        try:
            for _ in range(BURST):
                frame = read(fd, READ_SIZE)
                if frame[1] or frame[0]:  # GSO or NEEDS_CSUM: the byte-exact rules apply
                    try:
                        out.extend(split(frame))
                    except offload.OffloadError as exc:
                        self.offload_errors += 1
                        if self.offload_errors == 1:
                            log.warning("dropped a packet from the TUN: %s", exc)
                else:
                    out.append(frame[offload.VNET_HDR_LEN :])
        except BlockingIOError:
            pass
        return out

    def write_packets(self, packets: Sequence[bytes]) -> None:
        """Hand packets to the kernel, consecutive TCP segments of a flow merged; a full
        queue drops (and counts) what it refuses."""
        writev, fd = os.writev, self.fd
        for frame in offload.coalesce(packets):
            try:
                writev(fd, frame)
            except OSError as exc:
                if exc.errno not in _WRITE_ERRORS:
                    raise
                # A merged frame is the virtio header, the headers, then one part each.
                self.write_errors += 1 if frame[0] is offload.EMPTY_HDR else len(frame) - 2

    def close(self) -> None:
        """Close the descriptor: the device goes away."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
