"""Fast import of a host tree into a content store.

The tree is walked with ``os.scandir`` while file contents are hashed and
stored by a thread pool, in batches (hashlib and file I/O release the GIL); files whose
stat matches the store's :class:`~casvfs.store.StatCache` are not read at all, and
directories whose listing it knows are not looked into. ``Directory`` messages
are then built bottom up (or reused from the cache).
"""

from __future__ import annotations

import fnmatch
import operator
import os
import stat as stat_module
import struct
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from casvfs.digest import Digest
from casvfs.directory.types import Progress
from casvfs.errors import REASON_NOT_A_DIRECTORY, DirectoryError, os_error, os_errors
from casvfs.store.base import ContentStore
from casvfs.store.statcache import StatCache, Trust, settled
from casvfs.timestamps import recorded_mtime_ns
from casvfs.tree import FileType, Node, directory_to_proto

SUPPORTED_PROPERTIES = frozenset({"mtime", "unix_mode"})


def default_workers() -> int:
    """Hashing threads: one per core, at most 8. Large files hash in parallel
    (hashlib releases the GIL); for small files the kernel's metadata work
    dominates and more threads only add contention."""
    return max(1, min(8, os.cpu_count() or 1))


# Files are handed to the pool in batches: a future per file costs more than
# hashing a typical small source file.
_BATCH_FILES = 256
_BATCH_BYTES = 16 << 20


@dataclass
class _HostDir:
    path: str
    st: os.stat_result
    name: str
    prefix: str
    files: list[tuple[str, os.stat_result, Digest | None]] = field(default_factory=list)
    symlinks: list[Node] = field(default_factory=list)
    subdirs: list[int] = field(default_factory=list)
    hashed: set[str] = field(default_factory=set)
    """Names of the files to record in the stat cache: read this time, or found
    in it and confirmed in the store."""
    listing: bytes = b""
    """Names and stats of the entries (and the directory's own), as the stat
    cache compares them."""
    settled: bool = True
    """Nothing in the listing changed within the racy window: it may be recorded."""
    recorded: tuple[str, Digest] | None = None
    """The stat cache's subdirectory digests and digest for this listing."""
    digest: Digest | None = None


_Batch = list[tuple[_HostDir, int, str]]
_NAME = operator.attrgetter("name")


def import_host_tree(
    store: ContentStore,
    root: str,
    *,
    properties: list[str] | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    skipped: dict[str, list[str]] | None = None,
    exclude: Sequence[str] = (),
) -> Digest:
    """Store the host tree under *root* and return its root ``Directory`` digest.

    Symlinks are stored verbatim, never followed; special files (devices, FIFOs,
    sockets) cannot be held by a CAS and are skipped.

    :param properties: node properties to record, on files and directories
        (symlinks carry none): ``"mtime"`` (to the microsecond) and
        ``"unix_mode"``. None by default. Either way the digests equal those
        buildbox-casd's ``CaptureTree`` computes for the same tree and properties.
    :param workers: hashing threads (default :func:`default_workers`).
    :param progress: called as files are stored.
    :param skipped: if given, filled with the special files left out, by directory
        path (``""`` for the root, else ``"a/b/"``).
    :param exclude: shell patterns (``fnmatch``) of entries to leave out, matched
        against each entry's path relative to *root* and against its name; an
        excluded directory is not entered.
    """
    wanted = frozenset(properties or ())
    if not wanted <= SUPPORTED_PROPERTIES:
        raise ValueError(f"unsupported node properties: {sorted(wanted - SUPPORTED_PROPERTIES)}")
    with os_errors(f"cannot read {root}"):
        top = os.stat(root)
    if not stat_module.S_ISDIR(top.st_mode):
        raise DirectoryError(f"{root} is not a directory", reason=REASON_NOT_A_DIRECTORY)
    options = _Options(wanted, tuple(exclude), workers or default_workers(), progress, skipped)
    cache = store.stat_cache()
    trust = cache.trust() if cache is not None else Trust(None)
    digest = _import(store, os.path.abspath(root), top, options, cache, trust)
    if cache is not None and trust.generation is not None and not cache.still(trust):
        # objects were removed meanwhile: what the cache vouched for may be gone
        digest = _import(store, os.path.abspath(root), top, options, cache, Trust(None))
    return digest


