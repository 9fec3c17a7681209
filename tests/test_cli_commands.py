"""The casvfs command, driven through main() and once through the installed script."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from casvfs import CasDirectory, LocalStore
from casvfs.cli import main
from tests.trees import Exe, Link, build_host, host_snapshot

SPEC = {"a": b"alpha", "x": Exe(b"#!/bin/sh\n"), "d": {"b": b"beta", "e": {}}, "l": Link("a")}


def run(capsys: pytest.CaptureFixture[str], store: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--store", str(store), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def imported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str, str]:
    host = build_host(str(tmp_path / "host"), SPEC)
    code, out, _ = run(capsys, tmp_path / "store", "import", host)
    assert code == 0
    return tmp_path / "store", out.strip(), host


def test_import_prints_the_digest(imported: tuple[Path, str, str], tmp_path: Path) -> None:
    _store, digest, host = imported
    tree = CasDirectory(LocalStore(tmp_path / "other"))
    tree.import_files(host)
    assert digest == str(tree.get_digest())


def test_digest_only_stores_nothing(
    imported: tuple[Path, str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _store, digest, host = imported
    code, out, _ = run(capsys, tmp_path / "untouched", "import", "--digest-only", host)
    assert (code, out.strip()) == (0, digest)
    objects = tmp_path / "untouched" / "objects"
    assert not objects.exists() or not any(path.is_file() for path in objects.rglob("*"))


def test_ls(imported: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    store, digest, _ = imported
    assert run(capsys, store, "ls", digest)[1].split() == ["a", "d", "l", "x"]
    assert run(capsys, store, "ls", digest, "d")[1].split() == ["b", "e"]
    assert run(capsys, store, "ls", "-R", digest)[1].split() == ["a", "l", "x", "d", "d/b", "d/e"]
    long = run(capsys, store, "ls", "--long", digest)[1].splitlines()
    assert long[0] == f"-          5 a  {_sha(b'alpha')}"
    assert "l          - l -> a" in long and any(line.startswith("x ") for line in long)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_cat(imported: tuple[Path, str, str]) -> None:
    store, digest, _ = imported
    script = Path(sys.executable).parent / "casvfs"
    done = subprocess.run(
        [str(script), "--store", str(store), "cat", digest, "d/b"], capture_output=True, check=False
    )
    assert done.returncode == 0 and done.stdout == b"beta"


@pytest.mark.parametrize("link", [False, True])
def test_export(
    imported: tuple[Path, str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path, link: bool
) -> None:
    store, digest, host = imported
    out = tmp_path / "out"
    code, _, _ = run(capsys, store, "export", digest, str(out), *(["--link"] if link else []))
    assert code == 0 and host_snapshot(str(out)) == host_snapshot(host)


def test_tar_is_deterministic(
    imported: tuple[Path, str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store, digest, _ = imported
    for name in ("one.tar", "two.tar"):
        assert run(capsys, store, "tar", digest, str(tmp_path / name))[0] == 0
    data = (tmp_path / "one.tar").read_bytes()
    assert data == (tmp_path / "two.tar").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == ["a", "l", "x", "d", "d/b", "d/e"]
        assert {(m.mtime, m.uid, m.gid) for m in members} == {(1321009871, 0, 0)}
        assert archive.getmember("x").mode == 0o755 and archive.getmember("l").linkname == "a"
        assert archive.extractfile("d/b").read() == b"beta"  # type: ignore[union-attr]


def test_diff(imported: tuple[Path, str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    store, digest, host = imported
    Path(host, "a").write_bytes(b"changed")
    os.unlink(os.path.join(host, "l"))
    Path(host, "new").write_bytes(b"n")
    code, changed, _ = run(capsys, store, "import", host)
    assert run(capsys, store, "diff", digest, digest)[:2] == (0, "")
    code, out, _ = run(capsys, store, "diff", digest, changed.strip())
    assert code == 1 and out.splitlines() == ["M a", "- l", "+ new"]


def test_fsck(imported: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    store, _digest, _ = imported
    code, out, _ = run(capsys, store, "fsck")
    assert code == 0 and out.strip().endswith("0 corrupt")
    blob = _sha(b"alpha")
    path = store / "objects" / blob[:2] / blob[2:]
    os.chmod(path, 0o644)
    path.write_bytes(b"ALPHA")
    code, out, _ = run(capsys, store, "fsck")
    assert code == 1 and f"corrupt: objects/{blob[:2]}/{blob[2:]}" in out


@pytest.mark.parametrize(
    "args",
    [
        ["ls", "not-a-digest"],
        ["ls", "ab" * 32 + "/10"],
        ["cat", "DIGEST", "missing"],
        ["cat", "DIGEST", "d"],
        ["import", "/no/such/dir"],
    ],
)
def test_errors_are_one_line(
    imported: tuple[Path, str, str], capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    store, digest, _ = imported
    code, _, err = run(capsys, store, *[digest if arg == "DIGEST" else arg for arg in args])
    assert code == 1
    assert len(err.splitlines()) == 1 and err.startswith("casvfs: error: ")


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "casvfs"
    done = subprocess.run(
        [str(script), "--store", str(tmp_path), "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and "import" in done.stdout
