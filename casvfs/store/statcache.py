"""A git-index-like cache from host file identity to content digest, and from an
unchanged host directory to its ``Directory`` digest.

Re-importing an unchanged tree must not read file contents. A file is taken to
be unchanged when its device, inode, size, mtime and ctime (nanoseconds) all
equal what was recorded when it was last hashed. Files modified within
:data:`RACY_SECONDS` of being hashed are not recorded, since a later write in the
same timestamp tick would go unnoticed (git's "racily clean" entries).

A directory is taken to be unchanged when its listing (every entry's name and
the same five stat fields, and its own) and its subdirectories' digests equal
what was recorded: its ``Directory`` digest is then reused without looking at
its files again.

**Trust.** A recorded digest also says that its blob (or a whole tree) was in
the store when it was recorded. An import believes that without checking
(`stat` of every object was 35 % of a re-import) while nothing may have removed
objects since: every row carries the cache's *generation*, which anything that
removes objects bumps first (:meth:`StatCache.revoke`, :meth:`StatCache.removing`
for garbage collection). An import takes a :class:`Trust` at its start and asks
it at the end whether the generation still holds (:meth:`StatCache.still`); if
not, it imports again, checking every blob. Removing objects by hand breaks the
promise: ``fsck`` restores it (it revokes).
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import xxhash

from casvfs.digest import Digest, checked_digest
from casvfs.store.scratch import process_alive
from casvfs.store.sqlite import SqliteFile, transaction

RACY_SECONDS = 2.0
# "files" was the table before rows had a generation: its rows cannot be trusted.
_SCHEMA = """
DROP TABLE IF EXISTS files;
CREATE TABLE IF NOT EXISTS entries (key INTEGER PRIMARY KEY, dev INTEGER, ino INTEGER, size INTEGER,
    mtime_ns INTEGER, ctime_ns INTEGER, hash TEXT, size_bytes INTEGER, generation INTEGER);
CREATE TABLE IF NOT EXISTS directories (key INTEGER PRIMARY KEY, listing BLOB, children TEXT,
    hash TEXT, size_bytes INTEGER, generation INTEGER);
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, value INTEGER);
CREATE TABLE IF NOT EXISTS imports (hash TEXT, size_bytes INTEGER, at REAL, PRIMARY KEY (hash, size_bytes));
"""
_HASH = re.compile(r"[0-9a-f]{64}")

_Entry = tuple[int, int, int, int, int, str, int, int]
_Directory = tuple[bytes, str, str, int, int]
_ENTRY_HASH = 6
_DIRECTORY_HASH = 3
"""Where each table's hash is, counting the key."""


def _key(dev: int, ino: int) -> int:
    # A 64-bit non-cryptographic fingerprint is all an index key needs; sqlite
    # integers are signed, so fold it into that range.
    value: int = xxhash.xxh3_64_intdigest(struct.pack("<QQ", dev, ino))
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass(frozen=True)
class Trust:
    """What an import may believe without checking: rows of *generation* name
    blobs that are in the store (None: nothing, objects are being removed)."""

    generation: int | None


@dataclass(frozen=True)
class Hit:
    """A recorded digest for an unchanged file; *present*: its blob is known to be
    in the store (see :class:`Trust`)."""

    digest: Digest
    present: bool