@dataclass(frozen=True)
class _Options:
    properties: frozenset[str]
    exclude: tuple[str, ...]
    workers: int
    progress: Progress | None
    skipped: dict[str, list[str]] | None


def _import(
    store: ContentStore,
    root: str,
    top: os.stat_result,
    options: _Options,
    cache: StatCache | None,
    trust: Trust,
) -> Digest:
    if options.skipped is not None:
        options.skipped.clear()
    ingest = _Ingest(store, options, cache, trust)
    dirs = ingest.scan(_HostDir(root, top, "", ""))
    started = ingest.started
    keep_mtime = "mtime" in options.properties
    keep_mode = "unix_mode" in options.properties
    for host_dir in reversed(dirs):
        children = "".join(f"{dirs[child].digest}\n" for child in host_dir.subdirs)
        if host_dir.recorded is not None:
            if host_dir.recorded[0] == children:
                host_dir.digest = host_dir.recorded[1]
                continue
            ingest.resolve_files(host_dir)  # a subdirectory changed: the files are needed
        nodes: list[Node] = list(host_dir.symlinks)
        for name, st, digest in host_dir.files:
            assert digest is not None
            if cache is not None and name in host_dir.hashed:
                cache.record(st, digest, hashed_at=started, trust=trust)
            nodes.append(
                Node(
                    name,
                    FileType.REGULAR_FILE,
                    executable=bool(st.st_mode & stat_module.S_IXUSR),
                    size=digest.size_bytes,
                    digest=digest,
                    mtime_ns=recorded_mtime_ns(st.st_mtime_ns) if keep_mtime else None,
                    unix_mode=stat_module.S_IMODE(st.st_mode) if keep_mode else None,
                )
            )
        for child in host_dir.subdirs:
            nodes.append(Node(dirs[child].name, FileType.DIRECTORY, digest=dirs[child].digest))
        own = Node(
            "",
            FileType.DIRECTORY,
            mtime_ns=recorded_mtime_ns(host_dir.st.st_mtime_ns) if keep_mtime else None,
            unix_mode=stat_module.S_IMODE(host_dir.st.st_mode) if keep_mode else None,
        )
        host_dir.digest = store.put_directory(directory_to_proto(nodes, own))
        if cache is not None and host_dir.settled:
            cache.record_directory(host_dir.st, host_dir.listing, children, host_dir.digest, trust)
    root_digest = dirs[0].digest
    assert root_digest is not None
    if cache is not None:
        cache.record_import(root_digest)
        cache.flush()
    return root_digest


