"""Archives straight into a content store: tar (plain, gzip, xz, bzip2, zstd) and
zip, member by member, with no staging directory on disk.

Each file is streamed into the store as it is read; the ``Directory`` messages
are built bottom up at the end, keeping the archive's executables and symlinks
(as BuildStream records them: no mtimes or modes, which a source's key must not
depend on). A member that would land outside the tree (an absolute name, a
``..`` that climbs above the root, a symlink or hard link pointing out of it) is
refused, and with it the whole archive: ``DirectoryError`` reason
``unsafe-archive``, nothing of it named anywhere. Device nodes and FIFOs, which a
CAS cannot hold, are left out.
"""

from __future__ import annotations

import contextlib
import io
import lzma
import stat as stat_module
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO, cast

from casvfs.digest import Digest
from casvfs.errors import REASON_INVALID_DIRECTORY, REASON_NOT_FOUND, DirectoryError
from casvfs.store.base import ContentStore
from casvfs.tree import FileType, Node, directory_to_proto

REASON_UNSAFE_ARCHIVE = "unsafe-archive"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class _Dir:
    entries: dict[str, Node | _Dir] = field(default_factory=dict)


@dataclass
class ArchiveImport:
    """What :func:`import_archive` made: the tree's root digest and what it left out."""

    digest: Digest
    files: int = 0
    left_out: list[str] = field(default_factory=list)
    """Members a CAS cannot hold (devices, FIFOs)."""


def _unsafe(name: str, why: str) -> DirectoryError:
    return DirectoryError(f"archive member {name!r} {why}", reason=REASON_UNSAFE_ARCHIVE)


def _parts(name: str) -> list[str]:
    """The path of member *name* inside the tree, refused if it escapes."""
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _unsafe(name, "is absolute")
    parts: list[str] = []
    for part in name.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise _unsafe(name, "climbs above the root")
            parts.pop()
            continue
        parts.append(part)
    return parts


class _Builder:
    def __init__(self, store: ContentStore) -> None:
        self.store = store
        self.root = _Dir()
        self.files = 0
        self.left_out: list[str] = []

    def _parent(self, parts: list[str], name: str) -> _Dir:
        directory = self.root
        for part in parts[:-1]:
            child = directory.entries.get(part)
            if not isinstance(child, _Dir):
                # a file or link in the way: the later member wins, as tar extracts it
                child = _Dir()
                directory.entries[part] = child
            directory = child
        return directory

    def directory(self, name: str) -> None:
        parts = _parts(name)
        if parts and not isinstance(self._parent(parts, name).entries.get(parts[-1]), _Dir):
            self._parent(parts, name).entries[parts[-1]] = _Dir()

    def file(self, name: str, stream: IO[bytes], executable: bool) -> None:
        parts = _parts(name)
        if not parts:
            raise _unsafe(name, "has no name")
        # tarfile's and zipfile's member readers are binary streams under another name
        digest = self.store.put_stream(cast(BinaryIO, stream))
        self._parent(parts, name).entries[parts[-1]] = Node(
            parts[-1], FileType.REGULAR_FILE, executable=executable, size=digest.size_bytes, digest=digest
        )
        self.files += 1

    def symlink(self, name: str, target: str) -> None:
        parts = _parts(name)
        if not parts:
            raise _unsafe(name, "has no name")
        # resolved lexically from the link's directory, it must stay inside
        if target.startswith("/") or _climbs(parts[:-1], target):
            raise _unsafe(name, f"links out of the tree (to {target!r})")
        self._parent(parts, name).entries[parts[-1]] = Node(parts[-1], FileType.SYMLINK, target=target)

    def hard_link(self, name: str, target: str) -> None:
        parts = _parts(name)
        source = self._find(_parts(target))
        if not isinstance(source, Node) or source.type is not FileType.REGULAR_FILE:
            raise _unsafe(name, f"hard-links to {target!r}, which is not a file earlier in the archive")
        if not parts:
            raise _unsafe(name, "has no name")
        self._parent(parts, name).entries[parts[-1]] = source.renamed(parts[-1])
        self.files += 1

    def _find(self, parts: list[str]) -> Node | _Dir | None:
        found: Node | _Dir | None = self.root
        for part in parts:
            if not isinstance(found, _Dir):
                return None
            found = found.entries.get(part)
        return found

    def build(self, subdirectory: str) -> Digest:
        top = self._find(_parts(subdirectory)) if subdirectory else self.root
        if not isinstance(top, _Dir):
            raise DirectoryError(f"the archive holds no directory {subdirectory!r}", reason=REASON_NOT_FOUND)
        return self._store(top)

    def _store(self, top: _Dir) -> Digest:
        # iterative post-order: archives may nest deeper than Python's recursion limit
        digests: dict[int, Digest] = {}
        pending: list[tuple[_Dir, bool]] = [(top, False)]
        while pending:
            directory, ready = pending.pop()
            if not ready:
                pending.append((directory, True))
                children = [child for child in directory.entries.values() if isinstance(child, _Dir)]
                pending.extend((child, False) for child in children)
                continue
            nodes = [
                _dir_node(name, digests[id(entry)]) if isinstance(entry, _Dir) else entry
                for name, entry in directory.entries.items()
            ]
            digests[id(directory)] = self.store.put_directory(directory_to_proto(nodes, None))
        return digests[id(top)]


