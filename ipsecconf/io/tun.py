"""The TUN device: open it (``TUNSETIFF`` on ``/dev/net/tun``) with offloads, read bursts
of clear packets, write decapsulated ones.

The device is created without ``IFF_PERSIST``, so it disappears with the file descriptor:
even an engine killed with SIGKILL leaves no TUN behind (its routes go with it; the ip
rules and the nftables table are what :mod:`.hostnet` cleans up).  ``IFF_NO_PI``: packets
are bare IP packets, as the dataplane expects.

Offloads (``IFF_VNET_HDR``, as wireguard-go uses it; the packet logic is
:mod:`ipsecconf.esp.offload`): every packet crossing the device carries a virtio header.
Writing, decapsulated TCP segments of a flow go back merged, so one write and one trip
through the kernel's stack (forwarding, the receiver's TCP) carry up to 64 KB instead of
one MSS.  Reading, with ``TUNSETOFFLOAD`` (checksum and TCP segmentation offload, the
``tso`` option) the kernel hands over TCP super-packets and leaves checksums to finish;
that stays off by default: measured here, cutting a super-packet and computing each
segment's checksum in Python costs the engine more (about 5 us a segment) than the
per-packet reads it saves (about 1.5 us), and the kernel segments in C.  Whatever the
header of a frame read says is honoured, so both settings read the same way.
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
    """An open, non-blocking TUN device with offloads (see :meth:`open`)."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd = fd
        self.name = name
        self.write_errors = 0
        self.offload_errors = 0
        """Frames read that could not be segmented or finished (dropped)."""
        self.super_packets = 0
        """TCP super-packets read (segmented here)."""
        self.merged_writes = 0
        """Writes that carried merged segments."""

    @classmethod
    def open(cls, name: str, tso: bool = False) -> TunDevice:
        """Create the device ``name`` (the kernel may pick another if it ends in %d); with
        ``tso`` the kernel may hand over TCP super-packets (see the module's notes)."""
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            ifr = struct.pack("16sH", name.encode("ascii"), IFF_TUN | IFF_NO_PI | IFF_VNET_HDR)
            res = fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError:
            os.close(fd)
            raise
        dev = cls(fd, res[:16].rstrip(b"\0").decode("ascii"))
        if tso:
            try:
                fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
            except OSError as exc:
                log.info("TUN %s without offloads (%s): one packet per read", dev.name, exc)
        return dev

    def read_burst(self) -> list[bytes]:
        """Packets ready now (possibly none), from up to :data:`BURST` reads; a super-
        packet comes out as its segments."""
        out: list[bytes] = []
        read, fd, split = os.read, self.fd, offload.split
        try:
            for _ in range(BURST):
                frame = read(fd, READ_SIZE)
                if frame[1] or frame[0] & offload.F_NEEDS_CSUM:  # GSO, or a checksum to finish
                    try:
                        out.extend(split(frame))
                        self.super_packets += frame[1] != offload.GSO_NONE
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
        writev, fd, empty = os.writev, self.fd, offload.EMPTY_HDR
        for frame in offload.coalesce(packets):
            try:
                writev(fd, frame)
                if frame[0] is not empty:
                    self.merged_writes += 1
            except OSError as exc:
                if exc.errno not in _WRITE_ERRORS:
                    raise
                # A merged frame is the virtio header, the headers, then one part each.
                self.write_errors += 1 if frame[0] is empty else len(frame) - 2

    def close(self) -> None:
        """Close the descriptor: the device goes away."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
