"""Fetching blobs on demand from many threads at once: each blob is asked for once
however many readers wait for it, and blobs asked for while earlier fetches are in
flight travel together in the next batch."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from casvfs.digest import Digest
from casvfs.errors import REASON_IO_ERROR, CasvfsError, StoreError

FetchBatch = Callable[[list[Digest]], dict[Digest, CasvfsError]]
"""Fetch a batch of blobs; return the error of each blob that could not be fetched."""


@dataclass
class _Waiter:
    done: threading.Event = field(default_factory=threading.Event)
    error: CasvfsError | None = None


class BlobFetcher:
    """Runs *fetch_batch* on up to *threads* worker threads, started on demand, for
    the blobs callers of :meth:`fetch` are waiting for.

    :param batch_bytes: how much a worker takes from the queue at once, counting
        each blob's size plus *entry_bytes* (its share of the request's framing),
        so that a batch fits one request.
    """

    def __init__(self, fetch_batch: FetchBatch, *, threads: int, batch_bytes: int, entry_bytes: int) -> None:
        self._fetch_batch = fetch_batch
        self._threads = threads
        self._batch_bytes = batch_bytes
        self._entry_bytes = entry_bytes
        self._lock = threading.Lock()
        self._queue: collections.deque[Digest] = collections.deque()
        self._waiting: dict[Digest, _Waiter] = {}
        self._workers = 0

    def fetch(self, digests: Iterable[Digest]) -> None:
        """Return once every blob of *digests* has been fetched; raise the first
        error met (a blob no remote has, an unreachable remote, a corrupt blob)."""
        waiters: list[_Waiter] = []
        with self._lock:
            for digest in digests:
                waiter = self._waiting.get(digest)
                if waiter is None:
                    waiter = self._waiting[digest] = _Waiter()
                    self._queue.append(digest)
                waiters.append(waiter)
            while self._workers < self._threads and self._workers < len(self._queue):
                self._workers += 1
                threading.Thread(target=self._work, name="casvfs-fetch", daemon=True).start()
        for waiter in waiters:
            waiter.done.wait()
        for waiter in waiters:
            if waiter.error is not None:
                raise waiter.error

    def _take_batch(self) -> list[Digest]:
        """Digests from the head of the queue up to the batch size (a blob bigger
        than a batch goes alone). Called with the lock held."""
        batch: list[Digest] = []
        size = 0
        while self._queue:
            cost = self._queue[0].size_bytes + self._entry_bytes
            if batch and size + cost > self._batch_bytes:
                break
            batch.append(self._queue.popleft())
            size += cost
        return batch

    def _work(self) -> None:
        while True:
            with self._lock:
                batch = self._take_batch()
                if not batch:
                    self._workers -= 1
                    return
            try:
                errors = self._fetch_batch(batch)
            except CasvfsError as error:
                errors = dict.fromkeys(batch, error)
            except Exception as error:  # a waiter must never hang
                errors = dict.fromkeys(batch, StoreError(f"fetch failed: {error!r}", reason=REASON_IO_ERROR))
            with self._lock:
                for digest in batch:
                    waiter = self._waiting.pop(digest)
                    waiter.error = errors.get(digest)
                    waiter.done.set()
