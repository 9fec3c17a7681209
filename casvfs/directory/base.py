"""The abstract :class:`Directory`: the contract and path resolution.

Both implementations inherit the path resolution from here and import through
one engine (:mod:`casvfs.directory.merge`), so they cannot disagree on merge
rules, results or errors; they differ only in the primitives (look up, list,
make, remove, write one entry: :mod:`casvfs.directory.primitives`).
"""

from __future__ import annotations

import abc
import io
import os
import tarfile as tarfile_module
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, BinaryIO, Literal, overload

from casvfs.digest import Digest
from casvfs.directory.merge import export_tree, import_tree
from casvfs.directory.primitives import ImportOptions, TreePrimitives
from casvfs.directory.source import HostSource, SourceTree
from casvfs.directory.tarheader import TarMember
from casvfs.directory.types import FileListResult, FileStat, FilterCallback, Progress, file_stat
from casvfs.errors import (
    REASON_EXISTS,
    REASON_INVALID_RENAME,
    REASON_IS_A_DIRECTORY,
    REASON_IS_ROOT,
    REASON_NOT_A_DIRECTORY,
    REASON_NOT_A_FILE,
    REASON_NOT_A_SYMLINK,
    REASON_NOT_EMPTY,
    REASON_NOT_FOUND,
    REASON_SYMLINK_LOOP,
    REASON_TOO_LARGE,
    DirectoryError,
    os_errors,
)
from casvfs.store.base import ContentStore
from casvfs.store.treesize import TreeSize, expanded_size
from casvfs.timestamps import ARBITRARY_TIMESTAMP
from casvfs.tree import FileType, Node

# Linux's limit on symlinks followed while resolving one path.
MAX_SYMLINK_HOPS = 40
READ_MODES = frozenset({"r", "rb"})
WRITE_MODES = frozenset({"w", "wb", "w+", "w+b", "x", "xb", "x+", "x+b"})


def split_path(path: str) -> list[str]:
    """The components of a relative ``/``-separated path (``.`` and empty ones dropped).

    Raises :class:`ValueError` for an absolute path or a non-string.
    """
    if not isinstance(path, str):
        raise ValueError(f"path must be a str, not {type(path).__name__}")
    if path.startswith("/"):
        raise ValueError(f"path must be relative: {path!r}")
    if "\0" in path:
        raise ValueError(f"path contains NUL: {path!r}")
    return [part for part in path.split("/") if part and part != "."]


@dataclass(frozen=True)
class Resolved:
    """Where a path ends: the directory holding it, its name there and its node."""

    parent: Directory
    name: str
    node: Node | None


