"""Fetches from origin for the Fetch misses of ``casvfs serve``.

Only URIs under the prefixes the operator allows are fetched (none by default), so
a server is never an open proxy into its network. Identical fetches (same kind,
URI and qualifiers) run once, however many requests wait for them; a fetch that
outlives the request's timeout keeps going in the background, and what it
records serves the next request.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from collections.abc import Callable, Sequence

import grpc

from casvfs.digest import Digest
from casvfs.errors import (
    REASON_CHECKSUM_MISMATCH,
    REASON_ORIGIN_NOT_FOUND,
    CasvfsError,
    DirectoryError,
    OriginError,
)
from casvfs.origin import QUALIFIERS, fetch_from_origin
from casvfs.protos import status_pb2
from casvfs.refs import Kind, Qualifiers, Ref
from casvfs.serve.rpc import check_qualifiers, invalid
from casvfs.store.base import ContentStore

log = logging.getLogger("casvfs.serve")

FETCH_THREADS = 4
_Key = tuple[Kind, str, Qualifiers]


def _status(code: grpc.StatusCode, message: str) -> status_pb2.Status:
    return status_pb2.Status(code=code.value[0], message=message)


class OriginFetches:
    """Fetches into *store* of URIs under *allow*; *record* keeps what they
    found, *publish* (if given) first makes a fetched tree or blob complete where
    the server checks content (a remote CAS)."""

    def __init__(
        self,
        store: ContentStore,
        allow: Sequence[str],
        record: Callable[[list[Ref]], None],
        *,
        publish: Callable[[Kind, Digest], None] | None = None,
    ) -> None:
        self.store = store
        self.allow = tuple(allow)
        self._record = record
        self._publish = publish
        self._pool = concurrent.futures.ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="casvfs-origin")
        self._lock = threading.Lock()
        self._running: dict[_Key, concurrent.futures.Future[Ref]] = {}

    def close(self) -> None:
        """Stop starting fetches (those under way finish)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def allowed(self, uri: str) -> bool:
        """Whether *uri* is under one of the allowed prefixes."""
        return any(uri.startswith(prefix) for prefix in self.allow)

    def fetch(
        self, kind: Kind, uris: Sequence[str], asked: Qualifiers, timeout: float
    ) -> tuple[Ref | None, status_pb2.Status]:
        """Fetch the first allowed URI of *uris*, waiting at most *timeout*
        seconds; the reference found, or None and the status to answer."""
        check_qualifiers(
            (name for name, _value in asked), QUALIFIERS, "cannot fetch from origin with qualifier(s)"
        )
        uri = next((uri for uri in uris if self.allowed(uri)), None)
        if uri is None:
            return None, _status(
                grpc.StatusCode.PERMISSION_DENIED, "no URI is under a prefix this server fetches"
            )
        key = (kind, uri, asked)
        with self._lock:
            future = self._running.get(key)
            if future is None:
                future = self._pool.submit(self._run, key)
                self._running[key] = future
        try:
            return future.result(timeout=max(timeout, 0.0)), _status(grpc.StatusCode.OK, "")
        except concurrent.futures.TimeoutError:
            return None, _status(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"{uri} is still being fetched; ask again later"
            )
        except OriginError as error:
            code = {
                REASON_ORIGIN_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
                REASON_CHECKSUM_MISMATCH: grpc.StatusCode.ABORTED,
            }.get(error.reason, grpc.StatusCode.UNAVAILABLE)
            return None, _status(code, str(error))
        except DirectoryError as error:  # a hostile or broken archive
            return None, _status(grpc.StatusCode.ABORTED, f"{uri}: {error}")
        except ValueError as error:  # a malformed checksum.sri, an unsupported scheme
            raise invalid(str(error)) from None

    def _run(self, key: _Key) -> Ref:
        kind, uri, asked = key
        try:
            digest = fetch_from_origin(self.store, kind, uri, dict(asked))
            if self._publish is not None:
                self._publish(kind, digest)
            ref = Ref(uri, kind, digest, asked)
            self._record([ref])
            log.info("fetched %s from origin: %s", uri, digest)
            return ref
        except CasvfsError as error:
            log.warning("fetching %s from origin failed: %s", uri, error)
            raise
        finally:
            with self._lock:
                self._running.pop(key, None)
