"""The Directory contract and its two implementations."""

from casvfs.directory.base import Directory
from casvfs.directory.casdir import CasDirectory
from casvfs.directory.osdir import OsDirectory
from casvfs.directory.types import FileListResult, FileStat, FileType

__all__ = ["CasDirectory", "Directory", "FileListResult", "FileStat", "FileType", "OsDirectory"]
