"""FUSE mounts of tree digests (needs the ``fuse`` extra: pyfuse3 and trio)."""

from casvfs.errors import MountError
from casvfs.fuse.background import start_background, unmount_background
from casvfs.fuse.mount import Mount, clean_stale_mount, get_digest, mount, serve, unmount

__all__ = [
    "Mount",
    "MountError",
    "clean_stale_mount",
    "get_digest",
    "mount",
    "serve",
    "start_background",
    "unmount",
    "unmount_background",
]
