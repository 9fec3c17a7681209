"""The host-filesystem implementation of :class:`Directory`."""

from __future__ import annotations

import os
from typing import IO, BinaryIO, Self

from casvfs.digest import digest_stream
from casvfs.directory.base import Directory
from casvfs.directory.hostfs import HostTree
from casvfs.directory.source import HostSource, SourceTree
from casvfs.errors import os_errors
from casvfs.tree import Node


class OsDirectory(HostTree, Directory):
    """A :class:`Directory` over a host directory.

    Every path is resolved component by component with ``lstat`` inside the
    tree, and entries are created with ``O_NOFOLLOW``/``O_EXCL``, so no symlink
    already in the tree can redirect a write outside it.

    :param path: the host directory (symlinks in *path* itself are followed).
    :param create: make it (and its parents) if missing.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        super().__init__(path, create=create)
        self._parent = None
        self._name = ""

    def __repr__(self) -> str:
        return f"OsDirectory({self._path!r})"

    @property
    def host_path(self) -> str:
        """The host path of this directory."""
        return self._path

    def _child(self, name: str) -> Self:
        child = super()._child(name)
        child._parent = self
        child._name = name
        return child

    def _move(self, name: str, dest: Directory, dest_name: str) -> None:
        assert isinstance(dest, OsDirectory)
        with os_errors(self._join(name)):
            source, target = self._dirfd(), dest._dirfd()
            os.rename(name, dest_name, src_dir_fd=source, dst_dir_fd=target)

    def _open_blob(self, node: Node) -> BinaryIO:
        with os_errors(self._join(node.name)):
            fd = os.open(node.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._dirfd())
            return open(fd, "rb")

    def _open_write(self, name: str, mode: str, existing: Node | None) -> IO[bytes]:
        flags = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        flags |= os.O_RDWR if "+" in mode else os.O_WRONLY
        flags |= os.O_EXCL if mode.startswith("x") else os.O_TRUNC
        with os_errors(self._join(name)):
            fd = os.open(name, flags, 0o644, dir_fd=self._dirfd())
        return open(fd, "w+b" if "+" in mode else "wb")

    def _as_source(self) -> SourceTree:
        return HostSource.scan(self._path)

    def _source_for_host(self, host_path: str, properties: list[str] | None) -> SourceTree:
        del properties  # a host tree keeps all its metadata
        return HostSource.scan(host_path)

    def file_digest(self, path: str) -> str:
        resolved = self._regular_file(path)
        assert resolved.node is not None
        with resolved.parent._open_blob(resolved.node) as stream, os_errors(path):
            return digest_stream(stream).hash
