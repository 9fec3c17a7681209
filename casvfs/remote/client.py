"""A client of one REAPI CAS server: Capabilities, the CAS batch calls, ByteStream
and GetTree, moving blobs between the server and a local :class:`ContentStore`.

Every blob received is verified against its digest as it is stored
(:meth:`ContentStore.put_verified`); a blob that does not match is refused with a
``blob-corrupt`` :class:`~casvfs.errors.RemoteError` naming the remote, and
nothing is stored for it.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from google.protobuf.message import Message

from casvfs.digest import CHUNK_SIZE, Digest
from casvfs.errors import (
    REASON_BLOB_CORRUPT,
    REASON_REMOTE_ERROR,
    REASON_REMOTE_UNSUPPORTED,
    CasvfsError,
    RemoteError,
    StoreError,
)
from casvfs.protos import bytestream_pb2 as bs
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.remote.channel import Channel
from casvfs.remote.config import RemoteSpec
from casvfs.store.base import ContentStore

CAS = "build.bazel.remote.execution.v2.ContentAddressableStorage"
CAPABILITIES = "build.bazel.remote.execution.v2.Capabilities"
BYTESTREAM = "google.bytestream.ByteStream"

# gRPC servers refuse messages over 4 MiB unless configured otherwise, whatever
# they advertise; buildbox-casd advertises no limit and refuses batches whose
# blobs add up to more than 4 MiB - 64 KiB. No batch is bigger than that.
DEFAULT_BATCH_BYTES = (4 << 20) - (64 << 10)
# Room for the request's own fields and each entry's digest and tags.
BATCH_OVERHEAD = 1 << 10
ENTRY_OVERHEAD = 100
FIND_MISSING_BATCH = 16_384
"""Digests per FindMissingBlobs request (about 1.3 MB)."""
GET_TREE_PAGE = 4096
"""Directories asked for per GetTree page."""
UPLOAD_THREADS = 4
_OK = 0
_NOT_FOUND = 5


@dataclass(frozen=True)
class Capabilities:
    """What casvfs uses of a server's ``CacheCapabilities``."""

    max_batch_bytes: int
    """The largest batch request or response casvfs sends or asks for."""


def plan_batches(digests: Iterable[Digest], max_batch_bytes: int) -> tuple[list[list[Digest]], list[Digest]]:
    """Split *digests* into batches that fit *max_batch_bytes* each and the blobs too
    big for any batch (which go through ByteStream), keeping the order given."""
    limit = max_batch_bytes - BATCH_OVERHEAD
    batches: list[list[Digest]] = []
    large: list[Digest] = []
    current: list[Digest] = []
    used = 0
    for digest in digests:
        cost = digest.size_bytes + ENTRY_OVERHEAD
        if cost > limit:
            large.append(digest)
            continue
        if used + cost > limit:
            batches.append(current)
            current, used = [], 0
        current.append(digest)
        used += cost
    if current:
        batches.append(current)
    return batches, large


