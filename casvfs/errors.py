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
