"""Validation of untrusted ``Directory`` messages before anything uses them."""

from __future__ import annotations

from casvfs.digest import Digest
from casvfs.errors import REASON_INVALID_DIRECTORY, DigestError, StoreError
from casvfs.protos import remote_execution_pb2 as pb


def _invalid(digest: Digest | None, detail: str) -> StoreError:
    where = f"Directory {digest}" if digest is not None else "Directory message"
    return StoreError(f"{where} is invalid: {detail}", reason=REASON_INVALID_DIRECTORY)


def check_name(name: str, digest: Digest | None = None) -> None:
    """Reject names that could address anything but one entry of one directory."""
    if not name:
        raise _invalid(digest, "empty entry name")
    if name in (".", ".."):
        raise _invalid(digest, f"entry named {name!r}")
    if "/" in name or "\0" in name:
        raise _invalid(digest, f"entry name {name!r} contains '/' or NUL")


def validate_directory(message: pb.Directory, digest: Digest | None = None) -> None:
    """Raise :class:`~casvfs.StoreError` (reason ``invalid-directory``) unless *message*
    has valid, unique names, each list sorted, and well-formed digests."""
    seen: set[str] = set()
    for kind, nodes in (
        ("files", message.files),
        ("directories", message.directories),
        ("symlinks", message.symlinks),
    ):
        previous: str | None = None
        for node in nodes:
            name = node.name
            check_name(name, digest)
            if previous is not None and name <= previous:
                if name == previous:
                    raise _invalid(digest, f"duplicate entry {name!r}")
                raise _invalid(digest, f"{kind} not sorted: {previous!r} before {name!r}")
            if name in seen:
                raise _invalid(digest, f"duplicate entry {name!r}")
            seen.add(name)
            previous = name
            if isinstance(node, pb.SymlinkNode):
                if not node.target or "\0" in node.target:
                    raise _invalid(digest, f"symlink {name!r} has an empty or NUL target")
            else:
                try:
                    Digest.from_proto(node.digest)
                except DigestError as error:
                    raise _invalid(digest, f"entry {name!r}: {error}") from None
