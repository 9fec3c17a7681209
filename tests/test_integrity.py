"""A content-addressed store never serves a blob that does not match its name: reads
are verified, corrupt objects are quarantined, and linked exports cannot quietly
change the store (tested as root, as CI runs)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from casvfs import CasDirectory, Digest, LocalStore, StoreError
from casvfs.cli import main
from tests.trees import build_host

LARGE = os.urandom(5 * 1024 * 1024 + 3)  # past the 4 MiB read whole before it is returned


def _store_with(tmp_path: Path, content: bytes) -> tuple[LocalStore, Digest, Path]:
    store = LocalStore(tmp_path / "store")
    host = build_host(str(tmp_path / "host"), {"f": content, "other": b"fine"})
    tree = CasDirectory(store)
    tree.import_files(host)
    return store, tree.get_digest(), Path(store.object_path(Digest(tree.file_digest("f"), len(content))))


def _corrupt(path: Path, *, keep_mtime: bool = False) -> None:
    st = os.stat(path)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    if keep_mtime:  # a corruption that a stat cannot see: only hashing finds it
        os.utime(path, (st.st_atime, st.st_mtime))


def _cli(capsys: pytest.CaptureFixture[bytes], store: LocalStore, *args: str) -> tuple[int, bytes, str]:
    code = main(["--store", store.root, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.decode()


@pytest.mark.parametrize("content", [b"small precious content", LARGE], ids=["small", "large"])
def test_cat_of_a_corrupt_blob_fails_and_quarantines_it(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], content: bytes
) -> None:
    store, root, path = _store_with(tmp_path, content)
    _corrupt(path, keep_mtime=True)
    code, out, err = _cli(capsysbinary, store, "cat", str(root), "f")
    digest = path.parent.name + path.name
    assert code == 1 and err.count("\n") == 1 and "corrupt" in err and digest in err
    assert out != content and len(out) < len(content)  # never the whole corrupt blob
    assert not path.exists()  # quarantined, not left to be served again
    assert any(name.startswith(digest) for name in os.listdir(Path(store.root) / "quarantine"))
    # importing the content again heals the store
    CasDirectory(store).import_files(build_host(str(tmp_path / "again"), {"f": content}))
    assert _cli(capsysbinary, store, "cat", str(root), "f")[:2] == (0, content)


def test_truncated_and_touched_objects(tmp_path: Path) -> None:
    store, root, path = _store_with(tmp_path, b"x" * 1000)
    digest = Digest(path.parent.name + path.name, 1000)
    os.chmod(path, 0o644)
    path.write_bytes(b"x" * 100)  # truncated
    assert not store.has(digest)  # so an import writes it again
    with pytest.raises(StoreError) as info:
        CasDirectory(store, root).open_file("f", mode="rb").read()
    assert info.value.reason == "blob-corrupt" and "100 bytes" in str(info.value)


@pytest.mark.parametrize("verb", ["export", "export-link", "tar"])
def test_export_and_tar_of_a_corrupt_blob_fail_and_leave_nothing(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], verb: str
) -> None:
    store, root, path = _store_with(tmp_path, LARGE)
    _corrupt(path, keep_mtime=verb != "export-link")  # a linked export checks the stat first
    target = tmp_path / ("out.tar" if verb == "tar" else "out")
    args = ["tar", str(root), str(target)] if verb == "tar" else ["export", str(root), str(target)]
    if verb == "export-link":
        args.append("--hardlink")
    code, _, err = _cli(capsysbinary, store, *args)
    assert code == 1 and "corrupt" in err and err.count("\n") == 1
    if verb == "tar":
        assert sorted(os.listdir(tmp_path)) == ["host", "store"]  # no archive, no temp file
    else:
        assert not (target / "f").exists()  # no partial file


def test_corrupt_directory_objects_are_refused(tmp_path: Path) -> None:
    store, root, _ = _store_with(tmp_path, b"content")
    path = Path(store.object_path(root))
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01  # one bit of the last name
    path.write_bytes(bytes(data))
    os.utime(path, (1321009871, 1321009871))
    with pytest.raises(StoreError) as info:
        list(CasDirectory(store, root))
    assert info.value.reason == "blob-corrupt"


@pytest.mark.skipif(os.geteuid() != 0, reason="the point is what root can do")
def test_linked_export_as_root_cannot_change_the_store(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    store, root, path = _store_with(tmp_path, b"precious\n")
    out = tmp_path / "linked"
    assert _cli(capsysbinary, store, "export", str(root), str(out), "--link")[0] == 0
    assert os.stat(out / "f").st_ino != os.stat(path).st_ino  # cloned or copied, not linked
    with open(out / "f", "ab") as stream:  # root writes despite any mode
        stream.write(b"edited\n")
    assert _cli(capsysbinary, store, "cat", str(root), "f")[:2] == (0, b"precious\n")

    forced = tmp_path / "forced"
    assert _cli(capsysbinary, store, "export", str(root), str(forced), "--hardlink")[0] == 0
    assert os.stat(forced / "f").st_ino == os.stat(path).st_ino
    with open(forced / "f", "ab") as stream:
        stream.write(b"edited\n")
    # the edit is caught on the next read, by its mtime and then its hash
    code, out_bytes, err = _cli(capsysbinary, store, "cat", str(root), "f")
    assert code == 1 and "corrupt" in err and out_bytes == b""
    assert not path.exists()
    # no executable twins: a linked export of an executable clones or copies it
    assert not (Path(store.root) / "exec").exists()


def test_tar_to_stdout_of_a_sound_tree_still_works(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    store, root, _ = _store_with(tmp_path, LARGE)
    code, out, _ = _cli(capsysbinary, store, "tar", str(root), "-")
    assert code == 0
    with tarfile.open(fileobj=io.BytesIO(out)) as archive:
        member = archive.extractfile("f")
        assert member is not None and member.read() == LARGE
