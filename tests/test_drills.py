"""Drills against integrity under concurrency and hostile input: every single-bit
flip of a Directory object, modes that are not permissions, setuid bits from
anywhere, a stat cache locked by another process, a listing cached per directory."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest

from casvfs import CasDirectory, CasvfsError, LocalStore, MemoryStore
from casvfs.fuse.inodes import ROOT_INODE, InodeTable
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.store import StatCache
from casvfs.tree import FileType
from tests.trees import Link, build_host


def test_every_single_bit_flip_of_a_directory_object_is_refused(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    tree = CasDirectory(store)
    tree.import_files(build_host(str(tmp_path / "host"), {"a": b"1", "bb": {"c": b"2"}, "l": Link("a")}))
    root = tree.get_digest()
    path = Path(store.object_path(root))
    original = path.read_bytes()
    listed_differently = 0
    for bit in range(len(original) * 8):
        flipped = bytearray(original)
        flipped[bit // 8] ^= 1 << (bit % 8)
        if path.exists():
            os.chmod(path, 0o644)
        path.write_bytes(bytes(flipped))  # quarantined by the last round: written anew
        os.utime(path, (1321009871, 1321009871))
        try:
            list(CasDirectory(LocalStore(tmp_path / "store"), root).list_relative_paths())
            listed_differently += 1
        except CasvfsError as error:
            assert error.reason == "blob-corrupt", error
        for name in os.listdir(tmp_path / "store" / "quarantine"):
            os.unlink(tmp_path / "store" / "quarantine" / name)
    assert listed_differently == 0


@pytest.mark.parametrize("mode", [0xFFFFFFFF, 0o120644, 0o140755, 0o10000])
def test_modes_beyond_the_permission_bits_are_invalid(mode: int) -> None:
    store = MemoryStore()
    blob = store.put_bytes(b"x")
    file = pb.FileNode(name="f", digest=blob.to_proto())
    file.node_properties.unix_mode.value = mode
    digest = store.put_directory(pb.Directory(files=[file]))
    with pytest.raises(CasvfsError) as info:
        list(CasDirectory(store, digest))
    assert info.value.reason == "invalid-directory" and "unix_mode" in str(info.value)


def test_setuid_setgid_sticky_are_dropped_on_export_unless_asked(tmp_path: Path) -> None:
    store = MemoryStore()
    blob = store.put_bytes(b"#!/bin/sh\n")
    file = pb.FileNode(name="tool", digest=blob.to_proto(), is_executable=True)
    file.node_properties.unix_mode.value = 0o6755
    shared = pb.Directory()
    shared.node_properties.unix_mode.value = 0o1777
    sub = store.put_directory(shared)
    digest = store.put_directory(
        pb.Directory(files=[file], directories=[pb.DirectoryNode(name="tmp", digest=sub.to_proto())])
    )
    tree = CasDirectory(store, digest)
    tree.export_files(str(tmp_path / "plain"))
    assert stat.S_IMODE(os.stat(tmp_path / "plain" / "tool").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "plain" / "tmp").st_mode) == 0o777
    tree.export_files(str(tmp_path / "kept"), special_modes=True)
    assert stat.S_IMODE(os.stat(tmp_path / "kept" / "tool").st_mode) == 0o6755
    assert stat.S_IMODE(os.stat(tmp_path / "kept" / "tmp").st_mode) == 0o1777


def test_a_stat_cache_locked_by_another_process_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "statcache.sqlite"
    holder = sqlite3.connect(path, check_same_thread=False)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")

    def release() -> None:
        time.sleep(0.3)
        holder.rollback()

    thread = threading.Thread(target=release)
    thread.start()
    try:
        assert StatCache(path).lookup(os.stat(tmp_path)) is None  # no traceback, no error
    finally:
        thread.join()
        holder.close()


def test_a_directory_listing_is_sorted_once_until_it_changes() -> None:
    store = MemoryStore()
    blob = store.put_bytes(b"x")
    message = pb.Directory(files=[pb.FileNode(name=f"f{i:05}", digest=blob.to_proto()) for i in range(1000)])
    table = InodeTable(store.put_directory(message))
    table.load_directory(ROOT_INODE, message)
    first = table.sorted_names(ROOT_INODE)
    assert table.sorted_names(ROOT_INODE) is first  # readdir's later visits do not sort again
    table.add(ROOT_INODE, "a-new", FileType.REGULAR_FILE)
    changed = table.sorted_names(ROOT_INODE)
    assert changed is not first and changed[0] == "a-new" and len(changed) == 1001
    assert [name for name, _inode in table.entries(ROOT_INODE)] == changed


def test_fsck_of_a_tree_finds_what_is_missing_and_truncated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from casvfs import Digest
    from casvfs.cli import main

    store = LocalStore(tmp_path / "store")
    tree = CasDirectory(store)
    tree.import_files(build_host(str(tmp_path / "host"), {"a": b"alpha", "d": {"b": b"beta" * 100}}))
    root = tree.get_digest()
    assert main(["--store", store.root, "fsck", str(root)]) == 0
    assert "complete" in capsys.readouterr().out
    subdirectory = tree.open_directory("d")
    assert isinstance(subdirectory, CasDirectory)
    gone = subdirectory.get_digest()
    os.unlink(store.object_path(gone))
    assert main(["--store", store.root, "fsck"]) == 0  # everything the store holds is sound...
    capsys.readouterr()
    assert main(["--store", store.root, "fsck", str(root)]) == 1  # ...but the tree is not whole
    out = capsys.readouterr().out
    assert f"missing: {gone}" in out and "1 missing, 0 corrupt" in out
    truncated = Path(store.object_path(Digest(tree.file_digest("a"), 5)))
    os.chmod(truncated, 0o644)
    truncated.write_bytes(b"al")
    assert main(["--store", store.root, "fsck", str(root)]) == 1
    assert "1 missing, 1 corrupt" in capsys.readouterr().out


@pytest.mark.parametrize("link", [False, True])
def test_export_racing_a_symlink_swap_never_writes_outside(tmp_path: Path, link: bool) -> None:
    """A writer in the target replaces each directory the export has just made by a
    symlink to somewhere else. Entries are made relative to descriptors opened with
    O_NOFOLLOW, so the export fails or writes into the directory it made, never
    through the symlink (before: 26,798 files outside in 9 of 10 tries)."""
    spec = {f"d{i}": {f"f{j}": f"{i}-{j}".encode() for j in range(60)} for i in range(30)}
    store = LocalStore(tmp_path / "store")
    tree = CasDirectory(store)
    tree.import_files(build_host(str(tmp_path / "host"), spec))  # type: ignore[arg-type]
    outside = tmp_path / "outside"
    outside.mkdir()
    for attempt in range(5):
        target = tmp_path / f"target{attempt}"
        target.mkdir()
        stop = threading.Event()

        def swap(target: Path = target, stop: threading.Event = stop) -> None:
            moved = 0
            while not stop.is_set():
                for name in os.listdir(target):
                    path = target / name
                    if name.startswith("d") and not path.is_symlink() and path.is_dir():
                        try:
                            os.rename(path, target / f"moved{moved}")
                            os.symlink(outside, path)
                            moved += 1
                        except OSError:
                            pass

        attacker = threading.Thread(target=swap)
        attacker.start()
        try:
            tree.export_files(str(target), can_link=link, hard_links=link)
        except CasvfsError:
            pass  # refusing is fine; writing outside is not
        finally:
            stop.set()
            attacker.join()
        assert os.listdir(outside) == [], f"attempt {attempt}: {len(os.listdir(outside))} entries outside"


def test_export_with_a_missing_blob_leaves_no_empty_file(tmp_path: Path) -> None:
    from casvfs import Digest

    store = LocalStore(tmp_path / "store")
    tree = CasDirectory(store)
    tree.import_files(build_host(str(tmp_path / "host"), {"a": b"alpha", "b": b"beta"}))
    os.unlink(store.object_path(Digest(tree.file_digest("b"), 4)))
    with pytest.raises(CasvfsError) as info:
        tree.export_files(str(tmp_path / "out"))
    assert info.value.reason == "blob-missing"
    assert not (tmp_path / "out" / "b").exists()  # no 0-byte, 0600 stand-in


def test_reimporting_heals_an_object_changed_in_place(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    host = build_host(str(tmp_path / "host"), {"a": b"alpha"})
    tree = CasDirectory(store)
    tree.import_files(host)
    from casvfs import Digest

    digest = Digest(tree.file_digest("a"), 5)
    path = Path(store.object_path(digest))
    os.chmod(path, 0o644)
    path.write_bytes(b"ALPHA")  # same size, new mtime
    assert not store.has(digest)
    CasDirectory(store).import_files(host)
    assert store.read_bytes(digest) == b"alpha"
