"""The inode table of a read-only mount, packed into arrays.

A read-only mount never changes an inode, so it keeps no object per entry:
each inode is one row of a few arrays (its ``st_mode``, size, mtime, parent and
raw SHA-256), and each loaded directory one sorted list of encoded names beside
an array of their inode numbers. An :class:`~casvfs.fuse.inodes.Inode` is made
only when one is asked for (:meth:`PackedTable.get`: an open, a read, a
readlink); listings and lookups read the arrays.

Measured on the Linux 6.1 sources (83,327 inodes, every directory loaded): the
object-per-entry :class:`~casvfs.fuse.inodes.InodeTable` held 67 MiB and took
0.83 s to load; this table holds 13 MiB and loads in 0.35 s.
"""

from __future__ import annotations

import errno
import stat as stat_module
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import TypeAlias

from casvfs.digest import Digest, checked_digest
from casvfs.fuse.inodes import ARBITRARY_NS, ROOT_INODE, FsError, Inode, permission_bits
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.tree import FileType, Node, mtime_and_mode

_HASH_BYTES = 32
_FIRST_SLOTS = 1024
_NO_HASH = bytes(_HASH_BYTES)
_FORMATS = {
    stat_module.S_IFREG: FileType.REGULAR_FILE,
    stat_module.S_IFDIR: FileType.DIRECTORY,
    stat_module.S_IFLNK: FileType.SYMLINK,
}
_Listing: TypeAlias = "tuple[bytes, array[int], array[int]]"
"""A loaded directory: its names (encoded, sorted) joined into one bytes object,
where each starts (and, last, where the final one ends), and their inode numbers."""
DIRECTORY_SIZE = 4096
"""The ``st_size`` every directory shows (its message's size means nothing to a reader)."""


