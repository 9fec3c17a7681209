"""The ``ContentStore`` interface every store implements."""

from __future__ import annotations

import abc
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from google.protobuf.message import DecodeError

from casvfs.digest import Digest, digest_bytes, digest_message, entry_digest, serialize_message
from casvfs.errors import REASON_BLOB_CORRUPT, REASON_INVALID_DIRECTORY, StoreError
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.store.roots import LiveRoots
from casvfs.store.statcache import StatCache
from casvfs.store.validation import validate_directory

Progress = Callable[[int, int], None]
"""Called as ``progress(items_done, bytes_done)`` while blobs move."""


class ContentStore(abc.ABC):
    """A content-addressable store of blobs named by their :class:`Digest`.

    ``Directory`` messages are blobs too. A store may be *partial*: it may hold
    a tree's ``Directory`` messages without its file blobs. Walking, listing and
    stat only ever call :meth:`get_directory`; only reading file content calls
    :meth:`open` / :meth:`read_bytes`, which is where a store backed by remotes
    fetches what it lacks.
    """

    @abc.abstractmethod
    def has(self, digest: Digest) -> bool:
        """Whether the blob is present locally (a remote fetch is never attempted)."""

    def find_missing(self, digests: Iterable[Digest]) -> list[Digest]:
        """The digests among *digests* whose blobs are not present, without duplicates."""
        return [digest for digest in dict.fromkeys(digests) if not self.has(digest)]

    @abc.abstractmethod
    def open(self, digest: Digest) -> BinaryIO:
        """A binary stream of the blob. Raises :class:`StoreError` ``blob-missing``."""

    def read_bytes(self, digest: Digest) -> bytes:
        """The whole blob. Raises :class:`StoreError` ``blob-missing``."""
        with self.open(digest) as stream:
            return stream.read()

    @abc.abstractmethod
    def put_bytes(self, data: bytes) -> Digest:
        """Store *data* and return its digest."""

    @abc.abstractmethod
    def put_file(self, path: str | os.PathLike[str]) -> Digest:
        """Store a host file's contents (read in chunks) and return their digest."""

    def put_stream(self, stream: BinaryIO) -> Digest:
        """Store everything left in *stream* and return its digest."""
        return self.put_bytes(stream.read())

    def put_verified(self, expected: Digest, chunks: Iterable[bytes]) -> None:
        """Store the concatenated *chunks* as the blob *expected*, unless they do not
        hash to it: then raise :class:`StoreError` ``blob-corrupt`` and store nothing.
        This is how blobs from untrusted sources (remotes) enter a store."""
        data = b"".join(chunks)
        actual = digest_bytes(data)
        if actual != expected:
            raise StoreError(f"content for {expected} hashes to {actual}", reason=REASON_BLOB_CORRUPT)
        self.put_bytes(data)

    def fetch_missing(self, digests: Iterable[Digest]) -> None:
        """Make the blobs *digests* local where this store can fetch them (a store
        backed by remotes fetches them in batches, see
        :class:`~casvfs.remote.LayeredStore`). A purely local store has nothing to
        fetch: blobs it lacks stay missing and fail when read."""
        del digests

    def local_path(self, digest: Digest) -> str | None:
        """A read-only (0o444) host file holding the blob, suitable to hard-link or
        clone, checked for signs of change (a full hash where there are any); None
        where the store has no such file."""
        del digest
        return None

    def open_object(self, digest: Digest) -> int | None:
        """A read-only descriptor of a host file holding the blob, verified against
        its digest (``blob-corrupt`` otherwise), for a reader that wants to
        ``pread`` it; None where the store has no such file. The caller closes it."""
        del digest
        return None

    def scratch_space(self) -> str | None:
        """The directory where mounts of this store keep written files (on the
        store's file system), or None for the system's temporary directory."""
        return None

    def live_roots(self) -> LiveRoots | None:
        """Where processes record the trees they use right now (mounts), so that
        garbage collection keeps them; None for a store that collects none."""
        return None

    def stat_cache(self) -> StatCache | None:
        """The cache that lets re-imports of unchanged host files skip reading them,
        or None for a store that keeps none."""
        return None

    def read_cached(self, digest: Digest) -> bytes | None:
        """The blob, verified as :meth:`read_bytes` verifies it, if it can be had
        without waiting for a disk or a network (for callers on an event loop);
        None when it cannot, and on any failure (:meth:`read_bytes` then says what
        is wrong). The use is not recorded: pass what it served to :meth:`record_use`."""
        del digest
        return None

    def record_use(self, digests: Iterable[Digest]) -> None:
        """Record that blobs served by :meth:`read_cached` were used (a store that
        collects garbage by last use refreshes it); may wait for the disk."""
        del digests

    def get_directory(self, digest: Digest) -> pb.Directory:
        """Load and validate a ``Directory`` message (untrusted input)."""
        return self._parse_directory(digest, self.read_bytes(digest))

    def get_directory_cached(self, digest: Digest) -> pb.Directory | None:
        """:meth:`get_directory` if its blob can be read without waiting (see
        :meth:`read_cached`), else None."""
        data = self.read_cached(digest)
        return None if data is None else self._parse_directory(digest, data)

    @staticmethod
    def _parse_directory(digest: Digest, data: bytes) -> pb.Directory:
        message = pb.Directory()
        try:
            message.ParseFromString(data)
        except DecodeError:
            raise StoreError(
                f"blob {digest} is not a Directory message", reason=REASON_INVALID_DIRECTORY
            ) from None
        validate_directory(message, digest)
        return message

    def put_directory(self, message: pb.Directory) -> Digest:
        """Store a ``Directory`` message in canonical form and return its digest."""
        data = serialize_message(message)
        return self.put_bytes(data)

    def get_tree(
        self, root: Digest, *, unreadable: Callable[[Digest, StoreError], None] | None = None
    ) -> Iterator[tuple[Digest, pb.Directory]]:
        """Every ``Directory`` reachable from *root*, each once, breadth first.

        :param unreadable: called with a ``Directory`` that cannot be read and the
            error, instead of raising it; the walk goes on without what is below."""
        seen = {root}
        queue = deque([root])
        while queue:
            digest = queue.popleft()
            try:
                message = self.get_directory(digest)
            except StoreError as error:
                if unreadable is None:
                    raise
                unreadable(digest, error)
                continue
            yield digest, message
            for node in message.directories:
                child = entry_digest(node.digest)
                if child not in seen:
                    seen.add(child)
                    queue.append(child)

    def tree_blobs(self, root: Digest, *, directories: bool) -> list[Digest]:
        """The file blobs of the tree *root* (and its ``Directory`` messages, root
        first, if *directories*), each once."""
        blobs: dict[Digest, None] = {}
        for digest, message in self.get_tree(root):
            if directories:
                blobs[digest] = None
            for node in message.files:
                blobs[entry_digest(node.digest)] = None
        return list(blobs)

    def put_tree(self, tree: pb.Tree) -> Digest:
        """Store every ``Directory`` of a ``Tree`` message; return the root's digest."""
        for child in tree.children:
            validate_directory(child)
            self.put_directory(child)
        validate_directory(tree.root)
        return self.put_directory(tree.root)


def directory_digest(message: pb.Directory) -> Digest:
    """The digest a ``Directory`` message has in any store."""
    return digest_message(message)
