"""Export and staging never write outside the target, whatever the symlinks say."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from casvfs import CasDirectory, DirectoryError, LocalStore, MemoryStore, OsDirectory
from tests.trees import Link, build_host, host_snapshot


def _cas(tmp_path: Path, spec: dict) -> CasDirectory:  # type: ignore[type-arg]
    tree = CasDirectory(LocalStore(str(tmp_path / "store")))
    tree.import_files(build_host(str(tmp_path / "spec"), spec))
    return tree


def test_symlinks_in_the_tree_are_written_verbatim_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tree = _cas(tmp_path, {"up": Link("../../../outside"), "abs": Link(str(outside)), "root": Link("/")})
    out = tmp_path / "out"
    tree.export_files(str(out))
    assert os.readlink(out / "up") == "../../../outside"
    assert os.readlink(out / "abs") == str(outside)
    assert os.listdir(outside) == []


@pytest.mark.parametrize("link", [False, True])
def test_symlinks_in_the_target_are_not_followed(tmp_path: Path, link: bool) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"keep")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(outside / "victim", out / "victim")
    tree = _cas(tmp_path, {"victim": b"new content"})
    tree.export_files(str(out), can_link=link)
    assert (outside / "victim").read_bytes() == b"keep"
    assert not os.path.islink(out / "victim")
    assert (out / "victim").read_bytes() == b"new content"

    os.symlink(outside, out / "sub")
    deep = _cas(tmp_path / "deep", {"sub": {"evil": b"x"}})
    with pytest.raises(DirectoryError) as info:
        deep.export_files(str(out), can_link=link)
    assert info.value.reason == "type-mismatch"
    assert sorted(os.listdir(outside)) == ["victim"]


def test_hard_linked_export_shares_read_only_store_objects(tmp_path: Path) -> None:
    tree = _cas(tmp_path, {"plain": b"plain data", "tool": b"#!/bin/sh\n"})
    os.chmod(tmp_path / "spec" / "tool", 0o755)
    tree = _cas(tmp_path / "again", {"plain": b"plain data"})
    out = tmp_path / "out"
    tree.export_files(str(out), can_link=True, hard_links=True)
    store = tree.store
    assert isinstance(store, LocalStore)
    digest = tree.file_digest("plain")
    objects = [st for st in (os.stat(out / "plain"),)]
    object_path = os.path.join(store.root, "objects", digest[:2], digest[2:])
    assert objects[0].st_ino == os.stat(object_path).st_ino
    assert objects[0].st_mode & 0o777 == 0o444
    # without hard_links, root gets a clone or a copy: writing it cannot reach the store
    tree.export_files(str(tmp_path / "safe"), can_link=True)
    shares = os.stat(tmp_path / "safe" / "plain").st_ino == os.stat(object_path).st_ino
    assert shares == (os.geteuid() != 0)


def test_memory_store_export_copies(tmp_path: Path) -> None:
    tree = CasDirectory(MemoryStore())
    tree.import_files(build_host(str(tmp_path / "spec"), {"a": b"1", "d": {"b": b"2"}}))
    out = tmp_path / "out"
    tree.export_files(str(out), can_link=True)  # no object files: falls back to copies
    assert host_snapshot(str(out)) == host_snapshot(str(tmp_path / "spec"))
    assert os.stat(out / "a").st_mode & 0o777 == 0o644


def test_a_directory_an_os_directory_made_still_shows_what_others_write(tmp_path: Path) -> None:
    """Only an export's tree (exclusive) skips looking up names it did not make."""
    root = OsDirectory(str(tmp_path / "root"), create=True)
    made = root.open_directory("made", create=True)
    (tmp_path / "root" / "made" / "behind").write_bytes(b"written by someone else")
    assert made.exists("behind") and root.exists("made/behind")
