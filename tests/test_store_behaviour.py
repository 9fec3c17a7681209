"""Content stores: round trips, atomic immutable objects, verification, fsck,
partial stores, and untrusted Directory messages."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casvfs import (
    ARBITRARY_TIMESTAMP,
    EMPTY_DIGEST,
    CasDirectory,
    CasvfsError,
    ContentStore,
    Digest,
    LocalStore,
    MemoryStore,
    StoreError,
    digest_bytes,
)
from casvfs.protos import remote_execution_pb2 as pb
from peers.casd import REPO
from tests.trees import build_host


def test_digest_values() -> None:
    assert str(EMPTY_DIGEST) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/0"
    assert digest_bytes(pb.Directory().SerializeToString()) == EMPTY_DIGEST
    digest = digest_bytes(b"abc")
    assert Digest.parse(str(digest)) == digest and digest.hash == hashlib.sha256(b"abc").hexdigest()
    for bad in ("", "abc/1", "e3b0/x", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855/0"):
        with pytest.raises(ValueError) as info:
            Digest.parse(bad)
        assert isinstance(info.value, CasvfsError) and info.value.reason == "invalid-digest"
    with pytest.raises(ValueError):
        Digest("ab" * 32, -1)


def test_round_trips(store: ContentStore, tmp_path: Path) -> None:
    small, large = b"small", os.urandom(3 << 20)
    (tmp_path / "large").write_bytes(large)
    digests = [store.put_bytes(small), store.put_file(tmp_path / "large")]
    assert digests == [digest_bytes(small), digest_bytes(large)]
    assert store.read_bytes(digests[1]) == large
    with store.open(digests[0]) as stream:
        assert stream.read() == small
    missing = digest_bytes(b"never stored")
    assert store.find_missing([missing, digests[0], missing]) == [missing]
    with pytest.raises(StoreError) as info:
        store.read_bytes(missing)
    assert info.value.reason == "blob-missing"


def test_local_objects_are_sharded_read_only_and_stamped(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    digest = store.put_bytes(b"content")
    path = tmp_path / "s" / "objects" / digest.hash[:2] / digest.hash[2:]
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o444 and st.st_mtime == ARBITRARY_TIMESTAMP
    assert [name for _d, _s, files in os.walk(tmp_path / "s" / "tmp") for name in files] == []
    # one file per blob: no executable twins (linked exports clone or copy executables)
    assert store.local_path(digest) == str(path)
    assert not (tmp_path / "s" / "exec").exists()


WRITER = r"""
import os, sys
from casvfs import LocalStore
store = LocalStore(sys.argv[1])
seed = int(sys.argv[2])
for index in range(40):
    store.put_bytes(bytes([index % 7]) * (200_000 + index))   # shared by every writer
    store.put_bytes(os.urandom(1000) + bytes([seed]))          # this writer's own
