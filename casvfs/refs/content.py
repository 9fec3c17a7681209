"""Is what a reference names all there? The check made before a reference is
recorded and again before one is handed out, so nobody receives a broken tree."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from casvfs.digest import Digest
from casvfs.errors import REASON_BLOB_MISSING, StoreError
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.refs.ref import Ref
from casvfs.store.base import ContentStore

FindMissing = Callable[[Iterable[Digest]], list[Digest]]
"""The digests among those given that a CAS lacks."""
Directories = Callable[[Digest], Iterable[pb.Directory]]
"""Every ``Directory`` of a tree, or ``StoreError`` ``blob-missing`` if its root is
missing; a directory further down may be left out (the check finds it missing)."""


def missing_in(
    blobs: Iterable[Digest], trees: Iterable[Digest], *, find_missing: FindMissing, directories: Directories
) -> list[Digest]:
    """Which of *blobs*, and of the blobs and ``Directory`` messages of the trees
    *trees* (whole), a CAS lacks, each once."""
    wanted: dict[Digest, None] = dict.fromkeys(blobs)
    for root in dict.fromkeys(trees):
        wanted[root] = None
        try:
            for message in directories(root):
                for file in message.files:
                    wanted[Digest.from_proto(file.digest)] = None
                for child in message.directories:
                    wanted[Digest.from_proto(child.digest)] = None
        except StoreError as error:
            if error.reason != REASON_BLOB_MISSING:
                raise
    return find_missing(wanted)


def missing_content(store: ContentStore, ref: Ref) -> list[Digest]:
    """The blobs *ref* needs (its own, its root tree whole, its reference lists)
    that *store* does not hold."""
    blobs, trees = ref.content
    return missing_in_store(store, blobs, trees)


def missing_in_store(store: ContentStore, blobs: Iterable[Digest], trees: Iterable[Digest]) -> list[Digest]:
    """:func:`missing_in` for a local :class:`~casvfs.ContentStore`."""

    def directories(root: Digest) -> Iterable[pb.Directory]:
        return (message for _digest, message in store.get_tree(root, unreadable=_skip_missing))

    return missing_in(blobs, trees, find_missing=store.find_missing, directories=directories)


def _skip_missing(_digest: Digest, error: StoreError) -> None:
    # a missing Directory is reported missing by find_missing; others are real errors
    if error.reason != REASON_BLOB_MISSING:
        raise error
