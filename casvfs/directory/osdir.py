"""The host-filesystem implementation of :class:`Directory`."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat as stat_module
from collections.abc import Iterator
from typing import IO, BinaryIO

from casvfs.digest import digest_file
from casvfs.directory.base import Directory, ImportOptions, Progress
from casvfs.directory.node import Node, node_from_stat
from casvfs.directory.source import HostSource, SourceTree
from casvfs.directory.types import FileType
from casvfs.errors import (
    REASON_EXISTS,
    REASON_IO_ERROR,
    REASON_IS_A_DIRECTORY,
    REASON_NOT_A_DIRECTORY,
    REASON_NOT_EMPTY,
    REASON_NOT_FOUND,
    REASON_SYMLINK_LOOP,
    DirectoryError,
)
from casvfs.store.base import ContentStore
from casvfs.timestamps import ARBITRARY_TIMESTAMP

_ERRNO_REASONS = {
    errno.ENOENT: REASON_NOT_FOUND,
    errno.ENOTDIR: REASON_NOT_A_DIRECTORY,
    errno.EISDIR: REASON_IS_A_DIRECTORY,
    errno.EEXIST: REASON_EXISTS,
    errno.ENOTEMPTY: REASON_NOT_EMPTY,
    errno.ELOOP: REASON_SYMLINK_LOOP,
}
_ARBITRARY_NS = ARBITRARY_TIMESTAMP * 1_000_000_000
# O_NOFOLLOW: the final component is never a symlink we did not resolve ourselves.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@contextlib.contextmanager
def host_errors(path: str) -> Iterator[None]:
    """Turn an ``OSError`` about *path* into a :class:`DirectoryError`."""
    try:
        yield
    except OSError as error:
        reason = _ERRNO_REASONS.get(error.errno or 0, REASON_IO_ERROR)
        raise DirectoryError(f"{path}: {error.strerror}", reason=reason) from None


class OsDirectory(Directory):
    """A :class:`Directory` over a host directory.

    Every path is resolved component by component with ``lstat`` inside the
    tree, and entries are created with ``O_NOFOLLOW``/``O_EXCL``, so no symlink
    already in the tree can redirect a write outside it.

    :param path: the host directory (symlinks in *path* itself are followed).
    :param create: make it (and its parents) if missing.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        self._path = os.path.abspath(path)
        self._parent: OsDirectory | None = None
        self._name = ""
        with host_errors(self._path):
            if create:
                os.makedirs(self._path, exist_ok=True)
            if not os.path.isdir(self._path):
                raise DirectoryError(f"{self._path} is not a directory", reason=REASON_NOT_A_DIRECTORY)

    def __repr__(self) -> str:
        return f"OsDirectory({self._path!r})"

    @property
    def host_path(self) -> str:
        """The host path of this directory."""
        return self._path

    def _join(self, name: str) -> str:
        return os.path.join(self._path, name)

    def _lookup(self, name: str) -> Node | None:
        path = self._join(name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        with host_errors(path):
            return node_from_stat(name, path, st)

    def _entries(self) -> list[Node]:
        with host_errors(self._path), os.scandir(self._path) as listing:
            nodes = [
                node_from_stat(entry.name, entry.path, entry.stat(follow_symlinks=False)) for entry in listing
            ]
        return sorted(nodes, key=lambda node: node.name)

    def _child(self, name: str) -> Directory:
        child = OsDirectory.__new__(OsDirectory)
        child._path = self._join(name)
        child._parent = self
        child._name = name
        return child

    def _mkdir(self, name: str, own: Node | None) -> Directory:
        del own  # properties are applied once the directory is filled (_set_own)
        with host_errors(self._join(name)):
            os.mkdir(self._join(name))
        return self._child(name)

    def _set_own(self, own: Node) -> None:
        with host_errors(self._path):
            if own.unix_mode is not None:
                os.chmod(self._path, own.unix_mode, follow_symlinks=False)
            if own.mtime_ns is not None:
                os.utime(self._path, ns=(own.mtime_ns, own.mtime_ns), follow_symlinks=False)

    def _unlink(self, name: str) -> None:
        path = self._join(name)
        with host_errors(path):
            if stat_module.S_ISDIR(os.lstat(path).st_mode):
                shutil.rmtree(path)
            else:
                os.unlink(path)

    def _put(self, name: str, node: Node, store: ContentStore | None, options: ImportOptions) -> None:
        path = self._join(name)
        with host_errors(path):
            if node.type is FileType.SYMLINK:
                os.symlink(node.target, path)
                if node.mtime_ns is not None:
                    os.utime(path, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)
                return
            if options.update_mtime is not None:
                mtime_ns = int(options.update_mtime * 1_000_000_000)
            else:
                mtime_ns = node.mtime_ns if node.mtime_ns is not None else _ARBITRARY_NS
            if options.link and self._link(path, node, store, mtime_ns):
                return
            mode = node.unix_mode if node.unix_mode is not None else (0o755 if node.executable else 0o644)
            fd = os.open(path, _CREATE, 0o600)
            try:
                if node.host_path is not None:
                    with open(node.host_path, "rb") as source:
                        _copy_to_fd(source, fd)
                else:
                    assert store is not None and node.digest is not None
                    with store.open(node.digest) as source:
                        _copy_to_fd(source, fd)
                os.fchmod(fd, mode)
                os.utime(fd, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(fd)

    @staticmethod
    def _link(path: str, node: Node, store: ContentStore | None, mtime_ns: int) -> bool:
        """Hard-link the file if a link would carry the right content, mode and mtime."""
        if node.host_path is not None:
            os.link(node.host_path, path, follow_symlinks=False)
            return True
        if store is None or node.digest is None or node.unix_mode is not None or mtime_ns != _ARBITRARY_NS:
            return False
        source = store.local_path(node.digest, executable=node.executable)
        if source is None:
            return False
        os.link(source, path, follow_symlinks=False)
        return True

    def _move(self, name: str, dest: Directory, dest_name: str) -> None:
        assert isinstance(dest, OsDirectory)
        with host_errors(self._join(name)):
            os.rename(self._join(name), dest._join(dest_name))

    def _open_blob(self, node: Node) -> BinaryIO:
        path = self._join(node.name)
        with host_errors(path):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            return open(fd, "rb")

    def _open_write(self, name: str, mode: str, existing: Node | None) -> IO[bytes]:
        path = self._join(name)
        flags = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        flags |= os.O_RDWR if "+" in mode else os.O_WRONLY
        flags |= os.O_EXCL if mode.startswith("x") else os.O_TRUNC
        with host_errors(path):
            fd = os.open(path, flags, 0o644)
        return open(fd, "w+b" if "+" in mode else "wb")

    def _as_source(self) -> SourceTree:
        return HostSource.scan(self._path)

    def _source_for_host(self, host_path: str, properties: list[str] | None) -> SourceTree:
        del properties  # a host tree keeps all its metadata
        return HostSource.scan(host_path)

    def file_digest(self, path: str) -> str:
        resolved = self._regular_file(path)
        host = os.path.join(resolved.parent.host_path, resolved.name)  # type: ignore[attr-defined]
        with host_errors(host):
            return digest_file(host).hash


def export_tree(source: SourceTree, to_directory: str, *, link: bool, progress: Progress | None) -> None:
    """Write *source* into the host directory *to_directory* (made if missing) with
    the merge rules of :meth:`Directory.import_files`. An invalid source tree is
    refused before anything is written."""
    source.prepare_export()
    OsDirectory(to_directory, create=True)._import_tree(
        source,
        filter_callback=None,
        options=ImportOptions(link=link, progress=progress),
        collect_result=False,
    )


def _copy_to_fd(source: BinaryIO, fd: int) -> None:
    with open(fd, "wb", closefd=False) as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
