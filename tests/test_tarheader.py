"""export_to_tar's packed headers are byte for byte tarfile's."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from casvfs import CasDirectory, LocalStore
from casvfs.directory import tarheader
from casvfs.directory.tarheader import TarMember
from tests.trees import Exe, Link, Spec, build_host, random_spec

EDGES: Spec = {
    "n" * 100: b"a name of exactly 100 characters",
    "d" * 99: {"x": b"a directory name of 99 (100 with its slash)"},
    "long-" * 30: b"a name for a pax record",
    "é-ü": b"not ASCII",
    "exe": Exe(b"#!/bin/sh\n"),
    "link": Link("t" * 100),
    "long-link": Link("t" * 101),
    "empty": b"",
}


def _archive(tree: CasDirectory, format: int, mtime: int | float = 1321009871) -> bytes:
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w", format=format) as archive:
        tree.export_to_tar(archive, "base", mtime=mtime)  # type: ignore[arg-type]
    return sink.getvalue()


@pytest.mark.parametrize("format", [tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT])
@pytest.mark.parametrize("mtime", [1321009871, 0, 1.5])
def test_archives_equal_tarfiles_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, format: int, mtime: int | float
) -> None:
    host = build_host(str(tmp_path / "h"), {**random_spec(4, entries=150), **EDGES})
    tree = CasDirectory(LocalStore(str(tmp_path / "s")))
    tree.import_files(host)
    if format == tarfile.USTAR_FORMAT:  # no pax records there: only what USTAR can hold
        for name in ("long-" * 30, "long-link", "é-ü"):
            tree.remove(name)
    fast = _archive(tree, format, mtime)
    monkeypatch.setattr(tarheader, "_FAST", False)
    assert fast == _archive(tree, format, mtime)


def test_the_shortcut_is_on_and_takes_simple_members() -> None:
    assert tarheader._FAST
    member = TarMember("a/b")
    member.size, member.uname, member.gname = 3, "", ""
    assert member._simple_header() is not None
    member.name = "é"
    assert member._simple_header() is None
