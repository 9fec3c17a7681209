"""Helpers for tests that mount: is a path mounted, wait for a server to die or a
mount to go."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path


def mounted(path: Path) -> bool:
    """Whether a mount sits at *path*, dead ones included (``os.path.ismount``
    cannot stat a dead FUSE mount, so it answers False for one)."""
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        return any(line.split()[1] == str(path) for line in mounts)


def wait_dead(mountpoint: Path) -> None:
    """Wait until the mount at *mountpoint* answers ENOTCONN: its server is gone."""
    deadline = time.monotonic() + 30
    while True:
        try:
            os.statvfs(mountpoint)
        except OSError as error:
            assert error.errno in (errno.ENOTCONN, errno.ECONNABORTED)
            return
        assert time.monotonic() < deadline, "the killed mount still answers"
        time.sleep(0.05)


def wait_unmounted(mountpoint: Path) -> None:
    """Wait until nothing is mounted at *mountpoint*."""
    deadline = time.monotonic() + 30
    while os.path.ismount(mountpoint):
        assert time.monotonic() < deadline, "still mounted"
        time.sleep(0.05)
