"""The CAS, ByteStream and Capabilities services of ``casvfs serve`` over a
:class:`~casvfs.ContentStore` (the embedded default: a :class:`~casvfs.LocalStore`).

Every blob received is verified against its digest before it is stored
(:meth:`ContentStore.put_verified`); one that does not match is refused with
``INVALID_ARGUMENT`` and nothing is stored.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc

from casvfs.digest import CHUNK_SIZE, Digest, entry_digest
from casvfs.errors import REASON_BLOB_CORRUPT, REASON_BLOB_MISSING, StoreError
from casvfs.protos import bytestream_pb2 as bs
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.protos import semver_pb2, status_pb2
from casvfs.serve.metrics import Metrics
from casvfs.serve.rpc import Handlers, RpcFailure, check_digest_function, invalid, parse_digest
from casvfs.store.base import ContentStore

CAS = "build.bazel.remote.execution.v2.ContentAddressableStorage"
CAPABILITIES = "build.bazel.remote.execution.v2.Capabilities"
BYTESTREAM = "google.bytestream.ByteStream"

MAX_BATCH_BYTES = (4 << 20) - (64 << 10)
"""The largest batch (sum of blob sizes) served or accepted, advertised in the
capabilities: under gRPC's default 4 MiB message limit, with room for the fields."""
MAX_DIGESTS = 100_000
"""Digests accepted in one FindMissingBlobs or batch request."""
GET_TREE_PAGE = 1000
"""Directories per GetTree response when the client names no page size."""
GET_TREE_BYTES = MAX_BATCH_BYTES
"""Bytes of ``Directory`` messages per GetTree response, whatever the page size
asked for: 4,096 directories of the Linux sources are 6.5 MB, over gRPC's
message limit."""
_DIRECTORY_OVERHEAD = 8
_OK = 0
_NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]
_INVALID = grpc.StatusCode.INVALID_ARGUMENT.value[0]
_READ = re.compile(r"^(?:(?P<instance>.*)/)?blobs/(?P<hash>[^/]+)/(?P<size>\d+)$")
_WRITE = re.compile(r"^(?:(?P<instance>.*)/)?uploads/[^/]+/blobs/(?P<hash>[^/]+)/(?P<size>\d+)(?:/.*)?$")

Authorize = Callable[[grpc.ServicerContext], None]
"""Raises :class:`RpcFailure` unless the caller may write."""


