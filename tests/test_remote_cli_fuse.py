"""The remote commands (push, pull, reads with --remote or a configuration file)
and a FUSE mount of a tree-only pull, against buildbox-casd on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from casvfs import CasDirectory, Digest, LocalStore
from casvfs.cli import main
from casvfs.fuse import mount
from casvfs.remote import LayeredStore, RemoteSpec
from tests.remote_servers import Server
from tests.trees import Exe, Spec, build_host, host_snapshot

# every test runs on stateless read-only mounts and on mounts with handles
pytestmark = pytest.mark.usefixtures("fuse_open_mode")

SPEC: Spec = {
    "README": b"read me\n",
    "src": {"main.c": b"int main(void) { return 0; }\n", "lib": {"util.c": os.urandom(3000)}},
    "docs": {"guide.txt": os.urandom(5000), "big.bin": os.urandom(5 << 20)},
    "tool": Exe(b"#!/bin/sh\necho tool\n"),
}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def pushed(
    tmp_path: Path, casd_server: Server, capsys: pytest.CaptureFixture[str]
) -> tuple[str, str, Digest]:
    """The tree SPEC imported into a store and pushed with the CLI: (host, url, root)."""
    host = build_host(str(tmp_path / "host"), SPEC)
    origin = str(tmp_path / "origin")
    code, out, err = run(capsys, "--store", origin, "import", host)
    assert code == 0, err
    root = out.strip()
    code, out, err = run(capsys, "--store", origin, "--remote", casd_server.url, "push", root)
    assert code == 0, err
    assert out.startswith(f"{casd_server.url}: sent ") and "blobs" in out
    return host, casd_server.url, Digest.parse(root)


def blobs_present(store: Path, host: str) -> set[str]:
    """The host files whose content is in the store *store*."""
    local = LocalStore(store)
    present = set()
    for dirpath, _dirs, files in os.walk(host):
        for name in files:
            data = Path(dirpath, name).read_bytes()
            if local.has(Digest(hashlib.sha256(data).hexdigest(), len(data))):
                present.add(os.path.relpath(os.path.join(dirpath, name), host))
    return present


def test_pull_tree_only_then_read_on_demand(
    pushed: tuple[str, str, Digest], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, url, root = pushed
    store = str(tmp_path / "partial")
    code, out, err = run(capsys, "--store", store, "--remote", url, "pull", "--tree-only", str(root))
    assert (code, out.strip()) == (0, str(root)), err
    # without any remote, the partial store lists everything but cannot read content
    code, listing, err = run(capsys, "--store", store, "ls", "-R", str(root))
    assert code == 0, err
    assert {line.split()[-1] for line in listing.splitlines()} >= {"README", "src/lib/util.c", "docs/big.bin"}
    code, _out, err = run(capsys, "--store", store, "cat", str(root), "README")
    assert code == 1 and "is not in the store" in err
    assert blobs_present(tmp_path / "partial", host) == set()
    # with the remote, cat fetches exactly that blob
    code, out, err = run(capsys, "--store", store, "--remote", url, "cat", str(root), "README")
    assert (code, out) == (0, "read me\n"), err
    assert blobs_present(tmp_path / "partial", host) == {"README"}
    # a prefetch of one subdirectory
    code, out, err = run(capsys, "--store", store, "--remote", url, "pull", "--path", "src", str(root))
    assert code == 0, err
    assert blobs_present(tmp_path / "partial", host) == {"README", "src/main.c", "src/lib/util.c"}
    # export fetches the rest
    code, _out, err = run(
        capsys, "--store", store, "--remote", url, "export", str(root), str(tmp_path / "out")
    )
    assert code == 0, err
    assert host_snapshot(str(tmp_path / "out")) == host_snapshot(host)


def test_full_pull_with_a_configuration_file(
    pushed: tuple[str, str, Digest], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, url, root = pushed
    config = tmp_path / "casvfs.yaml"
    config.write_text(f"remotes:\n  servers:\n  - url: {url}\n")
    store = str(tmp_path / "full")
    code, _out, err = run(capsys, "--store", store, "--config", str(config), "pull", str(root))
    assert code == 0, err
    assert len(blobs_present(tmp_path / "full", host)) == 6
    # the remote is read-only in this configuration: push is refused
    code, _out, err = run(capsys, "--store", store, "--config", str(config), "push", str(root))
    assert code == 1 and "push: true" in err


def test_remote_commands_need_a_remote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "--store", str(tmp_path / "s"), "pull", "0" * 64 + "/0")
    assert code == 1 and "no remote is configured" in err


def test_unreachable_remote_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.remote_servers import dead_url

    url = dead_url()
    code, _out, err = run(capsys, "--store", str(tmp_path / "s"), "--remote", url, "pull", "a" * 64 + "/10")
    assert code == 1
    assert url in err and "unavailable" in err.lower()
    assert "Traceback" not in err


# -- FUSE over a partial store ----------------------------------------------------------


def test_fuse_reads_fetch_blobs_on_demand(
    pushed: tuple[str, str, Digest], tmp_path: Path, mountpoint: Path
) -> None:
    """A mount of a tree-only pull lists everything with no blob; programs reading
    files in parallel fetch each blob once; what was not read never arrives."""
    host, url, root = pushed
    local = LocalStore(tmp_path / "partial")
    store = LayeredStore(local, [RemoteSpec(url)])
    store.pull(root, tree_only=True)
    with mount(store, root, mountpoint):
        listed = sorted(
            os.path.relpath(os.path.join(d, n), mountpoint) for d, _s, f in os.walk(mountpoint) for n in f
        )
        assert listed == ["README", "docs/big.bin", "docs/guide.txt", "src/lib/util.c", "src/main.c", "tool"]
        assert blobs_present(tmp_path / "partial", host) == set()
        wanted = ["docs/big.bin", "src/lib/util.c", "docs/big.bin", "src/lib/util.c"] * 3
        with ThreadPoolExecutor(6) as pool:
            contents = list(pool.map(lambda p: (mountpoint / p).read_bytes(), wanted))
        assert all(data == Path(host, path).read_bytes() for path, data in zip(wanted, contents, strict=True))
        assert (mountpoint / "tool").stat().st_mode & 0o111
    assert blobs_present(tmp_path / "partial", host) == {"docs/big.bin", "src/lib/util.c"}
    assert store.calls.get("Read") == 1 and store.calls.get("BatchReadBlobs") == 1


def test_cli_background_mount_passes_the_remote_on(
    pushed: tuple[str, str, Digest], tmp_path: Path, mountpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, url, root = pushed
    store = str(tmp_path / "partial")
    code, _out, err = run(capsys, "--store", store, "--remote", url, "pull", "--tree-only", str(root))
    assert code == 0, err
    command = [sys.executable, "-m", "casvfs.cli", "--store", store, "--remote", url]
    started = subprocess.run(
        [*command, "mount", str(root), str(mountpoint), "--background"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    try:
        assert (mountpoint / "docs" / "guide.txt").read_bytes() == Path(
            host, "docs", "guide.txt"
        ).read_bytes()
    finally:
        subprocess.run(["fusermount3", "-u", str(mountpoint)], check=True)
    assert blobs_present(tmp_path / "partial", host) == {"docs/guide.txt"}


def test_directory_api_on_a_layered_store(pushed: tuple[str, str, Digest], tmp_path: Path) -> None:
    """Walking a tree nobody pulled fetches only Directory messages, level by level."""
    host, url, root = pushed
    store = LayeredStore(LocalStore(tmp_path / "lazy"), [RemoteSpec(url)])
    tree = CasDirectory(store, root)
    assert sorted(tree.list_relative_paths()) == sorted(
        os.path.relpath(os.path.join(d, n), host) for d, dirs, files in os.walk(host) for n in dirs + files
    )
    assert blobs_present(tmp_path / "lazy", host) == set()
    assert (
        tree.file_digest("docs/big.bin")
        == hashlib.sha256(Path(host, "docs", "big.bin").read_bytes()).hexdigest()
    )
    assert blobs_present(tmp_path / "lazy", host) == set()


def test_remotes_without_the_extra_are_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without grpcio (the remote extra), --remote says what to install."""
    monkeypatch.setitem(sys.modules, "grpc", None)  # makes "import grpc" fail
    for name in [name for name in sys.modules if name.startswith("casvfs.remote")]:
        monkeypatch.delitem(sys.modules, name)
    code, _out, err = run(
        capsys, "--store", str(tmp_path / "s"), "--remote", "http://127.0.0.1:1", "ls", "a" * 64 + "/1"
    )
    assert code == 1
    assert "casvfs[remote]" in err and "Traceback" not in err


