"""casvfs: manipulate big file trees by reference.

A tree is a Merkle tree of REAPI ``Directory`` messages in a content-addressable
store; the same :class:`Directory` API also runs over host directories.
"""

from casvfs.digest import EMPTY_DIGEST, Digest, digest_bytes, digest_file
from casvfs.directory import (
    CasDirectory,
    Directory,
    FileListResult,
    FileStat,
    FileType,
    OsDirectory,
)
from casvfs.errors import CasvfsError, DigestError, DirectoryError, StoreError
from casvfs.store import ContentStore, LocalStore, MemoryStore
from casvfs.timestamps import ARBITRARY_TIMESTAMP

__version__ = "0.1.0"

__all__ = [
    "ARBITRARY_TIMESTAMP",
    "EMPTY_DIGEST",
    "CasDirectory",
    "CasvfsError",
    "ContentStore",
    "Digest",
    "DigestError",
    "Directory",
    "DirectoryError",
    "FileListResult",
    "FileStat",
    "FileType",
    "LocalStore",
    "MemoryStore",
    "OsDirectory",
    "StoreError",
    "__version__",
    "digest_bytes",
    "digest_file",
]
