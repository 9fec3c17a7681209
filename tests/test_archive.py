"""Archives into the CAS: every kind gives the digest an import of the same
files gives; subdirectories; hostile members refuse the whole archive."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from casvfs import MemoryStore
from casvfs.directory.archive import REASON_UNSAFE_ARCHIVE, import_archive
from casvfs.directory.ingest import import_host_tree
from casvfs.errors import REASON_INVALID_DIRECTORY, REASON_NOT_FOUND, DirectoryError
from tests.trees import Exe, Link, build_host

SPEC = {
    "pkg-1.0": {
        "README": b"read me",
        "bin": {"tool": Exe(b"#!/bin/sh\necho hi\n")},
        "src": {"a.c": b"int main;", "deep": {"x": b"x" * 5000}},
        "link": Link("src/a.c"),
        "empty": {},
    }
}


def _tar(root: Path, mode: str) -> bytes:
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode=mode) as archive:
        archive.add(root / "pkg-1.0", arcname="pkg-1.0")
    return sink.getvalue()


def _zip(root: Path) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        for directory, names, files in os.walk(root):
            for name in sorted(names + files):
                path = Path(directory) / name
                arcname = str(path.relative_to(root))
                if path.is_symlink():
                    info = zipfile.ZipInfo(arcname)
                    info.external_attr = 0o120777 << 16
                    archive.writestr(info, os.readlink(path))
                elif path.is_dir():
                    archive.write(path, arcname + "/")
                else:
                    archive.write(path, arcname)
    return sink.getvalue()


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


@pytest.fixture
def host(tmp_path: Path) -> Path:
    build_host(str(tmp_path / "host"), SPEC)
    return tmp_path / "host"


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "tar.xz", "tar.bz2", "tar.zst", "zip"])
def test_every_kind_gives_the_digest_of_an_import_of_the_same_files(host: Path, kind: str) -> None:
    if kind == "zip":
        data = _zip(host)
    elif kind == "tar.zst":
        data = _zstd(_tar(host, "w"))
    else:
        data = _tar(host, "w" if kind == "tar" else "w:" + kind.split(".")[1])
    store = MemoryStore()
    result = import_archive(store, io.BufferedReader(io.BytesIO(data)))
    assert result.digest == import_host_tree(MemoryStore(), str(host))
    sub = import_archive(store, io.BufferedReader(io.BytesIO(data)), subdirectory="pkg-1.0/src")
    assert sub.digest == import_host_tree(MemoryStore(), str(host / "pkg-1.0" / "src"))
    assert result.files == 4


def _hostile(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w") as archive:
        ok = tarfile.TarInfo("fine/file")
        ok.size = 2
        archive.addfile(ok, io.BytesIO(b"ok"))
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return sink.getvalue()


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    "member",
    [
        tarfile.TarInfo("../outside"),
        tarfile.TarInfo("fine/../../outside"),
        tarfile.TarInfo("/etc/passwd"),
        _link("fine/evil", "/etc/passwd", tarfile.SYMTYPE),
        _link("fine/evil", "../../etc", tarfile.SYMTYPE),
        _link("fine/evil", "/etc/shadow", tarfile.LNKTYPE),
        _link("fine/evil", "nothing/before", tarfile.LNKTYPE),
    ],
    ids=["dotdot", "nested", "absolute", "symlink-absolute", "symlink-out", "hardlink-out", "no-target"],
)
def test_a_member_escaping_the_tree_refuses_the_archive(member: tarfile.TarInfo) -> None:
    with pytest.raises(DirectoryError) as caught:
        import_archive(MemoryStore(), io.BufferedReader(io.BytesIO(_hostile(member, b"x"))))
    assert caught.value.reason == REASON_UNSAFE_ARCHIVE


def test_links_inside_the_tree_devices_and_bad_input() -> None:
    inside = _link("fine/up", "../fine/file", tarfile.SYMTYPE)
    store = MemoryStore()
    assert import_archive(store, io.BufferedReader(io.BytesIO(_hostile(inside)))).files == 1
    hard = _link("fine/again", "fine/file", tarfile.LNKTYPE)
    assert import_archive(store, io.BufferedReader(io.BytesIO(_hostile(hard)))).files == 2
    device = tarfile.TarInfo("fine/dev")
    device.type = tarfile.CHRTYPE
    result = import_archive(store, io.BufferedReader(io.BytesIO(_hostile(device))))
    assert result.left_out == ["fine/dev"]
    with pytest.raises(DirectoryError) as caught:
        import_archive(store, io.BufferedReader(io.BytesIO(b"not an archive at all" * 50)))
    assert caught.value.reason == REASON_INVALID_DIRECTORY
    with pytest.raises(DirectoryError) as caught:
        import_archive(store, io.BufferedReader(io.BytesIO(_hostile(inside))), subdirectory="missing")
    assert caught.value.reason == REASON_NOT_FOUND
