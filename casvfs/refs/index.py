"""The refs index: named references kept in a sqlite file beside a store's objects.

Several processes may share one store: every update is one ``BEGIN IMMEDIATE``
transaction, and readers see either the old or the new entry (WAL mode). An entry
is keyed by its URI, kind and qualifiers: recording the same three again replaces
the entry, so the newest push of an asset wins.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence

from casvfs.digest import Digest
from casvfs.errors import REASON_INCOMPLETE, REASON_REF_NOT_FOUND, DigestError, RefError
from casvfs.refs.content import missing_content
from casvfs.refs.ref import (
    Kind,
    Match,
    Qualifiers,
    Ref,
    check_uri,
    make_qualifiers,
    newest_match,
    utc_now,
)
from casvfs.store.base import ContentStore
from casvfs.store.local import LocalStore
from casvfs.store.sqlite import SqliteFile, transaction

INDEX_FILE = "refs.sqlite"
"""The index's file name inside a :class:`~casvfs.LocalStore`'s directory."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS refs (
    uri TEXT NOT NULL, kind TEXT NOT NULL, qualifiers TEXT NOT NULL,
    hash TEXT NOT NULL, size_bytes INTEGER NOT NULL,
    references_blobs TEXT NOT NULL, references_directories TEXT NOT NULL,
    recorded_at_us INTEGER NOT NULL, expire_at_us INTEGER,
    PRIMARY KEY (uri, kind, qualifiers));
