"""Object files a mount has opened, kept for the next open of the same file.

Reopening the same blob (a second ``tar``, a build reading headers again) then
costs no system call and no trip to a worker thread: the descriptor is read with
``pread``, so any number of handles can share it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field

IDLE_LIMIT = 1024
"""Descriptors kept open while no handle uses them (per mount)."""


@dataclass
class BlobFiles:
    """Descriptors of store object files by inode, counted by the handles using them."""

    idle_limit: int = IDLE_LIMIT
    _open: dict[int, list[int]] = field(default_factory=dict)
    """inode -> [descriptor, handles using it]"""
    _idle: OrderedDict[int, None] = field(default_factory=OrderedDict)
    """inodes whose descriptor no handle uses, least recently released first"""

    def acquire(self, ino: int) -> int | None:
        """The descriptor kept for *ino*, now used by one more handle; None if none is kept."""
        entry = self._open.get(ino)
        if entry is None:
            return None
        entry[1] += 1
        self._idle.pop(ino, None)
        return entry[0]

    def add(self, ino: int, fd: int) -> int:
        """Keep *fd* (just opened for *ino*, used by one handle); return the descriptor
        to use, which is an already kept one if a concurrent open got there first."""
        kept = self.acquire(ino)
        if kept is not None:
            os.close(fd)
            return kept
        self._open[ino] = [fd, 1]
        return fd

    def release(self, ino: int) -> None:
        """One handle of *ino* is closed; close the oldest idle descriptors beyond the limit."""
        entry = self._open[ino]
        entry[1] -= 1
        if entry[1] == 0:
            self._idle[ino] = None
        while len(self._idle) > self.idle_limit:
            oldest, _ = self._idle.popitem(last=False)
            # closing a read-only regular file does not wait on the disk
            os.close(self._open.pop(oldest)[0])

    def close_all(self) -> None:
        """Close every kept descriptor (the mount is going away)."""
        for fd, _users in self._open.values():
            os.close(fd)
        self._open.clear()
        self._idle.clear()
