"""The expanded size of a tree, counted once per distinct ``Directory``.

A Merkle tree may name the same subtree many times: a few hundred bytes of
``Directory`` messages, each holding one digest twice, name ``2**40`` paths 40 levels
down. Walking such a tree path by path never ends; counting it per *digest*
(each distinct message loaded and summed once, its total reused wherever it
recurs) costs one visit per distinct directory.
"""

from __future__ import annotations

from dataclasses import dataclass

from casvfs.digest import Digest, entry_digest
from casvfs.errors import REASON_INVALID_DIRECTORY, StoreError
from casvfs.store.base import ContentStore


@dataclass(frozen=True, slots=True)
class TreeSize:
    """What a tree expands to when every path is counted (the root not included)."""

    files: int = 0
    """Regular files, every occurrence counted."""
    directories: int = 0
    """Directories below the root, every occurrence counted."""
    symlinks: int = 0
    """Symbolic links, every occurrence counted."""
    bytes: int = 0
    """The sum of the regular files' sizes, every occurrence counted."""

    @property
    def paths(self) -> int:
        """Every path below the root: ``files + directories + symlinks``."""
        return self.files + self.directories + self.symlinks


@dataclass(slots=True)
class _Level:
    """One ``Directory`` being counted: the totals so far (its own entries, plus the
    subdirectories added up to now) and the subdirectory digests, one per occurrence
    (a digest held twice is added twice), with the index of the next to add."""

    digest: Digest
    files: int
    directories: int
    symlinks: int
    bytes: int
    subdirectories: list[Digest]
    next: int = 0

    def add(self, size: TreeSize) -> None:
        """Add one occurrence of a subdirectory of size *size*."""
        self.files += size.files
        self.directories += size.directories
        self.symlinks += size.symlinks
        self.bytes += size.bytes


def _load(store: ContentStore, digest: Digest, files: dict[Digest, None] | None) -> _Level:
    message = store.get_directory(digest)
    if files is not None:
        files.update((entry_digest(node.digest), None) for node in message.files)
    return _Level(
        digest,
        files=len(message.files),
        directories=len(message.directories),
        symlinks=len(message.symlinks),
        bytes=sum(node.digest.size_bytes for node in message.files),
        subdirectories=[entry_digest(node.digest) for node in message.directories],
    )


def expanded_size(
    store: ContentStore,
    root: Digest,
    *,
    memo: dict[Digest, TreeSize] | None = None,
    files: dict[Digest, None] | None = None,
) -> TreeSize:
    """The :class:`TreeSize` of the tree *root* in *store*, as a walk of every path
    would count it, without walking every path.

    Each distinct ``Directory`` digest is loaded (:meth:`ContentStore.get_directory`,
    which validates it) and counted once, children before parents, iteratively, so
    neither a tree that names ``10**12`` paths through shared subtrees nor one 100,000
    levels deep is a problem. Only ``Directory`` messages are read, never file
    blobs: a partial store suffices.

    :param memo: sizes already known, by ``Directory`` digest; filled with every
        directory counted, so that calls on overlapping trees share the work.
    :param files: if given, filled with the digests of the file blobs of every
        directory loaded (an export prefetches them without a second walk).
    :raises StoreError: ``blob-missing`` for a missing ``Directory``,
        ``invalid-directory`` for a malformed one or for a tree that contains
        itself (a store returning content other than the digest names).
    """
    known: dict[Digest, TreeSize] = {} if memo is None else memo
    if root in known:
        return known[root]
    stack = [_load(store, root, files)]
    # Digests on the current path: meeting one again means a cycle, which content
    # addressing rules out but a store that does not verify what it reads could show.
    on_path = {root}
    while stack:
        level = stack[-1]
        if level.next < len(level.subdirectories):
            child = level.subdirectories[level.next]
            level.next += 1
            size = known.get(child)
            if size is not None:
                level.add(size)
                continue
            if child in on_path:
                raise StoreError(
                    f"Directory {child} is invalid: it contains itself (again below {level.digest})",
                    reason=REASON_INVALID_DIRECTORY,
                )
            on_path.add(child)
            stack.append(_load(store, child, files))
            continue
        stack.pop()
        on_path.discard(level.digest)
        total = TreeSize(level.files, level.directories, level.symlinks, level.bytes)
        known[level.digest] = total
        if stack:
            stack[-1].add(total)
    return known[root]


SIZE_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """A size in bytes: ``123``, or with a K, M, G or T suffix (powers of 1024);
    ``ValueError`` otherwise."""
    number, unit = (text[:-1], SIZE_UNITS[text[-1].upper()]) if text[-1:].upper() in SIZE_UNITS else (text, 1)
    try:
        return int(float(number) * unit)
    except ValueError:
        raise ValueError(f"not a size: {text!r} (bytes, or with K, M, G, T)") from None
