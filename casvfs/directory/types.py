"""Value types of the Directory API (BuildStream 2.x names)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from casvfs.store.base import Progress
from casvfs.timestamps import ARBITRARY_TIMESTAMP
from casvfs.tree import FileType, Node

__all__ = ["FileListResult", "FileStat", "FileType", "FilterCallback", "Progress", "file_stat"]

FilterCallback = Callable[[str], bool]
"""Called with each source path of an import; only accepted paths are imported."""


@dataclass(frozen=True)
class FileStat:
    """What :meth:`Directory.stat` reports about an entry.

    ``size`` is the content size of a regular file, the length in bytes of a
    symlink's target, and 0 for a directory. ``mtime`` is in seconds; a CAS node
    that records no mtime reports :data:`~casvfs.timestamps.ARBITRARY_TIMESTAMP`.
    """

    file_type: FileType
    executable: bool = False
    size: int = 0
    mtime: float = ARBITRARY_TIMESTAMP


def file_stat(node: Node) -> FileStat:
    """The :class:`FileStat` of a node."""
    mtime = ARBITRARY_TIMESTAMP if node.mtime_ns is None else node.mtime_ns / 1e9
    size = len(node.target.encode()) if node.type is FileType.SYMLINK else node.size
    return FileStat(node.type, executable=node.executable, size=size, mtime=mtime)


@dataclass
class FileListResult:
    """What an import did, as lists of relative paths."""

    overwritten: list[str] = field(default_factory=list)
    """Existing non-directories (or empty directories) replaced by the import."""
    ignored: list[str] = field(default_factory=list)
    """Source non-directories not imported because a non-empty directory is in the way
    (and special files, which the CAS cannot hold)."""
    failed_attributes: list[str] = field(default_factory=list)
    """Kept for BuildStream compatibility; casvfs never fails to apply attributes silently."""
    files_written: list[str] = field(default_factory=list)
    """Every non-directory written (files and symlinks)."""
