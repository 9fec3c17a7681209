"""The import engine: merging a source tree into a destination, and exporting a tree
to the host, with the merge rules of :meth:`Directory.import_files`.

It reads its source through :class:`~casvfs.directory.source.SourceTree` and
writes through :class:`~casvfs.directory.primitives.TreePrimitives`, so both
implementations (and exports) share one set of rules, results and errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from casvfs.digest import Digest
from casvfs.directory.hostfs import HostTree
from casvfs.directory.primitives import ImportOptions, TreePrimitives
from casvfs.directory.source import SourceTree
from casvfs.directory.types import FileListResult, FilterCallback, Progress
from casvfs.errors import REASON_TYPE_MISMATCH, DirectoryError
from casvfs.store.base import ContentStore
from casvfs.tree import FileType, Node


@dataclass
class _Frame:
    source: SourceTree
    prefix: str
    dest: TreePrimitives | None
    parent: _Frame | None
    name: str
    grafted: bool = False
    """Inserted by reference, or there already: only its paths remain to be reported."""
    overwrote: bool = False
    """Grafted because the destination held the same tree: every path was there."""


def import_tree(
    dest: TreePrimitives,
    source: SourceTree,
    *,
    filter_callback: FilterCallback | None,
    options: ImportOptions,
    collect_result: bool,
) -> FileListResult:
    """Merge *source* into *dest*; a failed type check changes nothing."""
    _check_conflicts(dest, source, filter_callback)
    result = FileListResult()
    tally = [0, 0]  # files and bytes written, for progress
    root = _Frame(source, "", dest, None, "")
    frames = [root]
    finished: list[_Frame] = []
    by_reference = filter_callback is None and options.update_mtime is None
    while frames:
        frame = frames.pop()
        if frame.grafted:
            if collect_result:
                _collect_written(frame.source, frame.prefix, result, overwrote=frame.overwrote)
            continue
        finished.append(frame)
        children = []
        for node in frame.source.entries():
            path = frame.prefix + node.name
            if node.type is FileType.DIRECTORY:
                child = frame.source.child(node.name)
                child_frame = _Frame(child, path + "/", None, frame, node.name)
                if by_reference:
                    target = _ensure(frame)
                    existing = target._lookup(node.name)
                    if existing is None:
                        child_frame.grafted = target._graft(node.name, child)
                    elif existing.type is FileType.DIRECTORY and target._holds(node.name, child):
                        # the same tree (digest) already: writing it again would change
                        # nothing, so only its paths are reported, as overwritten
                        child_frame.grafted = child_frame.overwrote = True
                if not child_frame.grafted and (filter_callback is None or filter_callback(path)):
                    _ensure(child_frame)
                children.append(child_frame)
            elif node.type is FileType.SPECIAL_FILE:
                result.ignored.append(path)
            elif filter_callback is None or filter_callback(path):
                _write_entry(_ensure(frame), node, path, frame.source.store, options, result, tally)
        frames.extend(reversed(children))
    for frame in reversed(finished):
        own = frame.source.own()
        if frame.dest is not None and own is not None:
            frame.dest._set_own(own)
    return result


def export_tree(
    source: SourceTree,
    to_directory: str,
    *,
    link: bool,
    progress: Progress | None,
    hard_links: bool = False,
    special_modes: bool = False,
    blobs: Iterable[Digest] | None = None,
) -> None:
    """Write *source* into the host directory *to_directory* (made if missing) with
    the merge rules of :meth:`Directory.import_files`. An invalid source tree is
    refused before anything is written. *blobs*, the file blobs of a CAS source if
    already known, spare the walk that lists them."""
    source.prepare_export(blobs)
    import_tree(
        HostTree(to_directory, create=True, special_modes=special_modes, exclusive=True),
        source,
        filter_callback=None,
        options=ImportOptions(link=link, hard_links=hard_links, progress=progress),
        collect_result=False,
    )


def _check_conflicts(
    dest: TreePrimitives, source: SourceTree, filter_callback: FilterCallback | None
) -> None:
    """Raise ``type-mismatch`` before anything is written if a source directory would
    land on a file or symlink. Only the part of the trees both sides have is walked."""
    pending: list[tuple[TreePrimitives, SourceTree, str]] = [(dest, source, "")]
    while pending:
        directory, tree, prefix = pending.pop()
        for node in tree.entries():
            if node.type is not FileType.DIRECTORY:
                continue
            existing = directory._lookup(node.name)
            if existing is None:
                continue
            path = prefix + node.name
            if existing.type is FileType.DIRECTORY:
                child = tree.child(node.name)
                if not directory._holds(node.name, child):  # the same tree holds no conflict
                    pending.append((directory._child(node.name), child, path + "/"))
            elif filter_callback is None or _accepts_any(tree.child(node.name), path, filter_callback):
                raise _over_non_directory(path, existing)


def _over_non_directory(path: str, existing: Node) -> DirectoryError:
    kind = "symlink" if existing.type is FileType.SYMLINK else "file"
    return DirectoryError(f"cannot import directory {path!r} over a {kind}", reason=REASON_TYPE_MISMATCH)


def _accepts_any(tree: SourceTree, path: str, filter_callback: FilterCallback) -> bool:
    """Whether the filter accepts *path* (a directory) or anything under it."""
    pending = [(tree, path)]
    while pending:
        current, current_path = pending.pop()
        if filter_callback(current_path):
            return True
        for node in current.entries():
            child_path = f"{current_path}/{node.name}"
            if node.type is FileType.DIRECTORY:
                pending.append((current.child(node.name), child_path))
            elif node.type is not FileType.SPECIAL_FILE and filter_callback(child_path):
                return True
    return False


def _ensure(frame: _Frame) -> TreePrimitives:
    """The destination directory of *frame*, made (with missing parents) on first need."""
    chain = []
    current: _Frame | None = frame
    while current is not None and current.dest is None:
        chain.append(current)
        current = current.parent
    for pending in reversed(chain):
        assert pending.parent is not None and pending.parent.dest is not None
        parent = pending.parent.dest
        existing = parent._lookup(pending.name)
        if existing is None:
            pending.dest = parent._mkdir(pending.name, pending.source.own())
        elif existing.type is FileType.DIRECTORY:
            pending.dest = parent._child(pending.name)
        else:
            raise _over_non_directory(pending.prefix.rstrip("/"), existing)
    assert frame.dest is not None
    return frame.dest


def _write_entry(
    dest: TreePrimitives,
    node: Node,
    path: str,
    store: ContentStore | None,
    options: ImportOptions,
    result: FileListResult,
    tally: list[int],
) -> None:
    existing = dest._lookup(node.name)
    if existing is not None:
        if existing.type is FileType.DIRECTORY and dest._child(node.name)._entries():
            result.ignored.append(path)
            return
        dest._unlink(node.name)
        result.overwritten.append(path)
    dest._put(node.name, node, store, options)
    result.files_written.append(path)
    if options.progress is not None:
        tally[0] += 1
        tally[1] += node.size
        options.progress(tally[0], tally[1])


def _collect_written(source: SourceTree, prefix: str, result: FileListResult, *, overwrote: bool) -> None:
    """Add every non-directory under *source* to ``files_written`` (special files to
    ``ignored``), in list order; to ``overwritten`` too if *overwrote*."""
    pending = [(source, prefix)]
    while pending:
        tree, base = pending.pop()
        subdirs = []
        for node in tree.entries():
            if node.type is FileType.DIRECTORY:
                subdirs.append((tree.child(node.name), f"{base}{node.name}/"))
            elif node.type is FileType.SPECIAL_FILE:
                result.ignored.append(base + node.name)
            else:
                result.files_written.append(base + node.name)
                if overwrote:
                    result.overwritten.append(base + node.name)
        pending.extend(reversed(subdirs))
