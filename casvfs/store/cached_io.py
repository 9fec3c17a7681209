"""Reads that never wait for the disk: served from the kernel's caches or refused.

A FUSE server answers every request on one event loop; a hop to a worker thread
costs ~140 µs on this project's 2-core machine, several times the request itself.
What is cached can be read on the loop instead: ``openat2(RESOLVE_CACHED)``
resolves a path only from the dentry cache and ``preadv2(RWF_NOWAIT)`` reads only
from the page cache, each failing with EAGAIN where it would wait. The caller then
does the read in a thread as before.
"""

from __future__ import annotations

import ctypes
import errno
import os

_SYS_OPENAT2 = 437  # the same on every Linux architecture (asm-generic table, 5.6+)
_RESOLVE_CACHED = 0x20  # Linux 5.12+
_AT_FDCWD = -100


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long
_HOW = _OpenHow(os.O_RDONLY | os.O_CLOEXEC, 0, _RESOLVE_CACHED)
_HOW_SIZE = ctypes.sizeof(_HOW)
_available = hasattr(os, "RWF_NOWAIT")


def open_cached(path: str) -> int | None:
    """A read-only descriptor of *path* if every component of it is in the dentry
    cache; None where resolving it would wait (or fails in any way: the caller's
    ordinary path reports the error)."""
    global _available
    if not _available:
        return None
    fd = _syscall(_SYS_OPENAT2, _AT_FDCWD, os.fsencode(path), ctypes.byref(_HOW), _HOW_SIZE)
    if fd >= 0:
        return int(fd)
    if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.E2BIG, errno.EPERM):
        _available = False  # a kernel (or seccomp filter) without openat2 or RESOLVE_CACHED
    return None


def pread_cached(fd: int, size: int, offset: int) -> bytes | None:
    """*size* bytes at *offset* (fewer only at the end of the file) if the page cache
    holds them all; None if any would have to come from the disk."""
    buffer = bytearray(size)
    try:
        done = os.preadv(fd, [buffer], offset, os.RWF_NOWAIT)
    except OSError:
        return None  # EAGAIN: not cached; EOPNOTSUPP: a file system without NOWAIT reads
    if done == size:
        return bytes(buffer)
    # short: the end of the file, or only the start of the range was cached
    try:
        if os.preadv(fd, [bytearray(1)], offset + done, os.RWF_NOWAIT) != 0:
            return None
    except OSError:
        return None
    return bytes(buffer[:done])