class _Ingest:
    """The walk: lists directories, looks files up in the stat cache, and hands the
    rest to a thread pool in batches."""

    def __init__(self, store: ContentStore, options: _Options, cache: StatCache | None, trust: Trust) -> None:
        self.store = store
        self.exclude = options.exclude
        self.cache = cache
        self.trust = trust
        self.workers = options.workers
        self.progress = options.progress
        self.skipped = options.skipped
        # what changes digests without changing a listing
        self.listing_prefix = f"{sorted(options.properties)}{options.exclude}\0".encode()
        self.started = time.time()
        self.done = [0, 0]
        self.batch: _Batch = []
        self.batch_bytes = 0
        self.batches: list[tuple[_Batch, Future[list[Digest]]]] = []

    def scan(self, top: _HostDir) -> list[_HostDir]:
        """Walk from *top* (breadth first); return every directory, files digested."""
        dirs = [top]
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="casvfs-import")
        self.pool = pool
        try:
            index = 0
            while index < len(dirs):
                self._scan_one(dirs, index)
                index += 1
            self._submit()
            for batch, future in self.batches:
                self._collect(batch, future)
            self.batches.clear()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return dirs

    @staticmethod
    def _collect(batch: _Batch, future: Future[list[Digest]]) -> None:
        for (host_dir, position, _path), digest in zip(batch, _result(future, batch), strict=True):
            name, st, _ = host_dir.files[position]
            host_dir.files[position] = (name, st, digest)

    def _store_batch(self, batch: _Batch) -> list[Digest]:
        digests = []
        for _host_dir, _position, path in batch:
            digest = self.store.put_file(path)
            digests.append(digest)
            if self.progress is not None:
                self.done[0] += 1
                self.done[1] += digest.size_bytes
                self.progress(self.done[0], self.done[1])
        return digests

    def _submit(self) -> None:
        if self.batch:
            self.batches.append((self.batch, self.pool.submit(self._store_batch, self.batch)))
            self.batch = []
            self.batch_bytes = 0

    def _scan_one(self, dirs: list[_HostDir], index: int) -> None:
        host_dir = dirs[index]
        with os_errors(f"cannot list {host_dir.path}"), os.scandir(host_dir.path) as listing:
            entries = sorted(listing, key=_NAME)
        own = host_dir.st
        names: list[str] = []
        stats = [own.st_mode, own.st_mtime_ns, own.st_ctime_ns]
        for entry in entries:
            if self.exclude and _excluded(host_dir.prefix + entry.name, entry.name, self.exclude):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                mode = st.st_mode
                names.append(entry.name)
                stats += (mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                if stat_module.S_ISREG(mode):
                    host_dir.files.append((entry.name, st, None))
                elif stat_module.S_ISDIR(mode):
                    host_dir.subdirs.append(len(dirs))
                    dirs.append(_HostDir(entry.path, st, entry.name, f"{host_dir.prefix}{entry.name}/"))
                elif stat_module.S_ISLNK(mode):
                    host_dir.symlinks.append(
                        Node(entry.name, FileType.SYMLINK, target=os.readlink(entry.path))
                    )
                elif self.skipped is not None:
                    self.skipped.setdefault(host_dir.prefix, []).append(entry.name)
            except OSError as error:
                raise os_error(error, f"cannot import {entry.path}") from None
        host_dir.listing = (
            self.listing_prefix
            + "\0".join(names).encode("utf-8", "surrogateescape")
            + struct.pack(f"<{len(stats)}q", *stats)
        )
        # the latest mtime or ctime in the listing (own first, then five per entry)
        last_change = max(max(stats[1:3]), max(stats[6::5], default=0), max(stats[7::5], default=0))
        host_dir.settled = settled(last_change, self.started)
        if self.cache is not None:
            host_dir.recorded = self.cache.lookup_directory(own, host_dir.listing, self.trust)
        if host_dir.recorded is None:
            for position, (name, st, _digest) in enumerate(host_dir.files):
                self._file(host_dir, position, name, st)

    def _file(self, host_dir: _HostDir, position: int, name: str, st: os.stat_result) -> None:
        """Take a file's digest from the stat cache, or queue the file for hashing."""
        if self._cached(host_dir, position, name, st):
            return
        self.batch.append((host_dir, position, os.path.join(host_dir.path, name)))
        host_dir.hashed.add(name)
        self.batch_bytes += st.st_size
        if len(self.batch) >= _BATCH_FILES or self.batch_bytes >= _BATCH_BYTES:
            self._submit()

    def _cached(self, host_dir: _HostDir, position: int, name: str, st: os.stat_result) -> bool:
        """Whether the stat cache gave file *position* of *host_dir* its digest."""
        hit = self.cache.lookup(st, self.trust) if self.cache is not None else None
        if hit is None or not (hit.present or self.store.has(hit.digest)):
            return False
        host_dir.files[position] = (name, st, hit.digest)
        if not hit.present:
            host_dir.hashed.add(name)  # confirmed: recorded again, trusted next time
        return True

    def resolve_files(self, host_dir: _HostDir) -> None:
        """The digests of the files of a directory whose listing the stat cache
        knew (the walk skipped them) but whose subdirectories changed: from the
        stat cache, else read now (the pool is gone by then)."""
        for position, (name, st, _digest) in enumerate(host_dir.files):
            if not self._cached(host_dir, position, name, st):
                path = os.path.join(host_dir.path, name)
                (digest,) = self._store_batch([(host_dir, position, path)])
                host_dir.files[position] = (name, st, digest)
                host_dir.hashed.add(name)


def _excluded(path: str, name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def _result(future: Future[list[Digest]], batch: _Batch) -> list[Digest]:
    try:
        return future.result()
    except OSError as error:
        raise os_error(error, f"cannot import a file under {batch[0][0].path}") from None
