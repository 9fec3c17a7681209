"""The FUSE layer's parts that need no kernel: the inode table and kept object files."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from casvfs import MemoryStore
from casvfs.directory.types import FileType
from casvfs.fuse.blobfiles import BlobFiles
from casvfs.fuse.inodes import ROOT_INODE, FsError, InodeTable
from casvfs.protos import remote_execution_pb2 as pb


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_blob_files_share_and_close_idle_ones_beyond_the_limit(tmp_path: Path) -> None:
    files = BlobFiles(idle_limit=1)
    (tmp_path / "blob").write_bytes(b"x")
    first = files.add(1, os.open(tmp_path / "blob", os.O_RDONLY))
    assert files.acquire(1) == first  # a second handle shares the descriptor
    racing = os.open(tmp_path / "blob", os.O_RDONLY)
    assert files.add(1, racing) == first and not _is_open(racing)  # a racing open is dropped
    second = files.add(2, os.open(tmp_path / "blob", os.O_RDONLY))
    for _ in range(3):
        files.release(1)
    assert _is_open(first)  # idle, within the limit
    files.release(2)  # two idle: the least recently released goes
    assert not _is_open(first) and _is_open(second)
    assert files.acquire(1) is None and files.acquire(2) == second
    files.close_all()
    assert not _is_open(second)


def _table(writable: bool) -> InodeTable:
    store = MemoryStore()
    leaf = store.put_bytes(b"leaf")
    sub = store.put_directory(pb.Directory())
    message = pb.Directory(
        directories=[pb.DirectoryNode(name="d", digest=pb.Digest(hash=sub.hash, size_bytes=sub.size_bytes))],
        files=[
            pb.FileNode(name=name, digest=pb.Digest(hash=leaf.hash, size_bytes=leaf.size_bytes))
            for name in ("a", "b")
        ],
    )
    table = InodeTable(store.put_directory(message), writable=writable)
    table.load_directory(ROOT_INODE, message)
    return table


def test_read_only_tables_share_identical_files_and_refuse_changes() -> None:
    table = _table(writable=False)
    a, b = table.lookup(ROOT_INODE, "a"), table.lookup(ROOT_INODE, "b")
    assert a is not None and a is b
    with pytest.raises(FsError) as failure:
        table.add(ROOT_INODE, "new", FileType.REGULAR_FILE)
    assert failure.value.errno == errno.EROFS


def test_changes_mark_ancestors_and_rename_follows_rename2() -> None:
    table = _table(writable=True)
    a = table.lookup(ROOT_INODE, "a")
    assert a is not None and a is not table.lookup(ROOT_INODE, "b")  # writable: one inode per path
    d = table.lookup(ROOT_INODE, "d")
    assert d is not None
    table.load_directory(d.ino, pb.Directory())
    new = table.add(d.ino, "new", FileType.REGULAR_FILE)
    assert d.modified and table.get(ROOT_INODE).modified and d.digest is None
    generation = new.generation
    table.touch(new.ino)
    assert new.generation == generation + 1
    with pytest.raises(FsError) as failure:
        table.rename(ROOT_INODE, "a", ROOT_INODE, "d", noreplace=False)  # file over directory
    assert failure.value.errno == errno.EISDIR
    with pytest.raises(FsError) as failure:
        table.rename(ROOT_INODE, "d", d.ino, "inside", noreplace=False)  # into itself
    assert failure.value.errno == errno.EINVAL
    with pytest.raises(FsError) as failure:
        table.rename(ROOT_INODE, "a", ROOT_INODE, "b", noreplace=True)
    assert failure.value.errno == errno.EEXIST
    replaced = table.rename(ROOT_INODE, "a", ROOT_INODE, "b", noreplace=False)
    assert replaced is not None and table.lookup(ROOT_INODE, "a") is None
    with pytest.raises(FsError) as failure:
        table.remove(ROOT_INODE, "d", directory=True)
    assert failure.value.errno == errno.ENOTEMPTY
