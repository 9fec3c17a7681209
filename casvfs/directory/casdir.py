"""The Merkle-tree implementation of :class:`Directory` over a :class:`ContentStore`."""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import IO, BinaryIO, Self

from casvfs.digest import Digest, entry_digest
from casvfs.directory.base import Directory
from casvfs.directory.changes import TreeDiff, apply_changes
from casvfs.directory.ingest import import_host_tree
from casvfs.directory.primitives import ImportOptions
from casvfs.directory.source import CasSource, SourceTree
from casvfs.store.base import ContentStore
from casvfs.store.treesize import expanded_size
from casvfs.tree import FileType, Node, children_first, directory_to_proto, read_directory


class CasDirectory(Directory):
    """A directory tree held as REAPI ``Directory`` messages in a content store.

    Levels are loaded from the store only when first looked at; digests are
    computed on demand and cached, and any change invalidates the cached
    digests of the directory and its ancestors. Importing another
    ``CasDirectory`` of the same store onto a free name costs O(1).

    :param store: where blobs and ``Directory`` messages live.
    :param digest: the root ``Directory`` to start from (None: an empty tree).
    """

    def __init__(self, store: ContentStore, digest: Digest | None = None) -> None:
        self._store = store
        self._digest = digest
        self._nodes: dict[str, Node] | None = None if digest is not None else {}
        self._children: dict[str, CasDirectory] = {}
        self._own: Node | None = None
        self._parent: CasDirectory | None = None
        self._name = ""

    def __repr__(self) -> str:
        state = str(self._digest) if self._digest is not None else "modified"
        return f"<CasDirectory {'/'.join(self._path_from_root()) or '.'} {state}>"

    @property
    def store(self) -> ContentStore:
        """The store this tree lives in."""
        return self._store

    def get_digest(self) -> Digest:
        """The digest of this directory's ``Directory`` message.

        Changed directories below are serialised into the store (bottom up,
        iteratively) and their digests cached until the next change.
        """
        if self._digest is not None:
            return self._digest
        changed = children_first(
            self, lambda directory: [c for c in directory._children.values() if c._digest is None]
        )
        for directory in changed:
            nodes = directory._load()
            for name, child in directory._children.items():
                if nodes[name].digest != child._digest:
                    nodes[name] = replace(nodes[name], digest=child._digest)
            message = directory_to_proto(nodes.values(), directory._own)
            directory._digest = directory._store.put_directory(message)
        assert self._digest is not None
        return self._digest

    def get_size(self) -> int:
        """The total size in bytes of the regular files in the tree, every occurrence
        counted, summed once per distinct subdirectory
        (:func:`~casvfs.store.expanded_size`) rather than path by path, so a tree
        naming one subtree many times costs no more than its distinct directories.
        Changes are serialised into the store first, as by :meth:`get_digest`."""
        return expanded_size(self._store, self.get_digest()).bytes

    def list_relative_paths(self) -> Iterator[str]:
        """Every path in the tree, in :meth:`Directory.list_relative_paths` order.

        Subtrees nobody has opened are listed from their ``Directory`` messages
        without building a node per entry: on the Linux sources (83,730 paths)
        that took a fresh listing from 0.94 s to 0.28 s (with the quicker validation)."""
        pending: list[tuple[str, CasDirectory | None, Digest | None]] = [("", self, None)]
        while pending:
            path, directory, digest = pending.pop()
            if path:
                yield path
            prefix = f"{path}/" if path else ""
            subdirectories: list[tuple[str, CasDirectory | None, Digest | None]] = []
            if directory is not None and directory._nodes is not None:
                for node in directory._entries():
                    if node.type is FileType.DIRECTORY:
                        child = directory._children.get(node.name)
                        subdirectories.append((prefix + node.name, child, node.digest))
                    else:
                        yield prefix + node.name
            else:
                if directory is not None:
                    digest = directory._digest
                assert digest is not None, "an unloaded directory has a digest"
                message = self._store.get_directory(digest)
                others = [node.name for node in message.files]
                if message.symlinks:
                    others = sorted(others + [node.name for node in message.symlinks])
                for name in others:
                    yield prefix + name
                subdirectories = [
                    (prefix + node.name, None, entry_digest(node.digest)) for node in message.directories
                ]
            pending.extend(reversed(subdirectories))

    def _known_digest(self) -> Digest:
        return self.get_digest()

    def _blob_store(self) -> ContentStore:
        return self._store

    # -- internals -----------------------------------------------------------------

    def _load(self) -> dict[str, Node]:
        if self._nodes is None:
            assert self._digest is not None
            contents = read_directory(self._store.get_directory(self._digest))
            self._nodes, self._own = contents.nodes, contents.own
        return self._nodes

    def _invalidate(self) -> None:
        directory: CasDirectory | None = self
        # Invariant: a directory with no cached digest has none cached above it.
        while directory is not None and directory._digest is not None:
            directory._digest = None
            directory = directory._parent

    def _new_child(self, name: str, digest: Digest | None) -> Self:
        child = type(self)(self._store, digest)
        child._parent = self
        child._name = name
        self._children[name] = child
        return child

    def _lookup(self, name: str) -> Node | None:
        return self._load().get(name)

    def _entries(self) -> list[Node]:
        return sorted(self._load().values(), key=lambda node: node.name)

    def _child(self, name: str) -> Self:
        child = self._children.get(name)
        if child is None:
            return self._new_child(name, self._load()[name].digest)
        assert isinstance(child, type(self))
        return child

    def _mkdir(self, name: str, own: Node | None) -> Self:
        self._load()[name] = Node(name, FileType.DIRECTORY)
        child = self._new_child(name, None)
        if own is not None:
            child._own = replace(own, name="", host_path=None)
        self._invalidate()
        return child

    def _set_own(self, own: Node) -> None:
        self._load()
        self._own = replace(own, name="", host_path=None)
        self._invalidate()

    def _unlink(self, name: str) -> None:
        del self._load()[name]
        child = self._children.pop(name, None)
        if child is not None:
            child._parent = None
        self._invalidate()

    def _put(self, name: str, node: Node, store: ContentStore | None, options: ImportOptions) -> None:
        if node.host_path is not None:
            # A lone host file (import_single_file) records no host metadata.
            digest = self._store.put_file(node.host_path) if node.type is FileType.REGULAR_FILE else None
            node = Node(
                node.name,
                node.type,
                executable=node.executable,
                size=node.size,
                target=node.target,
                digest=digest,
            )
        elif node.type is FileType.REGULAR_FILE and store is not self._store:
            assert store is not None and node.digest is not None
            with store.open(node.digest) as stream:
                self._store.put_stream(stream)
        if options.update_mtime is not None and node.type is FileType.REGULAR_FILE:
            node = replace(node, mtime_ns=int(options.update_mtime * 1_000_000_000))
        self._load()[name] = node.renamed(name)
        self._invalidate()

    def _graft(self, name: str, source: SourceTree) -> bool:
        if source.store is not self._store or source.digest is None:
            return False
        self._load()[name] = Node(name, FileType.DIRECTORY, digest=source.digest)
        self._invalidate()
        return True

    def _holds(self, name: str, source: SourceTree) -> bool:
        if source.store is not self._store or source.digest is None:
            return False
        child = self._children.get(name)
        # a changed child's node still names its old digest: only the child knows
        current = child._digest if child is not None else self._load()[name].digest
        return current == source.digest

    def _move(self, name: str, dest: Directory, dest_name: str) -> None:
        assert isinstance(dest, CasDirectory)
        node = self._load().pop(name)
        child = self._children.pop(name, None)
        self._invalidate()
        dest._load()[dest_name] = node.renamed(dest_name)
        if child is not None:
            child._parent = dest
            child._name = dest_name
            dest._children[dest_name] = child
        dest._invalidate()

    def _open_blob(self, node: Node) -> BinaryIO:
        assert node.digest is not None
        return self._store.open(node.digest)

    def _open_write(self, name: str, mode: str, existing: Node | None) -> IO[bytes]:
        base = existing or Node(name, FileType.REGULAR_FILE)
        stamp = existing is not None and existing.mtime_ns is not None

        def commit(path: str) -> None:
            digest = self._store.put_file(path)
            self._load()[name] = replace(
                base,
                size=digest.size_bytes,
                digest=digest,
                mtime_ns=time.time_ns() if stamp else base.mtime_ns,
            )
            self._invalidate()

        fd, path = tempfile.mkstemp(prefix="casvfs-")
        os.close(fd)
        commit(path)  # the (empty) file exists from open on, as on a host
        raw = _CommitOnClose(path, "w+" if "+" in mode else "w", commit)
        return io.BufferedRandom(raw) if "+" in mode else io.BufferedWriter(raw)

    def _as_source(self) -> SourceTree:
        return CasSource(self._store, self.get_digest())

    def _source_for_host(self, host_path: str, properties: list[str] | None) -> SourceTree:
        specials: dict[str, list[str]] = {}
        digest = import_host_tree(self._store, host_path, properties=properties, skipped=specials)
        return CasSource(self._store, digest, specials)

    def file_digest(self, path: str) -> str:
        node = self._regular_file(path).node
        assert node is not None and node.digest is not None
        return node.digest.hash

    def apply_changes(self, before: CasDirectory, after: CasDirectory) -> TreeDiff:
        """Apply the changes from *before* to *after* onto this tree (three-way merge).

        Raises ``merge-conflict`` (changing nothing) where this tree changed a path
        differently; see :func:`casvfs.directory.changes.apply_changes`.
        """
        return apply_changes(self, before, after)


class _CommitOnClose(io.FileIO):
    """A temp file that hands its path to *commit* when closed, then disappears."""

    def __init__(self, path: str, mode: str, commit: Callable[[str], None]) -> None:
        super().__init__(path, mode)
        self._commit_path = path
        self._commit = commit

    def close(self) -> None:
        if self.closed:
            return
        try:
            super().close()
            self._commit(self._commit_path)
        finally:
            os.unlink(self._commit_path)