def _dir_node(name: str, digest: Digest) -> Node:
    return Node(name, FileType.DIRECTORY, digest=digest)


def _climbs(parents: list[str], target: str) -> bool:
    """Whether the relative symlink *target* in the directory *parents* climbs
    above the root of the tree."""
    depth = len(parents)
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def _tar_members(builder: _Builder, archive: tarfile.TarFile) -> None:
    for member in archive:
        if member.isdir():
            builder.directory(member.name)
        elif member.isreg():
            extracted = archive.extractfile(member)
            assert extracted is not None
            with extracted:
                builder.file(member.name, extracted, bool(member.mode & stat_module.S_IXUSR))
        elif member.issym():
            builder.symlink(member.name, member.linkname)
        elif member.islnk():
            builder.hard_link(member.name, member.linkname)
        else:
            _parts(member.name)
            builder.left_out.append(member.name)


def _zip_members(builder: _Builder, archive: zipfile.ZipFile) -> None:
    for info in archive.infolist():
        mode = info.external_attr >> 16
        if info.is_dir():
            builder.directory(info.filename)
        elif stat_module.S_ISLNK(mode):
            builder.symlink(info.filename, archive.read(info).decode())
        else:
            with archive.open(info) as stream:
                builder.file(info.filename, stream, bool(mode & stat_module.S_IXUSR))


@contextlib.contextmanager
def _zstd_stream(stream: BinaryIO) -> Iterator[BinaryIO]:
    import zstandard  # only .tar.zst archives need it

    with zstandard.ZstdDecompressor().stream_reader(stream) as reader:
        yield reader


def import_archive(store: ContentStore, stream: BinaryIO, *, subdirectory: str = "") -> ArchiveImport:
    """Import the archive read from *stream* (tar of any compression, or zip,
    told apart by their first bytes) into *store*; return the root digest of the
    tree, or of its *subdirectory*. Raises ``DirectoryError``: reason
    ``unsafe-archive`` for a member escaping the tree, ``invalid-directory`` for
    a stream that is no archive, ``not-found`` for a missing *subdirectory*.

    A zip needs a seekable *stream* (its index is at the end); a tar is read
    front to back."""
    builder = _Builder(store)
    head = stream.peek(4)[:4] if isinstance(stream, io.BufferedReader) else b""
    if not head and stream.seekable():
        position = stream.tell()
        head = stream.read(4)
        stream.seek(position)
    try:
        if head == _ZIP_MAGIC:
            with zipfile.ZipFile(stream) as archive:
                _zip_members(builder, archive)
        elif head == _ZSTD_MAGIC:
            with _zstd_stream(stream) as plain, tarfile.open(fileobj=plain, mode="r|") as archive:
                _tar_members(builder, archive)
        else:
            with tarfile.open(fileobj=stream, mode="r|*") as archive:
                _tar_members(builder, archive)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, lzma.LZMAError, zlib.error) as error:
        raise DirectoryError(f"not a readable archive: {error}", reason=REASON_INVALID_DIRECTORY) from None
    return ArchiveImport(builder.build(subdirectory), builder.files, builder.left_out)