@pytest.mark.parametrize("size", [3000, 5 << 20])  # sent in a batch, and by ByteStream
def test_push_of_a_corrupt_local_blob_says_it_is_corrupt_locally(
    tmp_path: Path, casd_server: Server, capsys: pytest.CaptureFixture[str], size: int
) -> None:
    name = "fresh"  # content the server cannot have yet
    host = build_host(str(tmp_path / "host"), {name: os.urandom(size)})
    store = str(tmp_path / "origin")
    root = run(capsys, "--store", store, "import", host)[1].strip()
    local = LocalStore(store)
    tree = CasDirectory(local, Digest.parse(root))
    data = Path(host, name).read_bytes()
    path = Path(local.object_path(Digest(tree.file_digest(name), len(data))))
    os.chmod(path, 0o644)
    path.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    os.utime(path, (1321009871, 1321009871))
    code, _, err = run(capsys, "--store", store, "--remote", casd_server.url, "push", root)
    assert code == 1 and err.count("\n") == 1
    assert "corrupt in" in err and store in err and tree.file_digest(name) in err


def test_push_and_pull_print_json(
    pushed: tuple[str, str, Digest], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    _host, url, root = pushed
    origin = str(tmp_path / "origin")
    code, out, _ = run(capsys, "--store", origin, "--remote", url, "push", str(root), "--json")
    assert code == 0 and json.loads(out)[0]["missing"] == 0 and json.loads(out)[0]["remote"] == url
    other = str(tmp_path / "other")
    code, out, _ = run(capsys, "--store", other, "--remote", url, "pull", str(root), "--json")
    assert code == 0 and json.loads(out) == {"digest": str(root), "tree_only": False}
