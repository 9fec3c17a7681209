"""pyfuse3 handlers over an :class:`~casvfs.fuse.inodes.InodeTable`.

Every handler runs on the single trio thread: store reads, blob copies and
scratch-file I/O go to worker threads (``trio.to_thread``), and any exception
other than :class:`pyfuse3.FUSEError` becomes EIO and a log line.

A read-only mount is *stateless* where pyfuse3 carries casvfs's patch
(``patches/pyfuse3-stateless-open.patch``, see :func:`stateless_open_available`):
``open`` and ``opendir`` answer ENOSYS, the kernel stops sending them (and
release), keeps the pages and listings it got, and ``read``/``readdir`` are
addressed by inode number.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat as stat_module
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pyfuse3
import trio

from casvfs.digest import Digest
from casvfs.errors import CasvfsError
from casvfs.fuse.blobfiles import BlobFiles
from casvfs.fuse.capture import get_digest as capture_digest
from casvfs.fuse.inodes import NAME_MAX, ROOT_INODE, FsError, Inode, InodeTable, default_mode
from casvfs.fuse.packed import PackedTable
from casvfs.store.base import ContentStore
from casvfs.store.cached_io import pread_cached
from casvfs.timestamps import recorded_mtime_ns
from casvfs.tree import FileType

log = logging.getLogger("casvfs.fuse")

DIGEST_XATTR = b"user.casvfs.digest"
SNAPSHOT_XATTR = b"user.casvfs.snapshot"
# Unmodified CAS content never changes: let the kernel keep what it learnt.
STABLE_TIMEOUT = 86400.0
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR
_DAY_NS = 86400 * 10**9
_SPECIAL_FORMATS = (stat_module.S_IFIFO, stat_module.S_IFSOCK, stat_module.S_IFCHR, stat_module.S_IFBLK)
SMALL_BLOB = 128 * 1024
"""Blobs up to this size are read whole at the first read: one trip to a worker
thread serves every read of the handle (the kernel reads 128 KiB at a time)."""

WHOLE_BLOB_CACHE = 64 * 1024 * 1024
"""Bytes of large blobs a stateless mount keeps whole for a store without object
files (a handle kept its blob until release; without handles, an LRU does)."""
USE_BATCH = 1024
"""Blobs read on the event loop whose use is recorded in one worker-thread trip."""
STATELESS_ENV = "CASVFS_FUSE_STATELESS_OPEN"
"""Set to ``0`` to serve read-only mounts with open/opendir handles as on a stock
pyfuse3 (the tests run both ways)."""


def stateless_open_available() -> bool:
    """Whether read-only mounts can be stateless: pyfuse3 has the
    ``Operations.stateless_open`` patch, the kernel takes ENOSYS for open and
    opendir (no_opendir came in Linux 5.1; before, ENOSYS would fail the call) and
    :data:`STATELESS_ENV` is not ``0``."""
    return (
        hasattr(pyfuse3.Operations, "stateless_open")
        and _kernel_at_least(5, 1)
        and os.environ.get(STATELESS_ENV) != "0"
    )


def _kernel_at_least(major: int, minor: int) -> bool:
    release = os.uname().release.split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= (major, minor)
    except (IndexError, ValueError):
        return False


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def handler(method: Handler) -> Handler:
    """Report :class:`FsError` and host ``OSError`` as their errno and anything
    unexpected as EIO (logged)."""

    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await method(*args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except FsError as error:
            raise pyfuse3.FUSEError(error.errno) from None
        except OSError as error:
            # scratch-file I/O: the host's own answer (EFBIG for an absurd truncate,
            # ENOSPC for a full disk) says more than EIO
            log.debug("%s failed: %s", method.__name__, error)
            raise pyfuse3.FUSEError(error.errno or errno.EIO) from None
        except CasvfsError as error:
            log.error("%s failed: %s (%s)", method.__name__, error, error.reason)
            raise pyfuse3.FUSEError(errno.EIO) from None
        except Exception:
            log.exception("%s failed unexpectedly", method.__name__)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper  # type: ignore[return-value]


@dataclass
class _Handle:
    inode: Inode
    fd: int | None = None
    """An open host file: the scratch copy, or the store's object file."""
    data: bytes | None = None
    """The whole blob: a small one, or any from a store without object files."""
    shared: bool = False
    """*fd* belongs to the mount's :class:`BlobFiles`."""


