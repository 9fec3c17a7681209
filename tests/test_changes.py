"""diff() and the three-way apply_changes()."""

from __future__ import annotations

from pathlib import Path

import pytest

from casvfs import CasDirectory, Digest, DirectoryError, LocalStore, MemoryStore
from casvfs.directory.changes import diff
from casvfs.protos import remote_execution_pb2 as pb
from tests.trees import Exe, Link, Spec, build_host, snapshot

BASE: Spec = {
    "same": b"same",
    "edit": b"old",
    "mode": b"m",
    "gone": b"bye",
    "link": Link("a"),
    "dir": {"keep": b"k", "sub": {"x": b"x"}},
    "to-file": {"inner": b"i"},
    "untouched": {"deep": {"deeper": b"d"}},
}
CHANGED: Spec = {
    "same": b"same",
    "edit": b"new",
    "mode": Exe(b"m"),
    "link": Link("b"),
    "dir": {"keep": b"k", "sub": {"x": b"x", "y": b"y"}, "added-dir": {"z": b"z"}},
    "to-file": b"now a file",
    "untouched": {"deep": {"deeper": b"d"}},
    "new": b"n",
}


def _tree(tmp_path: Path, name: str, spec: Spec, store: LocalStore) -> CasDirectory:
    tree = CasDirectory(store)
    tree.import_files(build_host(str(tmp_path / name), spec))
    return tree


def test_diff(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "s"))
    changes = diff(_tree(tmp_path, "a", BASE, store), _tree(tmp_path, "b", CHANGED, store))
    assert changes.added == ["dir/added-dir", "dir/added-dir/z", "dir/sub/y", "new"]
    assert changes.removed == ["gone", "to-file/inner"]
    assert changes.modified == ["edit", "link", "mode", "to-file"]
    assert not diff(_tree(tmp_path, "c", BASE, store), _tree(tmp_path, "d", BASE, store))


def test_diff_skips_identical_subtrees_without_loading_them(tmp_path: Path) -> None:
    class RecordingStore(LocalStore):
        loaded: list[Digest] = []

        def get_directory(self, digest: Digest) -> pb.Directory:
            self.loaded.append(digest)
            return super().get_directory(digest)

    store = RecordingStore(str(tmp_path / "s"))
    a_digest = _tree(tmp_path, "a", BASE, store).get_digest()
    b_digest = _tree(tmp_path, "b", CHANGED, store).get_digest()
    untouched = CasDirectory(store, a_digest).open_directory("untouched")
    assert isinstance(untouched, CasDirectory)
    skipped = {untouched.get_digest(), untouched.open_directory("deep").get_digest()}
    store.loaded.clear()
    diff(CasDirectory(store, a_digest), CasDirectory(store, b_digest))
    assert store.loaded and not skipped & set(store.loaded)


def test_apply_changes_three_way(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "s"))
    before = _tree(tmp_path, "before", BASE, store)
    after = _tree(tmp_path, "after", CHANGED, store)
    ours_spec: Spec = {**BASE, "local-only": b"mine", "dir": {"keep": b"k", "sub": {"x": b"x"}, "ours": b"o"}}
    ours = _tree(tmp_path, "ours", ours_spec, store)
    ours.apply_changes(before, after)
    expected_spec: Spec = {**CHANGED, "local-only": b"mine"}
    expected_spec["dir"] = {**CHANGED["dir"], "ours": b"o"}  # type: ignore[dict-item]
    expected = _tree(tmp_path, "expected", expected_spec, store)
    assert snapshot(ours) == snapshot(expected)
    assert ours.get_digest() == expected.get_digest()


def test_apply_changes_conflict_changes_nothing(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "s"))
    before = _tree(tmp_path, "before", BASE, store)
    after = _tree(tmp_path, "after", CHANGED, store)
    ours = _tree(tmp_path, "ours", {**BASE, "edit": b"ours differs"}, store)
    digest = ours.get_digest()
    with pytest.raises(DirectoryError) as info:
        ours.apply_changes(before, after)
    assert info.value.reason == "merge-conflict"
    assert ours.get_digest() == digest


def test_apply_changes_same_change_on_both_sides_is_fine(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "s"))
    before = _tree(tmp_path, "before", BASE, store)
    after = _tree(tmp_path, "after", CHANGED, store)
    ours = _tree(tmp_path, "ours", {**BASE, "edit": b"new"}, store)
    ours.apply_changes(before, after)
    assert ours.get_digest() == after.get_digest()


def test_apply_changes_across_stores(tmp_path: Path) -> None:
    store = LocalStore(str(tmp_path / "s"))
    before = _tree(tmp_path, "before", BASE, store)
    after = _tree(tmp_path, "after", CHANGED, store)
    ours = CasDirectory(MemoryStore())
    ours.import_files(before)
    ours.apply_changes(before, after)
    assert ours.get_digest() == after.get_digest()
    with ours.open_file("dir/added-dir/z", mode="rb") as stream:
        assert stream.read() == b"z"
