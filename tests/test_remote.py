"""casvfs's REAPI client and layered store against real servers on 127.0.0.1:
buildbox-casd and BuildGrid, started by the tests as subprocesses."""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casvfs import CasDirectory, Digest, LocalStore, MemoryStore, StoreError
from casvfs.errors import RemoteError
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.remote import CasClient, LayeredStore, RemoteSpec, plan_batches
from casvfs.remote import client as client_module
from peers import casd as peer_casd
from tests.remote_servers import Server, dead_url, object_file, require_casd
from tests.trees import build_host, host_snapshot, random_spec, snapshot

BIG = 5 << 20  # over any batch limit: travels through ByteStream


def make_tree(tmp_path: Path, seed: int = 7) -> tuple[LocalStore, Digest, str]:
    """A local store holding a random tree plus a file too big for a batch."""
    spec = random_spec(seed, entries=80)
    spec["big.bin"] = os.urandom(BIG)
    host = build_host(str(tmp_path / f"host{seed}"), spec)
    store = LocalStore(tmp_path / f"origin{seed}")
    tree = CasDirectory(store)
    tree.import_files(host)
    return store, tree.get_digest(), host


def file_blobs(store: LocalStore, root: Digest) -> set[Digest]:
    return {Digest.from_proto(node.digest) for _d, message in store.get_tree(root) for node in message.files}


def test_round_trip(server: Server, tmp_path: Path) -> None:
    """Push, pull tree-only into an empty store, walk with no blobs, read one file
    (only its blob arrives), export (the rest arrives): the same tree."""
    origin, root, host = make_tree(tmp_path)
    pusher = LayeredStore(origin, [RemoteSpec(server.url, push=True)])
    (report,) = pusher.push(root)
    assert report.missing <= report.blobs
    assert pusher.calls["FindMissingBlobs"] == 1

    local = LocalStore(tmp_path / "empty")
    puller = LayeredStore(local, [RemoteSpec(server.url)])
    puller.pull(root, tree_only=True)
    files = file_blobs(origin, root)
    assert not any(local.has(digest) for digest in files if digest.size_bytes)

    # the partial store alone (no remote) walks, lists and stats everything
    assert snapshot(CasDirectory(local, root)) == snapshot(CasDirectory(origin, root))
    assert "BatchReadBlobs" not in puller.calls and "Read" not in puller.calls

    tree = CasDirectory(puller, root)
    wanted = next(p for p in tree.list_relative_paths() if tree.isfile(p) and tree.stat(p).size > 0)
    with tree.open_file(wanted, mode="rb") as stream:
        assert stream.read() == Path(host, wanted).read_bytes()
    # (the empty blob is also the empty Directory message, so it came with the tree)
    present = {digest for digest in files if local.has(digest) and digest.size_bytes}
    assert present == {Digest.parse(f"{tree.file_digest(wanted)}/{tree.stat(wanted).size}")}

    out = tmp_path / "out"
    tree.export_files(str(out))
    assert host_snapshot(str(out)) == host_snapshot(host)
    assert all(local.has(digest) for digest in files)
    assert puller.calls["Read"] == 1  # the big file, through ByteStream
    again = CasDirectory(LocalStore(tmp_path / "reimport"))
    again.import_files(str(out))
    assert again.get_digest() == root


def test_second_push_sends_nothing(casd_server: Server, tmp_path: Path) -> None:
    origin, root, _host = make_tree(tmp_path, seed=11)
    pusher = LayeredStore(origin, [RemoteSpec(casd_server.url, push=True)])
    first = pusher.push(root)[0]
    # (blobs shared with trees of earlier tests may already be on the server)
    assert 0 < first.missing <= first.blobs and first.bytes_sent >= BIG
    before = dict(pusher.calls)
    second = pusher.push(root)[0]
    assert (second.missing, second.bytes_sent) == (0, 0)
    after = pusher.calls
    assert after["FindMissingBlobs"] == before["FindMissingBlobs"] + 1
    assert after.get("BatchUpdateBlobs") == before.get("BatchUpdateBlobs")
    assert after.get("Write") == before.get("Write")