class CasService:
    """CAS, ByteStream and Capabilities over *store*, for REAPI instance *instance*;
    *authorize_write* guards the calls that store blobs."""

    def __init__(
        self,
        store: ContentStore,
        *,
        instance: str,
        metrics: Metrics,
        authorize_write: Authorize,
    ) -> None:
        self.store = store
        self.instance = instance
        self._metrics = metrics
        self._authorize_write = authorize_write

    def handlers(self) -> list[grpc.GenericRpcHandler[Any, Any]]:
        """The grpcio handlers of the three services."""
        cas = Handlers(CAS, self._metrics)
        cas.unary("FindMissingBlobs", pb.FindMissingBlobsRequest, self.find_missing_blobs)
        cas.unary("BatchUpdateBlobs", pb.BatchUpdateBlobsRequest, self.batch_update_blobs)
        cas.unary("BatchReadBlobs", pb.BatchReadBlobsRequest, self.batch_read_blobs)
        cas.server_stream("GetTree", pb.GetTreeRequest, self.get_tree)
        capabilities = Handlers(CAPABILITIES, self._metrics)
        capabilities.unary("GetCapabilities", pb.GetCapabilitiesRequest, self.get_capabilities)
        stream = Handlers(BYTESTREAM, self._metrics)
        stream.server_stream("Read", bs.ReadRequest, self.read)
        stream.client_stream("Write", bs.WriteRequest, self.write)
        stream.unary("QueryWriteStatus", bs.QueryWriteStatusRequest, self.query_write_status)
        return [cas.generic(), capabilities.generic(), stream.generic()]

    def _check_instance(self, name: str) -> None:
        if name.strip("/") != self.instance.strip("/"):
            raise invalid(f"unknown instance name {name!r} (this server serves {self.instance!r})")

    def _digests(self, messages: Iterable[pb.Digest], field: str) -> list[Digest]:
        digests = [parse_digest(message, field) for message in messages]
        if len(digests) > MAX_DIGESTS:
            raise invalid(f"{len(digests)} digests in one request; at most {MAX_DIGESTS}")
        return digests

    # -- Capabilities ---------------------------------------------------------------

    def get_capabilities(
        self, request: pb.GetCapabilitiesRequest, context: grpc.ServicerContext
    ) -> pb.ServerCapabilities:
        self._check_instance(request.instance_name)
        return pb.ServerCapabilities(
            cache_capabilities=pb.CacheCapabilities(
                digest_functions=[pb.DigestFunction.SHA256],
                action_cache_update_capabilities=pb.ActionCacheUpdateCapabilities(update_enabled=False),
                max_batch_total_size_bytes=MAX_BATCH_BYTES,
                symlink_absolute_path_strategy=pb.SymlinkAbsolutePathStrategy.ALLOWED,
            ),
            low_api_version=semver_pb2.SemVer(major=2),
            high_api_version=semver_pb2.SemVer(major=2, minor=3),
        )

    # -- CAS ------------------------------------------------------------------------

    def find_missing_blobs(
        self, request: pb.FindMissingBlobsRequest, context: grpc.ServicerContext
    ) -> pb.FindMissingBlobsResponse:
        self._check_instance(request.instance_name)
        check_digest_function(request.digest_function)
        digests = self._digests(request.blob_digests, "blob_digests")
        missing = self.store.find_missing(digests)
        return pb.FindMissingBlobsResponse(missing_blob_digests=[d.to_proto() for d in missing])

    def batch_update_blobs(
        self, request: pb.BatchUpdateBlobsRequest, context: grpc.ServicerContext
    ) -> pb.BatchUpdateBlobsResponse:
        self._authorize_write(context)
        self._check_instance(request.instance_name)
        check_digest_function(request.digest_function)
        total = sum(len(item.data) for item in request.requests)
        if total > MAX_BATCH_BYTES or len(request.requests) > MAX_DIGESTS:
            raise invalid(f"a batch of {total} bytes; at most {MAX_BATCH_BYTES} (use ByteStream)")
        answer = pb.BatchUpdateBlobsResponse()
        for item in request.requests:
            digest = parse_digest(item.digest, "requests.digest")
            status = self._store_blob(digest, item.data, item.compressor)
            answer.responses.add(digest=item.digest, status=status)
            if status.code == _OK:
                self._metrics.bytes.labels("received").inc(len(item.data))
        return answer

    def _store_blob(self, digest: Digest, data: bytes, compressor: int) -> status_pb2.Status:
        if compressor != pb.Compressor.IDENTITY:
            return status_pb2.Status(code=_INVALID, message="compressed blobs are not supported")
        if len(data) != digest.size_bytes:
            return status_pb2.Status(code=_INVALID, message=f"{len(data)} bytes sent for {digest}")
        try:
            self.store.put_verified(digest, [data])
        except StoreError as error:
            if error.reason != REASON_BLOB_CORRUPT:
                raise
            return status_pb2.Status(code=_INVALID, message=f"the data sent does not hash to {digest}")
        return status_pb2.Status(code=_OK)

    def batch_read_blobs(
        self, request: pb.BatchReadBlobsRequest, context: grpc.ServicerContext
    ) -> pb.BatchReadBlobsResponse:
        self._check_instance(request.instance_name)
        check_digest_function(request.digest_function)
        digests = self._digests(request.digests, "digests")
        total = sum(d.size_bytes for d in digests)
        if total > MAX_BATCH_BYTES:
            raise invalid(f"a batch of {total} bytes; at most {MAX_BATCH_BYTES} (use ByteStream)")
        answer = pb.BatchReadBlobsResponse()
        for digest in digests:
            try:
                data = self.store.read_bytes(digest)
            except StoreError as error:
                # a missing blob, or a corrupt one (now quarantined): neither is served
                if error.reason not in (REASON_BLOB_MISSING, REASON_BLOB_CORRUPT):
                    raise
                answer.responses.add(digest=digest.to_proto(), status=status_pb2.Status(code=_NOT_FOUND))
                continue
            answer.responses.add(digest=digest.to_proto(), data=data, status=status_pb2.Status(code=_OK))
            self._metrics.bytes.labels("sent").inc(len(data))
        return answer

    def get_tree(
        self, request: pb.GetTreeRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GetTreeResponse]:
        """Directories breadth first from the root; the page token is the position
        in that order (the walk is repeated to reach it: trees are immutable)."""
        self._check_instance(request.instance_name)
        check_digest_function(request.digest_function)
        root = parse_digest(request.root_digest, "root_digest")
        if request.page_size < 0:
            raise invalid("page_size must not be negative")
        try:
            start = int(request.page_token or "0")
        except ValueError:
            raise invalid(f"page_token {request.page_token!r} was not made by this server") from None
        if not self.store.has(root):
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"root directory {root} is not in the CAS")
        walk = itertools.islice(self._walk(root), start, None)
        page: list[pb.Directory] = []
        used = 0
        for message in walk:
            size = message.ByteSize() + _DIRECTORY_OVERHEAD
            full = len(page) == (request.page_size or GET_TREE_PAGE) or used + size > GET_TREE_BYTES
            if page and full:
                if request.page_size > 0:
                    # a page may hold fewer than page_size: the next one starts here
                    yield pb.GetTreeResponse(directories=page, next_page_token=str(start + len(page)))
                    return
                yield pb.GetTreeResponse(directories=page)
                page, used = [], 0
            page.append(message)
            used += size
        yield pb.GetTreeResponse(directories=page)

    def _walk(self, root: Digest) -> Iterator[pb.Directory]:
        # what is missing below the root is left out, as REAPI's GetTree allows
        seen = {root}
        queue = deque([root])
        while queue:
            digest = queue.popleft()
            try:
                message = self.store.get_directory(digest)
            except StoreError as error:
                if error.reason != REASON_BLOB_MISSING:
                    raise
                continue
            yield message
            for node in message.directories:
                child = entry_digest(node.digest)
                if child not in seen:
                    seen.add(child)
                    queue.append(child)

    # -- ByteStream -----------------------------------------------------------------

    def _resource(self, name: str, pattern: re.Pattern[str]) -> Digest:
        found = pattern.match(name)
        if found is None:
            raise invalid(f"resource name {name!r} is not of the form this server serves")
        self._check_instance(found.group("instance") or "")
        try:
            return Digest(found.group("hash"), int(found.group("size")))
        except ValueError as error:
            raise invalid(f"resource name {name!r}: {error}") from None

    def read(self, request: bs.ReadRequest, context: grpc.ServicerContext) -> Iterator[bs.ReadResponse]:
        digest = self._resource(request.resource_name, _READ)
        if request.read_offset < 0 or request.read_limit < 0:
            raise invalid("read_offset and read_limit must not be negative")
        if request.read_offset > digest.size_bytes:
            raise RpcFailure(grpc.StatusCode.OUT_OF_RANGE, f"read_offset beyond the end of {digest}")
        left = request.read_limit or digest.size_bytes - request.read_offset
        try:
            stream = self.store.open(digest)
        except StoreError as error:
            if error.reason != REASON_BLOB_MISSING:
                raise
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"blob {digest} is not in the CAS") from None
        with stream:
            if request.read_offset:
                stream.seek(request.read_offset)
            while left > 0:
                chunk = stream.read(min(CHUNK_SIZE, left))
                if not chunk:
                    break
                left -= len(chunk)
                self._metrics.bytes.labels("sent").inc(len(chunk))
                yield bs.ReadResponse(data=chunk)

    def write(self, requests: Iterator[bs.WriteRequest], context: grpc.ServicerContext) -> bs.WriteResponse:
        self._authorize_write(context)
        first = next(requests, None)
        if first is None:
            raise invalid("an empty Write stream")
        digest = self._resource(first.resource_name, _WRITE)
        if "compressed-blobs" in first.resource_name:
            raise invalid("compressed blobs are not supported")
        if self.store.has(digest):
            return bs.WriteResponse(committed_size=digest.size_bytes)
        received = [0]

        def chunks() -> Iterator[bytes]:
            request: bs.WriteRequest | None = first
            while request is not None:
                if request.write_offset != received[0]:
                    raise invalid(f"write_offset {request.write_offset}; {received[0]} bytes were written")
                received[0] += len(request.data)
                if received[0] > digest.size_bytes:
                    raise invalid(f"more than the {digest.size_bytes} bytes of {digest} sent")
                yield request.data
                if request.finish_write:
                    return
                request = next(requests, None)
            raise invalid("the Write stream ended without finish_write")

        try:
            self.store.put_verified(digest, chunks())
        except StoreError as error:
            if error.reason != REASON_BLOB_CORRUPT:
                raise
            raise invalid(f"the data sent does not hash to {digest}") from None
        self._metrics.bytes.labels("received").inc(received[0])
        return bs.WriteResponse(committed_size=digest.size_bytes)

    def query_write_status(
        self, request: bs.QueryWriteStatusRequest, context: grpc.ServicerContext
    ) -> bs.QueryWriteStatusResponse:
        digest = self._resource(request.resource_name, _WRITE)
        if not self.store.has(digest):
            raise RpcFailure(grpc.StatusCode.NOT_FOUND, f"no finished upload of {digest}")
        return bs.QueryWriteStatusResponse(committed_size=digest.size_bytes, complete=True)
