"""The inode table of a mount, free of pyfuse3 so it can be tested on its own.

Unmodified nodes are CAS nodes, loaded one directory at a time. A written file
lives in a scratch file; a changed directory is marked modified up to the root.
Nothing here blocks on the store or the disk: the caller does that work (off
the event loop) and hands the results in (:meth:`InodeTable.load_directory`,
and ``Inode.scratch`` once a scratch file exists).
"""

from __future__ import annotations

import errno
import itertools
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from casvfs.digest import Digest
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.timestamps import ARBITRARY_TIMESTAMP
from casvfs.tree import FileType, Node, read_directory

ROOT_INODE = 1
NAME_MAX = 255
"""The longest name, in bytes, the mount takes (what statfs reports)."""
ARBITRARY_NS = ARBITRARY_TIMESTAMP * 1_000_000_000


class FsError(Exception):
    """A failure to report to the kernel as *errno*."""

    def __init__(self, code: int) -> None:
        super().__init__(errno.errorcode.get(code, str(code)))
        self.errno = code


@dataclass(eq=False, slots=True)
class Inode:
    """One file, directory or symlink of the mount."""

    ino: int
    kind: FileType
    node: Node
    """The CAS node it came from (properties included), or a synthetic one."""
    parent: int = 0
    """The containing directory (in a read-only mount, a shared file's first)."""
    executable: bool = False
    size: int = 0
    mtime_ns: int = ARBITRARY_NS
    children: dict[str, int] | None = None
    """Entries by name once a directory is loaded; None before."""
    listing: list[str] | None = None
    """The names of the entries, sorted, kept until they change: readdir comes
    back once per kernel buffer (~100 entries), and sorting on each visit made
    listing a directory quadratic (200k entries: 144 s)."""
    scratch: str | None = None
    """Host file holding a written file's content."""
    modified: bool = False
    """Content or entries differ from the CAS node (a directory: anything below)."""
    captured: Digest | None = None
    """A modified node's digest at the last capture (file content, or directory
    message), until the next change."""
    lookups: int = 0
    """References the kernel holds (lookups answered minus forgotten)."""
    detached: bool = False
    """Unlinked or replaced: no directory holds it, only the kernel may."""
    generation: int = 0
    """Bumped by every change, so a capture can tell whether it hashed the latest content."""

    @property
    def digest(self) -> Digest | None:
        """The CAS digest of an unmodified node."""
        return None if self.modified else self.node.digest


