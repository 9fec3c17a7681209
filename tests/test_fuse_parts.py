"""The FUSE layer's parts that need no kernel: the inode table, kept object files and
capture."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

import pyfuse3
import pytest
import trio

from casvfs import EMPTY_DIGEST, CasDirectory, ContentStore, Digest, FileType, MemoryStore
from casvfs.directory.ingest import import_host_tree
from casvfs.fuse.blobfiles import BlobFiles
from casvfs.fuse.capture import get_digest
from casvfs.fuse.inodes import ROOT_INODE, FsError, Inode, InodeTable
from casvfs.fuse.operations import DIGEST_XATTR, CasOperations
from casvfs.fuse.packed import PackedTable
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


def _message() -> tuple[MemoryStore, pb.Directory]:
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
    return store, message


def _table() -> InodeTable:
    store, message = _message()
    table = InodeTable(store.put_directory(message))
    table.load_directory(ROOT_INODE, message)
    return table


def test_read_only_tables_share_identical_files_and_answer_enoent_enotdir() -> None:
    store, message = _message()
    table = PackedTable(store.put_directory(message), 10, 20)
    table.load_directory(ROOT_INODE, message)
    a, b, d = (table.lookup(ROOT_INODE, name) for name in (b"a", b"b", b"d"))
    assert a and a == b and d and d != a  # one inode for the identical files
    assert table.lookup(ROOT_INODE, b"c") == 0 and table.lookup(ROOT_INODE, b"0") == 0
    assert list(table.entries(ROOT_INODE)) == [(b"a", a), (b"b", a), (b"d", d)] and len(table) == 3
    assert list(table.entries(ROOT_INODE, 2)) == [(b"d", d)] and table.size(ROOT_INODE) == 3
    assert table.get(a).node.digest == store.put_bytes(b"leaf") and table.parent(d) == ROOT_INODE
    for call, code in (
        (lambda: table.stat(99), errno.ENOENT),
        (lambda: table.unloaded_digest(a), errno.ENOTDIR),
        (lambda: table.get(0), errno.ENOENT),
    ):
        with pytest.raises(FsError) as failure:
            call()
        assert failure.value.errno == code


def test_read_only_tables_share_exactly_what_is_alike_however_many_files() -> None:
    """3,000 files of 1,000 contents (the content index grows twice): files share
    an inode exactly when content, executable bit and mtime agree."""
    store = MemoryStore()
    blobs = [store.put_bytes(b"%d" % index) for index in range(1000)]
    files = []
    for index in range(3000):
        blob = blobs[index % 1000]
        node = pb.FileNode(name=f"f{index:04}", digest=pb.Digest(hash=blob.hash, size_bytes=blob.size_bytes))
        node.is_executable = index >= 2000
        if index % 1000 == 999:
            node.node_properties.mtime.seconds = 7
        files.append(node)
    message = pb.Directory(files=files)
    table = PackedTable(store.put_directory(message), 0, 0)
    table.load_directory(ROOT_INODE, message)
    inos = [table.lookup(ROOT_INODE, f"f{index:04}".encode()) for index in range(3000)]
    assert inos[:1000] == inos[1000:2000] and len(set(inos)) == 2000 and len(table) == 2001  # with the root
    assert {table.get(ino).node.digest for ino in inos[:1000]} == set(blobs)
    assert table.stat(inos[999])[2] == 7 * 10**9 and table.get(inos[2000]).executable


def test_changes_mark_ancestors_and_rename_follows_rename2() -> None:
    table = _table()
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
    table = InodeTable(root)
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
    table = InodeTable(store.put_directory(pb.Directory()))
    table.load_directory(ROOT_INODE, pb.Directory())
    table.add(ROOT_INODE, "racing", FileType.REGULAR_FILE)
    digest = trio.run(get_digest, table, store)
    tree = CasDirectory(store, digest)
    assert list(tree) == ["racing"] and tree.file_digest("racing") == EMPTY_DIGEST.hash


def test_forget_drops_detached_inodes_once_the_kernel_lets_go() -> None:
    table = _table()
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
    table = _table()
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
    table = _table()
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
    table = _table()
    shared = table.add(ROOT_INODE, "shared", FileType.DIRECTORY, mode=0o2775, uid=10, gid=20)
    file = table.add(shared.ino, "f", FileType.REGULAR_FILE, mode=0o600, uid=30, gid=40)
    inner = table.add(shared.ino, "inner", FileType.DIRECTORY, mode=0o755, uid=30, gid=40)
    assert file.posix is not None and inner.posix is not None
    assert (file.posix.uid, file.posix.gid, file.posix.mode) == (30, 20, 0o600)  # the directory's group
    assert (inner.posix.gid, inner.posix.mode) == (20, 0o2755)  # and its setgid bit
    fifo = table.add(ROOT_INODE, "fifo", FileType.REGULAR_FILE, special=stat.S_IFIFO)
    assert fifo.special and not fifo.executable and not file.special


@pytest.mark.parametrize(("seed", "properties"), [(5, None), (17, ["mtime", "unix_mode"])])
def test_packed_and_writable_tables_show_an_unchanged_tree_alike(
    tmp_path: Path, seed: int, properties: list[str] | None
) -> None:
    """A read-only mount's packed table and a writable mount's inode table answer
    lookup, getattr, readlink and the digest xattr alike for every entry of a
    random tree (mtimes and modes recorded or not), and list the same names."""
    store = MemoryStore()
    host = build_host(str(tmp_path / "host"), random_spec(seed, entries=120))
    os.chmod(os.path.join(host, sorted(os.listdir(host))[0]), 0o700)
    root = import_host_tree(store, host, properties=properties)

    async def view(operations: CasOperations) -> dict[str, tuple[object, ...]]:
        context = pyfuse3.RequestContext()
        seen: dict[str, tuple[object, ...]] = {}
        pending = [("", ROOT_INODE)]
        while pending:
            path, ino = pending.pop()
            await operations._loaded(ino)
            table = operations.table
            names = (
                [name for name, _ in table.entries(ino)]
                if isinstance(table, PackedTable)
                else [n.encode() for n in table.sorted_names(ino)]
            )
            seen[path + "/"] = tuple(names)
            for name in [*names, b".", b".."]:
                attrs = await operations.lookup(ino, name, context)
                again = await operations.getattr(attrs.st_ino, context)
                assert again.st_ino == attrs.st_ino and again.st_mode == attrs.st_mode
                child = f"{path}/{name.decode()}"
                link = digest = None
                if stat.S_ISLNK(attrs.st_mode):
                    link = await operations.readlink(attrs.st_ino, context)
                else:
                    digest = await operations.getxattr(attrs.st_ino, DIGEST_XATTR, context)
                seen[child] = (
                    attrs.st_mode, attrs.st_size, attrs.st_mtime_ns, attrs.st_nlink,
                    attrs.st_uid, attrs.st_gid, attrs.st_blocks, attrs.entry_timeout, link, digest,
                )  # fmt: skip
                if stat.S_ISDIR(attrs.st_mode) and name not in (b".", b".."):
                    pending.append((child, attrs.st_ino))
            missing = await operations.lookup(ino, b"no such entry", context)
            assert missing.st_ino == 0
        return seen

    read_only = CasOperations(store, root, writable=False, scratch=str(tmp_path))
    writable = CasOperations(store, root, writable=True, scratch=str(tmp_path))
    assert isinstance(read_only.table, PackedTable) and isinstance(writable.table, InodeTable)
    packed = trio.run(view, read_only)
    assert packed == trio.run(view, writable)
    modes = {stat.S_IMODE(entry[0]) for path, entry in packed.items() if not path.endswith("/")}
    assert (0o700 in modes) == (properties is not None)  # the recorded mode, or the default
    assert trio.run(read_only.get_digest) == root
