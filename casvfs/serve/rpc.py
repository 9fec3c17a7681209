"""What every RPC of ``casvfs serve`` shares: the failure a handler raises, how it
reaches the client (code, message, ``google.rpc`` details), and the wrapper that
times and counts each call and keeps any other exception from escaping.

Handlers are plain functions of ``(request, context)`` over casvfs's own message
classes, registered by their REAPI method paths with grpcio's generic handlers:
the wire format depends only on field numbers, so no generated stubs are needed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.message import Message

from casvfs.digest import Digest
from casvfs.errors import CasvfsError, DigestError
from casvfs.protos import details, status_pb2
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.serve.metrics import Metrics

log = logging.getLogger("casvfs.serve")

Request = TypeVar("Request", bound=Message)
Reply = TypeVar("Reply", bound=Message)

_DETAILS_KEY = "grpc-status-details-bin"
SHA256_FUNCTIONS = (pb.DigestFunction.UNKNOWN, pb.DigestFunction.SHA256)
"""Digest functions a request may name: SHA-256, or none (which means SHA-256)."""


class RpcFailure(Exception):
    """Raised by a handler: the call fails with *code* and *message*, and the
    ``google.rpc`` error *details* (``Any`` messages) in its status."""

    def __init__(self, code: grpc.StatusCode, message: str, details: Sequence[AnyMessage] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = tuple(details)


def invalid(message: str, details: Sequence[AnyMessage] = ()) -> RpcFailure:
    """An ``INVALID_ARGUMENT`` failure."""
    return RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, message, details)


def parse_digest(message: pb.Digest, field: str) -> Digest:
    """A digest from a request, or ``INVALID_ARGUMENT`` naming *field*."""
    try:
        return Digest.from_proto(message)
    except DigestError as error:
        raise invalid(f"{field}: {error}") from None


def check_qualifiers(names: Iterable[str], supported: Container[str], what: str) -> None:
    """Refuse (``INVALID_ARGUMENT``) qualifiers whose names are not *supported*,
    with the ``google.rpc.BadRequest`` detail the Remote Asset spec asks for: one
    ``FieldViolation`` per name, field ``qualifiers.name``, description
    ``"NAME" not supported``. *what* starts the message."""
    unsupported = sorted({name for name in names if name not in supported})
    if unsupported:
        violations = [("qualifiers.name", f'"{name}" not supported') for name in unsupported]
        raise invalid(f"{what}: {', '.join(unsupported)}", [details.bad_request(violations)])


def check_digest_function(value: int) -> None:
    """Refuse (``INVALID_ARGUMENT``) any digest function but SHA-256."""
    if value not in SHA256_FUNCTIONS:
        name = (
            pb.DigestFunction.Value.Name(value) if value in pb.DigestFunction.Value.values() else str(value)
        )
        raise invalid(f"digest function {name} is not supported (only SHA256)")


@dataclass(frozen=True)
class _Status(grpc.Status):
    # grpcio-status's rpc_status.to_status, for the one use made of it here
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, bytes], ...]


def _abort(context: grpc.ServicerContext, failure: RpcFailure) -> NoReturn:
    if not failure.details:
        context.abort(failure.code, failure.message)
    status = status_pb2.Status(code=failure.code.value[0], message=failure.message, details=failure.details)
    context.abort_with_status(
        _Status(failure.code, failure.message, ((_DETAILS_KEY, status.SerializeToString()),))
    )
    raise AssertionError("abort_with_status returns only by raising")


def _failure(error: Exception, method: str) -> RpcFailure:
    if isinstance(error, RpcFailure):
        return error
    if isinstance(error, ValueError):  # casvfs's invalid arguments (DigestError too)
        return invalid(str(error))
    if isinstance(error, CasvfsError):
        log.warning("%s failed: %s", method, error)
        return RpcFailure(grpc.StatusCode.INTERNAL, f"{method}: {error}")
    log.exception("%s failed", method)
    return RpcFailure(grpc.StatusCode.INTERNAL, f"{method}: internal error ({type(error).__name__})")


class Handlers:
    """The method handlers of one gRPC service, each timed, counted and guarded:
    a handler's :class:`RpcFailure` becomes the call's status; ``ValueError`` is
    ``INVALID_ARGUMENT``; anything else is ``INTERNAL`` (logged), never a crash."""

    def __init__(self, service: str, metrics: Metrics) -> None:
        self.service = service
        self._metrics = metrics
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def generic(self) -> grpc.GenericRpcHandler[Any, Any]:
        """The grpcio handler serving every method added."""
        return grpc.method_handlers_generic_handler(self.service, self._handlers)

    def _run(self, method: str, context: grpc.ServicerContext, call: Callable[[], Reply]) -> Reply:
        started = time.monotonic()
        code = grpc.StatusCode.OK
        try:
            return call()
        except Exception as error:  # nothing may escape a handler
            failure = _failure(error, method)
            code = failure.code
            _abort(context, failure)
        finally:
            self._metrics.observe(method, code, time.monotonic() - started)

    def unary(
        self,
        method: str,
        request_type: type[Request],
        handler: Callable[[Request, grpc.ServicerContext], Reply],
    ) -> None:
        """Serve ``/SERVICE/METHOD`` with ``handler(request, context) -> reply``."""
        self._single_reply(method, request_type, handler, grpc.unary_unary_rpc_method_handler)

    def _single_reply(self, method: str, request_type: type[Message], handler: Any, kind: Any) -> None:
        def serve(request: Any, context: grpc.ServicerContext) -> Message:
            reply: Message = self._run(method, context, lambda: handler(request, context))
            return reply

        self._handlers[method] = kind(
            serve, request_deserializer=request_type.FromString, response_serializer=_serialize
        )

    def server_stream(
        self,
        method: str,
        request_type: type[Request],
        handler: Callable[[Request, grpc.ServicerContext], Iterable[Reply]],
    ) -> None:
        """Serve a response stream; the handler's iterable is consumed lazily, and a
        failure part-way ends the stream with its status."""

        def serve(request: Request, context: grpc.ServicerContext) -> Iterator[Reply]:
            started = time.monotonic()
            code = grpc.StatusCode.OK
            try:
                yield from handler(request, context)
            except Exception as error:  # nothing may escape a handler
                failure = _failure(error, method)
                code = failure.code
                _abort(context, failure)
            finally:
                self._metrics.observe(method, code, time.monotonic() - started)

        self._handlers[method] = grpc.unary_stream_rpc_method_handler(
            serve, request_deserializer=request_type.FromString, response_serializer=_serialize
        )

    def client_stream(
        self,
        method: str,
        request_type: type[Request],
        handler: Callable[[Iterator[Request], grpc.ServicerContext], Reply],
    ) -> None:
        """Serve a request stream with ``handler(requests, context) -> reply``."""
        self._single_reply(method, request_type, handler, grpc.stream_unary_rpc_method_handler)


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data
