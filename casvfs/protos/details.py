"""``google.rpc`` error details inside a ``Status``, under the type URLs clients
look for (casvfs's own proto package would give its messages other names)."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.any_pb2 import Any

from casvfs.protos import error_details_pb2, status_pb2

BAD_REQUEST_TYPE_URL = "type.googleapis.com/google.rpc.BadRequest"


def bad_request(violations: Iterable[tuple[str, str]]) -> Any:
    """A ``google.rpc.BadRequest`` detail with one ``FieldViolation`` per
    ``(field, description)`` pair."""
    message = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
            for field, description in violations
        ]
    )
    return Any(type_url=BAD_REQUEST_TYPE_URL, value=message.SerializeToString())


def field_violations(status: status_pb2.Status) -> list[tuple[str, str]]:
    """The ``(field, description)`` pairs of every BadRequest detail in *status*."""
    found: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.type_url.rpartition("/")[2] == "google.rpc.BadRequest":
            message = error_details_pb2.BadRequest.FromString(detail.value)
            found += [(item.field, item.description) for item in message.field_violations]
    return found
