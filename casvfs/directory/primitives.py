"""The primitives the merge engine writes through, implemented by every tree.

These underscore methods are package-internal: they are used by the modules of
``casvfs.directory`` and by nothing outside it.

============================  ==========================================================
primitive                     used by
============================  ==========================================================
``_lookup``, ``_entries``,    ``base`` (path resolution, listing), ``merge`` (the import
``_child``                    engine), ``changes`` (diff and three-way merge)
``_mkdir``, ``_put``,         ``base`` (``open_directory(create=True)``), ``merge``,
``_unlink``                   ``changes``
``_set_own``, ``_graft``      ``merge``, ``changes`` (``_graft``)
``_holds``                    ``merge`` (skip a subtree the destination already holds)
============================  ==========================================================

A directory's place in its tree, ``_parent`` and ``_name``, is set by each
implementation (``osdir``, ``casdir``) and read by ``base``'s path resolution,
``_resolve``, which ``changes`` uses too; ``osdir`` works in ``hostfs``'s
directory descriptors (``_dirfd``) and names host paths in messages with its
``_join``.

:class:`~casvfs.directory.base.Directory` adds the primitives the public API
needs beyond these: ``_move``, ``_open_blob``, ``_open_write``,
``_source_for_host`` (used by ``base``), ``_as_source`` (``base``, ``changes``),
``_known_digest`` and ``_blob_store`` (``changes``: skip identical subtrees by
digest, copy a file's blob without knowing the implementation).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Self

from casvfs.directory.source import SourceTree
from casvfs.directory.types import Progress
from casvfs.store.base import ContentStore
from casvfs.tree import Node


@dataclass(frozen=True)
class ImportOptions:
    """How the engine writes entries."""

    update_mtime: float | None = None
    link: bool = False
    """Link or clone files from the store instead of copying them (exports)."""
    hard_links: bool = False
    """With *link*, hard-link store objects even as root."""
    progress: Progress | None = None


class TreePrimitives(abc.ABC):
    """One directory of a tree the merge engine can read and write."""

    @abc.abstractmethod
    def _lookup(self, name: str) -> Node | None:
        """The entry *name*, without following symlinks."""

    @abc.abstractmethod
    def _entries(self) -> list[Node]:
        """All entries, sorted by name."""

    @abc.abstractmethod
    def _child(self, name: str) -> Self:
        """The existing subdirectory *name*."""

    @abc.abstractmethod
    def _mkdir(self, name: str, own: Node | None) -> Self:
        """Create the subdirectory *name* (absent) with the properties of *own*."""

    @abc.abstractmethod
    def _set_own(self, own: Node) -> None:
        """Apply a source directory's own properties (its mtime) to this directory."""

    @abc.abstractmethod
    def _unlink(self, name: str) -> None:
        """Remove the entry *name* and, for a directory, everything under it."""

    @abc.abstractmethod
    def _put(self, name: str, node: Node, store: ContentStore | None, options: ImportOptions) -> None:
        """Write the file or symlink *node* as *name* (absent); a file's content is the
        host file ``node.host_path`` or the blob ``node.digest`` in *store*."""

    def _graft(self, name: str, source: SourceTree) -> bool:
        """Insert the whole of *source* as *name* by reference, if this can; else False."""
        del name, source
        return False

    def _holds(self, name: str, source: SourceTree) -> bool:
        """Whether the existing subdirectory *name* is known to be *source* already
        (same store, same digest), so that merging *source* into it changes nothing."""
        del name, source
        return False
