"""A client of one Remote Asset server (``build.bazel.remote.asset.v1``): Fetch
and Push of blobs and directories by URI and qualifiers.

A miss is an answer, not an exception: servers say ``NOT_FOUND`` either as the
call's status or in the response's ``status`` field (both are seen in the wild),
and either way the fetch returns None.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.duration_pb2 import Duration

from casvfs.digest import Digest
from casvfs.errors import REASON_BLOB_MISSING, REASON_REMOTE_ERROR, DigestError, RemoteError
from casvfs.protos import remote_asset_pb2 as ra
from casvfs.refs import Kind, Qualifiers, Ref, check_uri, make_qualifiers, utc_now
from casvfs.remote.channel import Channel
from casvfs.remote.config import RemoteSpec
from casvfs.timestamps import from_timestamp, to_timestamp

FETCH = "build.bazel.remote.asset.v1.Fetch"
PUSH = "build.bazel.remote.asset.v1.Push"
_NOT_FOUND = 5

QualifierInput = Mapping[str, str] | Iterable[tuple[str, str]]

# per kind: the method, its request and response, and the digest's field
_FETCHES: dict[str, tuple[str, Any, Any, str]] = {
    "blob": ("FetchBlob", ra.FetchBlobRequest, ra.FetchBlobResponse, "blob_digest"),
    "directory": (
        "FetchDirectory",
        ra.FetchDirectoryRequest,
        ra.FetchDirectoryResponse,
        "root_directory_digest",
    ),
}
_PUSHES: dict[str, tuple[str, Any, Any, str]] = {
    "blob": ("PushBlob", ra.PushBlobRequest, ra.PushBlobResponse, "blob_digest"),
    "directory": (
        "PushDirectory",
        ra.PushDirectoryRequest,
        ra.PushDirectoryResponse,
        "root_directory_digest",
    ),
}


@dataclass(frozen=True)
class Asset:
    """What a Fetch answered: the *uri* that matched, the *digest* of a blob or of
    a tree's root ``Directory``, the server's *qualifiers* and *expires_at*."""

    uri: str
    kind: Kind
    digest: Digest
    qualifiers: Qualifiers = ()
    expires_at: datetime.datetime | None = None

    def as_ref(self, name: str | None = None) -> Ref:
        """The local reference recording this answer (under *name*, default the URI)."""
        return Ref(
            name or self.uri,
            self.kind,
            self.digest,
            self.qualifiers,
            recorded_at=utc_now(),
            expire_at=self.expires_at,
        )


def _qualifiers(qualifiers: QualifierInput) -> list[ra.Qualifier]:
    return [ra.Qualifier(name=name, value=value) for name, value in make_qualifiers(qualifiers)]


def _uris(uris: str | Sequence[str]) -> list[str]:
    items = [uris] if isinstance(uris, str) else list(uris)
    if not items:
        raise ValueError("an asset request names at least one URI")
    return [check_uri(uri) for uri in items]


class AssetClient:
    """The Fetch and Push services of the remote *spec* (a connection of its own)."""

    def __init__(self, spec: RemoteSpec) -> None:
        self.spec = spec
        self.channel = Channel(spec)

    def __repr__(self) -> str:
        return f"AssetClient({self.spec.url!r})"

    @property
    def calls(self) -> dict[str, int]:
        """RPC attempts made so far, per method name."""
        return dict(self.channel.calls)

    def close(self) -> None:
        """Close the connection."""
        self.channel.close()

    def fetch(
        self,
        kind: Kind,
        uris: str | Sequence[str],
        qualifiers: QualifierInput = (),
        *,
        timeout: float | None = None,
        oldest_content_accepted: datetime.datetime | None = None,
    ) -> Asset | None:
        """The blob or tree (*kind*) the server has for any of *uris* with
        *qualifiers*, or None.

        :param timeout: how long the server may spend fetching from origin.
        :param oldest_content_accepted: refuse content pushed or fetched earlier."""
        fields = self._fetch_fields(uris, qualifiers, timeout, oldest_content_accepted)
        method, request_type, response_type, field = _FETCHES[kind]
        answer = self._fetch(method, request_type(**fields), response_type)
        if answer is None:
            return None
        return self._asset(kind, answer, getattr(answer, field), method)

    def fetch_blob(
        self, uris: str | Sequence[str], qualifiers: QualifierInput = (), **options: Any
    ) -> Asset | None:
        """:meth:`fetch` of a blob."""
        return self.fetch("blob", uris, qualifiers, **options)

    def fetch_directory(
        self, uris: str | Sequence[str], qualifiers: QualifierInput = (), **options: Any
    ) -> Asset | None:
        """:meth:`fetch` of a tree (the digest of its root ``Directory``)."""
        return self.fetch("directory", uris, qualifiers, **options)

    def push(
        self,
        kind: Kind,
        uris: str | Sequence[str],
        digest: Digest,
        qualifiers: QualifierInput = (),
        *,
        expire_at: datetime.datetime | None = None,
        references_blobs: Iterable[Digest] = (),
        references_directories: Iterable[Digest] = (),
    ) -> None:
        """Associate *uris* (with *qualifiers*) with the blob or tree (*kind*)
        *digest*, which must already be in the server's CAS with everything it
        references."""
        fields = self._push_fields(uris, qualifiers, expire_at, references_blobs, references_directories)
        method, request_type, response_type, field = _PUSHES[kind]
        request = request_type(**fields, **{field: digest.to_proto()})
        self.channel.unary(PUSH, method, request, response_type, digest=digest)

    def push_blob(self, uris: str | Sequence[str], digest: Digest, *args: Any, **options: Any) -> None:
        """:meth:`push` of a blob."""
        self.push("blob", uris, digest, *args, **options)

    def push_directory(self, uris: str | Sequence[str], digest: Digest, *args: Any, **options: Any) -> None:
        """:meth:`push` of a tree (the digest of its root ``Directory``)."""
        self.push("directory", uris, digest, *args, **options)

    # -- helpers ---------------------------------------------------------------------

    def _fetch_fields(
        self,
        uris: str | Sequence[str],
        qualifiers: QualifierInput,
        timeout: float | None,
        oldest: datetime.datetime | None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "instance_name": self.spec.instance_name,
            "uris": _uris(uris),
            "qualifiers": _qualifiers(qualifiers),
        }
        if timeout is not None:
            if timeout <= 0:
                raise ValueError("a fetch timeout must be positive")
            duration = Duration()
            duration.FromTimedelta(datetime.timedelta(seconds=timeout))
            fields["timeout"] = duration
        if oldest is not None:
            fields["oldest_content_accepted"] = to_timestamp(oldest)
        return fields

    def _push_fields(
        self,
        uris: str | Sequence[str],
        qualifiers: QualifierInput,
        expire_at: datetime.datetime | None,
        blobs: Iterable[Digest],
        trees: Iterable[Digest],
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "instance_name": self.spec.instance_name,
            "uris": _uris(uris),
            "qualifiers": _qualifiers(qualifiers),
            "references_blobs": [d.to_proto() for d in blobs],
            "references_directories": [d.to_proto() for d in trees],
        }
        if expire_at is not None:
            fields["expire_at"] = to_timestamp(expire_at)
        return fields

    def _fetch(self, method: str, request: Any, response_type: Any) -> Any:
        try:
            answer = self.channel.unary(FETCH, method, request, response_type)
        except RemoteError as error:
            if error.reason == REASON_BLOB_MISSING:  # NOT_FOUND as the call's status
                return None
            raise
        if answer.status.code == _NOT_FOUND:
            return None
        if answer.status.code != 0:
            raise self.channel.failure(
                method, f"status {answer.status.code}: {answer.status.message}", reason=REASON_REMOTE_ERROR
            )
        return answer

    def _asset(self, kind: Kind, answer: Any, digest: Any, method: str) -> Asset:
        try:
            found = Digest.from_proto(digest)
            pairs = make_qualifiers((q.name, q.value) for q in answer.qualifiers)
            uri = check_uri(answer.uri) if answer.uri else ""
        except (DigestError, ValueError) as error:
            raise self.channel.failure(
                method, f"the server answered {error}", reason=REASON_REMOTE_ERROR
            ) from None
        expires = from_timestamp(answer.expires_at) if answer.HasField("expires_at") else None
        return Asset(uri, kind, found, pairs, expires)
