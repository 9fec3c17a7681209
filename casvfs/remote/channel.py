"""One gRPC connection to a remote: credentials, deadlines, retries, and the
translation of gRPC failures into :class:`~casvfs.errors.RemoteError`.

Calls go by their REAPI method paths with casvfs's own message classes; the wire
format depends only on field numbers, so no generated service stubs are needed.
"""

from __future__ import annotations

import collections
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from casvfs.errors import (
    REASON_BLOB_MISSING,
    REASON_INVALID_CONFIG,
    REASON_REMOTE_DENIED,
    REASON_REMOTE_ERROR,
    REASON_REMOTE_TIMEOUT,
    REASON_REMOTE_UNAVAILABLE,
    REASON_REMOTE_UNSUPPORTED,
    ConfigError,
    RemoteError,
)
from casvfs.protos import details, status_pb2
from casvfs.remote.config import RemoteSpec, target

log = logging.getLogger("casvfs.remote")

Response = TypeVar("Response", bound=Message)
Result = TypeVar("Result")

# Retried: the server is briefly away or shedding load. Everything else is final.
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
_REASONS = {
    grpc.StatusCode.UNAVAILABLE: REASON_REMOTE_UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: REASON_REMOTE_TIMEOUT,
    grpc.StatusCode.PERMISSION_DENIED: REASON_REMOTE_DENIED,
    grpc.StatusCode.UNAUTHENTICATED: REASON_REMOTE_DENIED,
    grpc.StatusCode.UNIMPLEMENTED: REASON_REMOTE_UNSUPPORTED,
    grpc.StatusCode.NOT_FOUND: REASON_BLOB_MISSING,
}
_FIRST_BACKOFF = 0.1
_MAX_BACKOFF = 5.0
# Messages are bounded by the batch sizes casvfs chooses, not by gRPC's 4 MiB default.
_MAX_MESSAGE = 64 << 20


