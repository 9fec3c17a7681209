"""A git-index-like cache from host file identity to content digest.

Re-importing an unchanged tree must not read file contents. A file is taken to
be unchanged when its device, inode, size, mtime and ctime (nanoseconds) all
equal what was recorded when it was last hashed. Files modified within
:data:`RACY_SECONDS` of being hashed are not recorded, since a later write in the
same timestamp tick would go unnoticed (git's "racily clean" entries).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct

import xxhash

from casvfs.digest import Digest
from casvfs.store.sqlite import SqliteFile, transaction

RACY_SECONDS = 2.0
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS files (key INTEGER PRIMARY KEY, dev INTEGER, ino INTEGER,"
    " size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, hash TEXT, size_bytes INTEGER);"
)

_Row = tuple[int, int, int, int, int, str, int]


def _key(dev: int, ino: int) -> int:
    # A 64-bit non-cryptographic fingerprint is all an index key needs; sqlite
    # integers are signed, so fold it into that range.
    value: int = xxhash.xxh3_64_intdigest(struct.pack("<QQ", dev, ino))
    return value - (1 << 64) if value >= 1 << 63 else value


class StatCache:
    """The stat cache stored in a sqlite file (safe for several processes). Its
    failures are :class:`~casvfs.StoreError`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._file = SqliteFile(self._path, _SCHEMA, what="stat cache")
        self._rows: dict[int, _Row] | None = None
        self._pending: dict[int, _Row] = {}

    def _connection(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A connection to the cache file; sqlite's errors become ``StoreError``."""
        return self._file.connection()

    def _load(self) -> dict[int, _Row]:
        if self._rows is None:
            with self._connection() as connection:
                self._rows = {row[0]: tuple(row[1:]) for row in connection.execute("SELECT * FROM files")}
        return self._rows

    def lookup(self, st: os.stat_result) -> Digest | None:
        """The recorded digest for a file whose stat is *st*, if it is unchanged."""
        row = self._load().get(_key(st.st_dev, st.st_ino))
        if row is None:
            return None
        dev, ino, size, mtime_ns, ctime_ns, hash_, size_bytes = row
        if (dev, ino, size, mtime_ns, ctime_ns) != (
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        ):
            return None
        return Digest(hash_, size_bytes)

    def record(self, st: os.stat_result, digest: Digest, *, hashed_at: float) -> None:
        """Remember *digest* for the file whose stat (taken before hashing) is *st*."""
        if max(st.st_mtime_ns, st.st_ctime_ns) >= (hashed_at - RACY_SECONDS) * 1e9:
            return
        row = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        self._pending[_key(st.st_dev, st.st_ino)] = (*row, digest.hash, digest.size_bytes)

    def flush(self) -> None:
        """Write what was recorded since the last flush, in one transaction."""
        if not self._pending:
            return
        with self._connection() as connection, transaction(connection):
            connection.executemany(
                "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(key, *row) for key, row in self._pending.items()],
            )
        self._load().update(self._pending)
        self._pending.clear()
