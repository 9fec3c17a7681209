"""Opening the sqlite files a store keeps beside its objects (the stat cache, the
refs index): write-ahead logging, a busy timeout, and sqlite's errors as
:class:`~casvfs.StoreError`."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator

from casvfs.errors import REASON_IO_ERROR, StoreError

# Switching to WAL takes an exclusive lock that sqlite does not wait for through its
# busy timeout: concurrent first imports on a fresh store retry (measured: 1 in 90
# imports failed without it).
_WAL_ATTEMPTS = 50
_BUSY_SECONDS = 30


@contextlib.contextmanager
def connect(path: str, schema: str, *, what: str) -> Iterator[sqlite3.Connection]:
    """A connection to the sqlite file *path*, in WAL mode, with *schema* (a script
    of ``CREATE ... IF NOT EXISTS`` statements) applied; any sqlite error inside
    the block becomes a ``StoreError`` (``io-error``) naming *what* and the file."""
    try:
        connection = sqlite3.connect(path, timeout=_BUSY_SECONDS, isolation_level=None)
        try:
            _set_wal(connection)
            connection.executescript(schema)
            yield connection
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise StoreError(f"{what} {path}: {error}", reason=REASON_IO_ERROR) from None


def _set_wal(connection: sqlite3.Connection) -> None:
    for attempt in range(_WAL_ATTEMPTS):
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error): the write lock is
    taken at the start, so a read-modify-write cannot interleave with another
    process's."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
