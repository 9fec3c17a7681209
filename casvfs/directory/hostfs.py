"""The merge engine's primitives over a host directory.

:class:`HostTree` reads entries with ``lstat`` and creates them with
``O_NOFOLLOW``/``O_EXCL``, so no symlink already in the tree can redirect a
write outside it. It is what an export writes through, and the base of
:class:`~casvfs.OsDirectory`.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import stat as stat_module
from typing import BinaryIO, Self

from casvfs.directory.primitives import ImportOptions, TreePrimitives
from casvfs.errors import os_errors
from casvfs.store.base import ContentStore
from casvfs.timestamps import ARBITRARY_TIMESTAMP
from casvfs.tree import FileType, Node, node_from_stat

log = logging.getLogger("casvfs.export")

_ARBITRARY_NS = ARBITRARY_TIMESTAMP * 1_000_000_000
# O_NOFOLLOW: the final component is never a symlink we did not resolve ourselves.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# ioctl(FICLONE): the new file shares the object's blocks copy-on-write (btrfs, XFS).
_FICLONE = 0x40049409
# what FICLONE answers where the file system cannot clone between these files
_NO_CLONE = (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EBADF, errno.EPERM)
_clone_unsupported: set[tuple[int, int]] = set()
"""(object device, target device) pairs where cloning failed: not tried again."""
_warned_root = False


class HostTree(TreePrimitives):
    """The primitives over the host directory *path* (made, with its parents, if
    *create*). Symlinks in *path* itself are followed."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        self._path = os.path.abspath(path)
        with os_errors(self._path):
            if create:
                os.makedirs(self._path, exist_ok=True)
            if not stat_module.S_ISDIR(os.stat(self._path).st_mode):
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory")

    def _join(self, name: str) -> str:
        return os.path.join(self._path, name)

    def _at(self, path: str) -> Self:
        """Another directory of the same kind, at *path* (which exists)."""
        other = object.__new__(type(self))
        other._path = path
        return other

    def _lookup(self, name: str) -> Node | None:
        path = self._join(name)
        with os_errors(path):
            try:
                st = os.lstat(path)
            except OSError as error:
                # no entry can have a name the file system refuses, as in a CAS tree
                if error.errno in (errno.ENOENT, errno.ENAMETOOLONG):
                    return None
                raise
            return node_from_stat(name, path, st)

    def _entries(self) -> list[Node]:
        with os_errors(self._path), os.scandir(self._path) as listing:
            nodes = [
                node_from_stat(entry.name, entry.path, entry.stat(follow_symlinks=False)) for entry in listing
            ]
        return sorted(nodes, key=lambda node: node.name)

    def _child(self, name: str) -> Self:
        return self._at(self._join(name))

    def _mkdir(self, name: str, own: Node | None) -> Self:
        del own  # properties are applied once the directory is filled (_set_own)
        with os_errors(self._join(name)):
            os.mkdir(self._join(name))
        return self._child(name)

    def _set_own(self, own: Node) -> None:
        with os_errors(self._path):
            if own.unix_mode is not None:
                os.chmod(self._path, own.unix_mode, follow_symlinks=False)
            if own.mtime_ns is not None:
                os.utime(self._path, ns=(own.mtime_ns, own.mtime_ns), follow_symlinks=False)

    def _unlink(self, name: str) -> None:
        path = self._join(name)
        with os_errors(path):
            if stat_module.S_ISDIR(os.lstat(path).st_mode):
                shutil.rmtree(path)
            else:
                os.unlink(path)

    def _put(self, name: str, node: Node, store: ContentStore | None, options: ImportOptions) -> None:
        path = self._join(name)
        with os_errors(path):
            if node.type is FileType.SYMLINK:
                os.symlink(node.target, path)
                if node.mtime_ns is not None:
                    os.utime(path, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)
                return
            if options.update_mtime is not None:
                mtime_ns = int(options.update_mtime * 1_000_000_000)
            else:
                mtime_ns = node.mtime_ns if node.mtime_ns is not None else _ARBITRARY_NS
            if options.link and node.host_path is not None:
                os.link(node.host_path, path, follow_symlinks=False)
                return
            mode = node.unix_mode if node.unix_mode is not None else (0o755 if node.executable else 0o644)
            source = None
            if options.link and store is not None and node.digest is not None:
                source = store.local_path(node.digest)
                if source is not None and _hard_link(path, node, source, mtime_ns, options):
                    return
            fd = os.open(path, _CREATE, 0o600)
            try:
                if source is None or not _clone(source, fd):
                    _copy_content(node, store, fd)
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            except BaseException:
                os.unlink(path)  # no partial file is left behind
                raise
            finally:
                os.close(fd)


def _copy_content(node: Node, store: ContentStore | None, fd: int) -> None:
    if node.host_path is not None:
        with open(node.host_path, "rb") as source:
            _copy_to_fd(source, fd)
    else:
        assert store is not None and node.digest is not None
        with store.open(node.digest) as source:  # verified as it is read
            _copy_to_fd(source, fd)


def _hard_link(path: str, node: Node, source: str, mtime_ns: int, options: ImportOptions) -> bool:
    """Hard-link the store object *source* as *path*, where that is right and safe.

    Right: the link carries the object's 0444 mode and arbitrary mtime, so only
    for plain files that record neither. Safe: root ignores the 0444 mode, so a
    write into such an export would change the store: as root, objects are cloned
    or copied unless hard links are asked for (*options.hard_links*)."""
    if node.executable or node.unix_mode is not None or mtime_ns != _ARBITRARY_NS:
        return False
    if os.geteuid() == 0 and not options.hard_links:
        _warn_root_once()
        return False
    os.link(source, path, follow_symlinks=False)
    return True


def _warn_root_once() -> None:
    global _warned_root
    if not _warned_root:
        _warned_root = True
        log.warning(
            "not hard-linking store objects as root (a write into the export would change the "
            "store): cloning where the file system can, else copying"
        )


def _clone(source: str, fd: int) -> bool:
    """Make the new file *fd* a copy-on-write clone of *source*, if the file system can."""
    with open(source, "rb") as stream:
        pair = (os.fstat(stream.fileno()).st_dev, os.fstat(fd).st_dev)
        if pair in _clone_unsupported:
            return False
        try:
            fcntl.ioctl(fd, _FICLONE, stream.fileno())
        except OSError as error:
            if error.errno not in _NO_CLONE:
                raise
            _clone_unsupported.add(pair)
            return False
    return True


def _copy_to_fd(source: BinaryIO, fd: int) -> None:
    with open(fd, "wb", closefd=False) as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
