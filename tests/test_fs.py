"""The fsspec filesystem: fsspec's conventions (listing, info, open, ranges,
missing paths, read-only), URLs through the entry point, and reads of a
tree-only pull that fetch only the blobs read."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest

from casvfs import Digest, LocalStore
from casvfs.directory.ingest import import_host_tree
from casvfs.fs import CasvfsFileSystem
from casvfs.remote import LayeredStore, RemoteSpec
from peers.casvfs_serve import running_serve
from tests.trees import Exe, Link, build_host

SPEC = {
    "data": {"table.csv": b"a,b\n1,2\n3,4\n", "big.bin": bytes(range(256)) * 4096},
    "bin": {"tool": Exe(b"#!/bin/sh\n")},
    "link": Link("data/table.csv"),
    "README": b"read me\n",
}


@pytest.fixture
def tree(tmp_path: Path) -> tuple[LocalStore, object]:
    store = LocalStore(tmp_path / "store")
    build_host(str(tmp_path / "src"), SPEC)  # type: ignore[arg-type]
    return store, import_host_tree(store, str(tmp_path / "src"))


def test_fsspec_conventions(tree: tuple[LocalStore, object]) -> None:
    store, root = tree
    fs = CasvfsFileSystem(root, store=store)  # type: ignore[arg-type]
    assert fs.ls("", detail=False) == ["README", "bin", "data", "link"]
    assert {e["name"]: e["type"] for e in fs.ls("data")} == {"data/big.bin": "file", "data/table.csv": "file"}
    assert fs.info("data/big.bin")["size"] == 256 * 4096
    assert fs.info("link") == {"name": "link", "size": 14, "type": "other", "destination": "data/table.csv"}
    assert fs.info("bin/tool")["executable"] is True
    assert fs.cat_file("data/table.csv") == b"a,b\n1,2\n3,4\n"
    assert fs.cat_file("data/big.bin", start=1000, end=1010) == (bytes(range(256)) * 4096)[1000:1010]
    with fs.open("data/big.bin", "rb") as stream:
        stream.seek(300_000)
        assert stream.read(4) == (bytes(range(256)) * 4096)[300_000:300_004]
    assert sorted(fs.find("")) == ["README", "bin/tool", "data/big.bin", "data/table.csv", "link"]
    assert [(d, sorted(f)) for d, _subdirs, f in fs.walk("data")] == [("data", ["big.bin", "table.csv"])]
    assert fs.isdir("data") and fs.isfile("README") and not fs.exists("nope")
    for missing in ("nope", "data/nope", "README/inside"):
        with pytest.raises(FileNotFoundError):
            fs.info(missing)
    for mode in ("wb", "ab", "r+b"):
        with pytest.raises(ValueError, match="read-only"):
            fs.open("README", mode)
    with pytest.raises(IsADirectoryError):
        fs.open("data", "rb")


def test_urls_through_the_entry_point(
    tree: tuple[LocalStore, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, root = tree
    monkeypatch.setenv("CASVFS_STORE", store.root)
    with fsspec.open(f"casvfs://{root}/data/table.csv", "rb") as stream:
        assert stream.read() == b"a,b\n1,2\n3,4\n"
    fs, path = fsspec.core.url_to_fs(f"casvfs://{root}/data")
    assert isinstance(fs, CasvfsFileSystem) and path == "data"
    from casvfs.refs import RefIndex

    RefIndex.of_store(store).set("dataset/1", root)  # type: ignore[arg-type]
    assert fsspec.filesystem("casvfs", root="dataset/1").cat_file("README") == b"read me\n"


def test_a_tree_only_pull_is_read_fetching_only_the_blobs_read(
    tree: tuple[LocalStore, object], tmp_path: Path
) -> None:
    store, root = tree
    with running_serve(tmp_path / "server") as served:
        upload = LayeredStore(store, [RemoteSpec(served.url, push=True)])
        upload.push(root)  # type: ignore[arg-type]
        partial = LayeredStore(LocalStore(tmp_path / "partial"), [RemoteSpec(served.url)])
        partial.pull(root, tree_only=True)  # type: ignore[arg-type]
        fs = CasvfsFileSystem(root, store=partial)  # type: ignore[arg-type]
        assert fs.ls("data", detail=False) == ["data/big.bin", "data/table.csv"]
        received = partial.remotes[0].received
        assert fs.cat_file("data/table.csv") == b"a,b\n1,2\n3,4\n"
        assert partial.remotes[0].received == received + 1
        big = Digest(fs.info("data/big.bin")["digest"], 256 * 4096)
        assert not os.path.exists(partial.local.object_path(big))
