"""The command as a newcomer meets it: nothing lost, one clear line per error, help
that reads as text, JSON for scripts, warnings for what import leaves out."""

from __future__ import annotations

import argparse
import io
import json
import os
from pathlib import Path

import pytest

import casvfs.cli
from casvfs import CasDirectory, Digest, LocalStore
from casvfs.cli import build_parser, main
from tests.trees import Exe, Link, build_host

SPEC = {"a": b"alpha", "d": {"b": b"beta", "tool": Exe(b"#!/bin/sh\n")}, "l": Link("a")}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def imported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str, str]:
    host = build_host(str(tmp_path / "host"), SPEC)
    store = str(tmp_path / "store")
    code, out, err = run(capsys, "--store", store, "import", host)
    assert code == 0, err
    return store, out.strip(), host


def test_export_into_a_non_empty_directory_needs_merge(
    imported: tuple[str, str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store, digest, _ = imported
    target = tmp_path / "work"
    target.mkdir()
    (target / "a").write_text("precious")
    code, _, err = run(capsys, "--store", store, "export", digest, str(target))
    expected = f"casvfs: error: {target} is not empty (use --merge to merge the tree into it)\n"
    assert code == 1 and err == expected
    assert (target / "a").read_text() == "precious" and os.listdir(target) == ["a"]
    assert run(capsys, "--store", store, "export", digest, str(target), "--merge")[0] == 0
    assert (target / "a").read_text() == "alpha" and (target / "d" / "b").exists()


def test_an_interrupted_tar_leaves_no_archive(
    imported: tuple[str, str, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, digest, _ = imported
    archive = tmp_path / "out.tar"
    real = CasDirectory.export_to_tar

    def interrupted(self: CasDirectory, tarfile: object, destination: str, **options: object) -> None:
        real(self, tarfile, destination)  # type: ignore[arg-type]
        raise KeyboardInterrupt  # Ctrl-C after everything was written but before the end

    monkeypatch.setattr(CasDirectory, "export_to_tar", interrupted)
    assert run(capsys, "--store", store, "tar", digest, str(archive))[0] == 130
    assert sorted(os.listdir(tmp_path)) == ["host", "store"]
    monkeypatch.setattr(CasDirectory, "export_to_tar", real)
    assert run(capsys, "--store", store, "tar", digest, str(archive))[0] == 0 and archive.exists()


def test_tar_errors_name_the_path(imported: tuple[str, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    store, digest, _ = imported
    code, _, err = run(capsys, "--store", store, "tar", digest, "/no/such/dir/out.tar")
    assert code == 1 and err.count("\n") == 1 and "/no/such/dir/out.tar" in err


def test_version_and_options_after_the_verb(
    imported: tuple[str, str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"casvfs {casvfs.__version__}"
    store, digest, host = imported
    code, out, _ = run(capsys, "import", host, "--store", store)
    assert (code, out.strip()) == (0, digest)
    assert run(capsys, "ls", digest, "--store", store)[1].split() == ["a", "d", "l"]


def test_help_reads_as_text_and_every_positional_is_explained() -> None:
    parser = build_parser()
    assert "``" not in parser.format_help()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        assert "``" not in command.format_help(), name
        for action in command._actions:
            if not action.option_strings:
                assert action.help, f"{name} {action.dest} has no help"


def test_ls_of_a_file_and_above_the_root(
    imported: tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store, digest, _ = imported
    assert run(capsys, "--store", store, "ls", digest, "d/b")[1] == "d/b\n"
    assert run(capsys, "--store", store, "ls", "-l", digest, "a")[1].startswith("-          5 a  ")
    code, out, err = run(capsys, "--store", store, "ls", digest, "../")
    assert code == 1 and out == "" and err == "casvfs: error: '../' goes above the root of the tree\n"
    assert run(capsys, "--store", store, "ls", digest, "d/..")[1].split() == ["a", "d", "l"]


def test_json_output(imported: tuple[str, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    store, digest, host = imported
    code, out, _ = run(capsys, "--store", store, "import", host, "--json")
    assert code == 0 and json.loads(out)["digest"] == digest
    listing = json.loads(run(capsys, "--store", store, "ls", "-R", digest, "--json")[1])
    assert [entry["path"] for entry in listing] == ["a", "l", "d", "d/b", "d/tool"]
    assert listing[1] == {"path": "l", "type": "symlink", "target": "a"}
    assert listing[4]["executable"] is True and listing[4]["size"] == len(b"#!/bin/sh\n")
    report = json.loads(run(capsys, "--store", store, "fsck", "--json")[1])
    assert report["checked"] > 0 and report["corrupt"] == []


def test_diff_says_what_changed(
    imported: tuple[str, str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    store, digest, host = imported
    Path(host, "a").write_bytes(b"changed")
    os.chmod(Path(host, "d", "tool"), 0o644)
    os.unlink(Path(host, "l"))
    os.mkdir(Path(host, "l"))
    changed = run(capsys, "--store", store, "import", host)[1].strip()
    code, out, _ = run(capsys, "--store", store, "diff", "--long", digest, changed)
    assert code == 1 and out.splitlines() == ["M a  (content)", "M d/tool  (mode)", "M l  (type)"]
    report = json.loads(run(capsys, "--store", store, "diff", "--json", digest, changed)[1])
    assert report["modified"] == [
        {"path": "a", "change": "content"},
        {"path": "d/tool", "change": "mode"},
        {"path": "l", "change": "type"},
    ]


def test_import_warns_about_special_files_and_excludes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = build_host(str(tmp_path / "host"), {"keep": b"k", "build": {"o": b"o"}, "x.log": b"l"})
    os.mkfifo(Path(host, "pipe"))
    (tmp_path / "ignore").write_text("# generated\nbuild\n")
    store = str(tmp_path / "store")
    ignore = str(tmp_path / "ignore")
    excludes = ["--exclude", "*.log", "--exclude-from", ignore]
    code, out, err = run(capsys, "--store", store, "import", host, *excludes)
    assert code == 0
    assert err == "casvfs: warning: left out 1 special file(s) (FIFOs, sockets, devices): pipe\n"
    assert list(CasDirectory(LocalStore(store), Digest.parse(out))) == ["keep"]
    assert run(capsys, "-q", "--store", store, "import", host)[2] == ""


def test_a_missing_blob_without_remotes_says_how_to_reach_one(
    imported: tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    store, digest, _ = imported
    tree = CasDirectory(LocalStore(store), Digest.parse(digest))
    os.unlink(LocalStore(store).object_path(Digest(tree.file_digest("a"), 5)))
    code, _, err = run(capsys, "--store", store, "cat", digest, "a")
    assert code == 1 and err.count("\n") == 1 and "--remote URL" in err


def test_progress_shows_on_a_terminal_only(
    imported: tuple[str, str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _digest, _ = imported
    monkeypatch.setattr(casvfs.cli._Bar, "DELAY", 0.0)
    assert run(capsys, "--store", store, "fsck")[2] == ""  # not a terminal: silent

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["--store", store, "fsck"]) == 0
    assert "checking" in terminal.getvalue()
    quiet = Terminal()
    monkeypatch.setattr("sys.stderr", quiet)
    assert main(["-q", "--store", store, "fsck"]) == 0
    assert quiet.getvalue() == ""


def test_du_and_max_size_on_a_tree_that_expands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """40 levels of a directory holding its child twice: 2^40 files in 41 objects."""
    from casvfs.protos import remote_execution_pb2 as pb

    store = LocalStore(tmp_path / "store")
    leaf = store.put_bytes(b"1234")
    level = store.put_directory(pb.Directory(files=[pb.FileNode(name="f", digest=leaf.to_proto())]))
    for _ in range(40):
        level = store.put_directory(
            pb.Directory(directories=[pb.DirectoryNode(name=n, digest=level.to_proto()) for n in ("a", "b")])
        )
    code, out, _ = run(capsys, "--store", store.root, "du", str(level), "--json")
    assert code == 0 and json.loads(out)["files"] == 2**40 and json.loads(out)["bytes"] == 4 * 2**40
    target = tmp_path / "out"
    code, _, err = run(capsys, "--store", store.root, "export", str(level), str(target))
    assert code == 1 and "too large" in err and err.count("\n") == 1 and not target.exists()
    archive = str(tmp_path / "t.tar")
    code, _, err = run(capsys, "--store", store.root, "tar", str(level), archive, "--max-size", "1G")
    assert code == 1 and "max_size" in err and not (tmp_path / "t.tar").exists()
    assert run(capsys, "--store", store.root, "export", "--max-size", "x1", str(level), str(target))[0] == 2
