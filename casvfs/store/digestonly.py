"""A store that only computes digests: file contents are hashed and dropped."""

from __future__ import annotations

import os

from casvfs.digest import Digest, digest_file
from casvfs.store.memory import MemoryStore


class DigestOnlyStore(MemoryStore):
    """A :class:`MemoryStore` that keeps ``Directory`` messages and small blobs
    but only hashes host files (:meth:`put_file`), so importing a tree into it
    computes the root digest without writing anything: reading that tree's file
    contents later fails with ``blob-missing``."""

    def put_file(self, path: str | os.PathLike[str]) -> Digest:
        return digest_file(path)  # raises StoreError, as every put_file does