"""
_COLUMNS = (
    "uri, kind, qualifiers, hash, size_bytes, references_blobs, references_directories,"
    " recorded_at_us, expire_at_us"
)
_INSERT = f"INSERT OR REPLACE INTO refs ({_COLUMNS}) VALUES ({', '.join('?' * 9)})"
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _us(moment: datetime.datetime) -> int:
    return (moment - _EPOCH) // datetime.timedelta(microseconds=1)


def _moment(us: int) -> datetime.datetime:
    return _EPOCH + datetime.timedelta(microseconds=us)


def _digests(text: str) -> tuple[Digest, ...]:
    return tuple(Digest.parse(item) for item in json.loads(text))


def _row(ref: Ref) -> tuple[object, ...]:
    return (
        ref.uri,
        ref.kind,
        json.dumps(ref.qualifiers),
        ref.digest.hash,
        ref.digest.size_bytes,
        json.dumps([str(d) for d in ref.references_blobs]),
        json.dumps([str(d) for d in ref.references_directories]),
        _us(ref.recorded_at),
        _us(ref.expire_at) if ref.expire_at is not None else None,
    )


def _ref(row: Sequence[object]) -> Ref:
    uri, kind, quals, hash_, size, blobs, trees, recorded, expire = row
    assert isinstance(quals, str) and isinstance(blobs, str) and isinstance(trees, str)
    assert isinstance(recorded, int) and isinstance(size, int) and isinstance(hash_, str)
    return Ref(
        uri=str(uri),
        kind="blob" if kind == "blob" else "directory",
        digest=Digest(hash_, size),
        qualifiers=make_qualifiers((name, value) for name, value in json.loads(quals)),
        references_blobs=_digests(blobs),
        references_directories=_digests(trees),
        recorded_at=_moment(recorded),
        expire_at=_moment(expire) if isinstance(expire, int) else None,
    )


class RefIndex:
    """Named references in the sqlite file *path*; failures of the file are
    :class:`~casvfs.StoreError` (``io-error``).

    :meth:`of_store` opens the index of a local store, the one the ``casvfs ref``
    command uses."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._file = SqliteFile(self.path, _SCHEMA, what="refs index")

    def __repr__(self) -> str:
        return f"RefIndex({self.path!r})"

    @classmethod
    def of_store(cls, store: LocalStore) -> RefIndex:
        """The index kept in *store*'s directory (:data:`INDEX_FILE`)."""
        return cls(os.path.join(store.root, INDEX_FILE))

    def _connection(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._file.connection()

    def record(self, refs: Iterable[Ref]) -> None:
        """Record *refs* in one transaction, each replacing any entry with its URI,
        kind and qualifiers."""
        rows = [_row(ref) for ref in refs]
        with self._connection() as connection, transaction(connection):
            connection.executemany(
                f"INSERT OR REPLACE INTO refs ({_COLUMNS}) VALUES ({', '.join('?' * 9)})", rows
            )

    def set(
        self,
        name: str,
        digest: Digest,
        *,
        kind: Kind = "directory",
        qualifiers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        references_blobs: Iterable[Digest] = (),
        references_directories: Iterable[Digest] = (),
        expire_at: datetime.datetime | None = None,
        store: ContentStore | None = None,
    ) -> Ref:
        """Record *name* -> *digest* now and return the reference.

        :param store: if given, refuse (``RefError`` ``incomplete``, naming what
            is missing) a reference whose content (:func:`missing_content`) is
            not all in *store*."""
        ref = Ref(
            uri=check_uri(name),
            kind=kind,
            digest=digest,
            qualifiers=make_qualifiers(qualifiers),
            references_blobs=tuple(references_blobs),
            references_directories=tuple(references_directories),
            expire_at=expire_at,
        )
        if store is not None:
            missing = missing_content(store, ref)
            if missing:
                shown = ", ".join(str(d) for d in missing[:3]) + (", ..." if len(missing) > 3 else "")
                raise RefError(
                    f"{store} lacks {len(missing)} blob(s) {name!r} needs: {shown}", reason=REASON_INCOMPLETE
                )
        self.record([ref])
        return ref

    def entries(self, uris: Iterable[str]) -> list[Ref]:
        """Every entry recorded under any of *uris*, expired ones included."""
        names = list(dict.fromkeys(check_uri(uri) for uri in uris))
        if not names:
            return []
        with self._connection() as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM refs WHERE uri IN ({', '.join('?' * len(names))})", names
            ).fetchall()
        return [_ref(row) for row in rows]

    def lookup(
        self,
        uris: Iterable[str],
        asked: Qualifiers = (),
        *,
        match: Match = "subset",
        kind: Kind | None = None,
        oldest: datetime.datetime | None = None,
        now: datetime.datetime | None = None,
    ) -> Ref | None:
        """The newest live entry under any of *uris* that the qualifiers *asked*
        match (see :func:`casvfs.refs.newest_match`), or None."""
        return newest_match(self.entries(uris), asked, match=match, kind=kind, oldest=oldest, now=now)

    def get(
        self,
        name: str,
        asked: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        kind: Kind | None = None,
        match: Match = "subset",
    ) -> Ref:
        """The newest live reference *name* matching *asked*; ``RefError``
        ``ref-not-found`` if there is none."""
        found = self.lookup([name], make_qualifiers(asked), match=match, kind=kind)
        if found is None:
            what = f"{kind} " if kind else ""
            with_ = f" with {_shown(make_qualifiers(asked))}" if asked else ""
            raise RefError(f"no {what}reference {name!r}{with_}", reason=REASON_REF_NOT_FOUND)
        return found

    def resolve(self, text: str, *, kind: Kind = "directory") -> Digest:
        """*text* as a digest: ``HASH/SIZE`` itself, else the digest of the newest
        reference of that name and *kind* (``RefError`` ``ref-not-found``)."""
        try:
            return Digest.parse(text)
        except DigestError:
            pass
        try:
            return self.get(text, kind=kind).digest
        except RefError:
            raise RefError(
                f"{text!r} is neither a digest (HASH/SIZE) nor the name of a {kind} reference",
                reason=REASON_REF_NOT_FOUND,
            ) from None
        except ValueError as error:
            raise RefError(f"{text!r}: {error}", reason=REASON_REF_NOT_FOUND) from None

    def by_prefix(self, prefix: str = "") -> list[Ref]:
        """Every entry whose URI starts with *prefix*, sorted by URI then newest
        first; expired entries are listed too (:meth:`Ref.expired` tells)."""
        with self._connection() as connection:
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM refs WHERE substr(uri, 1, ?) = ? ORDER BY uri, recorded_at_us DESC",
                (len(prefix), prefix),
            ).fetchall()
        return [_ref(row) for row in rows]

    def remove(self, name: str, asked: Mapping[str, str] | Iterable[tuple[str, str]] | None = None) -> int:
        """Remove the entries of *name* (only the one with exactly the qualifiers
        *asked*, if given) and return how many there were; none is ``RefError``
        ``ref-not-found``."""
        check_uri(name)
        with self._connection() as connection, transaction(connection):
            if asked is None:
                removed = connection.execute("DELETE FROM refs WHERE uri = ?", (name,)).rowcount
            else:
                key = json.dumps(make_qualifiers(asked))
                removed = connection.execute(
                    "DELETE FROM refs WHERE uri = ? AND qualifiers = ?", (name, key)
                ).rowcount
        if not removed:
            raise RefError(f"no reference {name!r} to remove", reason=REASON_REF_NOT_FOUND)
        return int(removed)

    def prune(self, now: datetime.datetime | None = None) -> list[Ref]:
        """Remove the entries that have expired (at *now*) and return them."""
        moment = _us(now or utc_now())
        with self._connection() as connection, transaction(connection):
            rows = connection.execute(
                f"SELECT {_COLUMNS} FROM refs WHERE expire_at_us IS NOT NULL AND expire_at_us <= ?",
                (moment,),
            ).fetchall()
            connection.execute(
                "DELETE FROM refs WHERE expire_at_us IS NOT NULL AND expire_at_us <= ?", (moment,)
            )
        return [_ref(row) for row in rows]


def _shown(asked: Qualifiers) -> str:
    return ", ".join(f"{name}={value}" for name, value in asked)
