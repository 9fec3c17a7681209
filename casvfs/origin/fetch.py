"""Content from its origin: ``http://``, ``https://`` and ``file://`` downloads
(streamed into the store, checked against ``checksum.sri``), archives unpacked
into trees, and git repositories as the tree of one commit."""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import BinaryIO

from casvfs.digest import Digest
from casvfs.directory.archive import import_archive
from casvfs.errors import (
    REASON_CHECKSUM_MISMATCH,
    REASON_ORIGIN_FAILED,
    REASON_ORIGIN_NOT_FOUND,
    DirectoryError,
    OriginError,
)
from casvfs.origin.sri import Integrity
from casvfs.refs import Kind
from casvfs.store.base import ContentStore

DEFAULT_TIMEOUT = 300.0
SCHEMES = ("http", "https", "file")
GIT_RESOURCE_TYPE = "application/x-git"
QUALIFIERS = frozenset({"checksum.sri", "directory", "resource_type", "vcs.commit", "vcs.branch"})
"""The qualifiers a fetch from origin understands."""

Progress = Callable[[int], None]
"""Called with the bytes downloaded so far."""


class _Hashing:
    """A binary stream that hashes what is read from it (the SRI algorithms)
    and reports progress."""

    def __init__(self, stream: BinaryIO, algorithms: tuple[str, ...], progress: Progress | None) -> None:
        self._stream = stream
        self._hashes = {algorithm: hashlib.new(algorithm) for algorithm in algorithms}
        self._progress = progress
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        for hasher in self._hashes.values():
            hasher.update(data)
        self.read_bytes += len(data)
        if self._progress is not None:
            self._progress(self.read_bytes)
        return data

    def digests(self) -> dict[str, bytes]:
        return {algorithm: hasher.digest() for algorithm, hasher in self._hashes.items()}


def _open(url: str, timeout: float) -> BinaryIO:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"cannot fetch {url!r}: the scheme must be one of {', '.join(SCHEMES)}")
    if parts.scheme == "file":
        path = urllib.request.url2pathname(parts.path)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise OriginError(f"{url}: no such file", reason=REASON_ORIGIN_NOT_FOUND) from None
        except OSError as error:
            raise OriginError(f"{url}: {error.strerror}", reason=REASON_ORIGIN_FAILED) from None
    try:
        response: BinaryIO = urllib.request.urlopen(url, timeout=timeout)
        return response
    except urllib.error.HTTPError as error:
        reason = REASON_ORIGIN_NOT_FOUND if error.code in (404, 410) else REASON_ORIGIN_FAILED
        raise OriginError(f"{url}: HTTP {error.code} {error.reason}", reason=reason) from None
    except (urllib.error.URLError, OSError) as error:
        raise OriginError(f"{url}: {getattr(error, 'reason', error)}", reason=REASON_ORIGIN_FAILED) from None


def download(
    store: ContentStore,
    url: str,
    *,
    integrity: Integrity | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> Digest:
    """Stream *url* into *store* and return the blob's digest; ``OriginError``
    ``checksum-mismatch`` if *integrity* is given and no hash of it matches (the
    blob may then be in the store, but nothing names it)."""
    with _open(url, timeout) as source:
        hashing = _Hashing(source, integrity.algorithms if integrity else (), progress)
        try:
            digest = store.put_stream(hashing)  # type: ignore[arg-type]
        except OSError as error:
            raise OriginError(f"{url}: {error}", reason=REASON_ORIGIN_FAILED) from None
    if integrity is not None and not integrity.satisfied(hashing.digests()):
        raise OriginError(f"{url}: the content does not match {integrity}", reason=REASON_CHECKSUM_MISMATCH)
    return digest


def _git(*arguments: str, cwd: str, timeout: float) -> bytes:
    try:
        done = subprocess.run(
            ["git", *arguments],
            cwd=cwd,
            capture_output=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise OriginError(
            f"git {arguments[0]} took more than {timeout:.0f} s", reason=REASON_ORIGIN_FAILED
        ) from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise OriginError(f"git {arguments[0]}: {message[-1] if message else done.returncode}",
                          reason=REASON_ORIGIN_FAILED)  # fmt: skip
    return done.stdout


def fetch_git(
    store: ContentStore,
    url: str,
    *,
    commit: str | None = None,
    branch: str | None = None,
    subdirectory: str = "",
    timeout: float = DEFAULT_TIMEOUT,
) -> Digest:
    """The tree of *commit* (or of the tip of *branch*, default the remote's
    HEAD) of the git repository at *url*, without ``.git``. Only objects reach a
    temporary bare repository; the tree goes from ``git archive`` straight into
    the store."""
    with tempfile.TemporaryDirectory(prefix="casvfs-git-") as work:
        _git("init", "--bare", "--quiet", work, cwd=work, timeout=timeout)
        wanted = f"+refs/heads/{branch}:refs/heads/{branch}" if branch else "+HEAD:refs/heads/fetched"
        _git("fetch", "--quiet", "--no-tags", url, wanted, cwd=work, timeout=timeout)
        revision = commit or (f"refs/heads/{branch}" if branch else "refs/heads/fetched")
        if commit and branch:
            # the commit must be on the branch asked for
            _git("merge-base", "--is-ancestor", commit, f"refs/heads/{branch}", cwd=work, timeout=timeout)
        archive = subprocess.Popen(
            ["git", "archive", "--format=tar", f"{revision}^{{tree}}"],
            cwd=work,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert archive.stdout is not None
        try:
            result = import_archive(store, archive.stdout, subdirectory=subdirectory)  # type: ignore[arg-type]
        except DirectoryError:
            archive.kill()
            archive.wait()
            if archive.returncode not in (0, -9):
                raise OriginError(f"{url}: no commit {revision!r}", reason=REASON_ORIGIN_NOT_FOUND) from None
            raise
        finally:
            archive.stdout.close()
        errors = archive.stderr.read() if archive.stderr else b""
        if archive.wait() != 0:
            raise OriginError(f"{url}: no commit {revision!r}: {errors.decode(errors='replace').strip()}",
                              reason=REASON_ORIGIN_NOT_FOUND)  # fmt: skip
        return result.digest


def is_git(url: str, qualifiers: Mapping[str, str]) -> bool:
    """Whether a directory fetch of *url* means a git repository."""
    return (
        qualifiers.get("resource_type") == GIT_RESOURCE_TYPE
        or "vcs.commit" in qualifiers
        or "vcs.branch" in qualifiers
        or url.removesuffix("/").endswith(".git")
    )


def fetch_from_origin(
    store: ContentStore,
    kind: Kind,
    url: str,
    qualifiers: Mapping[str, str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
) -> Digest:
    """A blob (a download) or a tree (an archive unpacked, or a git commit) from
    *url*, as the qualifiers ask (see :data:`QUALIFIERS`)."""
    integrity = Integrity.parse(qualifiers["checksum.sri"]) if "checksum.sri" in qualifiers else None
    subdirectory = qualifiers.get("directory", "")
    if kind == "blob":
        return download(store, url, integrity=integrity, timeout=timeout, progress=progress)
    if is_git(url, qualifiers):
        return fetch_git(
            store,
            url,
            commit=qualifiers.get("vcs.commit"),
            branch=qualifiers.get("vcs.branch"),
            subdirectory=subdirectory,
            timeout=timeout,
        )
    blob = download(store, url, integrity=integrity, timeout=timeout, progress=progress)
    # a zip is read from its end: the store's own file where it has one, seekable
    path = store.local_path(blob)
    with open(path, "rb") if path is not None else store.open(blob) as stream:
        return import_archive(store, stream, subdirectory=subdirectory).digest
