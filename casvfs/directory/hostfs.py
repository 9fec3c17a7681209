"""The merge engine's primitives over a host directory.

:class:`HostTree` works relative to directory descriptors: each directory below
the root is opened from its parent's descriptor with ``O_NOFOLLOW|O_DIRECTORY``,
and every entry is read, made or removed relative to its directory's descriptor
(``openat``, ``mkdirat``, ``symlinkat``, ``linkat``…). No path component is ever
resolved again by name, so a symlink put in place of a directory while an export
runs is refused, never followed out of the target. It is what an export writes
through, and the base of :class:`~casvfs.OsDirectory`.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import stat as stat_module
import threading
import weakref
from collections import OrderedDict
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
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _OpenDirectories:
    """The descriptors of directories below a root, at most *limit* open: the least
    recently used is closed first and reopened (from its parent's) when needed
    again, so a tree of any width or depth never runs out of descriptors."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._open: OrderedDict[int, weakref.ref[HostTree]] = OrderedDict()
        self.lock = threading.RLock()

    def used(self, tree: HostTree) -> None:
        key = id(tree)
        if key in self._open:
            self._open.move_to_end(key)
            return
        self._open[key] = weakref.ref(tree)
        while len(self._open) > self._limit:
            _key, ref = self._open.popitem(last=False)
            oldest = ref()
            if oldest is not None:
                oldest._close()

    def forget(self, tree: HostTree) -> None:
        self._open.pop(id(tree), None)


# 256 of the process's usual 1024: the merge engine keeps every directory of a
# tree (Linux: 5,096) until it has set their properties at the end.
_open_directories = _OpenDirectories(256)


class HostTree(TreePrimitives):
    """The primitives over the host directory *path* (made, with its parents, if
    *create*). Symlinks in *path* itself are followed; none below it ever is.
    Modes written keep their setuid, setgid and sticky bits only with
    *special_modes* (a tree from anywhere must not make setuid-root files by
    default). *exclusive* promises that nothing else writes into the directories
    this tree creates while it is used (an export's), so names it did not make
    there need no lookup."""

    _mode_mask = 0o777
    _fd: int | None = None
    _up: HostTree | None = None
    """The parent directory, for a directory below the root (None: the root)."""
    _leaf = ""
    _exclusive = False
    _made: set[str] | None = None
    """With *exclusive*, for a directory this tree created (empty then): the names
    made in it since, so that looking up any other name needs no ``lstat`` (an
    export into a new directory looked up every name it was about to write: a
    fifth of its time)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = False,
        special_modes: bool = False,
        exclusive: bool = False,
    ) -> None:
        self._path = os.path.abspath(path)
        self._exclusive = exclusive
        if special_modes:
            self._mode_mask = 0o7777
        with os_errors(self._path):
            if create:
                os.makedirs(self._path, exist_ok=True)
            self._fd = os.open(self._path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def __del__(self) -> None:
        self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            _open_directories.forget(self)
            os.close(fd)

    def _dirfd(self) -> int:
        """This directory's descriptor, opened from its parent's (never by path)."""
        with _open_directories.lock:
            if self._fd is None:
                assert self._up is not None
                parent = self._up._dirfd()
                self._fd = os.open(self._leaf, _DIRECTORY, dir_fd=parent)
            if self._up is not None:
                _open_directories.used(self)
            return self._fd

    def _join(self, name: str) -> str:
        return os.path.join(self._path, name)

    def _child(self, name: str) -> Self:
        other = object.__new__(type(self))
        other._path = self._join(name)
        other._mode_mask = self._mode_mask
        other._exclusive = self._exclusive
        other._up = self
        other._leaf = name
        return other

    def _lookup(self, name: str) -> Node | None:
        if self._made is not None and name not in self._made:
            return None
        path = self._join(name)
        with os_errors(path):
            fd = self._dirfd()
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError as error:
                # no entry can have a name the file system refuses, as in a CAS tree
                if error.errno in (errno.ENOENT, errno.ENAMETOOLONG):
                    return None
                raise
            return node_from_stat(name, path, st, dir_fd=fd)

    def _entries(self) -> list[Node]:
        with os_errors(self._path):
            fd = self._dirfd()
            with os.scandir(fd) as listing:
                nodes = [
                    node_from_stat(
                        entry.name, self._join(entry.name), entry.stat(follow_symlinks=False), dir_fd=fd
                    )
                    for entry in listing
                ]
        return sorted(nodes, key=lambda node: node.name)

    def _mkdir(self, name: str, own: Node | None) -> Self:
        del own  # properties are applied once the directory is filled (_set_own)
        with os_errors(self._join(name)):
            os.mkdir(name, dir_fd=self._dirfd())
        self._note(name)
        child = self._child(name)
        if self._exclusive:
            child._made = set()
        return child

    def _note(self, name: str) -> None:
        if self._made is not None:
            self._made.add(name)

    def _set_own(self, own: Node) -> None:
        with os_errors(self._path):
            fd = self._dirfd()
            if own.unix_mode is not None:
                os.fchmod(fd, own.unix_mode & self._mode_mask)
            if own.mtime_ns is not None:
                os.utime(fd, ns=(own.mtime_ns, own.mtime_ns))

    def _unlink(self, name: str) -> None:
        with os_errors(self._join(name)):
            fd = self._dirfd()
            if stat_module.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                shutil.rmtree(name, dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)
        if self._made is not None:
            self._made.discard(name)

    def _put(self, name: str, node: Node, store: ContentStore | None, options: ImportOptions) -> None:
        self._note(name)  # before: a failed write may leave the name behind
        with os_errors(self._join(name)):
            directory = self._dirfd()
            if node.type is FileType.SYMLINK:
                os.symlink(node.target, name, dir_fd=directory)
                if node.mtime_ns is not None:
                    ns = (node.mtime_ns, node.mtime_ns)
                    os.utime(name, ns=ns, dir_fd=directory, follow_symlinks=False)
                return
            if options.update_mtime is not None:
                mtime_ns = int(options.update_mtime * 1_000_000_000)
            else:
                mtime_ns = node.mtime_ns if node.mtime_ns is not None else _ARBITRARY_NS
            if options.link and node.host_path is not None:
                os.link(node.host_path, name, dst_dir_fd=directory, follow_symlinks=False)
                return
            if node.unix_mode is not None:
                mode = node.unix_mode & self._mode_mask
            else:
                mode = 0o755 if node.executable else 0o644
            source = None
            if options.link and store is not None and node.digest is not None:
                source = store.local_path(node.digest)
                if source is not None and _hard_link(directory, name, node, source, mtime_ns, options):
                    return
            fd = os.open(name, _CREATE, 0o600, dir_fd=directory)
            try:
                if source is None or not _clone(source, fd):
                    _copy_content(node, store, fd)
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            except BaseException:
                os.unlink(name, dir_fd=directory)  # no partial file is left behind
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


def _hard_link(
    directory: int, name: str, node: Node, source: str, mtime_ns: int, options: ImportOptions
) -> bool:
    """Hard-link the store object *source* as *name* in *directory* (a descriptor),
    where that is right and safe.

    Right: the link carries the object's 0444 mode and arbitrary mtime, so only
    for plain files that record neither. Safe: root ignores the 0444 mode, so a
    write into such an export would change the store: as root, objects are cloned
    or copied unless hard links are asked for (*options.hard_links*)."""
    if node.executable or node.unix_mode is not None or mtime_ns != _ARBITRARY_NS:
        return False
    if not options.hard_links and os.geteuid() == 0:  # asked first: saves a syscall per file
        _warn_root_once()
        return False
    os.link(source, name, dst_dir_fd=directory, follow_symlinks=False)
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