@dataclass
class InodeTable:
    """Every inode the kernel may know, and the tree they form."""

    root_digest: Digest
    writable: bool = False
    shared_files: bool = field(init=False)
    inodes: dict[int, Inode] = field(default_factory=dict)
    loaded_directories: int = 0
    _next: Iterator[int] = field(default_factory=lambda: itertools.count(ROOT_INODE + 1))
    _by_content: dict[tuple[str, int, bool, int | None], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # One inode per (content, executable, mtime) lets identical files share the
        # page cache; a writable mount gives each path its own, to copy on write.
        self.shared_files = not self.writable
        root = Node("", FileType.DIRECTORY, digest=self.root_digest)
        self.inodes[ROOT_INODE] = Inode(ROOT_INODE, FileType.DIRECTORY, root, parent=ROOT_INODE)

    def get(self, ino: int) -> Inode:
        """The inode *ino*; ENOENT (stale handle) if forgotten."""
        try:
            return self.inodes[ino]
        except KeyError:
            raise FsError(errno.ENOENT) from None

    def directory(self, ino: int) -> Inode:
        """The directory inode *ino*, loaded (ENOTDIR for anything else)."""
        inode = self.get(ino)
        if inode.kind is not FileType.DIRECTORY:
            raise FsError(errno.ENOTDIR)
        assert inode.children is not None, "load the directory first"
        return inode

    def unloaded_digest(self, ino: int) -> Digest | None:
        """The ``Directory`` digest to fetch before *ino* can be listed; None once
        it is loaded."""
        inode = self.get(ino)
        if inode.kind is not FileType.DIRECTORY:
            raise FsError(errno.ENOTDIR)
        if inode.children is not None:
            return None
        assert inode.node.digest is not None
        return inode.node.digest

    def load_directory(self, ino: int, message: pb.Directory) -> None:
        """Install the entries of directory *ino* from its (validated) message."""
        inode = self.get(ino)
        if inode.children is not None:
            return  # loaded meanwhile by a concurrent request
        contents = read_directory(message)
        own = contents.own or Node("", FileType.DIRECTORY)
        if own.mtime_ns is not None:
            inode.mtime_ns = own.mtime_ns
        inode.node = Node(
            inode.node.name,
            FileType.DIRECTORY,
            digest=inode.node.digest,
            mtime_ns=own.mtime_ns,
            unix_mode=own.unix_mode,
            properties=own.properties,
        )
        inode.children = {name: self._inode_for(node, ino) for name, node in contents.nodes.items()}
        self.loaded_directories += 1

    def _inode_for(self, node: Node, parent: int) -> int:
        regular = node.type is FileType.REGULAR_FILE
        if regular and self.shared_files:
            assert node.digest is not None
            # plain values: hashing the Digest dataclass (a tuple built per call) was
            # a third of this method
            key = (node.digest.hash, node.digest.size_bytes, node.executable, node.mtime_ns)
            shared = self._by_content.get(key)
            if shared is not None:
                return shared
            self._by_content[key] = ino = next(self._next)
        else:
            ino = next(self._next)
        self.inodes[ino] = Inode(
            ino,
            node.type,
            node,
            parent,
            node.executable,
            node.size if regular else len(node.target.encode()),
            node.mtime_ns if node.mtime_ns is not None else ARBITRARY_NS,
        )
        return ino

    def lookup(self, parent: int, name: str) -> Inode | None:
        """The entry *name* of the loaded directory *parent*, or None."""
        children = self.directory(parent).children
        assert children is not None
        ino = children.get(name)
        return None if ino is None else self.inodes[ino]

    def entries(self, ino: int) -> list[tuple[str, Inode]]:
        """The entries of a loaded directory, sorted by name."""
        children = self.directory(ino).children
        assert children is not None
        return [(name, self.inodes[children[name]]) for name in self.sorted_names(ino)]

    def sorted_names(self, ino: int) -> list[str]:
        """The names in a loaded directory, sorted (a shared list: do not change it)."""
        directory = self.directory(ino)
        if directory.listing is None:
            assert directory.children is not None
            directory.listing = sorted(directory.children)
        return directory.listing

    def forget(self, ino: int, count: int) -> None:
        """The kernel dropped *count* references to *ino*.

        Inodes stay while their directory is loaded (a directory's entries are
        inodes), so memory follows what was listed, not the tree's size; a
        detached inode goes once the kernel holds no reference to it."""
        inode = self.inodes.get(ino)
        if inode is not None:
            inode.lookups = max(0, inode.lookups - count)
            if inode.detached and inode.lookups == 0 and ino != ROOT_INODE:
                del self.inodes[ino]

    def _detach(self, inode: Inode) -> None:
        """*inode* left the tree: it stays only while the kernel references it."""
        inode.detached = True
        if inode.lookups == 0:
            del self.inodes[inode.ino]

    # -- changes (writable mounts) ---------------------------------------------------

    def _check_writable(self) -> None:
        if not self.writable:
            raise FsError(errno.EROFS)

    def touch(self, ino: int) -> None:
        """Mark *ino* and every directory above it modified, dropping their
        captured digests."""
        while True:
            inode = self.get(ino)
            inode.modified = True
            inode.captured = None
            inode.generation += 1
            if ino == ROOT_INODE:
                return
            ino = inode.parent

    def _dirty_parent(self, parent: int) -> None:
        directory = self.get(parent)
        directory.mtime_ns = time.time_ns()
        directory.listing = None
        self.touch(parent)

    def add(
        self,
        parent: int,
        name: str,
        kind: FileType,
        *,
        target: str = "",
        executable: bool = False,
    ) -> Inode:
        """Create a new entry in *parent* (which must not hold *name*)."""
        self._check_writable()
        _check_name(name)
        children = self.directory(parent).children
        assert children is not None
        if name in children:
            raise FsError(errno.EEXIST)
        ino = next(self._next)
        node = Node(name, kind, target=target)
        inode = Inode(
            ino,
            kind,
            node,
            parent=parent,
            executable=executable,
            mtime_ns=time.time_ns(),
            size=len(target.encode()),
            modified=True,
        )
        if kind is FileType.DIRECTORY:
            inode.children = {}
        self.inodes[ino] = inode
        children[name] = ino
        self._dirty_parent(parent)
        return inode

    def remove(self, parent: int, name: str, *, directory: bool) -> Inode:
        """Unlink *name* (rmdir when *directory*, which must be empty)."""
        self._check_writable()
        inode = self.lookup(parent, name)
        if inode is None:
            raise FsError(errno.ENOENT)
        if directory:
            if inode.kind is not FileType.DIRECTORY:
                raise FsError(errno.ENOTDIR)
            _require_empty(inode)
        elif inode.kind is FileType.DIRECTORY:
            raise FsError(errno.EISDIR)
        children = self.directory(parent).children
        assert children is not None
        del children[name]
        self._detach(inode)
        self._dirty_parent(parent)
        return inode

    def rename(
        self, parent: int, name: str, new_parent: int, new_name: str, *, noreplace: bool
    ) -> Inode | None:
        """Move an entry, replacing what *new_name* held (returned) as rename(2) does."""
        self._check_writable()
        _check_name(new_name)
        moving = self.lookup(parent, name)
        if moving is None:
            raise FsError(errno.ENOENT)
        target_children = self.directory(new_parent).children
        assert target_children is not None
        if moving.kind is FileType.DIRECTORY:
            ancestor: int | None = new_parent
            while ancestor is not None:
                if ancestor == moving.ino:
                    raise FsError(errno.EINVAL)
                ancestor = None if ancestor == ROOT_INODE else self.inodes[ancestor].parent
        replaced = self.lookup(new_parent, new_name)
        if replaced is not None:
            if replaced is moving:
                return None
            if noreplace:
                raise FsError(errno.EEXIST)
            if replaced.kind is FileType.DIRECTORY:
                if moving.kind is not FileType.DIRECTORY:
                    raise FsError(errno.EISDIR)
                _require_empty(replaced)
            elif moving.kind is FileType.DIRECTORY:
                raise FsError(errno.ENOTDIR)
        source_children = self.directory(parent).children
        assert source_children is not None
        del source_children[name]
        target_children[new_name] = moving.ino
        moving.parent = new_parent
        if replaced is not None:
            self._detach(replaced)
        self._dirty_parent(parent)
        self._dirty_parent(new_parent)
        return replaced


def _check_name(name: str) -> None:
    """ENAMETOOLONG for a name over :data:`NAME_MAX` bytes, as statfs promises."""
    if len(os.fsencode(name)) > NAME_MAX:
        raise FsError(errno.ENAMETOOLONG)


def _require_empty(directory: Inode) -> None:
    """ENOTEMPTY unless the (loaded) directory has no entries."""
    assert directory.children is not None, "load the directory first"
    if directory.children:
        raise FsError(errno.ENOTEMPTY)
