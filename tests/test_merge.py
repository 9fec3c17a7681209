"""Merge rules of import_files: every pair of a set of small trees, imported every way
(host->host, host->CAS, CAS->CAS, CAS->host), must give the same result and tree."""

from __future__ import annotations

import itertools
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from casvfs import CasDirectory, Directory, FileListResult, LocalStore, OsDirectory
from tests.outcomes import outcome
from tests.trees import Exe, Link, Spec, build_host, random_spec, snapshot

TREES: dict[str, Spec] = {
    "empty": {},
    "file": {"x": b"file-x"},
    "file2": {"x": b"other"},
    "exe": {"x": Exe(b"exe")},
    "link": {"x": Link("target")},
    "emptydir": {"x": {}},
    "fulldir": {"x": {"y": b"y"}},
    "fulldir2": {"x": {"y": b"y2", "z": b"z"}, "w": b"w"},
    "nested": {"x": {"sub": {"deep": b"d"}, "y": Link("sub")}, "top": b"t"},
    "dirlink": {"x": Link("real"), "real": {"y": b"in real"}},
    "names": {"x y é": b"s", "x": {"y": {}}},
}


def _ways(tmp: Path, dest: str, src: str) -> dict[str, tuple[Directory, Any]]:
    """Import tree *src* into tree *dest* each way; return (resulting tree, outcome)."""
    hosts = {
        name: build_host(str(tmp / f"{name}-{index}"), TREES[name]) for index, name in enumerate((dest, src))
    }
    store = LocalStore(str(tmp / "store"))

    def cas(name: str) -> CasDirectory:
        tree = CasDirectory(store)
        tree.import_files(hosts[name])
        return tree

    def host_copy(name: str, label: str) -> OsDirectory:
        target = str(tmp / f"{label}-{name}")
        shutil.copytree(hosts[name], target, symlinks=True)
        return OsDirectory(target)

    results = {}
    for label, dest_tree, source in [
        ("host->host", host_copy(dest, "a"), hosts[src]),
        ("host->cas", cas(dest), hosts[src]),
        ("cas->cas", cas(dest), cas(src)),
        ("cas->host", host_copy(dest, "b"), cas(src)),
    ]:
        results[label] = (dest_tree, outcome(lambda d=dest_tree, s=source: d.import_files(s)))
    return results


@pytest.mark.parametrize("dest, src", list(itertools.product(TREES, TREES)))
def test_every_pair_agrees(tmp_path: Path, dest: str, src: str) -> None:
    results = _ways(tmp_path, dest, src)
    reference_tree, reference = results["host->host"]
    for label, (tree, result) in results.items():
        assert result == reference, label
        assert snapshot(tree) == snapshot(reference_tree), label


def _result(dest: str, src: str, tmp: Path) -> Any:
    return _ways(tmp, dest, src)["cas->cas"][1]


@pytest.mark.parametrize(
    "dest, src, expected",
    [
        ("file", "file2", FileListResult(overwritten=["x"], files_written=["x"])),
        ("file", "link", FileListResult(overwritten=["x"], files_written=["x"])),
        ("emptydir", "file", FileListResult(overwritten=["x"], files_written=["x"])),
        ("fulldir", "file", FileListResult(ignored=["x"])),
        ("fulldir", "fulldir2", FileListResult(overwritten=["x/y"], files_written=["w", "x/y", "x/z"])),
        ("empty", "nested", FileListResult(files_written=["top", "x/y", "x/sub/deep"])),
    ],
)
def test_rules(tmp_path: Path, dest: str, src: str, expected: FileListResult) -> None:
    assert _result(dest, src, tmp_path) == ("ok", expected)


@pytest.mark.parametrize("dest, src", [("file", "fulldir"), ("link", "emptydir"), ("dirlink", "fulldir")])
def test_directory_over_file_or_symlink_is_an_error(tmp_path: Path, dest: str, src: str) -> None:
    assert _result(dest, src, tmp_path) == ("error", ("DirectoryError", "type-mismatch"))


