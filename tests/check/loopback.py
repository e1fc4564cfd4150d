#!/usr/bin/env python3
"""The first step of `make check`: the suites serve and connect over
127.0.0.1 and ::1.  A private network namespace (`unshare -n make check`,
a build sandbox) starts with its loopback interface down, where every
connect fails with ENETUNREACH; this raises it there.  Loopback is all such
a namespace has, so raising it reaches no network.  Exits nonzero only when
loopback is down and cannot be raised (then the TCP tests would fail with
less telling messages)."""

import fcntl
import socket
import struct
import sys

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
IFREQ = "16sH22x"  # struct ifreq on Linux: the name, then ifr_flags


def loopback_works():
    try:
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            with socket.create_connection(srv.getsockname(), timeout=5):
                return True
    except OSError:
        return False


def raise_lo():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        got = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack(IFREQ, b"lo", 0))
        flags = struct.unpack(IFREQ, got)[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))


if loopback_works():
    sys.exit(0)
try:
    raise_lo()
except OSError as e:
    sys.exit(f"check: TCP over 127.0.0.1 fails and loopback cannot be "
             f"raised ({e}); the suites need it")
if not loopback_works():
    sys.exit("check: loopback raised, but TCP over 127.0.0.1 still fails")
print("check: loopback was down (a private network namespace?): raised it")