class StatCache:
    """The stat cache stored in a sqlite file (safe for several processes). Its
    failures are :class:`~casvfs.StoreError`."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = os.fspath(path)
        self._file = SqliteFile(self._path, _SCHEMA, what="stat cache")
        self._entries: dict[int, _Entry] | None = None
        self._directories: dict[int, _Directory] | None = None
        self._pending: dict[int, _Entry] = {}
        self._pending_directories: dict[int, _Directory] = {}
        self._pending_imports: dict[Digest, None] = {}

    def _connection(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A connection to the cache file; sqlite's errors become ``StoreError``."""
        return self._file.connection()

    # Each table is loaded whole, on first need: a re-import of an unchanged tree
    # reads only the directories (5,096 rows for the Linux sources, where loading
    # the 78,579 file rows as well took longer than the rest of the re-import).
    # A damaged cache must not name paths outside the store: a row is used only
    # if its hash is one.
    def _files(self) -> dict[int, _Entry]:
        if self._entries is None:
            self._entries = self._rows("entries", _ENTRY_HASH)
        return self._entries

    def _listings(self) -> dict[int, _Directory]:
        if self._directories is None:
            self._directories = self._rows("directories", _DIRECTORY_HASH)
        return self._directories

    def _rows(self, table: str, hash_column: int) -> dict[int, Any]:
        """The rows of *table* by key, those whose column *hash_column* is a hash."""
        with self._connection() as connection:
            rows = connection.execute(f"SELECT * FROM {table}").fetchall()
        return {row[0]: tuple(row[1:]) for row in rows if _HASH.fullmatch(str(row[hash_column]))}

    def _state(self, connection: sqlite3.Connection) -> tuple[int, int | None]:
        values = dict(connection.execute("SELECT name, value FROM state").fetchall())
        return int(values.get("generation", 0)), values.get("removing")

    def trust(self) -> Trust:
        """What an import starting now may believe (see the module's text)."""
        with self._connection() as connection:
            generation, remover = self._state(connection)
        if remover is not None and process_alive(int(remover)):
            return Trust(None)
        return Trust(generation)

    def still(self, trust: Trust) -> bool:
        """Whether *trust* (taken by :meth:`trust`) still holds: no object was
        removed, and no removal began, since."""
        return trust.generation is not None and self.trust() == trust

    def revoke(self) -> None:
        """Objects are about to go (or went): trust no recorded presence."""
        with self._connection() as connection, transaction(connection):
            self._bump(connection)

    @staticmethod
    def _bump(connection: sqlite3.Connection) -> None:
        connection.execute(
            "INSERT INTO state VALUES ('generation', 1) ON CONFLICT (name) DO UPDATE SET value = value + 1"
        )

    @contextlib.contextmanager
    def removing(self) -> Iterator[None]:
        """For the duration of the block, this process removes objects: no import
        trusts a recorded presence (the generation is bumped on entry and exit)."""
        with self._connection() as connection, transaction(connection):
            self._bump(connection)
            connection.execute("INSERT OR REPLACE INTO state VALUES ('removing', ?)", (os.getpid(),))
        try:
            yield
        finally:
            with self._connection() as connection, transaction(connection):
                connection.execute("DELETE FROM state WHERE name = 'removing'")
                self._bump(connection)

    def lookup(self, st: os.stat_result, trust: Trust | None = None) -> Hit | None:
        """The recorded digest for a file whose stat is *st*, if it is unchanged;
        ``present`` where *trust* vouches for its blob."""
        row = self._files().get(_key(st.st_dev, st.st_ino))
        if row is None:
            return None
        dev, ino, size, mtime_ns, ctime_ns, hash_, size_bytes, generation = row
        if (dev, ino, size, mtime_ns, ctime_ns) != (
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        ):
            return None
        present = trust is not None and trust.generation is not None and generation == trust.generation
        return Hit(checked_digest(hash_, size_bytes), present)

    def record(self, st: os.stat_result, digest: Digest, *, hashed_at: float, trust: Trust) -> None:
        """Remember *digest* for the file whose stat (taken before hashing) is *st*,
        its blob in the store (now, under *trust*)."""
        if not settled(max(st.st_mtime_ns, st.st_ctime_ns), hashed_at) or trust.generation is None:
            return
        row = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        self._pending[_key(st.st_dev, st.st_ino)] = (*row, digest.hash, digest.size_bytes, trust.generation)

    def lookup_directory(self, st: os.stat_result, listing: bytes, trust: Trust) -> tuple[str, Digest] | None:
        """``(subdirectory digests, Directory digest)`` recorded for the host
        directory whose stat is *st* and entries *listing*, if the listing is the
        same and *trust* vouches for the tree."""
        row = self._listings().get(_key(st.st_dev, st.st_ino))
        if row is None or trust.generation is None:
            return None
        recorded, children, hash_, size_bytes, generation = row
        if recorded != listing or generation != trust.generation:
            return None
        return children, checked_digest(hash_, size_bytes)

    def record_directory(
        self, st: os.stat_result, listing: bytes, children: str, digest: Digest, trust: Trust
    ) -> None:
        """Remember the ``Directory`` digest of a host directory (see
        :meth:`lookup_directory`), whose tree is in the store under *trust*."""
        if trust.generation is None:
            return
        key = _key(st.st_dev, st.st_ino)
        row = (listing, children, digest.hash, digest.size_bytes, trust.generation)
        if self._listings().get(key) != row:
            self._pending_directories[key] = row

    def record_import(self, root: Digest) -> None:
        """Remember that an import made (or found) the tree *root* now: garbage
        collection keeps it through the grace period, as it keeps the blobs an
        import uses (an import that trusts the cache touches none)."""
        self._pending_imports[root] = None

    def imported_since(self, since: float, *, prune: bool = False) -> list[Digest]:
        """The trees imported at or after *since* (seconds since the epoch); with
        *prune*, older records are dropped (a collection that removes what they
        kept has nothing left for them to keep)."""
        with self._connection() as connection, transaction(connection):
            if prune:
                connection.execute("DELETE FROM imports WHERE at < ?", (since,))
            rows = connection.execute(
                "SELECT hash, size_bytes FROM imports WHERE at >= ?", (since,)
            ).fetchall()
        return [checked_digest(hash_, size) for hash_, size in rows if _HASH.fullmatch(str(hash_))]

    def backdate_imports(self, seconds: float) -> None:
        """Make every recorded import *seconds* older: what tests and benchmarks
        that age a store's objects (their atime) do to its imports too."""
        with self._connection() as connection, transaction(connection):
            connection.execute("UPDATE imports SET at = at - ?", (seconds,))

    def flush(self) -> None:
        """Write what was recorded since the last flush, in one transaction."""
        if not (self._pending or self._pending_directories or self._pending_imports):
            return
        now = time.time()
        with self._connection() as connection, transaction(connection):
            connection.executemany(
                "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(key, *row) for key, row in self._pending.items()],
            )
            connection.executemany(
                "INSERT OR REPLACE INTO directories VALUES (?, ?, ?, ?, ?, ?)",
                [(key, *row) for key, row in self._pending_directories.items()],
            )
            connection.executemany(
                "INSERT OR REPLACE INTO imports VALUES (?, ?, ?)",
                [(digest.hash, digest.size_bytes, now) for digest in self._pending_imports],
            )
        if self._entries is not None:
            self._entries.update(self._pending)
        if self._directories is not None:
            self._directories.update(self._pending_directories)
        self._pending.clear()
        self._pending_directories.clear()
        self._pending_imports.clear()


def settled(last_change_ns: int, hashed_at: float) -> bool:
    """Whether something that last changed (mtime or ctime) at *last_change_ns*
    changed long enough before *hashed_at* that a change within the same
    timestamp tick cannot go unseen (see :data:`RACY_SECONDS`)."""
    return last_change_ns < (hashed_at - RACY_SECONDS) * 1e9