def test_rpc_counts_for_10000_files(casd_server: Server, tmp_path: Path) -> None:
    """Round trips grow with batches, not files: 10,000 files of 1-2 KiB."""
    host = tmp_path / "host"
    for group in range(100):
        directory = host / f"d{group:03}"
        directory.mkdir(parents=True)
        for index in range(100):
            (directory / f"f{index:03}").write_bytes(os.urandom(1024 + (group * 100 + index) % 1024))
    origin = LocalStore(tmp_path / "origin")
    tree = CasDirectory(origin)
    tree.import_files(str(host))
    root = tree.get_digest()
    files = sorted(file_blobs(origin, root), key=str)
    assert len(files) == 10_000

    pusher = CasClient(RemoteSpec(casd_server.url, push=True))
    pushing = LayeredStore(origin, [pusher])
    pushing.push(root)
    limit = pusher.capabilities().max_batch_bytes
    batches, large = plan_batches([*files, root], limit)
    assert not large
    blobs = 10_000 + 101  # files and directories
    assert pusher.calls["FindMissingBlobs"] == math.ceil(blobs / client_module.FIND_MISSING_BATCH)
    # files, plus at most one more batch for the 101 small Directory messages
    assert len(batches) <= pusher.calls["BatchUpdateBlobs"] <= len(batches) + 1
    assert pusher.calls["BatchUpdateBlobs"] < 20

    puller = LayeredStore(LocalStore(tmp_path / "pulled"), [RemoteSpec(casd_server.url)])
    puller.pull(root, tree_only=True)
    assert puller.calls == {"GetTree": 1}
    puller.pull(root)
    reads = puller.calls["BatchReadBlobs"]
    # the fetch queue cuts batches the way plan_batches does (in another order)
    assert len(batches) <= reads <= len(batches) + 1
    assert snapshot(CasDirectory(puller.local, root)) == snapshot(tree)
    print(f"\n10,000 files: push {pusher.calls}, pull {puller.calls}")


def test_batches_near_the_limit(server: Server, tmp_path: Path) -> None:
    """Blobs adding up to just over 4 MiB - 64 KiB (buildbox-casd's real limit,
    though it advertises none) are split into batches both servers accept."""
    origin = MemoryStore()
    blobs = [origin.put_bytes(os.urandom(101_000)) for _ in range(41)]
    assert sum(d.size_bytes for d in blobs) > (4 << 20) - (64 << 10)
    CasClient(RemoteSpec(server.url)).upload(blobs, origin)
    reader = CasClient(RemoteSpec(server.url))
    local = LocalStore(tmp_path / "local")
    assert reader.download(blobs, local) == set(blobs)
    assert reader.calls["BatchReadBlobs"] == 2


