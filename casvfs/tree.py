"""The tree model below the directory and FUSE layers: entries (:class:`Node`), the
REAPI ``Directory`` codec, and host entries as nodes.

Both :class:`~casvfs.CasDirectory` and the FUSE inode table read ``Directory``
messages through :func:`read_directory` and write them with
:func:`directory_to_proto`, and both compute a changed tree's digests in the
order :func:`children_first` gives, so the two cannot disagree on what a tree's
digest is.
"""

from __future__ import annotations

import enum
import os
import stat as stat_module
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from casvfs.digest import Digest, checked_digest
from casvfs.protos import remote_execution_pb2 as pb

NodeProperty = tuple[str, str]
T = TypeVar("T")


class FileType(enum.Enum):
    """The kind of a directory entry."""

    DIRECTORY = 1
    REGULAR_FILE = 2
    SYMLINK = 3
    SPECIAL_FILE = 4


@dataclass(frozen=True, slots=True)
class Node:
    """One entry as every layer sees it.

    ``digest`` is the content digest of a file or the ``Directory`` digest of a
    CAS subdirectory (None where not known: host entries). ``mtime_ns`` and
    ``unix_mode`` are None where the node records none. ``host_path`` is set for
    entries of a host tree.
    """

    name: str
    type: FileType
    executable: bool = False
    size: int = 0
    target: str = ""
    digest: Digest | None = None
    mtime_ns: int | None = None
    unix_mode: int | None = None
    properties: tuple[NodeProperty, ...] = ()
    host_path: str | None = None

    def renamed(self, name: str) -> Node:
        """The same node under another name."""
        if name == self.name:
            return self
        # positional: dataclasses.replace cost 14 us a call (a third of a merge)
        return Node(
            name,
            self.type,
            self.executable,
            self.size,
            self.target,
            self.digest,
            self.mtime_ns,
            self.unix_mode,
            self.properties,
            self.host_path,
        )

    def same_content(self, other: Node) -> bool:
        """Whether two nodes describe the same entry (name aside)."""
        return (
            self.type is other.type
            and self.digest == other.digest
            and self.executable == other.executable
            and self.target == other.target
            and self.mtime_ns == other.mtime_ns
            and self.unix_mode == other.unix_mode
            and self.properties == other.properties
        )


@dataclass(frozen=True, slots=True)
class DirectoryContents:
    """What one ``Directory`` message holds: its entries by name and its own
    properties (a nameless DIRECTORY node, or None when it records none)."""

    nodes: dict[str, Node]
    own: Node | None


def properties_to_proto(node: Node) -> pb.NodeProperties | None:
    """The ``NodeProperties`` message a node carries, or None if it carries none."""
    if node.mtime_ns is None and node.unix_mode is None and not node.properties:
        return None
    message = pb.NodeProperties()
    for name, value in node.properties:
        message.properties.add(name=name, value=value)
    if node.mtime_ns is not None:
        message.mtime.seconds, message.mtime.nanos = divmod(node.mtime_ns, 1_000_000_000)
    if node.unix_mode is not None:
        message.unix_mode.value = node.unix_mode
    return message


def mtime_and_mode(message: pb.NodeProperties) -> tuple[int | None, int | None]:
    """``(mtime_ns, unix_mode)`` of a ``NodeProperties`` message, None where it records none."""
    mtime = message.mtime.seconds * 1_000_000_000 + message.mtime.nanos if message.HasField("mtime") else None
    mode = message.unix_mode.value if message.HasField("unix_mode") else None
    return mtime, mode


def _properties_from_proto(
    message: pb.NodeProperties,
) -> tuple[int | None, int | None, tuple[NodeProperty, ...]]:
    """``(mtime_ns, unix_mode, other properties)`` of a ``NodeProperties`` message."""
    mtime, mode = mtime_and_mode(message)
    return mtime, mode, tuple((prop.name, prop.value) for prop in message.properties)