class Directory(TreePrimitives):
    """A directory tree, on the host or in a CAS (BuildStream's ``Directory``).

    Paths are relative and ``/``-separated; ``..`` above the root stays at the
    root. Symlinks are always resolved *inside* the tree (an absolute target is
    relative to the tree's root), so no operation reaches outside it.
    Failures raise :class:`~casvfs.DirectoryError` with a stable ``reason``.
    """

    _parent: Directory | None = None
    _name: str = ""

    # -- primitives beyond the engine's (TreePrimitives) ----------------------------

    @abc.abstractmethod
    def _move(self, name: str, dest: Directory, dest_name: str) -> None:
        """Move the entry *name* to *dest_name* (absent) in *dest* of the same tree."""

    @abc.abstractmethod
    def _open_blob(self, node: Node) -> BinaryIO:
        """A binary stream of the content of the regular file *node* of this directory."""

    @abc.abstractmethod
    def _open_write(self, name: str, mode: str, existing: Node | None) -> IO[bytes]:
        """A binary stream writing the regular file *name*, committed on close."""

    @abc.abstractmethod
    def _as_source(self) -> SourceTree:
        """An immutable snapshot of this tree to import from."""

    @abc.abstractmethod
    def _source_for_host(self, host_path: str, properties: list[str] | None) -> SourceTree:
        """The source to import from a host directory."""

    def _blob_store(self) -> ContentStore | None:
        """The store holding the file blobs its nodes name (None where nodes carry
        ``host_path`` instead: a host tree)."""
        return None

    def _known_digest(self) -> Digest | None:
        """The ``Directory`` digest of this tree if the implementation has one (a CAS
        tree), so comparisons can skip identical subtrees; None otherwise."""
        return None

    @abc.abstractmethod
    def file_digest(self, path: str) -> str:
        """The SHA-256 hex digest of the regular file at *path* (symlinks followed)."""

    def export_files(
        self,
        to_directory: str,
        *,
        can_link: bool = False,
        can_destroy: bool = False,
        progress: Progress | None = None,
        max_size: int | None = None,
        hard_links: bool = False,
        special_modes: bool = False,
    ) -> None:
        """Write this tree into the host directory *to_directory*, created if missing.

        Merge rules are those of :meth:`import_files`; nothing is ever written
        outside *to_directory*, whatever symlinks the tree or the target hold.

        A CAS tree may name the same subtree many times over, so before anything
        is written (*to_directory* is not even created) it is sized once per
        distinct directory (:func:`~casvfs.store.expanded_size`) and refused with
        ``too-large`` if its files add up to more bytes than *max_size* or than
        the target's file system has free (hard-linked files take no space, so
        with *can_link*, unless root without *hard_links* gets copies, only
        *max_size* applies to bytes), or if it holds more entries than that file
        system has inodes free. A host tree is sized only when *max_size* is given.

        :param can_link: take files from the store's object files instead of
            copying them: a copy-on-write clone where the file system can, else a
            hard link where the object carries the right mode (0444) and mtime.
            As root, which ignores the 0444 mode, a hard link would let a write
            into the export change the store, so root gets clones or copies
            unless *hard_links*.
        :param hard_links: with *can_link*, hard-link even as root (an object
            changed through such a link is found corrupt on its next read and
            quarantined).
        :param special_modes: keep the setuid, setgid and sticky bits of recorded
            modes (dropped by default: a tree from anywhere must not make a
            setuid-root file).
        :param can_destroy: accepted for BuildStream compatibility; the source is
            never modified.
        :param progress: called as files are written (see :data:`Progress`).
        :param max_size: the most bytes of regular files (every occurrence
            counted) to write; None for no limit but the free space.
        """
        del can_destroy  # the source is never consumed
        source = self._as_source()
        # linked files take no space; as root (without hard_links) they may be copies
        links_free = can_link and (hard_links or os.geteuid() != 0)
        blobs = _check_export_size(source, max_size=max_size, target=to_directory, can_link=links_free)
        export_tree(
            source,
            to_directory,
            blobs=blobs,
            link=can_link,
            hard_links=hard_links,
            special_modes=special_modes,
            progress=progress,
        )

    # -- path resolution ------------------------------------------------------------

    def _ancestry(self) -> list[Directory]:
        chain: list[Directory] = []
        current: Directory | None = self
        while current is not None:
            chain.append(current)
            current = current._parent
        chain.reverse()
        return chain

    def _resolve(
        self,
        path: str,
        *,
        follow_symlinks: bool,
        create: bool = False,
        follow_intermediate: bool | None = None,
    ) -> Resolved:
        """Walk *path* inside the tree.

        Intermediate symlinks are followed when *follow_intermediate* (default:
        *follow_symlinks*), else they are ``not-a-directory``; the final one is
        followed when *follow_symlinks*. With *create*, missing intermediate
        directories are made. An empty path resolves to this directory itself,
        reported as its parent and name (or the root with name ``""``).
        """
        if follow_intermediate is None:
            follow_intermediate = follow_symlinks
        components = split_path(path)
        stack = self._ancestry()
        hops = 0
        if not components:
            return self._self_resolved(stack)
        while True:
            name = components.pop(0)
            if name == "..":
                if len(stack) > 1:
                    stack.pop()
                if not components:
                    return self._self_resolved(stack)
                continue
            current = stack[-1]
            node = current._lookup(name)
            last = not components
            if (
                node is not None
                and node.type is FileType.SYMLINK
                and (follow_symlinks if last else follow_intermediate)
            ):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise DirectoryError(
                        f"too many levels of symbolic links in {path!r}", reason=REASON_SYMLINK_LOOP
                    )
                if node.target.startswith("/"):
                    del stack[1:]
                target = [part for part in node.target.split("/") if part and part != "."]
                components[:0] = target
                if not components:
                    return self._self_resolved(stack)
                continue
            if last:
                return Resolved(current, name, node)
            if node is None:
                if not create:
                    raise DirectoryError(f"{path!r}: no such directory {name!r}", reason=REASON_NOT_FOUND)
                stack.append(current._mkdir(name, None))
            elif node.type is FileType.DIRECTORY:
                stack.append(current._child(name))
            else:
                raise DirectoryError(f"{path!r}: {name!r} is not a directory", reason=REASON_NOT_A_DIRECTORY)

    @staticmethod
    def _self_resolved(stack: list[Directory]) -> Resolved:
        if len(stack) == 1:
            return Resolved(stack[0], "", Node("", FileType.DIRECTORY))
        return Resolved(stack[-2], stack[-1]._name, stack[-2]._lookup(stack[-1]._name))

    def _path_from_root(self) -> list[str]:
        return [directory._name for directory in self._ancestry()[1:]]

    def _existing(self, path: str, *, follow_symlinks: bool) -> Resolved:
        resolved = self._resolve(path, follow_symlinks=follow_symlinks)
        if resolved.node is None:
            raise DirectoryError(f"{path!r} does not exist", reason=REASON_NOT_FOUND)
        return resolved

    # -- the public contract ------------------------------------------------------

    def open_directory(self, path: str, *, create: bool = False, follow_symlinks: bool = False) -> Directory:
        """The subdirectory at *path*, made (with its parents) if *create*.

        Symlinks on the way are followed (inside the tree) only if *follow_symlinks*.
        """
        resolved = self._resolve(path, follow_symlinks=follow_symlinks, create=create)
        if resolved.name == "":
            return resolved.parent
        if resolved.node is None:
            if not create:
                raise DirectoryError(f"{path!r} does not exist", reason=REASON_NOT_FOUND)
            return resolved.parent._mkdir(resolved.name, None)
        if resolved.node.type is not FileType.DIRECTORY:
            raise DirectoryError(f"{path!r} is not a directory", reason=REASON_NOT_A_DIRECTORY)
        return resolved.parent._child(resolved.name)

    def exists(self, path: str, *, follow_symlinks: bool = False) -> bool:
        """Whether *path* names an entry (a dangling symlink exists unless followed).

        A path that cannot be resolved (through a file, a missing directory or a
        symlink loop) does not exist, as with :func:`os.path.exists`.
        """
        return self._node_if_any(path, follow_symlinks) is not None

    def stat(self, path: str, *, follow_symlinks: bool = False) -> FileStat:
        """The :class:`FileStat` of the entry at *path*."""
        node = self._existing(path, follow_symlinks=follow_symlinks).node
        assert node is not None
        return file_stat(node)

    def _node_if_any(self, path: str, follow_symlinks: bool) -> Node | None:
        """The node at *path*, or None where the path resolves to nothing (through
        a file, a missing directory or a symlink loop), as :func:`os.path.exists`
        sees it."""
        try:
            return self._resolve(path, follow_symlinks=follow_symlinks).node
        except DirectoryError as error:
            if error.reason in (REASON_NOT_FOUND, REASON_NOT_A_DIRECTORY, REASON_SYMLINK_LOOP):
                return None
            raise

    def _is_type(self, path: str, kind: FileType, follow_symlinks: bool) -> bool:
        node = self._node_if_any(path, follow_symlinks)
        return node is not None and node.type is kind

    def isfile(self, path: str, *, follow_symlinks: bool = False) -> bool:
        """Whether *path* is a regular file."""
        return self._is_type(path, FileType.REGULAR_FILE, follow_symlinks)

    def isdir(self, path: str, *, follow_symlinks: bool = False) -> bool:
        """Whether *path* is a directory."""
        return self._is_type(path, FileType.DIRECTORY, follow_symlinks)

    def islink(self, path: str, *, follow_symlinks: bool = False) -> bool:
        """Whether *path* is a symlink (never true when *follow_symlinks*)."""
        return self._is_type(path, FileType.SYMLINK, follow_symlinks)

    def readlink(self, path: str) -> str:
        """The target of the symlink at *path*, verbatim."""
        node = self._existing(path, follow_symlinks=False).node
        assert node is not None
        if node.type is not FileType.SYMLINK:
            raise DirectoryError(f"{path!r} is not a symlink", reason=REASON_NOT_A_SYMLINK)
        return node.target

    def _regular_file(self, path: str) -> Resolved:
        resolved = self._existing(path, follow_symlinks=True)
        assert resolved.node is not None
        if resolved.node.type is FileType.DIRECTORY:
            raise DirectoryError(f"{path!r} is a directory", reason=REASON_IS_A_DIRECTORY)
        if resolved.node.type is not FileType.REGULAR_FILE:
            raise DirectoryError(f"{path!r} is not a regular file", reason=REASON_NOT_A_FILE)
        return resolved

    @overload
    def open_file(self, path: str, *, mode: Literal["rb", "wb", "w+b", "xb", "x+b"]) -> IO[bytes]: ...

    @overload
    def open_file(self, path: str, *, mode: Literal["r", "w", "w+", "x", "x+"] = "r") -> IO[str]: ...

    def open_file(self, path: str, *, mode: str = "r") -> IO[str] | IO[bytes]:
        """Open the regular file at *path* (symlinks followed inside the tree).

        Modes: ``r``, ``rb`` to read; ``w``, ``wb``, ``w+``, ``w+b`` to create or
        truncate; ``x``, ``xb``, ``x+``, ``x+b`` to create a file that must not
        exist. Text modes use UTF-8. Written content becomes part of the tree
        when the file is closed.
        """
        if mode not in READ_MODES and mode not in WRITE_MODES:
            raise ValueError(f"unsupported mode {mode!r}")
        if mode in READ_MODES:
            resolved = self._regular_file(path)
            assert resolved.node is not None
            stream: IO[bytes] = resolved.parent._open_blob(resolved.node)
        else:
            resolved = self._resolve(path, follow_symlinks=True)
            if resolved.name == "" or (
                resolved.node is not None and resolved.node.type is FileType.DIRECTORY
            ):
                raise DirectoryError(f"{path!r} is a directory", reason=REASON_IS_A_DIRECTORY)
            if resolved.node is not None and mode.startswith("x"):
                raise DirectoryError(f"{path!r} already exists", reason=REASON_EXISTS)
            if resolved.node is not None and resolved.node.type is not FileType.REGULAR_FILE:
                raise DirectoryError(f"{path!r} is not a regular file", reason=REASON_NOT_A_FILE)
            stream = resolved.parent._open_write(resolved.name, mode, resolved.node)
        if "b" in mode:
            return stream
        return io.TextIOWrapper(stream, encoding="utf-8")

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Remove the entry at *path* (a symlink itself, never its target).

        A non-empty directory needs *recursive*.
        """
        resolved = self._existing(path, follow_symlinks=False)
        if resolved.name == "":
            raise DirectoryError("cannot remove the root of a tree", reason=REASON_IS_ROOT)
        assert resolved.node is not None
        if (
            resolved.node.type is FileType.DIRECTORY
            and not recursive
            and len(resolved.parent._child(resolved.name)) > 0
        ):
            raise DirectoryError(f"{path!r} is a non-empty directory", reason=REASON_NOT_EMPTY)
        resolved.parent._unlink(resolved.name)

    def rename(self, src: str, dest: str) -> None:
        """Move the entry at *src* to *dest*, which must not exist."""
        source = self._existing(src, follow_symlinks=False)
        target = self._resolve(dest, follow_symlinks=False)
        if source.name == "" or target.name == "":
            raise DirectoryError("cannot rename the root of a tree", reason=REASON_INVALID_RENAME)
        if target.node is not None:
            raise DirectoryError(f"{dest!r} already exists", reason=REASON_EXISTS)
        assert source.node is not None
        if source.node.type is FileType.DIRECTORY:
            moved = [*source.parent._path_from_root(), source.name]
            if target.parent._path_from_root()[: len(moved)] == moved:
                raise DirectoryError(
                    f"cannot move {src!r} into itself ({dest!r})", reason=REASON_INVALID_RENAME
                )
        source.parent._move(source.name, target.parent, target.name)

    def __iter__(self) -> Iterator[str]:
        """The names of the entries, sorted."""
        return iter([node.name for node in self._entries()])

    def __len__(self) -> int:
        return len(self._entries())

    def _walk(self) -> Iterator[tuple[str, Directory, Node]]:
        """``(relative path, containing directory, node)`` in :meth:`list_relative_paths`
        order, iteratively (depth is unbounded)."""
        pending: list[tuple[str, Directory, Node | None]] = [("", self, None)]
        while pending:
            path, directory, node = pending.pop()
            if node is not None:
                yield path, directory, node
                directory = directory._child(node.name)
            prefix = f"{path}/" if path else ""
            subdirs = []
            for entry in directory._entries():
                if entry.type is FileType.DIRECTORY:
                    subdirs.append((prefix + entry.name, directory, entry))
                else:
                    yield prefix + entry.name, directory, entry
            pending.extend(reversed(subdirs))

    def list_relative_paths(self) -> Iterator[str]:
        """Every path in the tree: a directory's non-directories sorted, then each
        subdirectory (sorted) yielded and descended. Symlinks are not descended."""
        for path, _directory, _node in self._walk():
            yield path

    def get_size(self) -> int:
        """The total size in bytes of the regular files in the tree."""
        return sum(
            node.size for _path, _directory, node in self._walk() if node.type is FileType.REGULAR_FILE
        )

    def export_to_tar(
        self,
        tarfile: tarfile_module.TarFile,
        destination_dir: str,
        mtime: int = ARBITRARY_TIMESTAMP,
        *,
        max_size: int | None = None,
    ) -> None:
        """Add the tree to an open tar archive under *destination_dir*, deterministically:
        paths in :meth:`list_relative_paths` order, every mtime *mtime*, owner 0:0.

        :param max_size: refuse (``too-large``, before any member is added) a tree
            whose regular files, every occurrence counted, add up to more bytes;
            a CAS tree is sized once per distinct directory.
        """
        if max_size is not None:
            _check_export_size(self._as_source(), max_size=max_size, target=None, can_link=False)
        base = destination_dir.strip("/")
        for path, directory, node in self._walk():
            info = TarMember("/".join(part for part in (base, path) if part))
            info.mtime = mtime
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if node.type is FileType.DIRECTORY:
                info.type = tarfile_module.DIRTYPE
                info.mode = 0o755
                tarfile.addfile(info)
            elif node.type is FileType.SYMLINK:
                info.type = tarfile_module.SYMTYPE
                info.linkname = node.target
                info.mode = 0o777
                tarfile.addfile(info)
            elif node.type is FileType.REGULAR_FILE:
                info.mode = 0o755 if node.executable else 0o644
                info.size = node.size
                with directory._open_blob(node) as stream:
                    tarfile.addfile(info, stream)

    # -- import ---------------------------------------------------------------

    def import_files(
        self,
        external_pathspec: Directory | str,
        *,
        filter_callback: FilterCallback | None = None,
        collect_result: bool = True,
        update_mtime: float | None = None,
        properties: list[str] | None = None,
    ) -> FileListResult | None:
        """Merge a tree (another :class:`Directory` or a host directory path) into this one.

        Rules: directories merge recursively; a file or symlink replaces a file,
        a symlink or an empty directory (reported in ``overwritten``) but not a
        non-empty directory (reported in ``ignored``); a directory over a file or
        symlink raises ``type-mismatch``, found before anything is written so a
        failed import leaves this tree unchanged; symlinks in this tree are never
        followed. A subtree landing on a free name is inserted by reference where the
        implementation can (CAS into CAS, same store), and one the destination
        already holds (same digest) is only reported, not walked.

        :param filter_callback: called with each source path (directories
            included); only accepted paths are imported, with the directories
            they need.
        :param collect_result: return a :class:`FileListResult` (else None).
        :param update_mtime: set this mtime (seconds) on every file written.
        :param properties: node properties to record when importing a host tree
            into a CAS (``"mtime"``, ``"unix_mode"``); ignored otherwise.
        """
        if isinstance(external_pathspec, Directory):
            source = external_pathspec._as_source()
        elif isinstance(external_pathspec, str):
            source = self._source_for_host(external_pathspec, properties)
        else:
            raise ValueError("import source must be a Directory or a host path")
        result = import_tree(
            self,
            source,
            filter_callback=filter_callback,
            options=ImportOptions(update_mtime=update_mtime),
            collect_result=collect_result,
        )
        return result if collect_result else None

    def import_single_file(self, external_pathspec: str) -> FileListResult:
        """Import one host file (or symlink) into this directory under its basename."""
        return import_tree(
            self,
            HostSource.single(external_pathspec),
            filter_callback=None,
            options=ImportOptions(),
            collect_result=True,
        )


def _check_export_size(
    source: SourceTree, *, max_size: int | None, target: str | None, can_link: bool
) -> list[Digest] | None:
    """Raise ``too-large`` if *source* is bigger than *max_size* or, for a CAS tree
    exported to the host directory *target*, than the free space there. For a CAS
    tree, return its file blobs, found on the way (the export prefetches them)."""
    store, digest = source.store, source.digest
    if store is None or digest is None:
        if max_size is not None:
            # a host tree shares no subtrees: it is no bigger than it looks
            _refuse_over(_host_size(source), max_size)
        return None
    blobs: dict[Digest, None] = {}
    size = expanded_size(store, digest, files=blobs)
    _refuse_over(size, max_size)
    if target is None:
        return list(blobs)
    where = os.path.abspath(target)
    while not os.path.exists(where) and os.path.dirname(where) != where:
        where = os.path.dirname(where)
    with os_errors(where):
        fs = os.statvfs(where)
    free = fs.f_bavail * fs.f_frsize
    if not can_link and size.bytes > free:
        raise _too_large(size, f"the {free} bytes free on {where}")
    # Every entry written takes an inode, but for a hard link. A file system with
    # dynamic inodes (btrfs) reports f_files == 0: it has no such limit to check.
    inodes = size.directories + size.symlinks + (0 if can_link else size.files)
    if fs.f_files and inodes > fs.f_favail:
        raise _too_large(size, f"the {fs.f_favail} inodes free on {where}")
    return list(blobs)


def _refuse_over(size: TreeSize, max_size: int | None) -> None:
    if max_size is not None and size.bytes > max_size:
        raise _too_large(size, f"max_size={max_size} bytes")


def _host_size(source: SourceTree) -> TreeSize:
    """The size of a tree without shared subtrees, walked entry by entry."""
    files = directories = symlinks = size = 0
    pending = [source]
    while pending:
        tree = pending.pop()
        for node in tree.entries():
            if node.type is FileType.DIRECTORY:
                directories += 1
                pending.append(tree.child(node.name))
            elif node.type is FileType.REGULAR_FILE:
                files += 1
                size += node.size
            elif node.type is FileType.SYMLINK:
                symlinks += 1
    return TreeSize(files, directories, symlinks, size)


def _too_large(size: TreeSize, limit: str) -> DirectoryError:
    return DirectoryError(
        f"tree too large to export: {size.files} files, {size.bytes} bytes"
        f" ({size.paths} paths) exceed {limit}",
        reason=REASON_TOO_LARGE,
    )
