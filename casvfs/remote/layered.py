"""A local store in front of an ordered list of remote CAS servers."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import BinaryIO

from casvfs.digest import EMPTY_DIGEST, Digest
from casvfs.errors import (
    REASON_BLOB_MISSING,
    REASON_NO_REMOTE,
    REASON_REMOTE_TIMEOUT,
    REASON_REMOTE_UNAVAILABLE,
    REASON_REMOTE_UNSUPPORTED,
    CasvfsError,
    RemoteError,
    StoreError,
)
from casvfs.remote.client import (
    BATCH_OVERHEAD,
    DEFAULT_BATCH_BYTES,
    ENTRY_OVERHEAD,
    CasClient,
)
from casvfs.remote.config import RemoteConfig, RemoteSpec
from casvfs.remote.fetcher import BlobFetcher
from casvfs.remote.transfer import PushReport, in_chunks, push_tree, tree_from_remote, walk_fetching
from casvfs.store.base import ContentStore, Progress
from casvfs.store.roots import LiveRoots
from casvfs.store.statcache import StatCache

log = logging.getLogger("casvfs.remote")

DOWN_SECONDS = 30.0
"""How long a remote that was down or timed out is skipped before being tried again."""
FETCH_THREADS = 4
# GetTree failures after which the next remote is asked
_TRY_NEXT = (REASON_BLOB_MISSING, REASON_REMOTE_UNSUPPORTED)


class LayeredStore(ContentStore):
    """A :class:`ContentStore` that keeps everything in *local* and fetches blobs it
    lacks from *remotes* when their content is first needed: ``open``,
    ``read_bytes``, ``local_path`` (exports, FUSE reads) and :meth:`fetch_missing`.
    ``has`` and ``find_missing`` answer for the local store only.

    Reads try the remotes in order; the first that has a blob provides it. A
    remote that is unreachable or times out is skipped, with a warning, for
    :data:`DOWN_SECONDS`. Fetches from many threads are de-duplicated and batched.
    Writes go to the local store; :meth:`push` sends a tree to the remotes marked
    ``push``.

    :param local: the local store (usually a :class:`~casvfs.store.LocalStore`).
    :param remotes: the remotes, as a :class:`RemoteConfig`, specs or clients.
    """

    def __init__(
        self,
        local: ContentStore,
        remotes: RemoteConfig | Sequence[RemoteSpec | CasClient],
    ) -> None:
        specs = remotes.storage_remotes if isinstance(remotes, RemoteConfig) else remotes
        self.local = local
        # an index-only remote (Remote Asset) holds no blobs
        self.remotes: tuple[CasClient, ...] = tuple(
            item if isinstance(item, CasClient) else CasClient(item)
            for item in specs
            if (item.spec if isinstance(item, CasClient) else item).is_storage
        )
        self._down: dict[str, tuple[float, RemoteError]] = {}
        """URL -> (until when it is skipped, the failure that made it so)."""
        self._down_lock = threading.Lock()
        self._fetcher = BlobFetcher(
            self._fetch_batch,
            threads=FETCH_THREADS,
            batch_bytes=DEFAULT_BATCH_BYTES - BATCH_OVERHEAD,
            entry_bytes=ENTRY_OVERHEAD,
        )

    def __repr__(self) -> str:
        return f"LayeredStore({self.local!r}, {[client.url for client in self.remotes]!r})"

    def close(self) -> None:
        """Close the remotes' connections."""
        for client in self.remotes:
            client.close()

    @property
    def calls(self) -> dict[str, int]:
        """RPC attempts made so far, per method, summed over the remotes."""
        total: dict[str, int] = {}
        for client in self.remotes:
            for method, count in client.calls.items():
                total[method] = total.get(method, 0) + count
        return total

    # -- the local side --------------------------------------------------------------

    def has(self, digest: Digest) -> bool:
        return self.local.has(digest)

    def find_missing(self, digests: Iterable[Digest]) -> list[Digest]:
        return self.local.find_missing(digests)

    def put_bytes(self, data: bytes) -> Digest:
        return self.local.put_bytes(data)

    def put_file(self, path: str | os.PathLike[str]) -> Digest:
        return self.local.put_file(path)

    def put_stream(self, stream: BinaryIO) -> Digest:
        return self.local.put_stream(stream)

    def put_verified(self, expected: Digest, chunks: Iterable[bytes]) -> None:
        self.local.put_verified(expected, chunks)

    def stat_cache(self) -> StatCache | None:
        return self.local.stat_cache()

    def live_roots(self) -> LiveRoots | None:
        return self.local.live_roots()

    def scratch_space(self) -> str | None:
        return self.local.scratch_space()

    # -- reads that fetch ------------------------------------------------------------

    def open(self, digest: Digest) -> BinaryIO:
        self.fetch_missing((digest,))
        return self.local.open(digest)

    def read_bytes(self, digest: Digest) -> bytes:
        self.fetch_missing((digest,))
        return self.local.read_bytes(digest)

    def read_cached(self, digest: Digest) -> bytes | None:
        return self.local.read_cached(digest)  # what is missing needs a fetch: None

    def record_use(self, digests: Iterable[Digest]) -> None:
        self.local.record_use(digests)

    def local_path(self, digest: Digest) -> str | None:
        self.fetch_missing((digest,))
        return self.local.local_path(digest)

    def open_object(self, digest: Digest) -> int | None:
        self.fetch_missing((digest,))
        return self.local.open_object(digest)

    def fetch_missing(self, digests: Iterable[Digest]) -> None:
        """Fetch the blobs among *digests* the local store lacks, in batches; raise
        ``blob-missing`` for one no reachable remote has."""
        missing = self.local.find_missing(digests)
        if EMPTY_DIGEST in missing:
            # known without asking (BuildGrid's GetTree leaves the empty Directory out)
            self.local.put_bytes(b"")
            missing.remove(EMPTY_DIGEST)
        if missing:
            self._fetcher.fetch(missing)

    def _fetch_batch(self, batch: list[Digest]) -> dict[Digest, CasvfsError]:
        # a reader may have queued a blob just as an earlier fetch of it completed
        remaining = self.local.find_missing(batch)
        tried: list[str] = []
        skipped: CasvfsError | None = None
        for client in self._reachable():
            if not remaining:
                break
            try:
                found = client.download(remaining, self.local)
            except RemoteError as error:
                if not self._skip_if_down(client, error):
                    # what arrived before the failure is kept and usable
                    return {digest: error for digest in remaining if not self.local.has(digest)}
                skipped = error
                continue
            tried.append(client.url)
            remaining = [digest for digest in remaining if digest not in found]
        if not remaining:
            return {}
        if not tried:
            return dict.fromkeys(remaining, skipped or self._unreachable())
        return {
            digest: StoreError(
                f"blob {digest} is not in the local store nor in remote(s) {', '.join(tried)}",
                reason=REASON_BLOB_MISSING,
            )
            for digest in remaining
        }

    def _reachable(self) -> list[CasClient]:
        now = time.monotonic()
        with self._down_lock:
            return [client for client in self.remotes if self._down.get(client.url, (0.0,))[0] <= now]

    def _unreachable(self) -> StoreError:
        """The error when every remote is being skipped: their last failures."""
        with self._down_lock:
            failures = "; ".join(str(error) for _until, error in self._down.values())
        return StoreError(
            f"no remote is reachable (each is skipped for {DOWN_SECONDS:.0f} s after failing): {failures}",
            reason=REASON_REMOTE_UNAVAILABLE,
        )

    def _skip_if_down(self, client: CasClient, error: RemoteError) -> bool:
        """Mark *client* down after an unreachable/timeout *error*; False for other errors."""
        if error.reason not in (REASON_REMOTE_UNAVAILABLE, REASON_REMOTE_TIMEOUT):
            return False
        log.warning("skipping remote %s for %.0f s: %s", client.url, DOWN_SECONDS, error)
        with self._down_lock:
            self._down[client.url] = (time.monotonic() + DOWN_SECONDS, error)
        return True

    # -- whole trees ----------------------------------------------------------------

    def pull(
        self,
        root: Digest,
        *,
        tree_only: bool = False,
        progress: Progress | None = None,
        total: Progress | None = None,
    ) -> None:
        """Make the tree *root* local: its ``Directory`` messages (with one
        ``GetTree`` from the first remote that has them) and, unless *tree_only*,
        every file blob, in batches. Any subtree digest works as *root*
        (a prefetch).

        :param progress: called as ``progress(blobs, bytes)`` fetched so far.
        :param total: called once as ``total(blobs, bytes)`` with what is to be fetched."""
        try:
            files = self.local.tree_blobs(root, directories=False)
        except StoreError as error:
            if error.reason != REASON_BLOB_MISSING:  # a corrupt or invalid local object
                raise
            # some Directory is not local yet
            self._pull_directories(root)
            if tree_only:
                return
            files = self.local.tree_blobs(root, directories=False)
        if tree_only:
            return
        if progress is None and total is None:
            self.fetch_missing(files)
            return
        missing = self.local.find_missing(files)
        if total is not None:
            total(len(missing), sum(digest.size_bytes for digest in missing))
        for chunk, done in in_chunks(missing):
            self.fetch_missing(chunk)
            if progress is not None:
                progress(*done)

    def _pull_directories(self, root: Digest) -> None:
        for client in self._reachable():
            try:
                tree_from_remote(client, root, self.local)
                return
            except RemoteError as error:
                if not self._skip_if_down(client, error) and error.reason not in _TRY_NEXT:
                    raise
        # no remote has the whole tree or offers GetTree: fetch it level by level
        # from whichever remotes have each part
        walk_fetching(self, root)

    def push(
        self, root: Digest, *, progress: Progress | None = None, total: Progress | None = None
    ) -> list[PushReport]:
        """Upload the tree *root* to every remote marked ``push``: one
        ``FindMissingBlobs`` pass, then only the missing blobs, in batches.
        Blobs to send that are missing locally are fetched first.

        :param progress: called as ``progress(blobs, bytes)`` sent so far (to each
            remote in turn).
        :param total: called as ``total(blobs, bytes)`` with what a remote lacks,
            before sending it."""
        pushers = [client for client in self.remotes if client.spec.push]
        if not pushers:
            raise StoreError("no remote is configured with push: true", reason=REASON_NO_REMOTE)
        digests = self.tree_blobs(root, directories=True)
        return [push_tree(client, self, digests, progress, total) for client in pushers]