class Channel:
    """A lazily opened gRPC channel to one remote, with per-call deadlines and
    retries, counting the attempts made for each method (``calls``)."""

    def __init__(self, spec: RemoteSpec) -> None:
        self.spec = spec
        self.calls: collections.Counter[str] = collections.Counter()
        """Attempts per method name, retries included."""
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._metadata: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:
        return f"Channel({self.spec.url!r})"

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        with self._lock:
            if self._channel is not None:
                self._channel.close()
                self._channel = None

    def _open(self) -> grpc.Channel:
        with self._lock:
            if self._channel is None:
                self._channel, self._metadata = _connect(self.spec)
            return self._channel

    def unary(
        self,
        service: str,
        method: str,
        request: Message,
        response_type: type[Response],
        *,
        digest: object = None,
        size_hint: int = 0,
    ) -> Response:
        """Call ``/SERVICE/METHOD`` with *request*; *digest* names the blob concerned
        in errors, *size_hint* (bytes moved) extends the deadline."""
        stub = self._open().unary_unary(
            f"/{service}/{method}",
            request_serializer=_serialize,
            response_deserializer=response_type.FromString,
        )

        def attempt(timeout: float) -> Response:
            response: Response = stub(request, timeout=timeout, metadata=self._metadata)
            return response

        return self.retrying(method, attempt, digest=digest, size_hint=size_hint)

    def server_stream(
        self,
        service: str,
        method: str,
        request: Message,
        response_type: type[Response],
        *,
        timeout: float,
    ) -> Iterable[Response]:
        """A response stream of ``/SERVICE/METHOD``; the caller runs it inside
        :meth:`retrying`, which counts and repeats the attempt."""
        stub = self._open().unary_stream(
            f"/{service}/{method}",
            request_serializer=_serialize,
            response_deserializer=response_type.FromString,
        )
        responses: Iterable[Response] = stub(request, timeout=timeout, metadata=self._metadata)
        return responses

    def client_stream(
        self,
        service: str,
        method: str,
        requests: Callable[[], Iterator[Message]],
        response_type: type[Response],
        *,
        digest: object = None,
        size_hint: int = 0,
    ) -> Response:
        """Send the stream ``requests()`` (made afresh for each attempt) to
        ``/SERVICE/METHOD`` and return the single response."""
        stub = self._open().stream_unary(
            f"/{service}/{method}",
            request_serializer=_serialize,
            response_deserializer=response_type.FromString,
        )

        def attempt(timeout: float) -> Response:
            response: Response = stub(requests(), timeout=timeout, metadata=self._metadata)
            return response

        return self.retrying(method, attempt, digest=digest, size_hint=size_hint)

    def deadline(self, size_hint: int = 0) -> float:
        """Seconds allowed for one call moving *size_hint* bytes: the configured
        timeout plus one second per MiB, so big transfers are not cut short while
        a silent server still fails in bounded time."""
        return self.spec.timeout + size_hint / (1 << 20)

    def retrying(
        self,
        method: str,
        attempt: Callable[[float], Result],
        *,
        digest: object = None,
        size_hint: int = 0,
    ) -> Result:
        """Run ``attempt(timeout)``, retrying with exponential backoff and jitter on
        UNAVAILABLE and RESOURCE_EXHAUSTED; any final failure is a RemoteError."""
        backoff = _FIRST_BACKOFF
        for tries_left in range(self.spec.retries, -1, -1):
            self.calls[method] += 1
            try:
                return attempt(self.deadline(size_hint))
            except grpc.RpcError as error:
                code = _code(error)
                if code in _RETRYABLE and tries_left > 0:
                    log.debug("%s %s: %s; retrying in %.1f s", self.spec.url, method, code, backoff)
                    time.sleep(backoff * (0.5 + random.random()))
                    backoff = min(backoff * 2, _MAX_BACKOFF)
                    continue
                raise self.error(method, error, digest=digest) from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    def error(self, method: str, error: grpc.RpcError, *, digest: object = None) -> RemoteError:
        """The RemoteError for a failed call of *method*."""
        code = _code(error)
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        violations = _field_violations(error)
        if violations:
            details += " (" + "; ".join(f"{field}: {text}" for field, text in violations) + ")"
        return self.failure(
            method,
            f"{code.name if code is not None else 'error'}: {details}",
            reason=_REASONS.get(code, REASON_REMOTE_ERROR) if code is not None else REASON_REMOTE_ERROR,
            digest=digest,
        )

    def failure(self, method: str, what: str, *, reason: str, digest: object = None) -> RemoteError:
        """A RemoteError for *method* on this remote, about *digest* if given."""
        about = f" for {digest}" if digest is not None else ""
        return RemoteError(
            f"remote {self.spec.url}: {method}{about} failed: {what}",
            reason=reason,
            remote=self.spec.url,
            call=method,
        )


def _field_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The ``google.rpc.BadRequest`` field violations a failed call carries."""
    if not isinstance(error, grpc.Call):
        return []
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            try:
                return details.field_violations(status_pb2.Status.FromString(value))
            except DecodeError:
                return []
    return []


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _code(error: grpc.RpcError) -> grpc.StatusCode | None:
    return error.code() if isinstance(error, grpc.Call) else None


def _read_file(path: str, what: str, url: str) -> bytes:
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except OSError as error:
        # the path is the user's own configuration, not a secret; the content would be
        raise ConfigError(
            f"remote {url}: cannot read {what} {path}: {error.strerror}", reason=REASON_INVALID_CONFIG
        ) from None


def _connect(spec: RemoteSpec) -> tuple[grpc.Channel, tuple[tuple[str, str], ...]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ("grpc.max_send_message_length", _MAX_MESSAGE),
    ]
    auth = spec.auth
    metadata: tuple[tuple[str, str], ...] = ()
    if auth.access_token is not None:
        token = _read_file(auth.access_token, "access-token", spec.url).decode().strip()
        metadata = (("authorization", f"Bearer {token}"),)
    address = target(spec.url)
    if not spec.uses_tls:
        return grpc.insecure_channel(address, options=options), metadata
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read_file(auth.server_cert, "server-cert", spec.url) if auth.server_cert else None,
        private_key=_read_file(auth.client_key, "client-key", spec.url) if auth.client_key else None,
        certificate_chain=_read_file(auth.client_cert, "client-cert", spec.url) if auth.client_cert else None,
    )
    return grpc.secure_channel(address, credentials, options=options), metadata
