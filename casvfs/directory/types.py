"""Value types of the Directory API (BuildStream 2.x names)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from casvfs.timestamps import ARBITRARY_TIMESTAMP


class FileType(enum.Enum):
    """The kind of a directory entry."""

    DIRECTORY = 1
    REGULAR_FILE = 2
    SYMLINK = 3
    SPECIAL_FILE = 4


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

    def combine(self, other: FileListResult) -> FileListResult:
        """A new result holding this one's paths followed by *other*'s."""
        return FileListResult(
            overwritten=self.overwritten + other.overwritten,
            ignored=self.ignored + other.ignored,
            failed_attributes=self.failed_attributes + other.failed_attributes,
            files_written=self.files_written + other.files_written,
        )
