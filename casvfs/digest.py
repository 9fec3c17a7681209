"""Digests: the identity of every blob and Directory message (REAPI SHA-256)."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import BinaryIO

from google.protobuf.message import Message

from casvfs.errors import REASON_INVALID_DIGEST, DigestError, StoreError, os_errors
from casvfs.protos import remote_execution_pb2 as pb

_HASH_RE = re.compile(r"[0-9a-f]{64}")
# Large enough to amortise per-call overhead; hashlib releases the GIL on it.
CHUNK_SIZE = 1 << 20


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """An immutable REAPI digest: lowercase SHA-256 hex and the blob's size in bytes."""

    hash: str
    size_bytes: int

    def __post_init__(self) -> None:
        # fullmatch: "$" in a match would let a trailing newline through.
        if not isinstance(self.hash, str) or not _HASH_RE.fullmatch(self.hash):
            raise DigestError(f"not a SHA-256 hex digest: {self.hash!r}", reason=REASON_INVALID_DIGEST)
        if not isinstance(self.size_bytes, int) or self.size_bytes < 0:
            raise DigestError(f"invalid blob size: {self.size_bytes!r}", reason=REASON_INVALID_DIGEST)

    def __str__(self) -> str:
        return f"{self.hash}/{self.size_bytes}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse the ``hash/size`` form printed by :meth:`__str__`."""
        hash_, sep, size = text.strip().partition("/")
        if not sep or not size.isdigit():
            raise DigestError(f"expected HASH/SIZE, got {text!r}", reason=REASON_INVALID_DIGEST)
        return cls(hash_, int(size))

    @classmethod
    def from_proto(cls, message: pb.Digest) -> Digest:
        """Build from a wire ``Digest`` message, validating it."""
        return cls(message.hash, message.size_bytes)

    def to_proto(self) -> pb.Digest:
        """The wire ``Digest`` message."""
        return pb.Digest(hash=self.hash, size_bytes=self.size_bytes)


_new_digest = object.__new__
_set_field = object.__setattr__


def checked_digest(hash_: str, size_bytes: int) -> Digest:
    """A :class:`Digest` of values already known to be valid (a hash just computed,
    an entry of a validated ``Directory`` message), built without checking them
    again: a third of the cost of loading a directory was re-checking its digests."""
    digest = _new_digest(Digest)
    _set_field(digest, "hash", hash_)
    _set_field(digest, "size_bytes", size_bytes)
    return digest


def entry_digest(message: pb.Digest) -> Digest:
    """The digest of an entry of a validated ``Directory`` message, not checked again."""
    return checked_digest(message.hash, message.size_bytes)


def digest_bytes(data: bytes) -> Digest:
    """SHA-256 digest of a byte string."""
    return checked_digest(hashlib.sha256(data).hexdigest(), len(data))


def digest_stream(stream: BinaryIO) -> Digest:
    """SHA-256 digest of everything left in a binary stream, read in chunks."""
    hasher = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        hasher.update(chunk)
        size += len(chunk)
    return checked_digest(hasher.hexdigest(), size)


def digest_file(path: str | os.PathLike[str]) -> Digest:
    """SHA-256 digest of a file's contents, never holding the whole file in memory.

    Raises :class:`~casvfs.StoreError` (reason from the errno: ``not-found``,
    ``permission-denied``, ``io-error``…) when the file cannot be read."""
    what = f"cannot read {os.fspath(path)}"
    with os_errors(what, kind=StoreError), open(path, "rb", buffering=0) as stream:
        return digest_stream(stream)


def serialize_message(message: Message) -> bytes:
    """Canonical (deterministic) wire form of a message, as hashed by REAPI peers."""
    return message.SerializeToString(deterministic=True)


def digest_message(message: Message) -> Digest:
    """Digest of a message's canonical wire form."""
    return digest_bytes(serialize_message(message))


EMPTY_DIGEST = digest_bytes(b"")
"""The digest of the empty blob, which is also the digest of an empty ``Directory``."""
