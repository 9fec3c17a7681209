"""The Remote Asset ``Fetch`` and ``Push`` services of ``casvfs serve``.

A pushed asset is recorded as one reference (:class:`~casvfs.refs.Ref`) per URI in
a reference backend (:mod:`casvfs.serve.references`); a Fetch finds the newest
live one under any of its URIs whose qualifiers match. Both check the content
first: Push refuses an asset whose blob, tree (whole) or reference lists are not
all in the CAS, and Fetch answers ``NOT_FOUND`` when any of it has gone since, so
a client falls back to the origin instead of receiving a broken tree.

Misses are answered in the response's ``status`` (``NOT_FOUND``), as the spec
places "not found at the specified location"; BuildStream, Bazel and
buildbox-casd read it there as well as in the RPC's status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Protocol

import grpc

from casvfs.digest import Digest
from casvfs.protos import remote_asset_pb2 as ra
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.protos import status_pb2
from casvfs.refs import Kind, Match, Qualifiers, Ref, check_uri, make_qualifiers, newest_match, utc_now
from casvfs.serve.cas import Authorize
from casvfs.serve.fetching import OriginFetches
from casvfs.serve.metrics import Metrics
from casvfs.serve.rpc import (
    Handlers,
    RpcFailure,
    check_digest_function,
    check_qualifiers,
    invalid,
    parse_digest,
)
from casvfs.timestamps import from_timestamp, to_timestamp

FETCH = "build.bazel.remote.asset.v1.Fetch"
PUSH = "build.bazel.remote.asset.v1.Push"

ORIGIN_WAIT = 60.0
"""Seconds a Fetch waits for the origin when the request names no timeout (the
fetch goes on past it, for the next request)."""
_ANSWER_MARGIN = 0.1
MAX_URIS = 1000
MAX_QUALIFIERS = 100
MAX_REFERENCES = 100_000
_NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]


class References(Protocol):
    """Where references are kept: the refs index (embedded) or a backing CAS's
    ActionCache (shared by every server in front of it)."""

    def entries(self, uris: Iterable[str]) -> list[Ref]:
        """Every reference recorded under any of *uris*."""

    def record(self, refs: Iterable[Ref]) -> None:
        """Record *refs*, each replacing any with its URI, kind and qualifiers."""


Missing = Callable[[Sequence[Digest], Sequence[Digest]], list[Digest]]
"""``missing(blobs, trees)``: which of the blobs, and of the trees' blobs and
``Directory`` messages, the CAS lacks."""


class AssetService:
    """Fetch and Push over *references*, checking content with *missing*.

    :param match: ``subset`` (a fetch may name fewer qualifiers than were pushed)
        or ``exact``.
    :param qualifiers: the qualifier names accepted, or None for any: a request
        naming another gets ``INVALID_ARGUMENT`` with a ``google.rpc.BadRequest``
        detail holding one ``FieldViolation`` per such qualifier.
    :param authorize_push: raises ``RpcFailure`` unless the caller may push.
    :param origin: fetches misses from their origin, if given.
    """

    def __init__(
        self,
        references: References,
        missing: Missing,
        *,
        instance: str,
        match: Match,
        qualifiers: frozenset[str] | None,
        metrics: Metrics,
        authorize_push: Authorize,
        origin: OriginFetches | None = None,
    ) -> None:
        self.references = references
        self._origin = origin
        self._missing = missing
        self.instance = instance
        self.match: Match = match
        self.qualifiers = qualifiers
        self._metrics = metrics
        self._authorize_push = authorize_push

    def handlers(self) -> list[grpc.GenericRpcHandler[Any, Any]]:
        """The grpcio handlers of the two services."""
        fetch = Handlers(FETCH, self._metrics)
        fetch.unary("FetchBlob", ra.FetchBlobRequest, self.fetch_blob)
        fetch.unary("FetchDirectory", ra.FetchDirectoryRequest, self.fetch_directory)
        push = Handlers(PUSH, self._metrics)
        push.unary("PushBlob", ra.PushBlobRequest, self.push_blob)
        push.unary("PushDirectory", ra.PushDirectoryRequest, self.push_directory)
        return [fetch.generic(), push.generic()]

    # -- validation -----------------------------------------------------------------

    def _common(
        self, instance: str, uris: Sequence[str], qualifiers: Sequence[ra.Qualifier], digest_function: int
    ) -> Qualifiers:
        if instance.strip("/") != self.instance.strip("/"):
            raise invalid(f"unknown instance name {instance!r} (this server serves {self.instance!r})")
        check_digest_function(digest_function)
        if not uris:
            raise invalid("no URI given: a request names at least one")
        if len(uris) > MAX_URIS or len(qualifiers) > MAX_QUALIFIERS:
            raise invalid(f"at most {MAX_URIS} URIs and {MAX_QUALIFIERS} qualifiers in one request")
        for uri in uris:
            check_uri(uri)
        if self.qualifiers is not None:
            check_qualifiers((q.name for q in qualifiers), self.qualifiers, "qualifier(s) not supported")
        names = [q.name for q in qualifiers]
        if len(set(names)) != len(names):
            raise invalid("a qualifier name is given twice")
        return make_qualifiers((q.name, q.value) for q in qualifiers)

    # -- Fetch ----------------------------------------------------------------------

    def _fetch(
        self,
        kind: Kind,
        request: ra.FetchBlobRequest | ra.FetchDirectoryRequest,
        context: grpc.ServicerContext,
    ) -> tuple[Ref | None, status_pb2.Status]:
        asked = self._common(request.instance_name, request.uris, request.qualifiers, request.digest_function)
        oldest = (
            from_timestamp(request.oldest_content_accepted)
            if request.HasField("oldest_content_accepted")
            else None
        )
        found = newest_match(
            self.references.entries(request.uris), asked, match=self.match, kind=kind, oldest=oldest
        )
        if found is None:
            why, message = "unknown", f"no {kind} asset matches {request.uris[0]!r} and the qualifiers given"
        else:
            blobs, trees = found.content
            gone = self._missing(blobs, trees)
            if not gone:
                self._metrics.hits.labels(kind).inc()
                return found, status_pb2.Status(code=0)
            why = "incomplete"
            message = f"the content of {found.uri!r} is no longer all in the CAS ({len(gone)} blobs gone)"
        if self._origin is None:
            self._metrics.misses.labels(kind, why).inc()
            return None, status_pb2.Status(code=_NOT_FOUND, message=message)
        wait = request.timeout.ToTimedelta().total_seconds() if request.HasField("timeout") else ORIGIN_WAIT
        remaining = context.time_remaining()
        if remaining is not None:
            wait = min(wait, remaining - _ANSWER_MARGIN)
        fetched, status = self._origin.fetch(kind, request.uris, asked, wait)
        self._metrics.origin.labels(
            kind, grpc.StatusCode.OK.name if fetched else _code_name(status.code)
        ).inc()
        return fetched, status

    def fetch_blob(self, request: ra.FetchBlobRequest, context: grpc.ServicerContext) -> ra.FetchBlobResponse:
        found, status = self._fetch("blob", request, context)
        if found is None:
            return ra.FetchBlobResponse(status=status, uri=request.uris[0])
        return ra.FetchBlobResponse(blob_digest=found.digest.to_proto(), **_answer(found))

    def fetch_directory(
        self, request: ra.FetchDirectoryRequest, context: grpc.ServicerContext
    ) -> ra.FetchDirectoryResponse:
        found, status = self._fetch("directory", request, context)
        if found is None:
            return ra.FetchDirectoryResponse(status=status, uri=request.uris[0])
        return ra.FetchDirectoryResponse(root_directory_digest=found.digest.to_proto(), **_answer(found))

    # -- Push -----------------------------------------------------------------------

    def _push(
        self,
        kind: Literal["blob", "directory"],
        request: ra.PushBlobRequest | ra.PushDirectoryRequest,
        digest_message: pb.Digest,
        field: str,
    ) -> None:
        asked = self._common(request.instance_name, request.uris, request.qualifiers, request.digest_function)
        if len(request.references_blobs) + len(request.references_directories) > MAX_REFERENCES:
            raise invalid(f"at most {MAX_REFERENCES} references in one push")
        digest = parse_digest(digest_message, field)
        blobs = tuple(parse_digest(d, "references_blobs") for d in request.references_blobs)
        trees = tuple(parse_digest(d, "references_directories") for d in request.references_directories)
        now = utc_now()
        expire = from_timestamp(request.expire_at) if request.HasField("expire_at") else None
        refs = [
            Ref(uri, kind, digest, asked, blobs, trees, recorded_at=now, expire_at=expire)
            for uri in dict.fromkeys(request.uris)
        ]
        wanted_blobs, wanted_trees = refs[0].content
        gone = self._missing(wanted_blobs, wanted_trees)
        if gone:
            self._metrics.refused.labels(kind, "incomplete").inc()
            shown = ", ".join(str(d) for d in gone[:5]) + (", ..." if len(gone) > 5 else "")
            raise RpcFailure(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{len(gone)} blob(s) the asset needs are not in the CAS (upload them first): {shown}",
            )
        self.references.record(refs)
        self._metrics.pushes.labels(kind).inc()

    def push_blob(self, request: ra.PushBlobRequest, context: grpc.ServicerContext) -> ra.PushBlobResponse:
        self._authorize_push(context)
        self._push("blob", request, request.blob_digest, "blob_digest")
        return ra.PushBlobResponse()

    def push_directory(
        self, request: ra.PushDirectoryRequest, context: grpc.ServicerContext
    ) -> ra.PushDirectoryResponse:
        self._authorize_push(context)
        self._push("directory", request, request.root_directory_digest, "root_directory_digest")
        return ra.PushDirectoryResponse()


def _code_name(code: int) -> str:
    return next((item.name for item in grpc.StatusCode if item.value[0] == code), str(code))


def _answer(found: Ref) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "status": status_pb2.Status(code=0),
        "uri": found.uri,
        "qualifiers": [ra.Qualifier(name=name, value=value) for name, value in found.qualifiers],
        "digest_function": pb.DigestFunction.SHA256,
    }
    if found.expire_at is not None:
        answer["expires_at"] = to_timestamp(found.expire_at)
    return answer
