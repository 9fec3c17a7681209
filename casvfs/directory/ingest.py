"""Fast import of a host tree into a content store.

The tree is walked with ``os.scandir`` while file contents are hashed and
stored by a thread pool (hashlib and file I/O release the GIL); files whose
stat matches the store's :class:`~casvfs.store.StatCache` are not read at all.
``Directory`` messages are then built bottom up.
"""

from __future__ import annotations

import os
import stat as stat_module
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from casvfs.digest import Digest
from casvfs.directory.base import Progress
from casvfs.directory.node import Node, directory_to_proto
from casvfs.directory.types import FileType
from casvfs.errors import REASON_IO_ERROR, REASON_NOT_A_DIRECTORY, REASON_NOT_FOUND, DirectoryError
from casvfs.store.base import ContentStore
from casvfs.store.statcache import StatCache

SUPPORTED_PROPERTIES = frozenset({"mtime", "unix_mode"})


def default_workers() -> int:
    """Hashing threads: a few per core, since reads also wait on the disk."""
    return min(16, 2 * (os.cpu_count() or 1))


@dataclass
class _HostDir:
    path: str
    st: os.stat_result
    parent: int
    name: str
    prefix: str
    files: list[tuple[str, os.stat_result, Digest | Future[Digest]]] = field(default_factory=list)
    symlinks: list[Node] = field(default_factory=list)
    subdirs: list[int] = field(default_factory=list)
    digest: Digest | None = None


def import_host_tree(
    store: ContentStore,
    root: str,
    *,
    properties: list[str] | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
    skipped: dict[str, list[str]] | None = None,
) -> Digest:
    """Store the host tree under *root* and return its root ``Directory`` digest.

    Symlinks are stored verbatim, never followed; special files (devices, FIFOs,
    sockets) cannot be held by a CAS and are skipped.

    :param skipped: if given, filled with the special files left out, by directory
        path (``""`` for the root, else ``"a/b/"``).
    :param properties: node properties to record: ``"mtime"`` (files, and
        directories) and ``"unix_mode"`` (files); none by default, which gives
        the digest other REAPI tools compute for the same tree.
    """
    wanted = frozenset(properties or ())
    if not wanted <= SUPPORTED_PROPERTIES:
        raise ValueError(f"unsupported node properties: {sorted(wanted - SUPPORTED_PROPERTIES)}")
    try:
        top = os.stat(root)
    except FileNotFoundError:
        raise DirectoryError(f"no such directory: {root}", reason=REASON_NOT_FOUND) from None
    except OSError as error:
        raise DirectoryError(f"cannot read {root}: {error.strerror}", reason=REASON_IO_ERROR) from None
    if not stat_module.S_ISDIR(top.st_mode):
        raise DirectoryError(f"{root} is not a directory", reason=REASON_NOT_A_DIRECTORY)
    cache = store.stat_cache()
    started = time.time()
    done = [0, 0]

    def store_file(path: str) -> Digest:
        digest = store.put_file(path)
        if progress is not None:
            done[0] += 1
            done[1] += digest.size_bytes
            progress(done[0], done[1])
        return digest

    dirs = [_HostDir(os.path.abspath(root), top, -1, "", "")]
    pool = ThreadPoolExecutor(max_workers=workers or default_workers(), thread_name_prefix="casvfs-import")
    try:
        index = 0
        while index < len(dirs):
            _scan(dirs, index, store, cache, pool, store_file, skipped)
            index += 1
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    keep_mtime = "mtime" in wanted
    keep_mode = "unix_mode" in wanted
    for host_dir in reversed(dirs):
        nodes: list[Node] = list(host_dir.symlinks)
        for name, st, pending in host_dir.files:
            digest = pending if isinstance(pending, Digest) else _result(pending, host_dir, name)
            if cache is not None and not isinstance(pending, Digest):
                cache.record(st, digest, hashed_at=started)
            nodes.append(
                Node(
                    name,
                    FileType.REGULAR_FILE,
                    executable=bool(st.st_mode & stat_module.S_IXUSR),
                    size=digest.size_bytes,
                    digest=digest,
                    mtime_ns=st.st_mtime_ns if keep_mtime else None,
                    unix_mode=stat_module.S_IMODE(st.st_mode) if keep_mode else None,
                )
            )
        for child in host_dir.subdirs:
            nodes.append(Node(dirs[child].name, FileType.DIRECTORY, digest=dirs[child].digest))
        own = Node("", FileType.DIRECTORY, mtime_ns=host_dir.st.st_mtime_ns) if keep_mtime else None
        host_dir.digest = store.put_directory(directory_to_proto(nodes, own))
    if cache is not None:
        cache.flush()
    assert dirs[0].digest is not None
    return dirs[0].digest


def _result(pending: Future[Digest], host_dir: _HostDir, name: str) -> Digest:
    try:
        return pending.result()
    except OSError as error:
        raise DirectoryError(
            f"cannot import {os.path.join(host_dir.path, name)}: {error}", reason=REASON_IO_ERROR
        ) from None


def _scan(
    dirs: list[_HostDir],
    index: int,
    store: ContentStore,
    cache: StatCache | None,
    pool: ThreadPoolExecutor,
    store_file: Callable[[str], Digest],
    skipped: dict[str, list[str]] | None,
) -> None:
    host_dir = dirs[index]
    try:
        with os.scandir(host_dir.path) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
    except OSError as error:
        raise DirectoryError(
            f"cannot list {host_dir.path}: {error.strerror}", reason=REASON_IO_ERROR
        ) from None
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat_module.S_ISREG(mode):
                cached = cache.lookup(st) if cache is not None else None
                if cached is not None and store.has(cached):
                    host_dir.files.append((entry.name, st, cached))
                else:
                    host_dir.files.append((entry.name, st, pool.submit(store_file, entry.path)))
            elif stat_module.S_ISDIR(mode):
                host_dir.subdirs.append(len(dirs))
                dirs.append(_HostDir(entry.path, st, index, entry.name, f"{host_dir.prefix}{entry.name}/"))
            elif stat_module.S_ISLNK(mode):
                host_dir.symlinks.append(Node(entry.name, FileType.SYMLINK, target=os.readlink(entry.path)))
            elif skipped is not None:
                skipped.setdefault(host_dir.prefix, []).append(entry.name)
        except OSError as error:
            raise DirectoryError(
                f"cannot import {entry.path}: {error.strerror}", reason=REASON_IO_ERROR
            ) from None
