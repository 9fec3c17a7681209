"""The Directory contract, run step by step on both implementations and compared."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from casvfs import CasDirectory, Directory, DirectoryError, FileType, LocalStore, OsDirectory
from tests.outcomes import outcome
from tests.trees import Exe, Link, Spec, build_host, snapshot

SPEC: Spec = {
    "b-file": b"bee",
    "a-exe": Exe(b"#!/bin/sh\n"),
    "z-dir": {"inner": b"in", "deeper": {"leaf": b"leaf"}, "up": Link("../b-file")},
    "m-empty": {},
    "abs": Link("/z-dir/inner"),
    "escape": Link("../../../../z-dir"),
    "dangling": Link("nowhere"),
    "loop1": Link("loop2"),
    "loop2": Link("loop1"),
    "dirlink": Link("z-dir"),
}


@pytest.fixture
def pair(tmp_path: Any) -> tuple[Directory, Directory]:
    """The same tree as an OsDirectory and as a CasDirectory."""
    host = build_host(str(tmp_path / "host"), SPEC)
    cas = CasDirectory(LocalStore(str(tmp_path / "store")))
    cas.import_files(host)
    return OsDirectory(host), cas


def same(pair: tuple[Directory, Directory], action: Callable[[Directory], Any]) -> tuple[str, Any]:
    """Run *action* on both; assert equal outcomes and equal trees afterwards."""
    left, right = (outcome(lambda d=d: action(d)) for d in pair)  # type: ignore[misc]
    assert left == right
    assert snapshot(pair[0]) == snapshot(pair[1])
    return left


def test_listing_order_is_buildstreams(pair: tuple[Directory, Directory]) -> None:
    expected = [
        "a-exe",
        "abs",
        "b-file",
        "dangling",
        "dirlink",
        "escape",
        "loop1",
        "loop2",
        "m-empty",
        "z-dir",
        "z-dir/inner",
        "z-dir/up",
        "z-dir/deeper",
        "z-dir/deeper/leaf",
    ]
    for directory in pair:
        assert list(directory.list_relative_paths()) == expected
    assert snapshot(pair[0]) == snapshot(pair[1])


def test_iter_len_size(pair: tuple[Directory, Directory]) -> None:
    for directory in pair:
        assert list(directory) == sorted(SPEC)
        assert len(directory) == len(SPEC)
        assert directory.get_size() == len(b"bee#!/bin/sh\ninleaf")


@pytest.mark.parametrize(
    "path, follow",
    [
        ("a-exe", False),
        ("b-file", True),
        ("z-dir", False),
        ("abs", False),
        ("abs", True),
        ("escape", True),
        ("escape/inner", False),
        ("escape/inner", True),
        ("dangling", True),
        ("dangling", False),
        ("loop1", True),
        ("loop1", False),
        ("dirlink/up", True),
        ("z-dir/../b-file", False),
        ("../../b-file", False),
        ("missing", False),
        ("b-file/x", False),
        ("/abs", False),
        ("", False),
        (".", False),
    ],
)
def test_stat_and_predicates(pair: tuple[Directory, Directory], path: str, follow: bool) -> None:
    def probe(directory: Directory) -> tuple[Any, ...]:
        stat = outcome(lambda: directory.stat(path, follow_symlinks=follow))
        if stat[0] == "ok":
            stat = ("ok", (stat[1].file_type, stat[1].executable, stat[1].size))
        return (
            stat,
            outcome(lambda: directory.exists(path, follow_symlinks=follow)),
            outcome(lambda: directory.isfile(path, follow_symlinks=follow)),
            outcome(lambda: directory.isdir(path, follow_symlinks=follow)),
            outcome(lambda: directory.islink(path, follow_symlinks=follow)),
        )

    same(pair, probe)


def test_expected_errors(pair: tuple[Directory, Directory]) -> None:
    cases: list[tuple[Callable[[Directory], Any], str]] = [
        (lambda d: d.open_directory("b-file"), "not-a-directory"),
        (lambda d: d.open_directory("missing"), "not-found"),
        (lambda d: d.open_directory("dirlink"), "not-a-directory"),
        (lambda d: d.stat("loop1", follow_symlinks=True), "symlink-loop"),
        (lambda d: d.readlink("b-file"), "not-a-symlink"),
        (lambda d: d.remove("z-dir"), "directory-not-empty"),
        (lambda d: d.remove("missing"), "not-found"),
        (lambda d: d.rename("b-file", "a-exe"), "exists"),
        (lambda d: d.rename("z-dir", "z-dir/deeper/z"), "invalid-rename"),
        (lambda d: d.open_file("b-file", mode="x"), "exists"),
        (lambda d: d.open_file("z-dir", mode="r"), "is-a-directory"),
        (lambda d: d.open_file("z-dir", mode="w"), "is-a-directory"),
        (lambda d: d.open_file("missing", mode="rb"), "not-found"),
        (lambda d: d.open_file("dangling", mode="r"), "not-found"),
        (lambda d: d.file_digest("z-dir"), "is-a-directory"),
        (lambda d: d.import_files(str(d) + "-no-such-host-dir"), "not-found"),
    ]
    for action, reason in cases:
        result = same(pair, action)
        assert result == ("error", ("DirectoryError", reason))


def test_invalid_arguments_are_value_errors(pair: tuple[Directory, Directory]) -> None:
    for directory in pair:
        with pytest.raises(ValueError):
            directory.stat("/b-file")
        with pytest.raises(ValueError):
            directory.open_file("b-file", mode="a")
        with pytest.raises(ValueError):
            directory.open_directory("/z-dir")


def test_symlink_loop_is_a_directory_error_not_recursion(tmp_path: Any) -> None:
    spec: Spec = {"self": Link("self/x"), "a": Link("b/c"), "b": Link("a")}
    host = build_host(str(tmp_path / "h"), spec)
    cas = CasDirectory(LocalStore(str(tmp_path / "s")))
    cas.import_files(host)
    for directory in (OsDirectory(host), cas):
        for path in ("self", "a", "b/c/d"):
            with pytest.raises(DirectoryError) as info:
                directory.open_directory(path, follow_symlinks=True)
            assert info.value.reason == "symlink-loop"


def test_symlinks_resolve_inside_the_tree(pair: tuple[Directory, Directory]) -> None:
    for directory in pair:
        # absolute and escaping targets are relative to the tree's root
        assert directory.open_directory("escape", follow_symlinks=True).isfile("inner")
        with directory.open_file("abs", mode="rb") as stream:
            assert stream.read() == b"in"
        assert directory.open_directory("z-dir").open_directory("..").isfile("b-file")


def test_open_file_modes(pair: tuple[Directory, Directory]) -> None:
    def write_all(directory: Directory) -> list[Any]:
        with directory.open_file("new-text", mode="w") as text:
            text.write("héllo")
        with directory.open_file("new-bin", mode="xb") as binary:
            binary.write(b"\0\1")
        with directory.open_file("a-exe", mode="w+b") as both:
            both.write(b"rewritten")
            both.seek(0)
            assert both.read() == b"rewritten"
        with directory.open_file("z-dir/up", mode="wb") as through_link:
            through_link.write(b"via link")
        with directory.open_file("new-text", mode="r") as text:
            read_back = text.read()
        with directory.open_file("new-x", mode="x+") as created:
            created.write("x")
        return [read_back, directory.stat("a-exe").executable]

    assert same(pair, write_all) == ("ok", ["héllo", True])
    for directory in pair:
        with directory.open_file("b-file", mode="rb") as stream:
            assert stream.read() == b"via link"


def test_remove_and_rename(pair: tuple[Directory, Directory]) -> None:
    same(pair, lambda d: d.remove("dangling"))
    same(pair, lambda d: d.remove("dirlink"))  # the link, never its target
    same(pair, lambda d: d.remove("z-dir", recursive=True))
    same(pair, lambda d: d.rename("m-empty", "moved/deep"))  # parent missing
    same(pair, lambda d: d.rename("m-empty", "renamed"))
    same(pair, lambda d: d.rename("b-file", "renamed/b"))
    for directory in pair:
        assert directory.isfile("renamed/b") and not directory.exists("z-dir")


def test_open_directory_create(pair: tuple[Directory, Directory]) -> None:
    def create(directory: Directory) -> list[str]:
        sub = directory.open_directory("n1/n2/n3", create=True)
        with sub.open_file("f", mode="wb") as stream:
            stream.write(b"deep")
        return list(directory.open_directory("n1").list_relative_paths())

    assert same(pair, create) == ("ok", ["n2", "n2/n3", "n2/n3/f"])


def test_cas_digest_invalidation_propagates_up(tmp_path: Any) -> None:
    store = LocalStore(str(tmp_path / "s"))
    tree = CasDirectory(store)
    sub = tree.open_directory("a/b/c", create=True)
    first = tree.get_digest()
    with sub.open_file("f", mode="wb") as stream:
        stream.write(b"1")
    second = tree.get_digest()
    assert second != first
    sub.remove("f")
    assert tree.get_digest() == first
    # a fresh tree from the digest sees the same content, loaded lazily
    reloaded = CasDirectory(store, second)
    assert reloaded.open_directory("a/b/c").isfile("f")


def test_file_digest_matches_content(pair: tuple[Directory, Directory]) -> None:
    import hashlib

    for directory in pair:
        assert directory.file_digest("b-file") == hashlib.sha256(b"bee").hexdigest()
        assert directory.file_digest("z-dir/up") == hashlib.sha256(b"bee").hexdigest()


def test_special_files_are_ignored(tmp_path: Any) -> None:
    host = build_host(str(tmp_path / "h"), {"f": b"x"})
    os.mkfifo(os.path.join(host, "fifo"))
    os_dir = OsDirectory(str(tmp_path / "dest"), create=True)
    cas = CasDirectory(LocalStore(str(tmp_path / "s")))
    results = [d.import_files(host) for d in (os_dir, cas)]
    assert results[0] == results[1]
    assert results[0] is not None and results[0].ignored == ["fifo"]
    assert snapshot(os_dir) == snapshot(cas)
    assert cas.stat("f").file_type is FileType.REGULAR_FILE