def test_destination_symlinks_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = build_host(str(tmp_path / "dest"), {"sub": Link(str(outside)), "f": Link(str(outside / "victim"))})
    (outside / "victim").write_bytes(b"keep")
    source = build_host(str(tmp_path / "src"), {"sub": {"evil": b"x"}, "f": b"replaced"})
    for tree in (OsDirectory(dest), CasDirectory(LocalStore(str(tmp_path / "s")))):
        if isinstance(tree, CasDirectory):
            tree.import_files(dest)
        result = outcome(lambda t=tree: t.import_files(source))
        assert result == ("error", ("DirectoryError", "type-mismatch"))
        assert sorted(os.listdir(outside)) == ["victim"]
        assert (outside / "victim").read_bytes() == b"keep"
    only_file = build_host(str(tmp_path / "src2"), {"f": b"replaced"})
    OsDirectory(dest).import_files(only_file)
    assert (outside / "victim").read_bytes() == b"keep"
    assert not os.path.islink(os.path.join(dest, "f"))


def test_filter_callback(tmp_path: Path) -> None:
    spec: Spec = {
        "keep": b"k",
        "drop": b"d",
        "dir": {"keep": b"k", "drop": b"d"},
        "gone": {"drop": b"x"},
        "kept-empty": {},
    }
    host = build_host(str(tmp_path / "h"), spec)

    def accept(path: str) -> bool:
        return not path.endswith("drop") and path not in ("dir", "gone")

    trees: list[Directory] = [
        OsDirectory(str(tmp_path / "o"), create=True),
        CasDirectory(LocalStore(str(tmp_path / "s"))),
    ]
    results = [tree.import_files(host, filter_callback=accept) for tree in trees]
    assert results[0] == results[1] == FileListResult(files_written=["keep", "dir/keep"])
    assert snapshot(trees[0]) == snapshot(trees[1])
    # "dir" was rejected but is created for the file under it; "gone" holds nothing accepted
    assert list(trees[1].list_relative_paths()) == ["keep", "dir", "dir/keep", "kept-empty"]


def test_collect_result_false_returns_none(tmp_path: Path) -> None:
    host = build_host(str(tmp_path / "h"), {"a": b"1"})
    for tree in (
        OsDirectory(str(tmp_path / "o"), create=True),
        CasDirectory(LocalStore(str(tmp_path / "s"))),
    ):
        assert tree.import_files(host, collect_result=False) is None
        assert tree.isfile("a")


def test_update_mtime(tmp_path: Path) -> None:
    host = build_host(str(tmp_path / "h"), {"a": b"1", "d": {"b": b"2"}, "l": Link("a")})
    stamp = 1_600_000_000.5
    trees: list[Directory] = [
        OsDirectory(str(tmp_path / "o"), create=True),
        CasDirectory(LocalStore(str(tmp_path / "s"))),
    ]
    for tree in trees:
        tree.import_files(host, update_mtime=stamp)
        assert tree.stat("a").mtime == stamp
        assert tree.stat("d/b").mtime == stamp
    exported = tmp_path / "exported"
    trees[1].export_files(str(exported))
    assert os.stat(exported / "d" / "b").st_mtime == stamp


def test_import_into_own_subdirectory_terminates(tmp_path: Path) -> None:
    spec: Spec = {"f": b"f", "sub": {"g": b"g"}}
    host = build_host(str(tmp_path / "h"), spec)
    cas = CasDirectory(LocalStore(str(tmp_path / "s")))
    cas.import_files(host)
    trees: list[Directory] = [OsDirectory(host), cas]
    results = [tree.open_directory("sub").import_files(tree) for tree in trees]
    assert results[0] == results[1]
    assert snapshot(trees[0]) == snapshot(trees[1])
    assert sorted(trees[1].list_relative_paths()) == sorted(
        ["f", "sub", "sub/g", "sub/f", "sub/sub", "sub/sub/g"]
    )


