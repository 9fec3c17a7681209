"""The FUSE layer's parts that need no kernel: the inode table, kept object files and
capture."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

import pytest
import trio

from casvfs import EMPTY_DIGEST, CasDirectory, ContentStore, Digest, FileType, MemoryStore
from casvfs.directory.ingest import import_host_tree
from casvfs.fuse.blobfiles import BlobFiles
from casvfs.fuse.capture import get_digest
from casvfs.fuse.inodes import ROOT_INODE, FsError, Inode, InodeTable
from casvfs.protos import remote_execution_pb2 as pb
from tests.trees import build_host, random_spec


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


def _load(table: InodeTable, store: ContentStore, ino: int) -> None:
    digest = table.unloaded_digest(ino)
    if digest is not None:
        table.load_directory(ino, store.get_directory(digest))


def _walk_to(table: InodeTable, store: ContentStore, path: str) -> Inode:
    inode = table.get(ROOT_INODE)
    for name in [part for part in path.split("/") if part]:
        _load(table, store, inode.ino)
        found = table.lookup(inode.ino, name)
        assert found is not None, path
        inode = found
    if inode.kind is FileType.DIRECTORY:
        _load(table, store, inode.ino)
    return inode


class _CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.files_read = 0

    def put_file(self, path: str | os.PathLike[str]) -> Digest:
        self.files_read += 1
        return super().put_file(path)


def _write_scratch(table: InodeTable, inode: Inode, scratch: Path, data: bytes) -> None:
    path = scratch / str(inode.ino)
    path.write_bytes(data)
    inode.scratch = str(path)
    inode.size = len(data)
    table.touch(inode.ino)


@pytest.mark.parametrize("seed", [3, 11])
def test_capture_without_a_kernel_equals_importing_the_same_changes(tmp_path: Path, seed: int) -> None:
    """Changes made through the inode table capture to the digest a host copy with
    the same changes imports to."""
    store = _CountingStore()
    host = build_host(str(tmp_path / "host"), random_spec(seed))
    os.makedirs(tmp_path / "host" / "work" / "sub")
    (tmp_path / "host" / "work" / "sub" / "old.txt").write_bytes(b"old\n")
    root = import_host_tree(store, host)
    table = InodeTable(root, writable=True)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert trio.run(get_digest, table, store) == root  # nothing changed: the same tree

    work = _walk_to(table, store, "work")
    sub = _walk_to(table, store, "work/sub")
    created = table.add(sub.ino, "new.txt", FileType.REGULAR_FILE)
    _write_scratch(table, created, scratch, b"fresh\n")
    table.add(work.ino, "made", FileType.DIRECTORY)
    table.add(work.ino, "link", FileType.SYMLINK, target="sub/new.txt")
    table.remove(sub.ino, "old.txt", directory=False)
    table.rename(work.ino, "sub", ROOT_INODE, "moved", noreplace=True)
    store.files_read = 0
    captured = trio.run(get_digest, table, store)
    assert store.files_read == 1  # only the written file was read

    shutil.move(str(tmp_path / "host" / "work" / "sub"), str(tmp_path / "host" / "moved"))
    os.remove(tmp_path / "host" / "moved" / "old.txt")
    (tmp_path / "host" / "moved" / "new.txt").write_bytes(b"fresh\n")
    os.mkdir(tmp_path / "host" / "work" / "made")
    os.symlink("sub/new.txt", tmp_path / "host" / "work" / "link")
    assert captured == import_host_tree(MemoryStore(), host)
    assert trio.run(get_digest, table, store) == captured and store.files_read == 1  # nothing new to hash
    assert CasDirectory(store, captured).open_file("moved/new.txt").read() == "fresh\n"


def test_capture_of_a_file_being_created_is_the_empty_file(tmp_path: Path) -> None:
    """create() adds the inode before its scratch file exists (made off the event
    loop): a capture in that moment sees an empty file instead of failing."""
    store = MemoryStore()
    table = InodeTable(store.put_directory(pb.Directory()), writable=True)
    table.load_directory(ROOT_INODE, pb.Directory())
    table.add(ROOT_INODE, "racing", FileType.REGULAR_FILE)
    digest = trio.run(get_digest, table, store)
    tree = CasDirectory(store, digest)
    assert list(tree) == ["racing"] and tree.file_digest("racing") == EMPTY_DIGEST.hash


def test_forget_drops_detached_inodes_once_the_kernel_lets_go() -> None:
    table = _table(writable=True)
    a = table.lookup(ROOT_INODE, "a")
    b = table.lookup(ROOT_INODE, "b")
    assert a is not None and b is not None
    a.lookups = 2
    table.remove(ROOT_INODE, "a", directory=False)
    table.forget(a.ino, 1)
    assert table.get(a.ino) is a  # the kernel still holds one reference
    table.forget(a.ino, 1)
    with pytest.raises(FsError):
        table.get(a.ino)  # gone
    b.lookups = 1
    table.forget(b.ino, 1)
    assert table.get(b.ino) is b  # still in the tree: it stays
    table.remove(ROOT_INODE, "b", directory=False)
    with pytest.raises(FsError):
        table.get(b.ino)  # unreferenced when detached: gone at once


def test_hard_links_share_an_inode_and_changes_reach_every_name() -> None:
    table = _table(writable=True)
    d = table.lookup(ROOT_INODE, "d")
    a = table.lookup(ROOT_INODE, "a")
    assert d is not None and a is not None
    table.load_directory(d.ino, pb.Directory())
    table.link(a.ino, d.ino, "a2")
    assert table.lookup(d.ino, "a2") is a and table.names(a) == 2
    for inode in table.inodes.values():
        inode.modified = False
    table.touch(a.ino)  # a write through either name
    assert d.modified and table.get(ROOT_INODE).modified
    table.rename(d.ino, "a2", ROOT_INODE, "a3", noreplace=True)  # the link's name moves
    assert sorted(a.parents()) == [ROOT_INODE, ROOT_INODE]
    table.remove(ROOT_INODE, "a", directory=False)
    assert not a.detached and table.names(a) == 1 and table.lookup(ROOT_INODE, "a3") is a
    table.remove(ROOT_INODE, "a3", directory=False)
    assert a.detached and table.names(a) == 0
    with pytest.raises(FsError) as failure:
        table.link(d.ino, ROOT_INODE, "d2")
    assert failure.value.errno == errno.EPERM  # no hard links to directories


def test_directory_link_counts_follow_their_subdirectories() -> None:
    table = _table(writable=True)
    root = table.get(ROOT_INODE)
    assert table.names(root) == 1  # unchanged: unknown, as in a read-only mount
    made = table.add(ROOT_INODE, "made", FileType.DIRECTORY)
    assert table.names(root) == 2 + 2 and table.names(made) == 2  # d, made
    table.add(made.ino, "inner", FileType.DIRECTORY)
    table.rename(made.ino, "inner", ROOT_INODE, "out", noreplace=True)
    assert table.names(made) == 2 and table.names(root) == 2 + 3
    table.remove(ROOT_INODE, "out", directory=True)
    assert table.names(root) == 2 + 2


def test_new_entries_take_owner_mode_and_setgid_group_as_linux_does() -> None:
    table = _table(writable=True)
    shared = table.add(ROOT_INODE, "shared", FileType.DIRECTORY, mode=0o2775, uid=10, gid=20)
    file = table.add(shared.ino, "f", FileType.REGULAR_FILE, mode=0o600, uid=30, gid=40)
    inner = table.add(shared.ino, "inner", FileType.DIRECTORY, mode=0o755, uid=30, gid=40)
    assert file.posix is not None and inner.posix is not None
    assert (file.posix.uid, file.posix.gid, file.posix.mode) == (30, 20, 0o600)  # the directory's group
    assert (inner.posix.gid, inner.posix.mode) == (20, 0o2755)  # and its setgid bit
    fifo = table.add(ROOT_INODE, "fifo", FileType.REGULAR_FILE, special=stat.S_IFIFO)
    assert fifo.special and not fifo.executable and not file.special
