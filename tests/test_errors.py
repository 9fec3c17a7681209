"""Bad input to the public API ends in a CasvfsError (with a reason) or a ValueError,
never in a bare OSError, KeyError, sqlite3 error or RecursionError."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from casvfs import (
    CasDirectory,
    CasvfsError,
    Digest,
    Directory,
    LocalStore,
    MemoryStore,
    OsDirectory,
    StoreError,
    digest_bytes,
    digest_file,
)
from casvfs.cli import main
from casvfs.directory.ingest import import_host_tree
from casvfs.errors import REASON_IS_ROOT, os_error
from casvfs.store import StatCache
from tests.trees import Link, build_host

LONG = "n" * 300
BAD_PATHS: list[Any] = [
    LONG,
    f"dir/{LONG}",
    "/absolute",
    "nul\0byte",
    "missing/deeper",
    "file.txt/inside",
    "loop",
    "loop/inside",
    "dangling",
    "",
    "..",
    123,
    None,
    b"bytes",
]


def _trees(tmp_path: Path) -> list[Directory]:
    host = build_host(
        str(tmp_path / "host"),
        {
            "file.txt": b"content",
            "dir": {"inner": b"x"},
            "loop": Link("loop"),
            "dangling": Link("nowhere/at/all"),
        },
    )
    cas = CasDirectory(LocalStore(tmp_path / "store"))
    cas.import_files(host)
    return [OsDirectory(host), cas]


def _calls(tree: Directory, path: Any, tmp_path: Path) -> list[tuple[str, Callable[[], object]]]:
    # host paths for imports: "" and ".." stay inside a small directory of their own
    nest = tmp_path / "nest" / "deeper"
    nest.mkdir(parents=True, exist_ok=True)
    return [
        ("open_directory", lambda: tree.open_directory(path)),
        ("open_directory create", lambda: tree.open_directory(path, create=True)),
        ("open_directory follow", lambda: tree.open_directory(path, follow_symlinks=True)),
        ("exists", lambda: tree.exists(path)),
        ("exists follow", lambda: tree.exists(path, follow_symlinks=True)),
        ("stat", lambda: tree.stat(path)),
        ("stat follow", lambda: tree.stat(path, follow_symlinks=True)),
        ("isfile", lambda: tree.isfile(path, follow_symlinks=True)),
        ("isdir", lambda: tree.isdir(path)),
        ("islink", lambda: tree.islink(path)),
        ("readlink", lambda: tree.readlink(path)),
        ("file_digest", lambda: tree.file_digest(path)),
        ("open_file r", lambda: tree.open_file(path, mode="rb").close()),
        ("open_file w", lambda: tree.open_file(path, mode="wb").close()),
        ("open_file x", lambda: tree.open_file(path, mode="x").close()),
        ("open_file bad mode", lambda: tree.open_file("file.txt", mode=path)),
        ("remove", lambda: tree.remove(path)),
        ("rename from", lambda: tree.rename(path, "elsewhere")),
        ("rename to", lambda: tree.rename("file.txt", path)),
        ("import_files host path", lambda: tree.import_files(str(nest / str(path)))),
        ("import_single_file", lambda: tree.import_single_file(str(nest / str(path)))),
        ("export_files into", lambda: tree.export_files(str(tmp_path / "host" / "file.txt" / str(path)))),
    ]


def _only_expected_errors(action: Callable[[], object], label: str) -> None:
    try:
        action()
    except (CasvfsError, ValueError):
        pass
    except BaseException as error:
        pytest.fail(f"{label}: {type(error).__name__}: {error}")


@pytest.mark.parametrize("kind", ["os", "cas"])
def test_bad_paths_give_only_casvfs_errors_and_value_errors(tmp_path: Path, kind: str) -> None:
    trees = dict(zip(["os", "cas"], _trees(tmp_path), strict=True))
    tree = trees[kind]
    for path in BAD_PATHS:
        for label, action in _calls(tree, path, tmp_path):
            _only_expected_errors(action, f"{kind} {label}({path!r})")


def test_bad_store_input_gives_only_casvfs_errors(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    missing = str(tmp_path / "missing")
    local = LocalStore(tmp_path / "store")
    absent = digest_bytes(b"never stored")
    not_a_directory = local.put_bytes(b"\xff\xfe not protobuf")
    actions: list[tuple[str, Callable[[], object]]] = [
        ("LocalStore on a file", lambda: LocalStore(tmp_path / "a-file")),
        ("MemoryStore.put_file missing", lambda: MemoryStore().put_file(missing)),
        ("LocalStore.put_file missing", lambda: local.put_file(missing)),
        ("LocalStore.put_file directory", lambda: local.put_file(tmp_path)),
        ("digest_file missing", lambda: digest_file(missing)),
        ("digest_file directory", lambda: digest_file(tmp_path)),
        ("open absent", lambda: local.open(absent)),
        ("read_bytes absent", lambda: MemoryStore().read_bytes(absent)),
        ("get_directory absent", lambda: local.get_directory(absent)),
        ("get_directory not a Directory", lambda: local.get_directory(not_a_directory)),
        ("CasDirectory of absent", lambda: list(CasDirectory(local, absent))),
        ("Digest.parse", lambda: Digest.parse("zz/12")),
        ("Digest.parse no size", lambda: Digest.parse("a" * 64)),
        ("import_host_tree missing", lambda: import_host_tree(local, missing)),
        ("import_host_tree file", lambda: import_host_tree(local, str(tmp_path / "a-file"))),
        ("import_host_tree bad property", lambda: import_host_tree(local, str(tmp_path), properties=["x"])),
        ("StatCache on a directory", lambda: StatCache(tmp_path).lookup(os.stat(tmp_path))),
    ]
    for label, action in actions:
        _only_expected_errors(action, label)


def test_a_name_too_long_for_the_host_is_absent_on_both_sides(tmp_path: Path) -> None:
    os_tree, cas_tree = _trees(tmp_path)
    for tree in (os_tree, cas_tree):
        assert not tree.exists(LONG) and not tree.isfile(LONG)
        with pytest.raises(CasvfsError) as info:
            tree.stat(LONG)
        assert info.value.reason == "not-found"


def test_removing_the_root_has_its_own_reason(tmp_path: Path) -> None:
    for tree in _trees(tmp_path):
        with pytest.raises(CasvfsError) as info:
            tree.remove("")
        assert info.value.reason == REASON_IS_ROOT


def test_os_error_maps_errnos_to_reasons() -> None:
    cases = {
        FileNotFoundError(2, "No such file or directory"): "not-found",
        PermissionError(13, "Permission denied"): "permission-denied",
        OSError(36, "File name too long"): "name-too-long",
        OSError(5, "Input/output error"): "io-error",
    }
    for error, reason in cases.items():
        mapped = os_error(error, "x")
        assert mapped.reason == reason and str(mapped) == f"x: {error.strerror}"
    assert isinstance(os_error(OSError(5, "e"), "x", kind=StoreError), StoreError)


def test_read_only_store_gives_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store on a read-only file system: import and fsck print one line (root
    ignores permission bits, so the store is made read-only with a bind mount)."""
    store = tmp_path / "store"
    LocalStore(store)
    host = build_host(str(tmp_path / "host"), {"a": b"alpha"})
    if os.geteuid() == 0:
        readonly = tmp_path / "ro"
        readonly.mkdir()
        if os.system(f"mount --bind {store} {readonly} && mount -o remount,bind,ro {readonly}") != 0:
            pytest.fail("cannot make a read-only bind mount as root")
        target = readonly
    else:
        for dirpath, dirnames, filenames in os.walk(store):
            for name in dirnames + filenames:
                os.chmod(os.path.join(dirpath, name), stat.S_IRUSR | stat.S_IXUSR)
        target = store
    try:
        assert main(["--store", str(target), "import", host]) == 1
        err = capsys.readouterr().err
        assert err.startswith("casvfs: error: ") and err.count("\n") == 1, err
        assert "Traceback" not in err and "sqlite3" not in err.split(":")[0]
    finally:
        if os.geteuid() == 0:
            os.system(f"umount {target}")


def test_tar_of_a_corrupt_tree_reference_is_one_error(tmp_path: Path) -> None:
    tree = CasDirectory(MemoryStore())
    with tree.open_file("f", mode="w") as stream:
        stream.write("x")
    with tarfile.open(fileobj=io.BytesIO(), mode="w") as archive:
        broken = CasDirectory(MemoryStore(), tree.get_digest())
        _only_expected_errors(lambda: broken.export_to_tar(archive, ""), "export_to_tar of an absent tree")
