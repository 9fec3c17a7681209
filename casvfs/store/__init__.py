"""Content stores: where blobs and ``Directory`` messages live."""

from casvfs.store.base import ContentStore, directory_digest
from casvfs.store.digestonly import DigestOnlyStore
from casvfs.store.local import FsckReport, LocalStore, TreeCheck
from casvfs.store.memory import MemoryStore
from casvfs.store.statcache import StatCache
from casvfs.store.treesize import TreeSize, expanded_size, parse_size
from casvfs.store.validation import validate_directory

__all__ = [
    "ContentStore",
    "DigestOnlyStore",
    "FsckReport",
    "LocalStore",
    "MemoryStore",
    "StatCache",
    "TreeCheck",
    "TreeSize",
    "directory_digest",
    "expanded_size",
    "parse_size",
    "validate_directory",
]
