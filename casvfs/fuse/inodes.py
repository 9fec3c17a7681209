"""The inode table of a writable mount, free of pyfuse3 so it can be tested on its
own (a read-only mount packs its inodes: :mod:`casvfs.fuse.packed`).

Unmodified nodes are CAS nodes, loaded one directory at a time. A written file
lives in a scratch file; a changed directory is marked modified up to the root.
Nothing here blocks on the store or the disk: the caller does that work (off
the event loop) and hands the results in (:meth:`InodeTable.load_directory`,
and ``Inode.scratch`` once a scratch file exists).

What a writable mount keeps beyond a CAS node (owner, full mode, access and
change times, special files, the names of hard links) lives in an inode's
:class:`Posix` record, made on the first change: a read-only mount never makes
one, and its inodes stay one slot bigger than before.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat as stat_module
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
class Posix:
    """The attributes a writable mount keeps for an inode beyond its CAS node.

    Owners and special files stay in the mount: REAPI's ``NodeProperties`` has
    no owner and a ``Directory`` no special file, so a capture keeps the mode
    (see :mod:`casvfs.fuse.capture`) and leaves out the rest."""

    mode: int
    """Permission bits (``0o7777``)."""
    uid: int
    gid: int
    atime_ns: int
    ctime_ns: int
    special: int = 0
    """``S_IFIFO``, ``S_IFSOCK``, ``S_IFCHR`` or ``S_IFBLK`` for a special file
    (its ``kind`` is then ``REGULAR_FILE`` with no content); 0 otherwise."""
    rdev: int = 0
    links: list[int] = field(default_factory=list)
    """The directories of the inode's other names (one entry per hard link)."""
    subdirectories: int = -1
    """A loaded directory's subdirectory count, for its link count (2 + this);
    -1 while unknown (then the link count is 1, as in a read-only mount)."""


@dataclass(eq=False, slots=True)
class Inode:
    """One file, directory or symlink of the mount."""

    ino: int
    kind: FileType
    node: Node
    """The CAS node it came from (properties included), or a synthetic one."""
    parent: int = 0
    """The containing directory (of a hard-linked file, one of its names')."""
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
    posix: Posix | None = None
    """Owner, full mode, times and links once a writable mount changed any of
    them (:meth:`InodeTable.posix`); None: the defaults :func:`default_mode` gives."""

    @property
    def digest(self) -> Digest | None:
        """The CAS digest of an unmodified node."""
        return None if self.modified else self.node.digest

    @property
    def special(self) -> bool:
        """A fifo, socket or device node (only a writable mount makes them)."""
        return self.posix is not None and self.posix.special != 0

    def parents(self) -> list[int]:
        """The directories holding a name of this inode (one per name)."""
        return [self.parent] if self.posix is None else [self.parent, *self.posix.links]


def permission_bits(kind: FileType, executable: bool, unix_mode: int | None) -> int:
    """The permission bits a CAS node shows in a mount: the tree's *unix_mode*
    where it records one, else 0755 for directories and executable files, 0644
    for other files and 0777 for symlinks."""
    if kind is FileType.SYMLINK:
        return 0o777
    if unix_mode is not None:
        return unix_mode
    return 0o755 if kind is FileType.DIRECTORY or executable else 0o644


def default_mode(inode: Inode) -> int:
    """The permission bits an inode shows before a writable mount changes them
    (:func:`permission_bits` of its node)."""
    return permission_bits(inode.kind, inode.executable, inode.node.unix_mode)


