"""The one exception family of casvfs.

Every failure raised by the public API is a :class:`CasvfsError` carrying a
stable, machine-readable ``reason`` string (one of the ``REASON_*`` constants
below). Invalid *arguments* (an absolute path, an unknown mode) are
:class:`ValueError`, as in BuildStream.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

REASON_NOT_FOUND = "not-found"
REASON_NOT_A_DIRECTORY = "not-a-directory"
REASON_IS_A_DIRECTORY = "is-a-directory"
REASON_EXISTS = "exists"
REASON_NOT_EMPTY = "directory-not-empty"
REASON_NOT_A_SYMLINK = "not-a-symlink"
REASON_NOT_A_FILE = "not-a-regular-file"
REASON_SYMLINK_LOOP = "symlink-loop"
REASON_TYPE_MISMATCH = "type-mismatch"
REASON_INVALID_RENAME = "invalid-rename"
REASON_INVALID_DIRECTORY = "invalid-directory"
REASON_MERGE_CONFLICT = "merge-conflict"
REASON_BLOB_MISSING = "blob-missing"
REASON_BLOB_CORRUPT = "blob-corrupt"
REASON_IO_ERROR = "io-error"
REASON_INVALID_DIGEST = "invalid-digest"
REASON_STORE_MISMATCH = "store-mismatch"
REASON_REMOTE_UNAVAILABLE = "remote-unavailable"
REASON_REMOTE_TIMEOUT = "remote-timeout"
REASON_REMOTE_DENIED = "remote-denied"
REASON_REMOTE_ERROR = "remote-error"
REASON_REMOTE_UNSUPPORTED = "remote-unsupported"
REASON_NO_REMOTE = "no-remote"
REASON_INVALID_CONFIG = "invalid-config"
REASON_MOUNT_FAILED = "mount-failed"
REASON_IS_ROOT = "is-root"
REASON_NAME_TOO_LONG = "name-too-long"
REASON_PERMISSION_DENIED = "permission-denied"
REASON_READ_ONLY = "read-only"
REASON_TOO_LARGE = "too-large"
REASON_REF_NOT_FOUND = "ref-not-found"
REASON_INCOMPLETE = "incomplete"
REASON_ORIGIN_NOT_FOUND = "origin-not-found"
REASON_ORIGIN_FAILED = "origin-failed"
REASON_CHECKSUM_MISMATCH = "checksum-mismatch"
REASON_TIMEOUT = "timeout"


class CasvfsError(Exception):
    """Base of every error casvfs raises at run time.

    :param message: a human-readable sentence naming what failed.
    :param reason: a stable identifier for the kind of failure.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class DirectoryError(CasvfsError):
    """A :class:`~casvfs.Directory` operation failed (BuildStream's name)."""


class StoreError(CasvfsError):
    """A content store operation failed: a missing or corrupt blob, an I/O error."""


class DigestError(CasvfsError, ValueError):
    """A digest string or message is malformed."""


class RemoteError(StoreError):
    """A call to a remote CAS failed. The message names the remote (its URL, never
    its credentials), the call and, where one is concerned, the digest.

    :param remote: the remote's URL.
    :param call: the REAPI method, e.g. ``BatchReadBlobs``.
    """

    def __init__(self, message: str, *, reason: str, remote: str, call: str) -> None:
        super().__init__(message, reason=reason)
        self.remote = remote
        self.call = call


class ConfigError(CasvfsError, ValueError):
    """A remote configuration is invalid (reason ``invalid-config``)."""


class RefError(CasvfsError):
    """A named reference is missing (``ref-not-found``) or cannot be recorded
    because the content it names is not all in the store (``incomplete``)."""


class OriginError(CasvfsError):
    """Fetching from an origin (a URL, a git repository) failed: reason
    ``origin-not-found``, ``origin-failed`` or ``checksum-mismatch``."""


class MountError(CasvfsError):
    """Mounting or unmounting failed (reason ``mount-failed``)."""


_ERRNO_REASONS = {
    errno.ENOENT: REASON_NOT_FOUND,
    errno.ENOTDIR: REASON_NOT_A_DIRECTORY,
    errno.EISDIR: REASON_IS_A_DIRECTORY,
    errno.EEXIST: REASON_EXISTS,
    errno.ENOTEMPTY: REASON_NOT_EMPTY,
    errno.ELOOP: REASON_SYMLINK_LOOP,
    errno.ENAMETOOLONG: REASON_NAME_TOO_LONG,
    errno.EACCES: REASON_PERMISSION_DENIED,
    errno.EPERM: REASON_PERMISSION_DENIED,
    errno.EROFS: REASON_READ_ONLY,
}


def os_error(
    error: OSError, what: str, *, kind: type[CasvfsError] = DirectoryError, reason: str | None = None
) -> CasvfsError:
    """The casvfs error for an ``OSError`` about *what* (a path, or a sentence naming
    one): ``"WHAT: STRERROR"``, of class *kind*, with *reason* or else the reason of
    the errno (``io-error`` for any errno without one of its own).

    This is the one place where errno values become casvfs reasons."""
    if reason is None:
        reason = _ERRNO_REASONS.get(error.errno or 0, REASON_IO_ERROR)
    return kind(f"{what}: {error.strerror or error}", reason=reason)


@contextlib.contextmanager
def os_errors(what: str, *, kind: type[CasvfsError] = DirectoryError) -> Iterator[None]:
    """Raise :func:`os_error` for any ``OSError`` inside the block."""
    try:
        yield
    except OSError as error:
        raise os_error(error, what, kind=kind) from None
