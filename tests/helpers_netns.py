"""A private network namespace for servers that cannot bind loopback only (INDI's indiserver).

``indiserver`` listens on every interface and has no option to do otherwise. The tests run it
in a network namespace of their own, holding only a loopback interface, so it is reachable from
nothing but the test itself.

:func:`network_namespace` moves the calling thread (the test's) into a new network namespace
with ``lo`` up, and back out at the end. Linux keeps namespaces per thread: the processes the
test starts from there (indiserver, the daemons) and the threads it creates (a driver's
reader) are born inside, and stay there; everything else in the test process stays outside.
"""

import contextlib
import ctypes
import fcntl
import os
import socket
import struct

import pytest

#: From <sched.h> and <linux/sockios.h>, <net/if.h>.
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
#: ``struct ifreq``: a 16-byte interface name, then (for these calls) a short of flags.
IFREQ_FORMAT = "16sH22x"


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def why_no_network_namespace():
    """Why this machine cannot make a network namespace here, or ``None`` when it can."""
    if not hasattr(os, "getuid") or os.getuid() != 0:
        return "a network namespace needs root (CAP_SYS_ADMIN)"
    if not os.path.exists("/proc/self/ns/net"):
        return "this kernel has no network namespaces (/proc/self/ns/net missing)"
    return None


def skip_unless_network_namespaces():
    """Skip the calling test, saying why, where a network namespace cannot be made."""
    reason = why_no_network_namespace()
    if reason:
        pytest.skip(reason)


def _call(function, *arguments):
    if function(*arguments) != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{function.__name__}: {os.strerror(number)}")


def _bring_loopback_up():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack(IFREQ_FORMAT, b"lo", 0)
        _, flags = struct.unpack(IFREQ_FORMAT, fcntl.ioctl(probe, SIOCGIFFLAGS, request))
        fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack(IFREQ_FORMAT, b"lo", flags | IFF_UP))


@contextlib.contextmanager
def network_namespace():
    """Run the block in a new network namespace that has only ``lo``, up.

    Skips the test (with the reason) where that is impossible. Processes started inside the block
    must be stopped inside it or later by PID; they keep the namespace alive until they end.
    """
    skip_unless_network_namespaces()
    libc = _libc()
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        try:
            _call(libc.unshare, CLONE_NEWNET)
        except OSError as error:
            pytest.skip(f"cannot make a network namespace here: {error}")
        try:
            _bring_loopback_up()
            yield
        finally:
            _call(libc.setns, original, CLONE_NEWNET)
    finally:
        os.close(original)