class CasOperations(pyfuse3.Operations):
    """The file system of one mount."""

    supports_dot_lookup = True
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, store: ContentStore, root: Digest, *, writable: bool, scratch: str) -> None:
        super().__init__()
        self.store = store
        self.table: InodeTable | PackedTable = (
            InodeTable(root) if writable else PackedTable(root, os.getuid(), os.getgid())
        )
        self.scratch = scratch
        self.writable = writable
        self._handles: dict[int, _Handle] = {}
        self._blob_files = BlobFiles()
        self._next_handle = 1
        # the mounted tree, and each capture of it, stay rooted while the mount lives
        self._roots = store.live_roots()
        self._root_record = self._roots.register(root) if self._roots is not None else None
        self._rooted = {root}
        # read by pyfuse3 when the session starts (a patched build; ignored by a stock one)
        self.stateless_open = not writable and stateless_open_available()
        self._unrecorded: list[Digest] = []
        self._whole_blobs: OrderedDict[int, bytes] = OrderedDict()
        self._whole_bytes = 0

    # -- helpers ----------------------------------------------------------------------

    @property
    def _changes(self) -> InodeTable:
        """The table of a writable mount (EROFS for a read-only one)."""
        if isinstance(self.table, PackedTable):
            raise FsError(errno.EROFS)
        return self.table

    async def _loaded(self, ino: int) -> None:
        digest = self.table.unloaded_digest(ino)
        if digest is not None:
            message = self.store.get_directory_cached(digest)
            if message is None:
                message = await trio.to_thread.run_sync(self.store.get_directory, digest)
            else:
                await self._used(digest)
            self.table.load_directory(ino, message)

    async def _blob_bytes(self, digest: Digest) -> bytes:
        """The whole blob: on the loop if the store has it cached, else from a worker thread."""
        data = self.store.read_cached(digest)
        if data is None:
            return await trio.to_thread.run_sync(self.store.read_bytes, digest)
        await self._used(digest)
        return data

    async def _used(self, digest: Digest) -> None:
        """*digest* was read on the loop (:meth:`ContentStore.read_cached`): record
        its use with others, one worker-thread trip per :data:`USE_BATCH`."""
        self._unrecorded.append(digest)
        if len(self._unrecorded) >= USE_BATCH:
            batch, self._unrecorded = self._unrecorded, []
            await trio.to_thread.run_sync(self.store.record_use, batch)

    def attributes(self, inode: Inode) -> pyfuse3.EntryAttributes:
        """The kernel's view of an inode."""
        attrs = pyfuse3.EntryAttributes()
        attrs.st_ino = inode.ino
        kind = inode.kind
        if kind is FileType.DIRECTORY:
            file_format = stat_module.S_IFDIR
        elif kind is FileType.SYMLINK:
            file_format = stat_module.S_IFLNK
        else:
            file_format = stat_module.S_IFREG
        posix = inode.posix
        if posix is None:
            attrs.st_mode = file_format | default_mode(inode)
            attrs.st_uid = self.table.uid
            attrs.st_gid = self.table.gid
            attrs.st_atime_ns = attrs.st_mtime_ns = attrs.st_ctime_ns = inode.mtime_ns
            # InodeTable.names' answer without a Posix record, inline: calling it on
            # this path (every readdir entry) made attributes 1.6x slower (40,707
            # inodes: 50 ms -> 88 ms)
            attrs.st_nlink = 0 if inode.detached else 1
        else:
            attrs.st_mode = (posix.special or file_format) | posix.mode
            attrs.st_uid = posix.uid
            attrs.st_gid = posix.gid
            attrs.st_rdev = posix.rdev
            attrs.st_atime_ns = posix.atime_ns
            attrs.st_mtime_ns = inode.mtime_ns
            attrs.st_ctime_ns = posix.ctime_ns
            attrs.st_nlink = self._changes.names(inode)
        attrs.st_size = inode.size if kind is not FileType.DIRECTORY else 4096
        attrs.st_blksize = 4096
        attrs.st_blocks = (attrs.st_size + 511) // 512
        timeout = STABLE_TIMEOUT if not inode.modified or not self.writable else 1.0
        attrs.attr_timeout = attrs.entry_timeout = timeout
        return attrs

    def _packed_attributes(self, table: PackedTable, ino: int) -> pyfuse3.EntryAttributes:
        """The kernel's view of an inode of a read-only mount: :meth:`attributes`
        of its :meth:`PackedTable.get`, from the arrays (readdir runs this for
        every entry)."""
        mode, size, mtime_ns = table.stat(ino)
        attrs = pyfuse3.EntryAttributes()
        attrs.st_ino = ino
        attrs.st_mode = mode
        attrs.st_uid = table.uid
        attrs.st_gid = table.gid
        attrs.st_atime_ns = attrs.st_mtime_ns = attrs.st_ctime_ns = mtime_ns
        attrs.st_nlink = 1
        attrs.st_size = size
        attrs.st_blksize = 4096
        attrs.st_blocks = (size + 511) // 512
        attrs.attr_timeout = attrs.entry_timeout = STABLE_TIMEOUT
        return attrs

    def _new_handle(self, handle: _Handle) -> int:
        number = self._next_handle
        self._next_handle += 1
        self._handles[number] = handle
        return number

    def _scratch_path(self, inode: Inode) -> str:
        return os.path.join(self.scratch, str(inode.ino))

    async def _copy_up(self, inode: Inode, truncate: bool) -> None:
        """Give an unmodified file a scratch copy before it is written."""
        if inode.scratch is not None:
            if truncate:
                await trio.to_thread.run_sync(os.truncate, inode.scratch, 0)
            return
        path = self._scratch_path(inode)
        digest = inode.node.digest
        if truncate or digest is None:
            await trio.to_thread.run_sync(_create_empty, path)
        else:
            await trio.to_thread.run_sync(_copy_blob, self.store, digest, path)
        inode.scratch = path

    # -- lookups and listings -----------------------------------------------------------

    @handler
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        if len(name) > NAME_MAX:
            raise FsError(errno.ENAMETOOLONG)
        await self._loaded(parent_inode)
        table = self.table
        if isinstance(table, PackedTable):
            if name == b".":
                ino = parent_inode
            elif name == b"..":
                ino = table.parent(parent_inode)
            else:
                ino = table.lookup(parent_inode, name)
            if ino:
                return self._packed_attributes(table, ino)
            return _negative_entry(STABLE_TIMEOUT)
        text = os.fsdecode(name)
        if text == ".":
            inode: Inode | None = table.get(parent_inode)
        elif text == "..":
            inode = table.get(table.get(parent_inode).parent)
        else:
            inode = table.lookup(parent_inode, text)
        if inode is None:
            return _negative_entry(1.0)
        inode.lookups += 1
        return self.attributes(inode)

    @handler
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        if isinstance(self.table, PackedTable):
            return self._packed_attributes(self.table, inode)
        return self.attributes(self.table.get(inode))

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, count in inode_list:
            self.table.forget(ino, count)

    @handler
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        if self.stateless_open:
            # once per session: the kernel then sends readdir with the inode as fh
            raise pyfuse3.FUSEError(errno.ENOSYS)
        await self._loaded(inode)
        return inode

    @handler
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        if self.stateless_open:
            await self._loaded(fh)
        table = self.table
        if isinstance(table, PackedTable):
            for index, (encoded, child) in enumerate(table.entries(fh, start_id), start_id + 1):
                if not pyfuse3.readdir_reply(token, encoded, self._packed_attributes(table, child), index):
                    return  # the kernel's buffer is full: it resumes from this offset
            return
        names = table.sorted_names(fh)
        children = table.directory(fh).children
        assert children is not None
        for index in range(start_id, len(names)):
            name = names[index]
            inode = table.inodes[children[name]]
            if not pyfuse3.readdir_reply(token, os.fsencode(name), self.attributes(inode), index + 1):
                return  # the kernel's buffer is full: it resumes from this offset
            inode.lookups += 1

    async def releasedir(self, fh: int) -> None:
        pass

    @handler
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        node = self.table.get(inode)
        if node.kind is not FileType.SYMLINK:
            raise FsError(errno.EINVAL)
        return os.fsencode(node.node.target)

    @handler
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        host = await trio.to_thread.run_sync(os.statvfs, self.scratch)
        data = pyfuse3.StatvfsData()
        data.f_bsize = data.f_frsize = 4096
        data.f_blocks = host.f_blocks * host.f_frsize // 4096
        data.f_bfree = data.f_bavail = (host.f_bavail * host.f_frsize // 4096) if self.writable else 0
        data.f_files = len(self.table) if isinstance(self.table, PackedTable) else len(self.table.inodes)
        data.f_ffree = data.f_favail = host.f_favail if self.writable else 0
        data.f_namemax = NAME_MAX
        return data

    # -- extended attributes --------------------------------------------------------------

    @handler
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        if name == SNAPSHOT_XATTR and inode == ROOT_INODE:
            return str(await self.get_digest()).encode()
        entry = self.table.get(inode)
        if name == DIGEST_XATTR and entry.digest is not None and entry.kind is not FileType.SYMLINK:
            return str(entry.digest).encode()
        raise FsError(pyfuse3.ENOATTR)

    @handler
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> list[bytes]:
        entry = self.table.get(inode)
        return [DIGEST_XATTR] if entry.digest is not None and entry.kind is not FileType.SYMLINK else []

    # -- reading and writing -------------------------------------------------------------

    @handler
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if self.stateless_open:
            # once per session: the kernel then opens without asking, keeps the
            # pages it read and sends read with the inode as fh
            raise pyfuse3.FUSEError(errno.ENOSYS)
        entry = self.table.get(inode)
        if entry.kind is not FileType.REGULAR_FILE:
            raise FsError(errno.EISDIR if entry.kind is FileType.DIRECTORY else errno.EINVAL)
        writing = bool(flags & _WRITE_FLAGS)
        if (writing or flags & os.O_TRUNC) and not self.writable:
            raise FsError(errno.EROFS)
        if writing or (flags & os.O_TRUNC) or entry.scratch is not None:
            await self._copy_up(entry, truncate=bool(flags & os.O_TRUNC))
            if flags & os.O_TRUNC:
                entry.size = 0
                self._written(entry)
            assert entry.scratch is not None
            fd = await trio.to_thread.run_sync(os.open, entry.scratch, os.O_RDWR | os.O_CLOEXEC)
            return pyfuse3.FileInfo(fh=self._new_handle(_Handle(entry, fd=fd)), keep_cache=False)
        # Nothing is opened yet: when the kernel has the pages (keep_cache), no read
        # comes and this open cost no trip to a worker thread.
        return pyfuse3.FileInfo(fh=self._new_handle(_Handle(entry)), keep_cache=True)

    @handler
    async def read(self, fh: int, off: int, size: int) -> bytes:
        if self.stateless_open:
            return await self._read_inode(self.table.get(fh), off, size)
        handle = self._handles[fh]
        if self.writable:
            self._accessed(handle.inode)
        if handle.data is None and handle.fd is None:
            await self._load_blob(handle)
        if handle.data is not None:
            return handle.data[off : off + size]
        assert handle.fd is not None
        return await trio.to_thread.run_sync(os.pread, handle.fd, size, off)

    async def _read_inode(self, inode: Inode, off: int, size: int) -> bytes:
        """A read of a stateless mount: by inode, with no handle to keep anything in."""
        digest = inode.node.digest
        if inode.kind is not FileType.REGULAR_FILE or digest is None:
            raise FsError(errno.EISDIR if inode.kind is FileType.DIRECTORY else errno.EINVAL)
        if digest.size_bytes <= SMALL_BLOB:
            # the kernel asks for a small file's pages in one read and keeps them
            return (await self._blob_bytes(digest))[off : off + size]
        fd = self._blob_files.acquire(inode.ino)
        if fd is None:
            opened = await trio.to_thread.run_sync(self.store.open_object, digest)
            if opened is not None:
                fd = self._blob_files.add(inode.ino, opened)
        if fd is not None:
            try:
                cached = pread_cached(fd, size, off)
                if cached is not None:
                    return cached
                return await trio.to_thread.run_sync(os.pread, fd, size, off)
            finally:
                self._blob_files.release(inode.ino)
        return (await self._whole_blob(inode, digest))[off : off + size]

    async def _whole_blob(self, inode: Inode, digest: Digest) -> bytes:
        """A large blob of a store without object files, from a small LRU."""
        data = self._whole_blobs.get(inode.ino)
        if data is not None:
            self._whole_blobs.move_to_end(inode.ino)
            return data
        data = await self._blob_bytes(digest)
        if inode.ino not in self._whole_blobs:
            self._whole_blobs[inode.ino] = data
            self._whole_bytes += len(data)
            while self._whole_bytes > WHOLE_BLOB_CACHE and len(self._whole_blobs) > 1:
                _ino, dropped = self._whole_blobs.popitem(last=False)
                self._whole_bytes -= len(dropped)
        return data

    async def _load_blob(self, handle: _Handle) -> None:
        """Give a handle of an unmodified file its content: the whole blob if small,
        else a (shared) descriptor of the object file or, for stores without
        object files, the whole blob."""
        inode = handle.inode
        digest = inode.node.digest
        assert digest is not None
        if digest.size_bytes > SMALL_BLOB:
            kept = self._blob_files.acquire(inode.ino)
            if kept is not None:
                handle.fd, handle.shared = kept, True
                return
            # verified once per mount and file: the first read hashes the object
            fd = await trio.to_thread.run_sync(self.store.open_object, digest)
            if fd is not None:
                handle.fd, handle.shared = self._blob_files.add(inode.ino, fd), True
                return
        handle.data = await self._blob_bytes(digest)

    @handler
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        handle = self._handles[fh]
        assert handle.fd is not None and handle.inode.scratch is not None
        written: int = await trio.to_thread.run_sync(os.pwrite, handle.fd, buf, off)
        inode = handle.inode
        inode.size = max(inode.size, off + written)
        self._written(inode)
        return written

    def _written(self, inode: Inode) -> None:
        """*inode*'s content changed: new mtime and ctime, and modified up to the root."""
        now = time.time_ns()
        inode.mtime_ns = recorded_mtime_ns(now)
        self._changes.changed(inode, now)
        self._changes.touch(inode.ino)

    def _accessed(self, inode: Inode) -> None:
        """A read of a writable mount's file: atime as Linux's ``relatime`` keeps it
        (updated when not newer than the mtime or ctime, or a day old)."""
        now = time.time_ns()
        posix = self._changes.posix(inode)
        if posix.atime_ns <= max(inode.mtime_ns, posix.ctime_ns) or now - posix.atime_ns > _DAY_NS:
            posix.atime_ns = now

    @handler
    async def release(self, fh: int) -> None:
        handle = self._handles.pop(fh)
        if handle.shared:
            self._blob_files.release(handle.inode.ino)
        elif handle.fd is not None:
            await trio.to_thread.run_sync(os.close, handle.fd)

    def close_files(self) -> None:
        """Close what the mount kept open and release its live roots (called once
        the mount is gone)."""
        self._blob_files.close_all()
        self.store.record_use(self._unrecorded)
        self._unrecorded = []
        if self._roots is not None and self._root_record is not None:
            self._roots.release(self._root_record)

    # flush is left to pyfuse3's ENOSYS: the kernel then stops sending it, which
    # saves a round trip on every close (there is nothing to report at close).

    @handler
    async def fsync(self, fh: int, datasync: bool) -> None:
        handle = self._handles[fh]
        if handle.fd is not None and handle.inode.scratch is not None:
            await trio.to_thread.run_sync(os.fsync, handle.fd)

    # -- changing the tree ----------------------------------------------------------------

    @handler
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        if not self.writable:
            raise FsError(errno.EROFS)
        inode = await self._new_file(parent_inode, name, mode, ctx)
        assert inode.scratch is not None
        fd = await trio.to_thread.run_sync(os.open, inode.scratch, os.O_RDWR | os.O_CLOEXEC)
        info = pyfuse3.FileInfo(fh=self._new_handle(_Handle(inode, fd=fd)), keep_cache=False)
        return info, self.attributes(inode)

    async def _new_file(self, parent: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext) -> Inode:
        """A new, empty regular file (create, or mknod of ``S_IFREG``)."""
        await self._loaded(parent)
        inode = self._add(parent, name, FileType.REGULAR_FILE, mode, ctx)
        path = self._scratch_path(inode)
        await trio.to_thread.run_sync(_create_empty, path)
        inode.scratch = path
        return inode

    def _add(
        self,
        parent: int,
        name: bytes,
        kind: FileType,
        mode: int,
        ctx: pyfuse3.RequestContext,
        *,
        target: str = "",
        special: int = 0,
        rdev: int = 0,
    ) -> Inode:
        """A new entry owned by the caller, with *mode* under the caller's umask."""
        inode = self._changes.add(
            parent,
            os.fsdecode(name),
            kind,
            target=target,
            mode=mode & ~ctx.umask,
            uid=ctx.uid,
            gid=ctx.gid,
            special=special,
            rdev=rdev,
        )
        inode.lookups += 1
        return inode

    @handler
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        await self._loaded(parent_inode)
        return self.attributes(self._add(parent_inode, name, FileType.DIRECTORY, mode, ctx))

    @handler
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        await self._loaded(parent_inode)
        inode = self._add(parent_inode, name, FileType.SYMLINK, 0o777, ctx, target=os.fsdecode(target))
        return self.attributes(inode)

    @handler
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        file_format = stat_module.S_IFMT(mode)
        if file_format in (0, stat_module.S_IFREG):
            return self.attributes(await self._new_file(parent_inode, name, mode, ctx))
        if file_format not in _SPECIAL_FORMATS:
            raise FsError(errno.EINVAL)
        await self._loaded(parent_inode)
        # kept in the mount only: a CAS tree has no special files (a capture leaves them out)
        inode = self._add(
            parent_inode, name, FileType.REGULAR_FILE, mode, ctx, special=file_format, rdev=rdev
        )
        return self.attributes(inode)

    @handler
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        await self._loaded(new_parent_inode)
        linked = self._changes.link(inode, new_parent_inode, os.fsdecode(new_name))
        linked.lookups += 1
        return self.attributes(linked)

    @handler
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._loaded(parent_inode)
        self._changes.remove(parent_inode, os.fsdecode(name), directory=False)

    @handler
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._loaded(parent_inode)
        child = self._changes.lookup(parent_inode, os.fsdecode(name))
        if child is not None and child.kind is FileType.DIRECTORY:
            await self._loaded(child.ino)
        self._changes.remove(parent_inode, os.fsdecode(name), directory=True)

    @handler
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        if flags & pyfuse3.RENAME_EXCHANGE:
            raise FsError(errno.EINVAL)
        await self._loaded(parent_inode_old)
        await self._loaded(parent_inode_new)
        replaced = self._changes.lookup(parent_inode_new, os.fsdecode(name_new))
        if replaced is not None and replaced.kind is FileType.DIRECTORY:
            await self._loaded(replaced.ino)
        self._changes.rename(
            parent_inode_old,
            os.fsdecode(name_old),
            parent_inode_new,
            os.fsdecode(name_new),
            noreplace=bool(flags & pyfuse3.RENAME_NOREPLACE),
        )

    @handler
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        entry = self.table.get(inode)
        content = fields.update_size or fields.update_mode or fields.update_mtime
        changing = content or fields.update_uid or fields.update_gid or fields.update_atime
        if (changing or fields.update_ctime) and not self.writable:
            raise FsError(errno.EROFS)
        now = time.time_ns()
        if fields.update_size:
            if entry.kind is not FileType.REGULAR_FILE or entry.special:
                raise FsError(errno.EISDIR if entry.kind is FileType.DIRECTORY else errno.EINVAL)
            await self._copy_up(entry, truncate=attr.st_size == 0)
            assert entry.scratch is not None
            await trio.to_thread.run_sync(os.truncate, entry.scratch, attr.st_size)
            entry.size = attr.st_size
            entry.mtime_ns = recorded_mtime_ns(now)
        if changing:
            posix = self._changes.posix(entry)
            if fields.update_mode:
                posix.mode = stat_module.S_IMODE(attr.st_mode)
                if entry.kind is FileType.REGULAR_FILE and not entry.special:
                    entry.executable = bool(posix.mode & stat_module.S_IXUSR)
            if fields.update_uid:
                posix.uid = attr.st_uid
            if fields.update_gid:
                posix.gid = attr.st_gid
            if fields.update_atime:
                posix.atime_ns = attr.st_atime_ns
            if fields.update_mtime:
                entry.mtime_ns = recorded_mtime_ns(attr.st_mtime_ns)
        if changing or fields.update_ctime:
            self._changes.changed(entry, attr.st_ctime_ns if fields.update_ctime else now)
        if content:
            self._changes.touch(inode)
        return self.attributes(entry)

    async def get_digest(self) -> Digest:
        """The digest of the tree as the mount shows it now (see :mod:`casvfs.fuse.capture`)."""
        if isinstance(self.table, PackedTable):
            return self.table.root_digest  # a read-only mount shows the tree it mounted
        digest = await capture_digest(self.table, self.store)
        if self._roots is not None and self._root_record is not None and digest not in self._rooted:
            self._rooted.add(digest)
            await trio.to_thread.run_sync(self._roots.add, self._root_record, digest)
        return digest


def _negative_entry(timeout: float) -> pyfuse3.EntryAttributes:
    """A lookup's "no such entry", which the kernel keeps for *timeout* seconds."""
    negative = pyfuse3.EntryAttributes()
    negative.st_ino = 0
    negative.entry_timeout = timeout
    return negative


def _create_empty(path: str) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600))


def _copy_blob(store: ContentStore, digest: Digest, path: str) -> None:
    with store.open(digest) as source, open(path, "wb") as sink:
        while chunk := source.read(1 << 20):
            sink.write(chunk)
