"""Moving whole trees between a local store and one remote."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from casvfs.digest import EMPTY_DIGEST, Digest, digest_bytes, serialize_message
from casvfs.errors import REASON_BLOB_MISSING, REASON_REMOTE_ERROR, StoreError
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.remote.client import CasClient
from casvfs.store.base import ContentStore
from casvfs.store.validation import validate_directory


@dataclass(frozen=True)
class PushReport:
    """What a push sent to one remote."""

    remote: str
    blobs: int
    """Blobs in the tree (``Directory`` messages included)."""
    missing: int
    """Blobs the remote lacked, which were sent."""
    bytes_sent: int
    seconds: float


def tree_blobs(store: ContentStore, root: Digest, *, directories: bool) -> list[Digest]:
    """The file blobs of the tree *root* (and its ``Directory`` messages, root
    first, if *directories*), each once."""
    blobs: dict[Digest, None] = {}
    for digest, message in store.get_tree(root):
        if directories:
            blobs[digest] = None
        for node in message.files:
            blobs[Digest.from_proto(node.digest)] = None
    return list(blobs)


def push_tree(client: CasClient, source: ContentStore, digests: list[Digest]) -> PushReport:
    """Send *client* the blobs among *digests* it lacks, from *source* (which
    fetches any of those it lacks first, where it can)."""
    started = time.monotonic()
    missing = client.find_missing(digests)
    source.fetch_missing(missing)
    client.upload(missing, source)
    return PushReport(
        remote=client.url,
        blobs=len(digests),
        missing=len(missing),
        bytes_sent=sum(digest.size_bytes for digest in missing),
        seconds=time.monotonic() - started,
    )


def tree_from_remote(client: CasClient, root: Digest, into: ContentStore) -> None:
    """Store the ``Directory`` messages of *root* from *client*'s ``GetTree``:
    each is validated and stored under the digest of its canonical form, and only
    if the tree reaches it; any directory the answer lacks (or encoded
    differently) is then fetched by digest."""
    received: dict[Digest, bytes] = {}
    for message in client.get_tree(root):
        data = serialize_message(message)
        received[digest_bytes(data)] = data
    # BuildGrid's GetTree leaves the empty Directory out; its content is known
    received.setdefault(EMPTY_DIGEST, b"")
    absent: list[Digest] = []
    seen = {root}
    queue = [root]
    while queue:
        digest = queue.pop()
        encoded = received.get(digest)
        if encoded is None:
            absent.append(digest)
            continue
        message = pb.Directory.FromString(encoded)
        validate_directory(message, digest)
        into.put_bytes(encoded)
        for node in message.directories:
            child = Digest.from_proto(node.digest)
            if child not in seen:
                seen.add(child)
                queue.append(child)
    if not absent:
        return
    client.download(absent, into)
    if _absent_directories(into, root):
        raise client.channel.failure(
            "GetTree", "the tree sent is incomplete", reason=REASON_REMOTE_ERROR, digest=root
        )


def _absent_directories(store: ContentStore, root: Digest) -> list[Digest]:
    """The directories of *root* that *store* lacks, where the walk reaches them."""
    absent: list[Digest] = []
    level = [root]
    while level:
        present = [digest for digest in level if store.has(digest)]
        absent += [digest for digest in level if not store.has(digest)]
        level = _children(store, present)
    return absent


def _children(store: ContentStore, parents: Iterable[Digest]) -> list[Digest]:
    children: dict[Digest, None] = {}
    for parent in parents:
        for node in store.get_directory(parent).directories:
            children[Digest.from_proto(node.digest)] = None
    return list(children)


def walk_fetching(store: ContentStore, root: Digest) -> None:
    """Make every ``Directory`` of *root* present in *store*, one breadth-first
    level at a time, each level fetched in batches."""
    level = [root]
    seen: set[Digest] = set()
    while level:
        store.fetch_missing(level)
        for digest in level:
            if not store.has(digest):
                raise StoreError(f"directory {digest} could not be fetched", reason=REASON_BLOB_MISSING)
        seen.update(level)
        level = [child for child in _children(store, level) if child not in seen]