class PackedTable:
    """Every inode of a read-only mount: the root and the entries of each
    directory loaded so far. Files with the same content, executable bit, mode
    and mtime share one inode, so the page cache holds their pages once."""

    def __init__(self, root_digest: Digest, uid: int, gid: int) -> None:
        self.root_digest = root_digest
        self.uid = uid
        """The owner of every inode."""
        self.gid = gid
        self.loaded_directories = 0
        # one row per inode number; row 0 is unused (inode 0 means "none" to FUSE)
        self._mode = array("I", [0])
        self._size = array("q", [0])
        """A file's size; a directory's message size; a symlink's target length."""
        self._mtime = array("q", [0])
        self._parent = array("I", [0])
        self._executable = bytearray(1)
        self._hashes = bytearray(_NO_HASH)
        self._content_keys = array("q", [0])
        """A file's place in the content index (0 for the rest)."""
        self._targets: dict[int, str] = {}
        self._listings: dict[int, _Listing] = {}
        # Files by content: an open-addressing table of inode numbers, at most half
        # full, placed by the hash of what they share. A dict from that hash to the
        # inode held 7 MiB for Linux's 78,000 files (two int objects and a slot
        # each); this and the hashes hold 1.6 MiB.
        self._by_content = array("I", bytes(4 * _FIRST_SLOTS))
        self._shared_files = 0
        self._append(
            stat_module.S_IFDIR | permission_bits(FileType.DIRECTORY, False, None),
            root_digest.size_bytes,
            ARBITRARY_NS,
            ROOT_INODE,
            False,
            bytes.fromhex(root_digest.hash),
        )

    def _append(
        self, mode: int, size: int, mtime_ns: int, parent: int, executable: bool, raw: bytes, key: int = 0
    ) -> int:
        ino = len(self._mode)
        self._content_keys.append(key)
        self._mode.append(mode)
        self._size.append(size)
        self._mtime.append(mtime_ns)
        self._parent.append(parent)
        self._executable.append(executable)
        self._hashes += raw
        return ino

    def __len__(self) -> int:
        """How many inodes the table holds."""
        return len(self._mode) - 1

    def _check(self, ino: int) -> None:
        if not 0 < ino < len(self._mode):
            raise FsError(errno.ENOENT)

    def stat(self, ino: int) -> tuple[int, int, int]:
        """``(st_mode, st_size, mtime_ns)`` of *ino* (ENOENT if there is none); a
        directory's size is :data:`DIRECTORY_SIZE`."""
        self._check(ino)
        mode = self._mode[ino]
        size = DIRECTORY_SIZE if stat_module.S_ISDIR(mode) else self._size[ino]
        return mode, size, self._mtime[ino]

    def parent(self, ino: int) -> int:
        """The directory holding *ino* (a shared file's first); the root's is itself."""
        self._check(ino)
        return self._parent[ino]

    def get(self, ino: int) -> Inode:
        """An :class:`Inode` describing *ino* (made for the asking: changing it
        changes nothing); ENOENT if there is none."""
        self._check(ino)
        mode = self._mode[ino]
        kind = _FORMATS[stat_module.S_IFMT(mode)]
        size = self._size[ino]
        executable = bool(self._executable[ino])
        mtime = self._mtime[ino]
        if kind is FileType.SYMLINK:
            node = Node("", kind, target=self._targets[ino], mtime_ns=mtime)
        else:
            start = ino * _HASH_BYTES
            digest = checked_digest(self._hashes[start : start + _HASH_BYTES].hex(), size)
            node = Node("", kind, executable, size, digest=digest, mtime_ns=mtime, unix_mode=mode & 0o7777)
        # no children: a listing is read with listing() and lookup()
        return Inode(ino, kind, node, self._parent[ino], executable, size, mtime)

    def unloaded_digest(self, ino: int) -> Digest | None:
        """The ``Directory`` digest to fetch before *ino* can be listed; None once
        it is loaded (ENOTDIR for anything but a directory)."""
        self._check(ino)
        if not stat_module.S_ISDIR(self._mode[ino]):
            raise FsError(errno.ENOTDIR)
        if ino in self._listings:
            return None
        start = ino * _HASH_BYTES
        return checked_digest(self._hashes[start : start + _HASH_BYTES].hex(), self._size[ino])

    def _listing(self, ino: int) -> _Listing:
        try:
            return self._listings[ino]
        except KeyError:
            self.unloaded_digest(ino)  # ENOENT or ENOTDIR
            raise AssertionError("load the directory first") from None

    def entries(self, ino: int, start: int = 0) -> Iterator[tuple[bytes, int]]:
        """``(encoded name, inode)`` of each entry of the loaded directory *ino*,
        sorted by name, from the *start*-th on."""
        joined, offsets, inos = self._listing(ino)
        for index in range(start, len(inos)):
            yield joined[offsets[index] : offsets[index + 1]], inos[index]

    def size(self, ino: int) -> int:
        """How many entries the loaded directory *ino* has."""
        return len(self._listing(ino)[2])

    def lookup(self, parent: int, name: bytes) -> int:
        """The inode of the entry *name* of the loaded directory *parent*; 0 if none."""
        joined, offsets, inos = self._listing(parent)

        def name_at(index: int) -> bytes:
            return joined[offsets[index] : offsets[index + 1]]

        index = bisect_left(range(len(inos)), name, key=name_at)
        return inos[index] if index < len(inos) and name_at(index) == name else 0

    def forget(self, ino: int, count: int) -> None:
        """The kernel dropped references to *ino*: nothing to do, every inode of a
        read-only mount stays while the mount does (memory follows what was listed)."""
        del ino, count

    def load_directory(self, ino: int, message: pb.Directory) -> None:
        """Add the entries of directory *ino* from its (validated) message."""
        if ino in self._listings:
            return  # loaded meanwhile by a concurrent request
        if message.HasField("node_properties"):
            mtime, mode = mtime_and_mode(message.node_properties)
            if mtime is not None:
                self._mtime[ino] = mtime
            self._mode[ino] = stat_module.S_IFDIR | permission_bits(FileType.DIRECTORY, False, mode)
        entries: list[tuple[bytes, int]] = []
        add = entries.append
        share = self._shared_file
        for file in message.files:
            digest = file.digest
            if file.HasField("node_properties"):
                mtime, mode = mtime_and_mode(file.node_properties)
            else:
                mtime = mode = None
            add(
                (
                    file.name.encode(),
                    share(ino, digest.hash, digest.size_bytes, file.is_executable, mtime, mode),
                )
            )
        directory_mode = stat_module.S_IFDIR | permission_bits(FileType.DIRECTORY, False, None)
        for directory in message.directories:
            digest = directory.digest
            raw = bytes.fromhex(digest.hash)
            add(
                (
                    directory.name.encode(),
                    self._append(directory_mode, digest.size_bytes, ARBITRARY_NS, ino, False, raw),
                )
            )
        for link in message.symlinks:
            mtime = mtime_and_mode(link.node_properties)[0] if link.HasField("node_properties") else None
            target = link.target
            child = self._append(
                stat_module.S_IFLNK | permission_bits(FileType.SYMLINK, False, None),
                len(target.encode()),
                ARBITRARY_NS if mtime is None else mtime,
                ino,
                False,
                _NO_HASH,
            )
            self._targets[child] = target
            add((link.name.encode(), child))
        if message.directories or message.symlinks:
            entries.sort()  # each list is sorted; together they are not
        names = [name for name, _ in entries]
        # one bytes object per directory: one per name held 3.5 MiB for Linux's names
        offsets = array("I", accumulate(map(len, names), initial=0))
        self._listings[ino] = (b"".join(names), offsets, array("I", [child for _, child in entries]))
        self.loaded_directories += 1

    def _shared_file(
        self, parent: int, hash_: str, size: int, executable: bool, mtime: int | None, mode: int | None
    ) -> int:
        """The inode of a file entry: an existing one with the same content,
        executable bit, mode and mtime, else a new row."""
        raw = bytes.fromhex(hash_)
        st_mode = stat_module.S_IFREG | permission_bits(FileType.REGULAR_FILE, executable, mode)
        mtime_ns = ARBITRARY_NS if mtime is None else mtime
        slots = self._by_content
        mask = len(slots) - 1
        key = hash((raw, st_mode, mtime_ns, executable))
        index = key & mask
        while shared := slots[index]:
            start = shared * _HASH_BYTES
            if (
                self._hashes[start : start + _HASH_BYTES] == raw
                and self._mode[shared] == st_mode
                and self._mtime[shared] == mtime_ns
                and self._executable[shared] == executable
            ):
                return shared
            index = (index + 1) & mask  # another file in this slot: probe on
        ino = self._append(st_mode, size, mtime_ns, parent, executable, raw, key)
        slots[index] = ino
        self._shared_files += 1
        if self._shared_files * 2 > len(slots):
            self._grow_content_index()
        return ino

    def _grow_content_index(self) -> None:
        """Double the content index, placing each file again."""
        old = self._by_content
        self._by_content = slots = array("I", bytes(8 * len(old)))
        mask = len(slots) - 1
        keys = self._content_keys
        for ino in old:
            if ino:
                index = keys[ino] & mask
                while slots[index]:
                    index = (index + 1) & mask
                slots[index] = ino