class CasClient:
    """The CAS, Capabilities and ByteStream services of one remote.

    :param spec: where the remote is and how to reach it.
    """

    def __init__(self, spec: RemoteSpec) -> None:
        self.spec = spec
        self.channel = Channel(spec)
        self._capabilities: Capabilities | None = None
        self._lock = threading.Lock()
        self.received = 0
        """Blobs received and stored so far."""

    def __repr__(self) -> str:
        return f"CasClient({self.spec.url!r})"

    @property
    def url(self) -> str:
        """The remote's URL (what errors and warnings name)."""
        return self.spec.url

    @property
    def calls(self) -> dict[str, int]:
        """RPC attempts made so far, per method name."""
        return dict(self.channel.calls)

    def close(self) -> None:
        """Close the connection."""
        self.channel.close()

    def capabilities(self) -> Capabilities:
        """The server's batch limit, asked once; raises ``remote-unsupported`` if it
        does not offer SHA-256. A server without the Capabilities service gets the
        default limit."""
        with self._lock:
            if self._capabilities is None:
                self._capabilities = self._ask_capabilities()
            return self._capabilities

    def _ask_capabilities(self) -> Capabilities:
        request = pb.GetCapabilitiesRequest(instance_name=self.spec.instance_name)
        try:
            answer = self.channel.unary(CAPABILITIES, "GetCapabilities", request, pb.ServerCapabilities)
        except RemoteError as error:
            if error.reason == REASON_REMOTE_UNSUPPORTED:
                return Capabilities(DEFAULT_BATCH_BYTES)
            raise
        cache = answer.cache_capabilities
        functions = list(cache.digest_functions)
        if functions and pb.DigestFunction.SHA256 not in functions:
            raise self.channel.failure(
                "GetCapabilities",
                "the server does not offer SHA-256 digests",
                reason=REASON_REMOTE_UNSUPPORTED,
            )
        advertised = cache.max_batch_total_size_bytes
        limit = min(advertised, DEFAULT_BATCH_BYTES) if advertised > 0 else DEFAULT_BATCH_BYTES
        return Capabilities(limit)

    # -- queries -----------------------------------------------------------------

    def find_missing(self, digests: Iterable[Digest]) -> list[Digest]:
        """The digests the remote lacks, in batches of :data:`FIND_MISSING_BATCH`."""
        unique = list(dict.fromkeys(digests))
        missing: list[Digest] = []
        for start in range(0, len(unique), FIND_MISSING_BATCH):
            chunk = unique[start : start + FIND_MISSING_BATCH]
            request = pb.FindMissingBlobsRequest(
                instance_name=self.spec.instance_name, blob_digests=[d.to_proto() for d in chunk]
            )
            answer = self.channel.unary(CAS, "FindMissingBlobs", request, pb.FindMissingBlobsResponse)
            missing += [self._digest_of(d, "FindMissingBlobs") for d in answer.missing_blob_digests]
        return missing

    def get_tree(self, root: Digest) -> Iterator[pb.Directory]:
        """Every ``Directory`` below *root* (root included) as the server sends them,
        following page tokens; an interrupted page is asked for again."""
        token = ""
        while True:
            request = pb.GetTreeRequest(
                instance_name=self.spec.instance_name,
                root_digest=root.to_proto(),
                page_size=GET_TREE_PAGE,
                page_token=token,
            )
            pages = self.channel.retrying(
                "GetTree", functools.partial(self._tree_pages, request), digest=root
            )
            next_token = ""
            for page in pages:
                yield from page.directories
                next_token = page.next_page_token or next_token
            if not next_token or next_token == token:
                return
            token = next_token

    def _tree_pages(self, request: pb.GetTreeRequest, timeout: float) -> list[pb.GetTreeResponse]:
        # read a whole call before yielding anything, so a retry never repeats output
        return list(self.channel.server_stream(CAS, "GetTree", request, pb.GetTreeResponse, timeout=timeout))

    # -- downloads ---------------------------------------------------------------

    def download(self, digests: Sequence[Digest], into: ContentStore) -> set[Digest]:
        """Fetch *digests* into the store *into*, verified; return those the remote
        has (the others it reported NOT_FOUND)."""
        batches, large = plan_batches(dict.fromkeys(digests), self.capabilities().max_batch_bytes)
        found: set[Digest] = set()
        for batch in batches:
            found |= self._batch_read(batch, into)
        for digest in large:
            if self._stream_read(digest, into):
                found.add(digest)
        return found

    def _batch_read(self, batch: list[Digest], into: ContentStore) -> set[Digest]:
        request = pb.BatchReadBlobsRequest(
            instance_name=self.spec.instance_name, digests=[d.to_proto() for d in batch]
        )
        size = sum(d.size_bytes for d in batch)
        answer = self.channel.unary(CAS, "BatchReadBlobs", request, pb.BatchReadBlobsResponse, size_hint=size)
        asked = set(batch)
        found: set[Digest] = set()
        for response in answer.responses:
            digest = self._digest_of(response.digest, "BatchReadBlobs")
            if digest not in asked:
                raise self.channel.failure(
                    "BatchReadBlobs",
                    f"answered {digest}, which was not asked for",
                    reason=REASON_REMOTE_ERROR,
                )
            if response.status.code == _NOT_FOUND:
                continue
            if response.status.code != _OK:
                raise self.channel.failure(
                    "BatchReadBlobs",
                    f"status {response.status.code}: {response.status.message}",
                    reason=REASON_REMOTE_ERROR,
                    digest=digest,
                )
            self._store(into, digest, [response.data], "BatchReadBlobs")
            found.add(digest)
        return found

    def _stream_read(self, digest: Digest, into: ContentStore) -> bool:
        request = bs.ReadRequest(resource_name=self._resource(f"blobs/{digest.hash}/{digest.size_bytes}"))

        def attempt(timeout: float) -> bool:
            responses = self.channel.server_stream(
                BYTESTREAM, "Read", request, bs.ReadResponse, timeout=timeout
            )
            try:
                self._store(into, digest, (response.data for response in responses), "Read")
            except grpc.RpcError as error:
                if isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.NOT_FOUND:
                    return False
                raise
            return True

        return self.channel.retrying("Read", attempt, digest=digest, size_hint=digest.size_bytes)

    def _store(self, into: ContentStore, digest: Digest, chunks: Iterable[bytes], call: str) -> None:
        try:
            into.put_verified(digest, chunks)
            with self._lock:
                self.received += 1
        except StoreError as error:
            if error.reason != REASON_BLOB_CORRUPT:
                raise
            raise self.channel.failure(
                call,
                f"the blob received does not match its digest ({error})",
                reason=REASON_BLOB_CORRUPT,
                digest=digest,
            ) from None

    # -- uploads -----------------------------------------------------------------

    def upload(self, digests: Sequence[Digest], source: ContentStore) -> None:
        """Send the blobs *digests* from *source* (which must hold them all):
        small ones in batches, large ones through ByteStream, a few calls at once."""
        batches, large = plan_batches(dict.fromkeys(digests), self.capabilities().max_batch_bytes)
        with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="casvfs-upload") as pool:
            jobs = [pool.submit(self._batch_update, batch, source) for batch in batches]
            jobs += [pool.submit(self._stream_write, digest, source) for digest in large]
            for job in jobs:
                job.result()

    def _batch_update(self, batch: list[Digest], source: ContentStore) -> None:
        request = pb.BatchUpdateBlobsRequest(
            instance_name=self.spec.instance_name,
            requests=[
                pb.BatchUpdateBlobsRequest.Request(digest=d.to_proto(), data=source.read_bytes(d))
                for d in batch
            ],
        )
        size = sum(d.size_bytes for d in batch)
        answer = self.channel.unary(
            CAS, "BatchUpdateBlobs", request, pb.BatchUpdateBlobsResponse, size_hint=size
        )
        for response in answer.responses:
            if response.status.code != _OK:
                raise self.channel.failure(
                    "BatchUpdateBlobs",
                    f"status {response.status.code}: {response.status.message}",
                    reason=REASON_REMOTE_ERROR,
                    digest=self._digest_of(response.digest, "BatchUpdateBlobs"),
                )

    def _stream_write(self, digest: Digest, source: ContentStore) -> None:
        resource = self._resource(f"uploads/{uuid.uuid4()}/blobs/{digest.hash}/{digest.size_bytes}")

        local_failure: list[CasvfsError] = []

        def requests() -> Iterator[Message]:
            offset = 0
            try:
                with source.open(digest) as stream:
                    while True:
                        chunk = stream.read(CHUNK_SIZE)
                        last = offset + len(chunk) >= digest.size_bytes
                        yield bs.WriteRequest(
                            resource_name=resource if offset == 0 else "",
                            write_offset=offset,
                            finish_write=last,
                            data=chunk,
                        )
                        offset += len(chunk)
                        if last or not chunk:
                            return
            except CasvfsError as error:
                # a corrupt local blob (verified as read): end the stream unfinished
                # and report the local error, not the server's answer to it
                local_failure.append(error)

        try:
            answer = self.channel.client_stream(
                BYTESTREAM, "Write", requests, bs.WriteResponse, digest=digest, size_hint=digest.size_bytes
            )
        except RemoteError:
            if local_failure:
                raise local_failure[0] from None
            raise
        if local_failure:
            raise local_failure[0]
        # -1: the server already had the blob and stopped reading early (compressed uploads)
        if answer.committed_size not in (digest.size_bytes, -1):
            raise self.channel.failure(
                "Write", f"committed {answer.committed_size} bytes", reason=REASON_REMOTE_ERROR, digest=digest
            )

    # -- helpers -----------------------------------------------------------------

    def _resource(self, path: str) -> str:
        instance = self.spec.instance_name.strip("/")
        return f"{instance}/{path}" if instance else path

    def _digest_of(self, message: pb.Digest, call: str) -> Digest:
        try:
            return Digest.from_proto(message)
        except ValueError:
            raise self.channel.failure(
                call, f"the server sent an invalid digest {message.hash!r}", reason=REASON_REMOTE_ERROR
            ) from None
