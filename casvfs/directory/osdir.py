"""The host-filesystem implementation of :class:`Directory`."""

from __future__ import annotations

import os
from typing import IO, BinaryIO, Self

from casvfs.digest import digest_file
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
            os.rename(self._join(name), dest._join(dest_name))

    def _open_blob(self, node: Node) -> BinaryIO:
        path = self._join(node.name)
        with os_errors(path):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            return open(fd, "rb")

    def _open_write(self, name: str, mode: str, existing: Node | None) -> IO[bytes]:
        path = self._join(name)
        flags = os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        flags |= os.O_RDWR if "+" in mode else os.O_WRONLY
        flags |= os.O_EXCL if mode.startswith("x") else os.O_TRUNC
        with os_errors(path):
            fd = os.open(path, flags, 0o644)
        return open(fd, "w+b" if "+" in mode else "wb")

    def _as_source(self) -> SourceTree:
        return HostSource.scan(self._path)

    def _source_for_host(self, host_path: str, properties: list[str] | None) -> SourceTree:
        del properties  # a host tree keeps all its metadata
        return HostSource.scan(host_path)

    def file_digest(self, path: str) -> str:
        resolved = self._regular_file(path)
        assert isinstance(resolved.parent, OsDirectory)
        host = resolved.parent._join(resolved.name)
        with os_errors(host):
            return digest_file(host).hash
