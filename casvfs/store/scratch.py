"""Scratch directories: where copy-on-write mounts keep what programs write.

Each is named after the process that owns it, so a directory whose process is
gone (killed with SIGKILL, say) can be told apart and reclaimed by the next mount
or by ``fsck --repair``.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from casvfs.errors import StoreError, os_errors

PREFIX = "casvfs-scratch-"


def new_scratch(base: str | None) -> str:
    """A new empty scratch directory in *base* (the system's temporary directory
    if None), after reclaiming those of processes that are gone."""
    where = base or tempfile.gettempdir()
    with os_errors(f"cannot make a scratch directory in {where}", kind=StoreError):
        os.makedirs(where, exist_ok=True)
        reclaim_scratch(where)
        return tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=where)


def reclaim_scratch(base: str) -> list[str]:
    """Remove the scratch directories in *base* whose owning process is gone;
    return their paths."""
    reclaimed = []
    with os_errors(f"cannot list {base}", kind=StoreError):
        names = sorted(os.listdir(base)) if os.path.isdir(base) else []
    for name in names:
        owner = name[len(PREFIX) :].split("-", 1)[0]
        if name.startswith(PREFIX) and owner.isdigit() and not process_alive(int(owner)):
            path = os.path.join(base, name)
            shutil.rmtree(path, ignore_errors=True)
            reclaimed.append(path)
    return reclaimed


def process_alive(pid: int) -> bool:
    """Whether process *pid* is running (a zombie is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            # a zombie (killed, not yet reaped by its parent) holds nothing any more
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True
