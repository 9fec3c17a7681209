"""A read-only `fsspec <https://filesystem-spec.readthedocs.io>`_ filesystem over a
tree digest or reference: ``fsspec.filesystem("casvfs", root=DIGEST)`` or URLs
``casvfs://HASH/SIZE/path``, registered through the ``fsspec.specs`` entry point.

It follows fsspec's read-only archive filesystems (``tar``, ``zip``): ``ls``,
``info``, ``open``, ``cat_file``, ``find``, ``walk``, missing paths as
``FileNotFoundError``, write modes refused. Unlike them it loads a directory only
when it is listed, and reads through the store given, so over a store with
remotes (the default when remotes are configured) a tree-only pull can be read by
any fsspec user (pandas, pyarrow, dask), fetching only the blobs read.
"""

from __future__ import annotations

import os
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from casvfs.digest import Digest
from casvfs.directory.casdir import CasDirectory
from casvfs.errors import REASON_NOT_FOUND, CasvfsError, DigestError
from casvfs.refs import RefIndex
from casvfs.store.base import ContentStore
from casvfs.stores import StoreSpec
from casvfs.tree import FileType

_TYPES = {FileType.DIRECTORY: "directory", FileType.REGULAR_FILE: "file", FileType.SYMLINK: "other"}


def _split_url(path: str) -> tuple[str | None, str]:
    """``(digest text, path in the tree)`` of ``casvfs://HASH/SIZE/path``, or
    ``(None, path)`` for a plain path."""
    if not path.startswith("casvfs://"):
        return None, path.strip("/")
    rest = path[len("casvfs://") :]
    hash_, _, tail = rest.partition("/")
    size, _, inner = tail.partition("/")
    return f"{hash_}/{size}", inner.strip("/")


class CasvfsFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """The tree *root* (a :class:`~casvfs.Digest`, ``HASH/SIZE`` or a reference
    name) of *store* (default: the ``casvfs`` command's store, with its remotes),
    read-only."""

    protocol = "casvfs"
    root_marker = ""

    def __init__(self, root: Digest | str, store: ContentStore | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        spec = StoreSpec()
        self.store = store if store is not None else spec.open()
        if isinstance(root, Digest):
            self.root = root
        else:
            try:
                self.root = Digest.parse(root)
            except DigestError:
                self.root = RefIndex.of_store(spec.open_local()).resolve(root)
        self.tree = CasDirectory(self.store, self.root)

    @classmethod
    def _strip_protocol(cls, path: str | list[str]) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(item) for item in path]
        return _split_url(path)[1]

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        digest, _inner = _split_url(path)
        return {"root": digest} if digest is not None else {}

    def _entry(self, path: str) -> dict[str, Any]:
        try:
            stat = self.tree.stat(path) if path else None
        except CasvfsError as error:
            if error.reason in (REASON_NOT_FOUND, "not-a-directory"):
                raise FileNotFoundError(path) from None
            raise
        if stat is None:
            return {"name": "", "size": 0, "type": "directory"}
        entry: dict[str, Any] = {"name": path, "size": stat.size, "type": _TYPES.get(stat.file_type, "other")}
        if stat.file_type is FileType.REGULAR_FILE:
            entry["digest"] = self.tree.file_digest(path)
            entry["executable"] = stat.executable
        elif stat.file_type is FileType.SYMLINK:
            entry["destination"] = self.tree.readlink(path)
        return entry

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """The entry *path*: name, size, type (``file``, ``directory``, ``other``
        for a symlink, with its ``destination``) and, for a file, its digest."""
        return self._entry(self._strip_protocol(path))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """The entries of the directory *path* (or the file itself, as fsspec does)."""
        path = self._strip_protocol(path)
        entry = self._entry(path)
        if entry["type"] != "directory":
            return [entry] if detail else [path]
        directory = self.tree.open_directory(path) if path else self.tree
        names = [f"{path}/{name}" if path else name for name in sorted(directory)]
        return [self._entry(name) for name in names] if detail else names

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, **kwargs: Any) -> _CasFile:
        if mode != "rb":
            raise ValueError(f"casvfs filesystems are read-only: mode {mode!r} is refused")
        path = self._strip_protocol(path)
        entry = self._entry(path)
        if entry["type"] != "file":
            raise IsADirectoryError(path) if entry["type"] == "directory" else FileNotFoundError(path)
        digest = Digest(entry["digest"], entry["size"])
        return _CasFile(self, path, digest, block_size=block_size)

    def ukey(self, path: str) -> str:
        """The content digest of a file (what changes when it does)."""
        return str(self.info(path).get("digest", self.root))


class _CasFile(AbstractBufferedFile):  # type: ignore[misc]
    """A file of the tree, read in ranges: ``pread`` of the store's own verified
    object file where there is one, else the blob read whole once."""

    def __init__(self, fs: CasvfsFileSystem, path: str, digest: Digest, *, block_size: int | None) -> None:
        self.digest = digest
        self._fd: int | None = fs.store.open_object(digest)
        self._data: bytes | None = None
        super().__init__(fs, path, mode="rb", block_size=block_size or "default", size=digest.size_bytes)

    def _fetch_range(self, start: int, end: int) -> bytes:
        if self._fd is not None:
            return os.pread(self._fd, end - start, start)
        if self._data is None:
            self._data = self.fs.store.read_bytes(self.digest)
        return self._data[start:end]

    def close(self) -> None:
        super().close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
