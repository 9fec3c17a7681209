"""Valid but hostile trees: shared subtrees that expand exponentially, symlink loops
met by the predicates, and symlink targets no kernel can return."""

from __future__ import annotations

import itertools
import os
import tarfile
import time
from pathlib import Path

import pytest

from casvfs import (
    EMPTY_DIGEST,
    CasDirectory,
    ContentStore,
    Digest,
    Directory,
    DirectoryError,
    FileType,
    LocalStore,
    MemoryStore,
    OsDirectory,
    StoreError,
)
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.store import TreeSize, expanded_size
from tests.trees import Exe, Link, Spec, build_host

CONTENT = b"leaf"
# Far more Directory loads than a per-digest count of any tree here needs (41 for
# the deepest doubling tree), far fewer than a path-by-path walk of one (2**41).
BUDGET = 10_000


class OverBudget(Exception):
    """A walk loaded more ``Directory`` messages than counting per digest would."""


class _Counting(ContentStore):
    """Counts ``get_directory`` calls and fails a walk that goes on past :data:`BUDGET`."""

    loads = 0

    def get_directory(self, digest: Digest) -> pb.Directory:
        self.loads += 1
        if self.loads > BUDGET:
            raise OverBudget(f"more than {BUDGET} Directory loads: the tree is walked path by path")
        return super().get_directory(digest)


class CountingMemoryStore(_Counting, MemoryStore):
    """A counting :class:`MemoryStore`."""


class CountingLocalStore(_Counting, LocalStore):
    """A counting :class:`LocalStore`."""


@pytest.fixture(params=["memory", "local"])
def counted(request: pytest.FixtureRequest, tmp_path: Path) -> _Counting:
    """Each kind of store, counting its Directory loads."""
    if request.param == "memory":
        return CountingMemoryStore()
    return CountingLocalStore(tmp_path / "store")


def doubling(store: ContentStore, levels: int) -> Digest:
    """A tree *levels* deep whose every directory holds the one below twice (``a``
    and ``b``) beside a symlink ``s -> a``; the bottom one holds the file ``f``.
    A few hundred bytes per level, 2**levels paths to the bottom."""
    blob = store.put_bytes(CONTENT)
    digest = store.put_directory(pb.Directory(files=[pb.FileNode(name="f", digest=blob.to_proto())]))
    for _ in range(levels):
        digest = store.put_directory(
            pb.Directory(
                directories=[pb.DirectoryNode(name=name, digest=digest.to_proto()) for name in ("a", "b")],
                symlinks=[pb.SymlinkNode(name="s", target="a")],
            )
        )
    return digest


def doubling_size(levels: int) -> TreeSize:
    """What :func:`doubling` expands to, counted by hand: a directory of level k
    occurs 2**(levels-k) times."""
    return TreeSize(
        files=2**levels,
        directories=2 ** (levels + 1) - 2,
        symlinks=2**levels - 1,
        bytes=2**levels * len(CONTENT),
    )


def walked_size(directory: Directory) -> TreeSize:
    """The size of a tree counted path by path, through the public API."""
    kinds = [directory.stat(path).file_type for path in directory.list_relative_paths()]
    return TreeSize(
        files=kinds.count(FileType.REGULAR_FILE),
        directories=kinds.count(FileType.DIRECTORY),
        symlinks=kinds.count(FileType.SYMLINK),
        bytes=Directory.get_size(directory),  # the base class's walk, not CasDirectory's
    )


# -- 16: exponential expansion ---------------------------------------------------------


def test_expanded_size_counts_every_occurrence_loading_each_digest_once(counted: _Counting) -> None:
    root = doubling(counted, 20)
    counted.loads = 0
    size = expanded_size(counted, root)
    assert size == doubling_size(20)
    assert size.files == 2**20 and size.paths == 2**20 + 2**21 - 2 + 2**20 - 1
    assert counted.loads == 21  # one per distinct Directory
    memo: dict[Digest, TreeSize] = {}
    assert expanded_size(counted, root, memo=memo) == size
    assert len(memo) == 21 and counted.loads == 42
    assert expanded_size(counted, root, memo=memo) == size and counted.loads == 42  # all known


