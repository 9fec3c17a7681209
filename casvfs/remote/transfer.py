"""Moving whole trees between a local store and one remote."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from casvfs.digest import EMPTY_DIGEST, Digest, digest_bytes, entry_digest, serialize_message
from casvfs.errors import REASON_BLOB_MISSING, REASON_REMOTE_ERROR, StoreError
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.remote.client import CasClient
from casvfs.store.base import ContentStore, Progress
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


# Progress is reported between chunks of this much: large enough that the four
# calls in flight stay busy within a chunk, small enough to show movement.
_PROGRESS_CHUNK_BYTES = 64 << 20


def in_chunks(digests: list[Digest]) -> Iterator[tuple[list[Digest], tuple[int, int]]]:
    """*digests* cut into chunks of about 64 MiB, each with the ``(blobs, bytes)``
    done once it and those before it are done."""
    chunk: list[Digest] = []
    size = blobs = total = 0
    for digest in digests:
        chunk.append(digest)
        size += digest.size_bytes
        if size >= _PROGRESS_CHUNK_BYTES:
            blobs, total = blobs + len(chunk), total + size
            yield chunk, (blobs, total)
            chunk, size = [], 0
    if chunk:
        yield chunk, (blobs + len(chunk), total + size)


def push_tree(
    client: CasClient,
    source: ContentStore,
    digests: list[Digest],
    progress: Progress | None = None,
    total: Progress | None = None,
) -> PushReport:
    """Send *client* the blobs among *digests* it lacks, from *source* (which
    fetches any of those it lacks first, where it can); *progress* is called as
    ``progress(blobs, bytes)`` sent so far, *total* once with what is to be sent."""
    started = time.monotonic()
    missing = client.find_missing(digests)
    if total is not None:
        total(len(missing), sum(digest.size_bytes for digest in missing))
    source.fetch_missing(missing)
    if progress is None:
        client.upload(missing, source)
    else:
        for chunk, done in in_chunks(missing):
            client.upload(chunk, source)
            progress(*done)
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
    if the tree reaches it. A directory the answer lacks (or encoded differently)
    is fetched by digest, and the walk goes on below it."""
    received: dict[Digest, bytes] = {}
    for message in client.get_tree(root):
        data = serialize_message(message)
        received[digest_bytes(data)] = data
    # BuildGrid's GetTree leaves the empty Directory out; its content is known
    received.setdefault(EMPTY_DIGEST, b"")
    seen = {root}
    level = [root]
    while level:
        absent = [digest for digest in level if digest not in received]
        if absent:
            if client.download(absent, into) != set(absent):
                raise client.channel.failure(
                    "GetTree", "the tree sent is incomplete", reason=REASON_REMOTE_ERROR, digest=root
                )
            received.update((digest, into.read_bytes(digest)) for digest in absent)
        below: list[Digest] = []
        for digest in level:
            message = pb.Directory.FromString(received[digest])
            validate_directory(message, digest)
            into.put_bytes(received[digest])
            for node in message.directories:
                child = entry_digest(node.digest)
                if child not in seen:
                    seen.add(child)
                    below.append(child)
        level = below


def _children(store: ContentStore, parents: Iterable[Digest]) -> list[Digest]:
    children: dict[Digest, None] = {}
    for parent in parents:
        for node in store.get_directory(parent).directories:
            children[entry_digest(node.digest)] = None
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