def read_directory(message: pb.Directory) -> DirectoryContents:
    """The entries and own properties of a (validated) ``Directory`` message."""
    nodes: dict[str, Node] = {}
    regular, directory_type, symlink = FileType.REGULAR_FILE, FileType.DIRECTORY, FileType.SYMLINK
    for file in message.files:
        # Positional and without re-checking the digest: this runs once per entry
        # of every directory loaded (FUSE listings, walks, merges).
        wire = file.digest
        size = wire.size_bytes
        digest = checked_digest(wire.hash, size)
        if file.HasField("node_properties"):
            mtime, mode, props = _properties_from_proto(file.node_properties)
            nodes[file.name] = Node(
                file.name, regular, file.is_executable, size, "", digest, mtime, mode, props
            )
        else:
            nodes[file.name] = Node(file.name, regular, file.is_executable, size, "", digest)
    for directory in message.directories:
        wire = directory.digest
        nodes[directory.name] = Node(
            directory.name, directory_type, False, 0, "", checked_digest(wire.hash, wire.size_bytes)
        )
    for link in message.symlinks:
        if link.HasField("node_properties"):
            mtime, mode, props = _properties_from_proto(link.node_properties)
            nodes[link.name] = Node(link.name, symlink, False, 0, link.target, None, mtime, mode, props)
        else:
            nodes[link.name] = Node(link.name, symlink, target=link.target)
    own = None
    if message.HasField("node_properties"):
        mtime, mode, props = _properties_from_proto(message.node_properties)
        if mtime is not None or mode is not None or props:
            own = Node("", FileType.DIRECTORY, mtime_ns=mtime, unix_mode=mode, properties=props)
    return DirectoryContents(nodes, own)


def directory_to_proto(nodes: Iterable[Node], own: Node | None) -> pb.Directory:
    """A canonical ``Directory`` message from entries whose digests are all known.

    *own* carries the directory's own properties (mtime etc.), if any.
    """
    message = pb.Directory()
    for node in sorted(nodes, key=lambda n: n.name):
        props = properties_to_proto(node)
        if node.type is FileType.REGULAR_FILE:
            assert node.digest is not None
            file = message.files.add(
                name=node.name, digest=node.digest.to_proto(), is_executable=node.executable
            )
            if props is not None:
                file.node_properties.CopyFrom(props)
        elif node.type is FileType.DIRECTORY:
            assert node.digest is not None
            message.directories.add(name=node.name, digest=node.digest.to_proto())
        elif node.type is FileType.SYMLINK:
            link = message.symlinks.add(name=node.name, target=node.target)
            if props is not None:
                link.node_properties.CopyFrom(props)
    if own is not None:
        props = properties_to_proto(own)
        if props is not None:
            message.node_properties.CopyFrom(props)
    return message


def children_first(root: T, changed_children: Callable[[T], Iterable[T]]) -> list[T]:
    """*root* and every directory reached from it through *changed_children* (the
    subdirectories whose digest is not known), each after all of its changed
    children: the order in which a changed tree's ``Directory`` messages can be
    serialised, bottom up. Iterative, so depth is unbounded."""
    order: list[T] = []
    pending = [root]
    while pending:
        directory = pending.pop()
        order.append(directory)
        pending.extend(changed_children(directory))
    order.reverse()
    return order


def node_from_stat(name: str, path: str, st: os.stat_result, *, dir_fd: int | None = None) -> Node:
    """A node for the host entry at *path*, from its ``lstat`` result *st*. A
    symlink's target is read from *path*, or from *name* in the directory
    descriptor *dir_fd* if given. Raises ``OSError``."""
    mode = st.st_mode
    if stat_module.S_ISDIR(mode):
        kind = FileType.DIRECTORY
    elif stat_module.S_ISREG(mode):
        kind = FileType.REGULAR_FILE
    elif stat_module.S_ISLNK(mode):
        target = os.readlink(path) if dir_fd is None else os.readlink(name, dir_fd=dir_fd)
        return Node(name, FileType.SYMLINK, target=target, mtime_ns=st.st_mtime_ns, host_path=path)
    else:
        kind = FileType.SPECIAL_FILE
    return Node(
        name,
        kind,
        executable=kind is FileType.REGULAR_FILE and bool(mode & stat_module.S_IXUSR),
        size=st.st_size if kind is FileType.REGULAR_FILE else 0,
        mtime_ns=st.st_mtime_ns,
        unix_mode=stat_module.S_IMODE(mode),
        host_path=path,
    )