def test_expanded_size_agrees_with_a_walk(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    small = CasDirectory(store, doubling(store, 6))
    assert expanded_size(store, small.get_digest()) == walked_size(small) == doubling_size(6)
    spec: Spec = {
        "file": b"content",
        "exe": Exe(b"#!/bin/sh\n"),
        "empty": {},
        "dir": {"inner": b"in", "link": Link("../file"), "deeper": {"leaf": b"leaf", "none": b""}},
        "dirlink": Link("dir"),
    }
    ordinary = CasDirectory(store)
    ordinary.import_files(build_host(str(tmp_path / "host"), spec))
    ordinary.import_files(small, collect_result=False)  # shares subtrees with the first
    size = expanded_size(store, ordinary.get_digest())
    assert size == walked_size(ordinary)
    assert size.files == 5 + 2**6 and size.symlinks == 2 + 2**6 - 1


def test_forty_levels_are_counted_in_under_a_second(counted: _Counting) -> None:
    root = doubling(counted, 40)
    counted.loads = 0
    started = time.perf_counter()
    size = expanded_size(counted, root)
    elapsed = time.perf_counter() - started
    assert size == doubling_size(40) and size.files == 2**40 and size.paths > 10**12
    assert counted.loads == 41
    assert elapsed < 1.0, f"{elapsed:.3f} s"


def test_a_hundred_thousand_levels_need_no_recursion() -> None:
    store = MemoryStore()
    digest = store.put_directory(pb.Directory(files=[pb.FileNode(name="f", digest=EMPTY_DIGEST.to_proto())]))
    for _ in range(100_000):
        node = pb.DirectoryNode(name="d", digest=digest.to_proto())
        digest = store.put_directory(pb.Directory(directories=[node]))
    assert expanded_size(store, digest) == TreeSize(files=1, directories=100_000)


class LyingStore(MemoryStore):
    """Serves, for one digest, content that is not what the digest names."""

    def __init__(self, digest: Digest, content: bytes) -> None:
        super().__init__()
        self.lie = digest, content

    def read_bytes(self, digest: Digest) -> bytes:
        return self.lie[1] if digest == self.lie[0] else super().read_bytes(digest)


def test_a_tree_containing_itself_is_invalid_not_endless() -> None:
    """Content addressing rules cycles out, but a store that does not check what it
    reads could still show one."""
    loop = Digest("ab" * 32, 60)
    message = pb.Directory(directories=[pb.DirectoryNode(name="again", digest=loop.to_proto())])
    store = LyingStore(loop, message.SerializeToString())
    with pytest.raises(StoreError) as info:
        expanded_size(store, loop)
    assert info.value.reason == "invalid-directory" and "contains itself" in str(info.value)


def test_get_size_of_forty_levels_is_quick_and_exact(counted: _Counting) -> None:
    tree = CasDirectory(counted, doubling(counted, 40))
    started = time.perf_counter()
    assert tree.get_size() == 2**40 * len(CONTENT)
    assert time.perf_counter() - started < 1.0
    # modified: the changes are serialised, then counted the same way
    with tree.open_file("extra", mode="wb") as stream:
        stream.write(b"12345")
    assert tree.get_size() == 2**40 * len(CONTENT) + 5
    tree.remove("a", recursive=True)
    assert tree.get_size() == 2**39 * len(CONTENT) + 5
    assert tree.open_directory("b/a").get_size() == 2**38 * len(CONTENT)
    assert counted.loads < 500


def test_export_files_refuses_forty_levels_before_creating_anything(
    counted: _Counting, tmp_path: Path
) -> None:
    tree = CasDirectory(counted, doubling(counted, 40))
    target = tmp_path / "out" / "tree"
    with pytest.raises(DirectoryError) as info:
        tree.export_files(str(target))
    assert info.value.reason == "too-large"
    message = str(info.value)
    assert "\n" not in message and f"{2**40} files" in message and f"{2**40 * len(CONTENT)} bytes" in message
    assert f"free on {tmp_path}" in message  # the nearest existing ancestor of the target
    assert not (tmp_path / "out").exists()  # the decision: the target is not even created
    # with hard links the files take no space, but every directory takes an inode
    # (as root only with hard_links: else root gets clones or copies)
    if os.statvfs(tmp_path).f_files:
        with pytest.raises(DirectoryError) as info:
            tree.export_files(str(target), can_link=True, hard_links=True)
        assert info.value.reason == "too-large" and "inodes free" in str(info.value)
    with pytest.raises(DirectoryError) as info:
        tree.export_files(str(target), max_size=1 << 40)
    assert info.value.reason == "too-large" and f"max_size={1 << 40} bytes" in str(info.value)
    assert not (tmp_path / "out").exists()
    assert counted.loads < 200


def test_export_to_tar_refuses_forty_levels_with_max_size(counted: _Counting, tmp_path: Path) -> None:
    tree = CasDirectory(counted, doubling(counted, 40))
    with tarfile.open(tmp_path / "tree.tar", "w") as archive:
        with pytest.raises(DirectoryError) as info:
            tree.export_to_tar(archive, "root", max_size=1 << 30)
        assert info.value.reason == "too-large"
        assert f"{2**40} files, {2**40 * len(CONTENT)} bytes" in str(info.value)
    with tarfile.open(tmp_path / "tree.tar") as archive:
        assert archive.getmembers() == []
    assert counted.loads < 200


def test_ordinary_trees_still_export(counted: _Counting, tmp_path: Path) -> None:
    tree = CasDirectory(counted, doubling(counted, 3))
    size = 2**3 * len(CONTENT)
    tree.export_files(str(tmp_path / "out"), max_size=size)
    assert OsDirectory(tmp_path / "out").get_size() == size
    assert os.path.isfile(tmp_path / "out" / "a" / "b" / "a" / "f")
    tree.export_files(str(tmp_path / "linked"), can_link=True)
    assert OsDirectory(tmp_path / "linked").get_size() == size
    with tarfile.open(tmp_path / "tree.tar", "w") as archive:
        tree.export_to_tar(archive, "", max_size=size)
    with tarfile.open(tmp_path / "tree.tar") as archive:
        assert sum(member.size for member in archive.getmembers() if member.isfile()) == size
    with pytest.raises(DirectoryError) as info:
        tree.export_files(str(tmp_path / "small"), max_size=size - 1)
    assert info.value.reason == "too-large" and not (tmp_path / "small").exists()


def test_host_trees_are_sized_only_when_asked(tmp_path: Path) -> None:
    host = OsDirectory(build_host(str(tmp_path / "host"), {"f": b"12345", "d": {"g": b"678"}}))
    with pytest.raises(DirectoryError) as info:
        host.export_files(str(tmp_path / "out"), max_size=7)
    assert info.value.reason == "too-large" and "2 files, 8 bytes" in str(info.value)
    assert not (tmp_path / "out").exists()
    with tarfile.open(tmp_path / "host.tar", "w") as archive:
        with pytest.raises(DirectoryError) as info:
            host.export_to_tar(archive, "", max_size=7)
        assert info.value.reason == "too-large"
        host.export_to_tar(archive, "", max_size=8)
    host.export_files(str(tmp_path / "out"))
    assert OsDirectory(tmp_path / "out").get_size() == 8


def test_listing_forty_levels_streams(counted: _Counting) -> None:
    tree = CasDirectory(counted, doubling(counted, 40))
    started = time.perf_counter()
    first = list(itertools.islice(tree.list_relative_paths(), 1000))
    assert time.perf_counter() - started < 1.0
    assert len(first) == 1000 and first[:4] == ["s", "a", "a/s", "a/a"]
    assert "/".join(["a"] * 40 + ["f"]) in first


# -- 17: predicates through symlink loops ------------------------------------------------

LOOPS: Spec = {
    "loop1": Link("loop2"),
    "loop2": Link("loop1"),
    "self": Link("self/x"),
    "dir": {"inner": b"in", "up": Link("../loop1")},
    "file": b"f",
}


def _pair(tmp_path: Path) -> tuple[str, list[Directory]]:
    host = build_host(str(tmp_path / "host"), LOOPS)
    cas = CasDirectory(LocalStore(tmp_path / "store"))
    cas.import_files(host)
    return host, [OsDirectory(host), cas]


@pytest.mark.parametrize("path", ["loop1", "self", "loop1/x", "dir/up", "dir/up/x", "dir/../loop2/y"])
def test_predicates_following_a_symlink_loop_are_false(tmp_path: Path, path: str) -> None:
    host, pair = _pair(tmp_path)
    assert not os.path.exists(os.path.join(host, path))  # what the host says
    for directory in pair:
        for predicate in (directory.exists, directory.isfile, directory.isdir, directory.islink):
            assert predicate(path, follow_symlinks=True) is False, (directory, predicate.__name__)
        # operations that need the entry still say why they cannot have it
        for action in (
            lambda d=directory: d.stat(path, follow_symlinks=True),
            lambda d=directory: d.open_directory(path, follow_symlinks=True),
        ):
            with pytest.raises(DirectoryError) as info:
                action()
            assert info.value.reason == "symlink-loop"


@pytest.mark.parametrize(
    "path, link",
    [("loop1/x", "loop1"), ("self/x", "self"), ("dir/up/x", "dir/up"), ("loop2/loop1/x", "loop2")],
)
def test_predicates_not_following_a_loop_in_the_middle_are_false(
    tmp_path: Path, path: str, link: str
) -> None:
    _host, pair = _pair(tmp_path)
    for directory in pair:
        for predicate in (directory.exists, directory.isfile, directory.isdir, directory.islink):
            assert predicate(path, follow_symlinks=False) is False, (directory, predicate.__name__)
        # the loop's first link, not followed, is a symlink that exists
        assert directory.exists(link) and directory.islink(link) and not directory.isdir(link)


# -- 18: symlink targets the kernel cannot return ----------------------------------------


def _symlink_directory(store: ContentStore, target: str) -> tuple[Digest, Digest]:
    """A Directory holding the symlink ``long -> target``, and one holding it as ``sub``."""
    inner = store.put_bytes(
        pb.Directory(symlinks=[pb.SymlinkNode(name="long", target=target)]).SerializeToString()
    )
    outer = store.put_directory(
        pb.Directory(directories=[pb.DirectoryNode(name="sub", digest=inner.to_proto())])
    )
    return inner, outer


@pytest.mark.parametrize("target", ["x" * 4096, "é" * 2048, "/" + "d/" * 3000])
def test_symlink_targets_of_4096_bytes_or_more_are_refused(store: ContentStore, target: str) -> None:
    inner, outer = _symlink_directory(store, target)
    with pytest.raises(StoreError) as info:
        store.get_directory(inner)
    assert info.value.reason == "invalid-directory"
    assert str(inner) in str(info.value) and f"{len(target.encode())} bytes" in str(info.value)
    for root in (inner, outer):
        with pytest.raises(StoreError) as info:
            list(CasDirectory(store, root).list_relative_paths())
        assert info.value.reason == "invalid-directory"
    with pytest.raises(StoreError):
        store.put_tree(pb.Tree(root=pb.Directory(symlinks=[pb.SymlinkNode(name="long", target=target)])))


@pytest.mark.parametrize("target", ["x" * 4095, "é" * 2047 + "x"])
def test_symlink_targets_of_4095_bytes_are_accepted(store: ContentStore, target: str, tmp_path: Path) -> None:
    inner, outer = _symlink_directory(store, target)
    assert store.get_directory(inner).symlinks[0].target == target
    tree = CasDirectory(store, outer)
    assert list(tree.list_relative_paths()) == ["sub", "sub/long"]
    assert tree.readlink("sub/long") == target
    tree.export_files(str(tmp_path / "out"))  # and the host can hold it
    assert os.readlink(tmp_path / "out" / "sub" / "long") == target