@dataclass
class InodeTable:
    """Every inode the kernel may know of a writable mount, and the tree they form
    (each path has its own inode, to copy on write)."""

    root_digest: Digest
    uid: int = field(default_factory=os.getuid)
    """The owner of every inode the mount has not been told otherwise about."""
    gid: int = field(default_factory=os.getgid)
    inodes: dict[int, Inode] = field(default_factory=dict)
    loaded_directories: int = 0
    _next: Iterator[int] = field(default_factory=lambda: itertools.count(ROOT_INODE + 1))

    def __post_init__(self) -> None:
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
        self._count_subdirectories(inode)
        self.loaded_directories += 1

    def _inode_for(self, node: Node, parent: int) -> int:
        regular = node.type is FileType.REGULAR_FILE
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

    # -- changes ----------------------------------------------------------------------

    def touch(self, ino: int) -> None:
        """Mark *ino* and every directory above each of its names modified,
        dropping their captured digests."""
        pending = [ino]
        while pending:
            inode = self.get(pending.pop())
            inode.modified = True
            inode.captured = None
            inode.generation += 1
            if inode.ino != ROOT_INODE:
                pending += inode.parents()

    def posix(self, inode: Inode) -> Posix:
        """*inode*'s :class:`Posix` record, made from the defaults on first use."""
        if inode.posix is None:
            inode.posix = Posix(default_mode(inode), self.uid, self.gid, inode.mtime_ns, inode.mtime_ns)
            self._count_subdirectories(inode)
        return inode.posix

    def _count_subdirectories(self, directory: Inode) -> None:
        posix = directory.posix
        if posix is not None and directory.children is not None and posix.subdirectories < 0:
            inodes = self.inodes
            posix.subdirectories = sum(
                inodes[ino].kind is FileType.DIRECTORY for ino in directory.children.values()
            )

    def _subdirectory_moved(self, directory: Inode, change: int) -> None:
        """*directory* gained (1) or lost (-1) a subdirectory: its link count follows."""
        posix = self.posix(directory)
        if posix.subdirectories >= 0:
            posix.subdirectories += change

    def changed(self, inode: Inode, now_ns: int | None = None) -> None:
        """*inode*'s attributes changed: its ctime is now."""
        self.posix(inode).ctime_ns = time.time_ns() if now_ns is None else now_ns

    def _dirty_parent(self, parent: int) -> None:
        directory = self.get(parent)
        directory.mtime_ns = now = time.time_ns()
        self.changed(directory, now)
        directory.listing = None
        self.touch(parent)

    def add(
        self,
        parent: int,
        name: str,
        kind: FileType,
        *,
        target: str = "",
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        special: int = 0,
        rdev: int = 0,
    ) -> Inode:
        """Create a new entry in *parent* (which must not hold *name*) with the
        permission bits *mode* (default: 0755 for a directory, 0644 for a file),
        owned by *uid*:*gid* (default: the mount's owner).

        As on Linux, a directory with the set-group-ID bit passes its group, and
        to a new directory the bit itself, to what is created in it."""
        _check_name(name)
        directory = self.directory(parent)
        children = directory.children
        assert children is not None
        if name in children:
            raise FsError(errno.EEXIST)
        ino = next(self._next)
        now = time.time_ns()
        if kind is FileType.SYMLINK:
            mode = 0o777
        elif mode is None:
            mode = 0o755 if kind is FileType.DIRECTORY else 0o644
        mode &= 0o7777
        group = self.gid if gid is None else gid
        above = directory.posix
        if above is not None and above.mode & stat_module.S_ISGID:
            group = above.gid
            if kind is FileType.DIRECTORY:
                mode |= stat_module.S_ISGID
        # a new entry records what the directory it is made in records, as an
        # import of the same tree with the same properties would
        own = directory.node
        node = Node(
            name,
            kind,
            target=target,
            mtime_ns=None if own.mtime_ns is None else now,
            unix_mode=None if own.unix_mode is None or kind is FileType.SYMLINK else mode,
        )
        inode = Inode(
            ino,
            kind,
            node,
            parent=parent,
            executable=kind is FileType.REGULAR_FILE and not special and bool(mode & stat_module.S_IXUSR),
            mtime_ns=now,
            size=len(target.encode()),
            modified=True,
        )
        inode.posix = Posix(mode, self.uid if uid is None else uid, group, now, now, special, rdev)
        if kind is FileType.DIRECTORY:
            inode.children = {}
            inode.posix.subdirectories = 0
            self._subdirectory_moved(directory, 1)
        self.inodes[ino] = inode
        children[name] = ino
        self._dirty_parent(parent)
        return inode

    def remove(self, parent: int, name: str, *, directory: bool) -> Inode:
        """Unlink *name* (rmdir when *directory*, which must be empty)."""
        inode = self.lookup(parent, name)
        if inode is None:
            raise FsError(errno.ENOENT)
        if directory:
            if inode.kind is not FileType.DIRECTORY:
                raise FsError(errno.ENOTDIR)
            _require_empty(inode)
        elif inode.kind is FileType.DIRECTORY:
            raise FsError(errno.EISDIR)
        above = self.directory(parent)
        children = above.children
        assert children is not None
        if directory:
            self._subdirectory_moved(above, -1)
        del children[name]
        if not self._unname(inode, parent):
            self._detach(inode)
        self._dirty_parent(parent)
        return inode

    def link(self, ino: int, new_parent: int, new_name: str) -> Inode:
        """Give the file or symlink *ino* another name (a hard link): both names
        then show, and write, the same inode."""
        _check_name(new_name)
        inode = self.get(ino)
        if inode.kind is FileType.DIRECTORY:
            raise FsError(errno.EPERM)
        if inode.detached:
            raise FsError(errno.ENOENT)
        children = self.directory(new_parent).children
        assert children is not None
        if new_name in children:
            raise FsError(errno.EEXIST)
        children[new_name] = ino
        self.posix(inode).links.append(new_parent)
        self.changed(inode)
        self._dirty_parent(new_parent)
        return inode

    def names(self, inode: Inode) -> int:
        """*inode*'s link count: how many names it has (0 once unlinked); for a
        directory 2 + its subdirectories, or 1 if not known (unchanged ones): 1
        means "subdirectory count unknown" and keeps find from skipping entries by
        the st_nlink - 2 leaf heuristic."""
        posix = inode.posix
        if inode.detached:
            return 0
        if posix is None:
            return 1
        if inode.kind is FileType.DIRECTORY:
            return 1 if posix.subdirectories < 0 else 2 + posix.subdirectories
        return 1 + len(posix.links)

    def _unname(self, inode: Inode, parent: int) -> bool:
        """Drop one of *inode*'s names in *parent*; False if it was the last."""
        if inode.posix is None or not inode.posix.links:
            return False
        if inode.parent == parent:
            inode.parent = inode.posix.links.pop()
        else:
            inode.posix.links.remove(parent)
        self.changed(inode)
        return True

    def rename(
        self, parent: int, name: str, new_parent: int, new_name: str, *, noreplace: bool
    ) -> Inode | None:
        """Move an entry, replacing what *new_name* held (returned) as rename(2) does."""
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
        source = self.directory(parent)
        source_children = source.children
        assert source_children is not None
        if moving.kind is FileType.DIRECTORY:
            self._subdirectory_moved(source, -1)
            self._subdirectory_moved(self.directory(new_parent), 1)
        if replaced is not None and replaced.kind is FileType.DIRECTORY:
            self._subdirectory_moved(self.directory(new_parent), -1)
        del source_children[name]
        target_children[new_name] = moving.ino
        if moving.parent == parent:
            moving.parent = new_parent
        else:  # a hard link's other name
            links = self.posix(moving).links
            links[links.index(parent)] = new_parent
        self.changed(moving)
        if replaced is not None and not self._unname(replaced, new_parent):
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
