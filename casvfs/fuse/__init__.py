"""FUSE mounts of tree digests (needs the ``fuse`` extra: pyfuse3 and trio)."""

from casvfs.fuse.mount import Mount, MountError, clean_stale_mount, mount, snapshot_of

__all__ = ["Mount", "MountError", "clean_stale_mount", "mount", "snapshot_of"]