"""


def test_several_processes_share_one_store(tmp_path: Path) -> None:
    root = str(tmp_path / "s")
    LocalStore(root)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, root, str(seed)], env=env) for seed in range(4)
    ]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0, 0, 0]
    report = LocalStore(root).fsck()
    assert report.corrupt == [] and report.checked == 40 + 4 * 40


def test_crash_leftovers_never_become_objects(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    junk = tmp_path / "s" / "tmp" / "0" / "12345-1-0"
    junk.write_bytes(b"half a blob")
    assert store.find_missing([digest_bytes(b"half a blob")]) == [digest_bytes(b"half a blob")]
    assert store.fsck(repair=True).removed == []  # recent: maybe still being written
    old = time.time() - 7200
    os.utime(junk, (old, old))
    # an old mtime is what every writer stamps before publishing: not a sign of age
    assert store.fsck(repair=True).removed == []
    time.sleep(0.05)
    assert store.fsck(repair=True, stale_after=0.01).removed == ["tmp/0/12345-1-0"]


def test_corruption_is_detected(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    digest = store.put_bytes(b"precious")
    path = tmp_path / "s" / "objects" / digest.hash[:2] / digest.hash[2:]
    os.chmod(path, 0o644)
    path.write_bytes(b"PRECIOUS")
    report = store.fsck()
    assert report.corrupt == [f"objects/{digest.hash[:2]}/{digest.hash[2:]}"]
    assert store.fsck(repair=True).removed == report.corrupt and not store.has(digest)
    assert store.fsck().quarantined[0].startswith(f"quarantine/{digest.hash}.")
    # a read finds it too, and quarantines it at once
    again = store.put_bytes(b"precious")
    os.chmod(path, 0o644)
    path.write_bytes(b"PRECIOUS")
    with pytest.raises(StoreError) as info:
        LocalStore(tmp_path / "s").read_bytes(again)
    assert info.value.reason == "blob-corrupt" and not path.exists()
    assert store.fsck().corrupt == [] and len(store.fsck().quarantined) == 2


def test_partial_store_walks_without_blobs(tmp_path: Path) -> None:
    store = MemoryStore()
    tree = CasDirectory(store)
    tree.import_files(build_host(str(tmp_path / "h"), {"a": b"alpha", "d": {"b": b"beta"}}))
    for path in ("a", "d/b"):
        store.discard(Digest(tree.file_digest(path), tree.stat(path).size))
    partial = CasDirectory(store, tree.get_digest())
    assert list(partial.list_relative_paths()) == ["a", "d", "d/b"]
    assert partial.stat("d/b").size == 4
    assert partial.file_digest("a") == hashlib.sha256(b"alpha").hexdigest()
    with pytest.raises(CasvfsError) as info:
        partial.open_file("a", mode="rb")
    assert info.value.reason == "blob-missing"


def _file(name: str) -> pb.FileNode:
    return pb.FileNode(name=name, digest=EMPTY_DIGEST.to_proto())


HOSTILE = {
    "empty name": pb.Directory(files=[_file("")]),
    "dot": pb.Directory(files=[_file(".")]),
    "dot-dot": pb.Directory(directories=[pb.DirectoryNode(name="..", digest=EMPTY_DIGEST.to_proto())]),
    "slash": pb.Directory(files=[_file("a/b")]),
    "NUL": pb.Directory(files=[_file("a\0b")]),
    "duplicate": pb.Directory(files=[_file("a"), _file("a")]),
    "duplicate across lists": pb.Directory(
        files=[_file("a")], symlinks=[pb.SymlinkNode(name="a", target="x")]
    ),
    "unsorted": pb.Directory(files=[_file("b"), _file("a")]),
    "bad digest": pb.Directory(files=[pb.FileNode(name="a", digest=pb.Digest(hash="zz", size_bytes=1))]),
    "empty target": pb.Directory(symlinks=[pb.SymlinkNode(name="a", target="")]),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_directory_messages_are_refused_and_write_nothing(tmp_path: Path, case: str) -> None:
    store = LocalStore(tmp_path / "s")
    store.put_bytes(b"")
    bad = store.put_bytes(HOSTILE[case].SerializeToString())
    with pytest.raises(StoreError) as info:
        store.get_directory(bad)
    assert info.value.reason == "invalid-directory" and str(bad) in str(info.value)
    # nested one level down, and exported: refused before anything is written
    parent = pb.Directory(directories=[pb.DirectoryNode(name="sub", digest=bad.to_proto())])
    top = store.put_bytes(parent.SerializeToString())
    out = tmp_path / "out"
    with pytest.raises(StoreError) as info:
        CasDirectory(store, top).export_files(str(out))
    assert info.value.reason == "invalid-directory"
    assert not out.exists()


def test_not_a_directory_blob(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    with pytest.raises(StoreError) as info:
        store.get_directory(store.put_bytes(b"\xff\xff\xff not protobuf"))
    assert info.value.reason == "invalid-directory"


def test_get_tree_visits_each_directory_once(store: ContentStore) -> None:
    leaf = store.put_directory(pb.Directory(files=[_file("f")]))
    top = store.put_directory(
        pb.Directory(directories=[pb.DirectoryNode(name=n, digest=leaf.to_proto()) for n in ("a", "b")])
    )
    assert [digest for digest, _message in store.get_tree(top)] == [top, leaf]
    tree = pb.Tree(root=store.get_directory(top), children=[store.get_directory(leaf)])
    assert MemoryStore().put_tree(tree) == top
