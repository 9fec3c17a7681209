"""The client-side source cache (seed 000's flow): look a source up by name in the
local refs, then on the index remotes; on a hit pull it (``Directory`` messages
only, unless asked for everything); on a miss fetch it from its origin, import it,
and, when allowed, upload it and push its name, so one central server becomes
everyone's mirror. A local reference is recorded either way.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from casvfs.digest import Digest
from casvfs.errors import REASON_BLOB_MISSING, StoreError
from casvfs.origin import fetch_from_origin
from casvfs.origin.fetch import Progress
from casvfs.refs import Kind, Qualifiers, Ref, RefIndex, make_qualifiers, missing_content
from casvfs.remote.asset import AssetClient
from casvfs.remote.layered import LayeredStore
from casvfs.remote.publish import AssetPushReport, fetch_asset, push_asset
from casvfs.store.base import ContentStore


class SourceOrigin(enum.Enum):
    """Where :func:`fetch_source` found a source."""

    LOCAL = "local"
    """A local reference whose content is all in the store."""
    REMOTE = "remote"
    """An index remote."""
    ORIGIN = "origin"
    """Its origin (nothing had it)."""


@dataclass(frozen=True)
class FetchedSource:
    """What :func:`fetch_source` did: the digest, where it came from, and the
    pushes made (a source fetched from origin, when pushing is allowed)."""

    digest: Digest
    found: SourceOrigin
    pushed: AssetPushReport | None = None


def fetch_source(
    store: ContentStore,
    index: RefIndex,
    clients: Sequence[AssetClient],
    uri: str,
    qualifiers: Qualifiers = (),
    *,
    kind: Kind = "directory",
    names: Sequence[str] = (),
    push: Sequence[AssetClient] = (),
    full: bool = False,
    progress: Progress | None = None,
) -> FetchedSource:
    """Get the source at *uri* (with *qualifiers*: ``checksum.sri``,
    ``directory``, ``vcs.commit`` ...) into *store*, recorded in *index* under
    *uri* and every one of *names* (such as BuildStream's
    ``urn:fdc:buildstream.build:2020:source:KIND/KEY``).

    :param clients: the index remotes to ask, in order (none: local and origin only).
    :param push: after a fetch from origin, push the source to these index
        remotes (its content first to *store*'s storage remotes marked push;
        *store* must then be a :class:`LayeredStore`).
    :param full: on a remote hit, pull the whole tree now, not just its
        ``Directory`` messages (file blobs then arrive when read)."""
    asked = make_qualifiers(qualifiers)
    every = [uri, *dict.fromkeys(name for name in names if name != uri)]
    local = index.lookup(every, asked, kind=kind)
    if local is not None and _usable(store, local):
        _record(index, every, kind, local.digest, asked)
        return FetchedSource(local.digest, SourceOrigin.LOCAL)
    found = fetch_asset(clients, every, asked, kind=kind) if clients else None
    if found is not None:
        if isinstance(store, LayeredStore):
            if kind == "directory":
                store.pull(found.digest, tree_only=not full)
            else:
                store.fetch_missing([found.digest])
        _record(index, every, kind, found.digest, asked)
        return FetchedSource(found.digest, SourceOrigin.REMOTE)
    digest = fetch_from_origin(_local_of(store), kind, uri, dict(asked), progress=progress)
    refs = _record(index, every, kind, digest, asked)
    report = None
    if push:
        if not isinstance(store, LayeredStore):
            raise ValueError("pushing a source needs a store with remotes (a LayeredStore)")
        report = push_asset(store, push, refs[0], also=[ref.uri for ref in refs[1:]])
    return FetchedSource(digest, SourceOrigin.ORIGIN, report)


def _usable(store: ContentStore, ref: Ref) -> bool:
    """Whether a local reference serves: its content all in the store or, for a
    store with remotes (which fetches file blobs when read), its tree's
    ``Directory`` messages."""
    if not isinstance(store, LayeredStore) or ref.kind == "blob":
        return not missing_content(_local_of(store), ref)
    try:
        store.local.tree_blobs(ref.digest, directories=False)
    except StoreError as error:
        if error.reason != REASON_BLOB_MISSING:
            raise
        return False
    return True


def _local_of(store: ContentStore) -> ContentStore:
    return store.local if isinstance(store, LayeredStore) else store


def _record(index: RefIndex, uris: list[str], kind: Kind, digest: Digest, asked: Qualifiers) -> list[Ref]:
    refs = [Ref(uri, kind, digest, asked) for uri in uris]
    index.record(refs)
    return refs