def test_get_tree_pages(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree of more directories than a page arrives whole."""
    monkeypatch.setattr(client_module, "GET_TREE_PAGE", 7)
    host = tmp_path / "host"
    for index in range(60):
        (host / f"d{index}" / "inner").mkdir(parents=True)
        (host / f"d{index}" / "inner" / "name").write_text(str(index))
    origin = LocalStore(tmp_path / "origin")
    tree = CasDirectory(origin)
    tree.import_files(str(host))
    root = tree.get_digest()
    LayeredStore(origin, [RemoteSpec(server.url, push=True)]).push(root)
    local = LocalStore(tmp_path / "pulled")
    puller = LayeredStore(local, [RemoteSpec(server.url)])
    puller.pull(root, tree_only=True)
    assert set(puller.calls) == {"GetTree"}
    assert snapshot(CasDirectory(local, root)) == snapshot(tree)


def test_first_remote_down_second_serves(
    casd_server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    origin, root, host = make_tree(tmp_path, seed=3)
    LayeredStore(origin, [RemoteSpec(casd_server.url, push=True)]).push(root)
    down = CasClient(RemoteSpec(dead_url(), retries=2, timeout=5))
    up = CasClient(RemoteSpec(casd_server.url))
    store = LayeredStore(LocalStore(tmp_path / "local"), [down, up])
    with caplog.at_level(logging.WARNING, logger="casvfs.remote"):
        store.pull(root, tree_only=True)
    assert any(down.url in record.getMessage() for record in caplog.records)
    # the first call was retried with backoff before the remote was skipped
    assert down.calls == {"GetTree": 3}
    tree = CasDirectory(store, root)
    tree.export_files(str(tmp_path / "out"))
    assert host_snapshot(str(tmp_path / "out")) == host_snapshot(host)
    assert down.calls == {"GetTree": 3}  # skipped while marked down


def test_blob_on_second_remote_only(casd_server: Server, buildgrid_server: Server, tmp_path: Path) -> None:
    """Reads ask the remotes in order; a blob the first lacks comes from the second."""
    origin, root, _host = make_tree(tmp_path, seed=5)
    LayeredStore(origin, [RemoteSpec(buildgrid_server.url, push=True)]).push(root)
    content = b"only on casd " + os.urandom(16)
    extra = origin.put_bytes(content)
    CasClient(RemoteSpec(casd_server.url)).upload([extra], origin)
    first, second = CasClient(RemoteSpec(buildgrid_server.url)), CasClient(RemoteSpec(casd_server.url))
    store = LayeredStore(LocalStore(tmp_path / "local"), [first, second])
    assert store.read_bytes(extra) == content
    assert first.calls["BatchReadBlobs"] == 1 and second.calls["BatchReadBlobs"] == 1
    store.pull(root)
    assert "GetTree" not in second.calls  # the first remote had the tree


def test_missing_everywhere(casd_server: Server, tmp_path: Path) -> None:
    store = LayeredStore(LocalStore(tmp_path / "local"), [RemoteSpec(casd_server.url)])
    absent = Digest("0" * 64, 12)
    with pytest.raises(StoreError) as raised:
        store.read_bytes(absent)
    assert raised.value.reason == "blob-missing"
    assert casd_server.url in str(raised.value) and str(absent) in str(raised.value)


def test_wrong_blob_refused(buildgrid_server: Server, tmp_path: Path) -> None:
    """BuildGrid serves what its disk holds; a tampered object is refused, named,
    and not stored. Both the batch and the ByteStream paths are checked."""
    origin, root, _host = make_tree(tmp_path, seed=9)
    LayeredStore(origin, [RemoteSpec(buildgrid_server.url, push=True)]).push(root)
    small = next(d for d in file_blobs(origin, root) if 100 < d.size_bytes < 1 << 20)
    big = next(d for d in file_blobs(origin, root) if d.size_bytes == BIG)
    for victim in (small, big):
        path = object_file(buildgrid_server, victim.hash)
        original = path.read_bytes()
        try:
            path.write_bytes(bytes(b ^ 0xFF for b in original[:64]) + original[64:])
            local = LocalStore(tmp_path / f"local-{victim.hash[:8]}")
            store = LayeredStore(local, [RemoteSpec(buildgrid_server.url)])
            with pytest.raises(RemoteError) as raised:
                store.read_bytes(victim)
            error = raised.value
            assert error.reason == "blob-corrupt"
            assert error.remote == buildgrid_server.url
            assert error.call == ("BatchReadBlobs" if victim == small else "Read")
            assert str(victim) in str(error)
            assert not local.has(victim)
            assert not any(files for _d, _s, files in os.walk(tmp_path / f"local-{victim.hash[:8]}" / "tmp"))
        finally:
            path.write_bytes(original)


def test_tls_with_client_certificates(tmp_path: Path) -> None:
    """BuildGrid with TLS that requires client certificates signed by a test CA."""
    from peers import buildgrid as peer_buildgrid
    from tests.remote_servers import require_buildgrid

    require_buildgrid()
    certs = peer_buildgrid.make_certificates(tmp_path / "certs")
    with peer_buildgrid.running_buildgrid(tmp_path / "bg", tls=certs, storage="memory") as bg:
        url = f"https://{bg.address}"
        origin, root, host = make_tree(tmp_path, seed=13)
        spec = RemoteSpec(
            url,
            push=True,
            auth=_auth(certs.ca_cert, certs.client_cert, certs.client_key),
        )
        LayeredStore(origin, [spec]).push(root)
        store = LayeredStore(LocalStore(tmp_path / "local"), [spec])
        store.pull(root)
        CasDirectory(store, root).export_files(str(tmp_path / "out"))
        assert host_snapshot(str(tmp_path / "out")) == host_snapshot(host)

        # without a client certificate the server refuses the handshake
        anonymous = CasClient(RemoteSpec(url, retries=0, timeout=10, auth=_auth(certs.ca_cert)))
        with pytest.raises(RemoteError) as raised:
            anonymous.find_missing([root])
        assert raised.value.remote == url
        # a server certificate the client does not trust is refused too
        untrusted = CasClient(RemoteSpec(url, retries=0, timeout=10))
        with pytest.raises(RemoteError):
            untrusted.find_missing([root])


def _auth(server_cert: Path, client_cert: Path | None = None, client_key: Path | None = None) -> object:
    from casvfs.remote import RemoteAuth

    return RemoteAuth(
        server_cert=str(server_cert),
        client_cert=str(client_cert) if client_cert else None,
        client_key=str(client_key) if client_key else None,
    )


def test_server_hangs_mid_transfer(tmp_path: Path) -> None:
    """A server that stops answering (SIGSTOP) fails the read in bounded time
    with remote-timeout; one that dies fails it with remote-unavailable."""
    require_casd()
    origin, root, _host = make_tree(tmp_path, seed=17)
    big = next(d for d in file_blobs(origin, root) if d.size_bytes == BIG)
    with peer_casd.running_casd(tmp_path) as address:
        url = f"http://{address}"
        LayeredStore(origin, [RemoteSpec(url, push=True)]).push(root)
        pid = _listener_pid(address)
        store = LayeredStore(LocalStore(tmp_path / "local"), [RemoteSpec(url, timeout=2, retries=1)])
        store.pull(root, tree_only=True)
        store.remotes[0].capabilities()  # so that the hang meets the blob's own Read
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(RemoteError) as raised:
                store.read_bytes(big)
            assert raised.value.reason == "remote-timeout"
            assert raised.value.remote == url and raised.value.call == "Read"
            assert str(big) in str(raised.value)
            assert time.monotonic() - started < 30
        finally:
            os.kill(pid, signal.SIGCONT)
        os.kill(pid, signal.SIGKILL)
        other = LayeredStore(LocalStore(tmp_path / "other"), [RemoteSpec(url, timeout=5, retries=1)])
        started = time.monotonic()
        with pytest.raises(StoreError):
            other.read_bytes(big)
        assert time.monotonic() - started < 30


def _listener_pid(address: str) -> int:
    """The pid of the buildbox-casd listening on *address* (a child of this process)."""
    port = int(address.rsplit(":", 1)[1])
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            command = Path("/proc", entry, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        bind = f"--bind=127.0.0.1:{port}".encode()
        if command and command[0].endswith(b"buildbox-casd") and bind in command:
            return int(entry)
    raise AssertionError(f"no buildbox-casd on {address}")


def test_concurrent_reads_fetch_each_blob_once(casd_server: Server, tmp_path: Path) -> None:
    """Eight threads read the same blobs at once: each blob is fetched once, and
    blobs asked for together travel in a batch."""
    origin = MemoryStore()
    blobs = [origin.put_bytes(os.urandom(2000)) for _ in range(40)]
    client = CasClient(RemoteSpec(casd_server.url, push=True))
    client.upload(blobs, origin)
    remote = CasClient(RemoteSpec(casd_server.url))
    store = LayeredStore(LocalStore(tmp_path / "local"), [remote])
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            barrier.wait()
            for digest in blobs:
                assert store.read_bytes(digest) == origin.read_bytes(digest)
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert remote.received == len(blobs)  # every blob once, whoever asked first
    assert store.calls["BatchReadBlobs"] <= len(blobs)
    store.fetch_missing(blobs)
    before = store.calls["BatchReadBlobs"]
    fresh = LayeredStore(LocalStore(tmp_path / "fresh"), [RemoteSpec(casd_server.url)])
    fresh.fetch_missing(blobs)
    assert fresh.calls["BatchReadBlobs"] == 1
    assert store.calls["BatchReadBlobs"] == before


def test_push_needs_a_push_remote(casd_server: Server, tmp_path: Path) -> None:
    origin, root, _host = make_tree(tmp_path, seed=19)
    with pytest.raises(StoreError) as raised:
        LayeredStore(origin, [RemoteSpec(casd_server.url)]).push(root)
    assert raised.value.reason == "no-remote"


def test_instance_name_in_resource_names(tmp_path: Path) -> None:
    """A named instance: every request and ByteStream resource name carries it."""
    require_casd()
    origin, root, host = make_tree(tmp_path, seed=21)
    with peer_casd.running_casd(tmp_path, instance="main/ci") as address:
        spec = RemoteSpec(f"http://{address}", instance_name="main/ci", push=True)
        LayeredStore(origin, [spec]).push(root)
        store = LayeredStore(LocalStore(tmp_path / "local"), [spec])
        store.pull(root)
        CasDirectory(store, root).export_files(str(tmp_path / "out"))
        assert host_snapshot(str(tmp_path / "out")) == host_snapshot(host)
    shutil.rmtree(tmp_path / "out")


def test_directory_missing_from_get_tree_is_fetched_and_walked(casd_server: Server, tmp_path: Path) -> None:
    """A GetTree answer that lacks an inner directory (or encodes it otherwise):
    that directory is fetched by digest and the walk goes on below it."""
    from casvfs.remote.transfer import tree_from_remote
    from casvfs.store import directory_digest

    origin, root, _host = make_tree(tmp_path, seed=23)
    LayeredStore(origin, [RemoteSpec(casd_server.url, push=True)]).push(root)
    dropped = next(d for d, message in origin.get_tree(root) if d != root and message.directories)

    class DroppingClient(CasClient):
        def get_tree(self, root: Digest) -> Iterator[pb.Directory]:
            return (m for m in super().get_tree(root) if directory_digest(m) != dropped)

    client = DroppingClient(RemoteSpec(casd_server.url))
    local = LocalStore(tmp_path / "local")
    tree_from_remote(client, root, local)
    assert snapshot(CasDirectory(local, root)) == snapshot(CasDirectory(origin, root))
    assert client.calls["BatchReadBlobs"] == 1
