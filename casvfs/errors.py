"""The one exception family of casvfs.

Every failure raised by the public API is a :class:`CasvfsError` carrying a
stable, machine-readable ``reason`` string (one of the ``REASON_*`` constants
below). Invalid *arguments* (an absolute path, an unknown mode) are
:class:`ValueError`, as in BuildStream.
"""

from __future__ import annotations

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
