"""The digest of a mounted tree as it is now, from the inode table alone (no kernel).

Only files written since their last capture are read and hashed; unmodified
subtrees keep their CAS digests, and changed directories are serialised bottom
up in the order :func:`casvfs.tree.children_first` gives, as
:meth:`CasDirectory.get_digest <casvfs.CasDirectory.get_digest>` does.

What REAPI cannot hold stays out: special files (fifos, sockets, devices) are
left out of the ``Directory`` messages, owners and access times are not
recorded, and each name of a hard link is a file of its own. Modes and mtimes
are kept where the tree records them (a new entry: where the directory it was
made in does), so a capture equals an import of a copy of what the mount shows
with the same properties.
"""

from __future__ import annotations

import trio

from casvfs.digest import EMPTY_DIGEST, Digest, digest_message
from casvfs.fuse.inodes import ROOT_INODE, Inode, InodeTable
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.store.base import ContentStore
from casvfs.tree import FileType, Node, children_first, directory_to_proto


async def get_digest(table: InodeTable, store: ContentStore) -> Digest:
    """Store what was written and return the root digest of the tree in *table*.

    File contents are hashed in worker threads; the ``Directory`` messages are
    built with no await in between, so they describe one instant of the tree."""
    while pending := unhashed_files(table):
        for inode in pending:
            assert inode.scratch is not None
            generation = inode.generation
            digest = await trio.to_thread.run_sync(store.put_file, inode.scratch)
            if inode.generation == generation:  # else written meanwhile: hash again
                inode.captured = digest
    messages: list[pb.Directory] = []
    root = directory_messages(table, messages)
    await trio.to_thread.run_sync(_put_all, store, messages)
    return root


def unhashed_files(table: InodeTable) -> list[Inode]:
    """Written files in the tree (not unlinked ones) whose content has no digest
    yet, each once however many names it has."""
    found: dict[int, Inode] = {}
    pending = [table.get(ROOT_INODE)]
    while pending:
        directory = pending.pop()
        if not directory.modified or directory.captured is not None:
            continue
        for child in (directory.children or {}).values():
            inode = table.inodes[child]
            if inode.kind is FileType.DIRECTORY:
                pending.append(inode)
            elif inode.scratch is not None and inode.captured is None:
                found[inode.ino] = inode
    return list(found.values())


def directory_messages(table: InodeTable, messages: list[pb.Directory]) -> Digest:
    """The root digest, once every written file has been hashed
    (:func:`unhashed_files` is empty); appends the ``Directory`` messages of the
    changed directories to *messages*, children first."""
    root = table.get(ROOT_INODE)
    if root.digest is not None or root.captured is not None:
        result = root.digest or root.captured
        assert result is not None
        return result

    def changed_subdirectories(directory: Inode) -> list[Inode]:
        children = (table.inodes[ino] for ino in (directory.children or {}).values())
        return [
            child
            for child in children
            if child.kind is FileType.DIRECTORY and child.digest is None and child.captured is None
        ]

    for directory in children_first(root, changed_subdirectories):
        nodes = [_node(name, child) for name, child in table.entries(directory.ino) if not child.special]
        message = directory_to_proto(nodes, _own(directory))
        messages.append(message)
        directory.captured = digest_message(message)
    assert root.captured is not None
    return root.captured


def _own(directory: Inode) -> Node:
    """A changed directory's own properties: its mtime now, where the tree
    records one, and its mode (see :func:`_unix_mode`)."""
    original = directory.node
    mode = _unix_mode(directory)
    if original.mtime_ns is None and mode == original.unix_mode:
        return original
    return Node(
        "",
        FileType.DIRECTORY,
        mtime_ns=None if original.mtime_ns is None else directory.mtime_ns,
        unix_mode=mode,
        properties=original.properties,
    )


def _unix_mode(inode: Inode) -> int | None:
    """The ``unix_mode`` to record for a file or directory: the mode the mount
    shows, where the tree records one."""
    recorded = inode.node.unix_mode
    if recorded is None or inode.posix is None:
        return recorded
    return inode.posix.mode


def _node(name: str, inode: Inode) -> Node:
    original = inode.node
    if not inode.modified:
        return original.renamed(name)
    mtime = inode.mtime_ns if original.mtime_ns is not None else None
    if inode.kind is FileType.DIRECTORY:
        return Node(name, FileType.DIRECTORY, digest=inode.captured)  # properties: in its message
    if inode.kind is FileType.SYMLINK:
        return Node(
            name, FileType.SYMLINK, target=original.target, mtime_ns=mtime, properties=original.properties
        )
    if inode.scratch is not None:
        digest = inode.captured
    elif original.digest is not None:
        digest = original.digest
    else:
        # created a moment ago: its (empty) scratch file is still being made
        digest = EMPTY_DIGEST
    assert digest is not None
    return Node(
        name,
        FileType.REGULAR_FILE,
        executable=inode.executable,
        size=digest.size_bytes,
        digest=digest,
        mtime_ns=mtime,
        unix_mode=_unix_mode(inode),
        properties=original.properties,
    )


def _put_all(store: ContentStore, messages: list[pb.Directory]) -> None:
    for message in messages:
        store.put_directory(message)