def test_properties_mtime_kept_through_cas_and_export(tmp_path: Path) -> None:
    host = build_host(str(tmp_path / "h"), {"a": b"1", "d": {"b": Exe(b"2")}})
    os.utime(os.path.join(host, "a"), ns=(1, 1_234_567_891_123_456_789))
    os.utime(os.path.join(host, "d"), ns=(1, 1_100_000_000_000_000_000))
    cas = CasDirectory(LocalStore(str(tmp_path / "s")))
    cas.import_files(host, properties=["mtime"])
    # recorded to the microsecond, as buildbox-casd records it
    assert cas.stat("a").mtime == 1_234_567_891_123_456_000 / 1e9
    plain = CasDirectory(cas.store)
    plain.import_files(host)
    assert plain.get_digest() != cas.get_digest()
    out = tmp_path / "out"
    cas.export_files(str(out))
    assert os.stat(out / "a").st_mtime_ns == 1_234_567_891_123_456_000
    assert os.stat(out / "d").st_mtime_ns == 1_100_000_000_000_000_000
    # re-serialising a loaded tree keeps directory and file mtimes
    reloaded = CasDirectory(cas.store, cas.get_digest())
    reloaded.open_directory("d").remove("b")
    with reloaded.open_directory("d").open_file("b", mode="wb") as stream:
        stream.write(b"2")
    again = CasDirectory(cas.store, reloaded.get_digest())
    assert again.stat("a").mtime == cas.stat("a").mtime
    re_out = tmp_path / "re-out"
    again.export_files(str(re_out))
    assert os.stat(re_out / "d").st_mtime_ns == 1_100_000_000_000_000_000


def test_failed_import_changes_nothing(tmp_path: Path) -> None:
    dest_spec: Spec = {"a": {"keep": b"1"}, "z": b"file"}
    source_spec: Spec = {"a": {"new": b"2"}, "b": b"3", "z": {"inner": b"4"}}
    dest_host = build_host(str(tmp_path / "dest"), dest_spec)
    source = build_host(str(tmp_path / "src"), source_spec)
    cas = CasDirectory(LocalStore(str(tmp_path / "s")))
    cas.import_files(dest_host)
    before = cas.get_digest()
    for tree in (OsDirectory(dest_host), cas):
        assert outcome(lambda t=tree: t.import_files(source)) == (
            "error",
            ("DirectoryError", "type-mismatch"),
        )
        assert list(tree.list_relative_paths()) == ["z", "a", "a/keep"]
    assert cas.get_digest() == before


@pytest.mark.parametrize("seed", range(4))
def test_merging_mostly_shared_trees_agrees_with_the_host_merge(tmp_path: Path, seed: int) -> None:
    """CAS->CAS merges skip subtrees the destination already holds (same digest);
    the result and the tree must still be what a host->host merge gives."""
    rng = random.Random(seed)
    spec = random_spec(seed, entries=120)
    dest_host = build_host(str(tmp_path / "dest"), spec)
    src_host = str(tmp_path / "src")
    shutil.copytree(dest_host, src_host, symlinks=True)
    files = sorted(p for p in Path(src_host).rglob("*") if p.is_file() and not p.is_symlink())
    changed = rng.sample(files, min(3, len(files)))
    for path in changed:
        path.write_bytes(b"changed " + path.read_bytes())
    # a file in a subdirectory the source did not change, changed in the destination
    # only (whose node for that subdirectory still names the old digest)
    nested = [str(p.relative_to(src_host)) for p in files if p not in changed and p.parent != Path(src_host)]
    edited = rng.choice(nested)
    store = LocalStore(str(tmp_path / "store"))
    cas_dest, cas_src = CasDirectory(store), CasDirectory(store)
    cas_dest.import_files(dest_host)
    cas_src.import_files(src_host)
    cas_dest.open_directory("fresh", create=True)  # a changed destination, digest not yet known
    with cas_dest.open_file(edited, mode="wb") as stream:
        stream.write(b"edited in the destination")
    shutil.copytree(dest_host, tmp_path / "host-dest", symlinks=True)
    host_dest = OsDirectory(str(tmp_path / "host-dest"))
    host_dest.open_directory("fresh", create=True)
    with host_dest.open_file(edited, mode="wb") as stream:
        stream.write(b"edited in the destination")
    assert cas_dest.import_files(cas_src) == host_dest.import_files(src_host)
    assert snapshot(cas_dest) == snapshot(host_dest)
