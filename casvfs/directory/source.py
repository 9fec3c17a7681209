"""Immutable views of a tree being imported.

The merge engine reads its source through these so that it can never see its
own writes: a CAS source is pinned to a digest, a host source is listed in full
before anything is written (so importing a tree into its own subdirectory ends).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterable
from dataclasses import dataclass

from casvfs.digest import Digest
from casvfs.errors import REASON_IS_A_DIRECTORY, DirectoryError, os_error, os_errors
from casvfs.store.base import ContentStore
from casvfs.tree import FileType, Node, node_from_stat, read_directory


class SourceTree(abc.ABC):
    """One directory of an import source."""

    store: ContentStore | None = None
    """The store holding the file blobs named by node digests (None for host trees)."""
    digest: Digest | None = None
    """The ``Directory`` digest, for by-reference import (None for host trees)."""

    @abc.abstractmethod
    def entries(self) -> list[Node]:
        """The entries, sorted by name."""

    @abc.abstractmethod
    def child(self, name: str) -> SourceTree:
        """The subdirectory *name* (an entry of type DIRECTORY)."""

    @abc.abstractmethod
    def own(self) -> Node | None:
        """The directory's own properties (mtime, mode), or None."""

    @abc.abstractmethod
    def prepare_export(self, blobs: Iterable[Digest] | None = None) -> None:
        """Load and check every directory below, so that a tree holding an invalid
        ``Directory`` message is refused before anything is written, and have the
        store make the file blobs local (a store backed by remotes fetches the
        missing ones in batches rather than one at a time as files are written).
        *blobs*: the tree's file blobs, from a walk that already loaded and checked
        every directory (then none is loaded again)."""


class CasSource(SourceTree):
    """A CAS directory pinned to its digest.

    *specials* lists, by directory path (``""``, ``"a/b/"``), the host special
    files an ingest had to leave out, so that they are reported as ``ignored``
    exactly where a host-to-host import reports them.
    """

    def __init__(
        self,
        store: ContentStore,
        digest: Digest,
        specials: dict[str, list[str]] | None = None,
        prefix: str = "",
    ) -> None:
        self.store = store
        self.digest = digest
        self._store = store
        self._digest = digest
        self._specials = specials or {}
        self._prefix = prefix
        self._nodes: dict[str, Node] | None = None
        self._own: Node | None = None

    def _load(self) -> dict[str, Node]:
        if self._nodes is None:
            contents = read_directory(self._store.get_directory(self._digest))
            self._nodes, self._own = contents.nodes, contents.own
        return self._nodes

    def entries(self) -> list[Node]:
        nodes = list(self._load().values())
        nodes.extend(Node(name, FileType.SPECIAL_FILE) for name in self._specials.get(self._prefix, ()))
        return sorted(nodes, key=lambda node: node.name)

    def child(self, name: str) -> SourceTree:
        digest = self._load()[name].digest
        assert digest is not None
        return CasSource(self._store, digest, self._specials, f"{self._prefix}{name}/")

    def own(self) -> Node | None:
        self._load()
        return self._own

    def prepare_export(self, blobs: Iterable[Digest] | None = None) -> None:
        if blobs is None:
            blobs = self._store.tree_blobs(self._digest, directories=False)
        self._store.fetch_missing(blobs)


@dataclass
class HostSource(SourceTree):
    """A host directory, listed in full (without following symlinks) when built."""

    nodes: list[Node]
    children: dict[str, HostSource]
    own_node: Node | None

    @classmethod
    def scan(cls, path: str) -> HostSource:
        """Snapshot the tree under *path* (iteratively: depth is unbounded)."""
        with os_errors(f"cannot read {path}"):
            top = cls._scan_one(path, os.stat(path))
        pending = [top]
        while pending:
            tree = pending.pop()
            for node in tree.nodes:
                if node.type is FileType.DIRECTORY:
                    assert node.host_path is not None
                    with os_errors(f"cannot read {node.host_path}"):
                        child = cls._scan_one(node.host_path, os.lstat(node.host_path))
                    tree.children[node.name] = child
                    pending.append(child)
        return top

    @classmethod
    def single(cls, path: str) -> HostSource:
        """A one-entry source holding the host file (or symlink) at *path*."""
        try:
            node = node_from_stat(os.path.basename(path), path, os.lstat(path))
        except OSError as error:
            raise os_error(error, f"cannot read {path}") from None
        if node.type is FileType.DIRECTORY:
            raise DirectoryError(f"{path} is a directory, not a file", reason=REASON_IS_A_DIRECTORY)
        return cls([node], {}, None)

    @staticmethod
    def _scan_one(path: str, st: os.stat_result) -> HostSource:
        nodes = []
        with os.scandir(path) as listing:
            for entry in listing:
                nodes.append(node_from_stat(entry.name, entry.path, entry.stat(follow_symlinks=False)))
        nodes.sort(key=lambda node: node.name)
        return HostSource(nodes, {}, node_from_stat("", path, st))

    def entries(self) -> list[Node]:
        return self.nodes

    def prepare_export(self, blobs: Iterable[Digest] | None = None) -> None:
        """A host tree was listed with ``lstat`` when scanned: nothing to check or fetch."""
        del blobs

    def child(self, name: str) -> SourceTree:
        return self.children[name]

    def own(self) -> Node | None:
        return self.own_node
