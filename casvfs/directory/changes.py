"""Comparing two trees, and three-way merging the changes between two into a third."""

from __future__ import annotations

from dataclasses import dataclass, field

from casvfs.directory.base import Directory
from casvfs.directory.merge import import_tree
from casvfs.directory.primitives import ImportOptions
from casvfs.errors import REASON_MERGE_CONFLICT, REASON_NOT_A_DIRECTORY, REASON_NOT_FOUND, DirectoryError
from casvfs.tree import FileType, Node


@dataclass
class TreeDiff:
    """Paths that differ between two trees, each list sorted (a parent before its children).

    A directory added or removed is listed with everything under it. A path
    whose type changed, or whose content, executable bit, symlink target or
    node properties changed, is ``modified``; ``kinds`` says which, per path:
    ``"type"``, ``"content"`` (a file's digest or a symlink's target), ``"mode"``
    (executable bit or recorded mode) or ``"properties"`` (mtime, other node
    properties), the first that applies in that order.
    """

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.modified)


def change_kind(old: Node, new: Node) -> str:
    """How two different nodes at one path differ (see :class:`TreeDiff`)."""
    if old.type is not new.type:
        return "type"
    if old.digest != new.digest or old.target != new.target:
        return "content"
    if old.executable != new.executable or old.unix_mode != new.unix_mode:
        return "mode"
    return "properties"


def _subtree_paths(directory: Directory, prefix: str) -> list[str]:
    return [f"{prefix}/{path}" for path in directory.list_relative_paths()]


def diff(a: Directory, b: Directory) -> TreeDiff:
    """What changed from tree *a* to tree *b*.

    Identical CAS subtrees are skipped by digest without being loaded, so the
    cost follows the size of the change, not of the trees.
    """
    result = TreeDiff()
    pending: list[tuple[str, Directory, Directory]] = [("", a, b)]
    while pending:
        prefix, left, right = pending.pop()
        left_digest = left._known_digest()
        if left_digest is not None and left_digest == right._known_digest():
            continue
        left_nodes = {node.name: node for node in left._entries()}
        right_nodes = {node.name: node for node in right._entries()}
        subdirs = []
        for name in sorted(left_nodes.keys() | right_nodes.keys()):
            path = prefix + name
            old, new = left_nodes.get(name), right_nodes.get(name)
            old_dir = old is not None and old.type is FileType.DIRECTORY
            new_dir = new is not None and new.type is FileType.DIRECTORY
            if old is None:
                result.added.append(path)
            elif new is None:
                result.removed.append(path)
            elif old_dir and new_dir:
                subdirs.append((path + "/", left._child(name), right._child(name)))
                continue
            elif old_dir or new_dir or not old.same_content(new):
                result.modified.append(path)
                result.kinds[path] = change_kind(old, new)
            if old_dir:
                result.removed.extend(_subtree_paths(left._child(name), path))
            if new_dir:
                result.added.extend(_subtree_paths(right._child(name), path))
        pending.extend(reversed(subdirs))
    result.added.sort()
    result.removed.sort()
    result.modified.sort()
    return result


def _node_at(tree: Directory, path: str) -> tuple[Directory, Node] | None:
    """The directory holding *path* and its node, or None if absent."""
    try:
        resolved = tree._resolve(path, follow_symlinks=False)
    except DirectoryError as error:
        if error.reason in (REASON_NOT_FOUND, REASON_NOT_A_DIRECTORY):
            return None
        raise
    if resolved.node is None:
        return None
    return resolved.parent, resolved.node


def _same_at(x: Directory, y: Directory, path: str) -> bool:
    """Whether *path* is the same entry in both trees (directories by digest)."""
    left, right = _node_at(x, path), _node_at(y, path)
    if left is None or right is None:
        return left is None and right is None
    (left_dir, left_node), (right_dir, right_node) = left, right
    if left_node.type is FileType.DIRECTORY and right_node.type is FileType.DIRECTORY:
        left_digest = left_dir._child(left_node.name)._known_digest()
        return left_digest is not None and left_digest == right_dir._child(right_node.name)._known_digest()
    return left_node.same_content(right_node)


def apply_changes(target: Directory, before: Directory, after: Directory) -> TreeDiff:
    """Apply the changes from *before* to *after* onto *target* (a three-way merge).

    A path changed by *after* must be unchanged in *target* (equal to *before*)
    or already equal to *after*; otherwise ``merge-conflict`` is raised and
    *target* is left untouched. Added subtrees are inserted by reference.
    Returns the changes that were applied.
    """
    changes = diff(before, after)
    for path in changes.added + changes.removed + changes.modified:
        if not _same_at(target, before, path) and not _same_at(target, after, path):
            raise DirectoryError(
                f"merge conflict at {path!r}: changed on both sides", reason=REASON_MERGE_CONFLICT
            )
    for path in changes.removed:
        if path in changes.modified:
            continue
        found = _node_at(target, path)
        if found is not None:
            found[0]._unlink(found[1].name)
    grafted: list[str] = []
    for path in changes.modified + changes.added:
        if any(path.startswith(done + "/") for done in grafted):
            continue
        located = _node_at(after, path)
        assert located is not None
        source_dir, node = located
        head, _, name = path.rpartition("/")
        parent = target.open_directory(head, create=True)
        existing = parent._lookup(name)
        if existing is not None:
            if node.type is FileType.DIRECTORY and existing.type is FileType.DIRECTORY:
                continue  # a directory both sides have: its entries are handled one by one
            parent._unlink(name)
        if node.type is FileType.DIRECTORY:
            source = source_dir._child(name)._as_source()
            if not parent._graft(name, source):
                import_tree(
                    parent._mkdir(name, None),
                    source,
                    filter_callback=None,
                    options=ImportOptions(),
                    collect_result=False,
                )
            grafted.append(path)
        else:
            parent._put(name, node, after._blob_store(), ImportOptions())
    return changes
