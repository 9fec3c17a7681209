"""An in-memory store, for tests and scratch trees."""

from __future__ import annotations

import io
import os
import threading
from typing import BinaryIO

from casvfs.digest import Digest, digest_bytes
from casvfs.errors import REASON_BLOB_MISSING, StoreError, os_errors
from casvfs.store.base import ContentStore


class MemoryStore(ContentStore):
    """A :class:`ContentStore` holding blobs in a dict; thread-safe."""

    def __init__(self) -> None:
        self._blobs: dict[Digest, bytes] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._blobs)

    def has(self, digest: Digest) -> bool:
        return digest in self._blobs

    def open(self, digest: Digest) -> BinaryIO:
        return io.BytesIO(self.read_bytes(digest))

    def read_bytes(self, digest: Digest) -> bytes:
        try:
            return self._blobs[digest]
        except KeyError:
            raise StoreError(f"blob {digest} is not in the store", reason=REASON_BLOB_MISSING) from None

    def read_cached(self, digest: Digest) -> bytes | None:
        return self._blobs.get(digest)

    def put_bytes(self, data: bytes) -> Digest:
        digest = digest_bytes(data)
        with self._lock:
            self._blobs.setdefault(digest, bytes(data))
        return digest

    def put_file(self, path: str | os.PathLike[str]) -> Digest:
        with os_errors(f"cannot import {os.fspath(path)}", kind=StoreError), open(path, "rb") as stream:
            data = stream.read()
        return self.put_bytes(data)

    def discard(self, digest: Digest) -> None:
        """Forget a blob (tests use this to make a store partial)."""
        with self._lock:
            self._blobs.pop(digest, None)
