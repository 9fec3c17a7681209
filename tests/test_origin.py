"""Fetching from origin: downloads checked against checksum.sri, archives and git
commits as trees, and ``casvfs serve --fetch-allow`` answering Fetch misses from
a counting HTTP origin (once for identical requests, in the background past a
timeout, never outside the allowed prefixes)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import subprocess
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from casvfs import Digest, LocalStore, MemoryStore
from casvfs.directory.ingest import import_host_tree
from casvfs.errors import REASON_CHECKSUM_MISMATCH, REASON_ORIGIN_NOT_FOUND, OriginError
from casvfs.origin import Integrity, download, fetch_git
from casvfs.protos import details, status_pb2
from casvfs.protos import remote_asset_pb2 as ra
from casvfs.refs import RefIndex
from casvfs.remote import AssetClient, RemoteSpec
from peers.casvfs_serve import ServeProcess, running_serve
from peers.origin_server import Origin, running_origin
from tests.trees import Exe, Link, build_host

FILES = {"pkg": {"README": b"hello", "bin": {"run": Exe(b"#!/bin/sh\n")}, "link": Link("README")}}
BLOB = b"origin content " * 1000


def _sri(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}-" + base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "origin-files"
    build_host(str(tmp_path / "tree"), FILES)
    root.mkdir()
    (root / "blob.bin").write_bytes(BLOB)
    with tarfile.open(root / "pkg.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "tree" / "pkg", arcname="pkg")
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w") as archive:
        evil = tarfile.TarInfo("../evil")
        evil.size = 1
        archive.addfile(evil, io.BytesIO(b"x"))
    (root / "evil.tar").write_bytes(sink.getvalue())
    return root


@pytest.fixture
def origin(files: Path, tmp_path: Path) -> Iterator[Origin]:
    with running_origin(files, tmp_path / "origin", delay=3.0) as server:
        yield server


@pytest.fixture
def served(origin: Origin, tmp_path: Path) -> Iterator[ServeProcess]:
    with running_serve(tmp_path / "server", "--fetch-allow", origin.url) as server:
        yield server


def test_download_checks_every_kind_of_sri(files: Path) -> None:
    url = (files / "blob.bin").as_uri()
    store = MemoryStore()
    for sri in (
        _sri(BLOB),
        _sri(BLOB, "sha384"),
        _sri(BLOB, "sha512"),
        f"{_sri(b'other')} {_sri(BLOB, 'sha512')}",
    ):
        assert store.read_bytes(download(store, url, integrity=Integrity.parse(sri))) == BLOB
    with pytest.raises(OriginError) as caught:
        download(store, url, integrity=Integrity.parse(_sri(b"other")))
    assert caught.value.reason == REASON_CHECKSUM_MISMATCH
    with pytest.raises(OriginError) as caught:
        download(store, (files / "absent").as_uri())
    assert caught.value.reason == REASON_ORIGIN_NOT_FOUND
    for bad in ("md5-abc", "sha256-!!!", "sha256-" + base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            Integrity.parse(bad)


def test_a_git_commit_becomes_its_tree_without_dot_git(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    build_host(str(repo), FILES)

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)
        return done.stdout.strip()

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one")
    first = git("rev-parse", "HEAD")
    (repo / "later").write_bytes(b"second commit")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "two")
    store = MemoryStore()
    tip = fetch_git(store, repo.as_uri(), branch="main")
    head = fetch_git(store, str(repo))
    assert tip == head
    old = fetch_git(store, str(repo), commit=first, branch="main")
    (repo / "later").unlink()
    subprocess.run(["rm", "-rf", str(repo / ".git")], check=True)
    assert old == import_host_tree(MemoryStore(), str(repo))
    assert old != tip
    with pytest.raises(OriginError):
        fetch_git(store, str(tmp_path / "no-repo"))


def _fetch(server: ServeProcess, method: str, request: object, response: type, timeout: float = 30) -> object:
    with grpc.insecure_channel(server.url.removeprefix("http://")) as channel:
        call = channel.unary_unary(
            f"/build.bazel.remote.asset.v1.Fetch/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        return call(request, timeout=timeout)


def _blob_request(url: str, **fields: object) -> ra.FetchBlobRequest:
    return ra.FetchBlobRequest(uris=[url], **fields)  # type: ignore[arg-type]


def test_a_fetch_miss_is_fetched_from_origin_once_and_recorded(
    served: ServeProcess, origin: Origin, files: Path
) -> None:
    url = origin.url + "blob.bin"
    client = AssetClient(RemoteSpec(served.url))
    found = client.fetch_blob(url, {"checksum.sri": _sri(BLOB)})
    assert found is not None and LocalStore(served.store).read_bytes(found.digest) == BLOB
    assert client.fetch_blob(url, {"checksum.sri": _sri(BLOB)}) is not None
    assert origin.count("/blob.bin") == 1
    # a checksum that does not match: ABORTED, and nothing recorded under it
    answer = _fetch(served, "FetchBlob", _blob_request(url, qualifiers=[
        ra.Qualifier(name="checksum.sri", value=_sri(b"something else"))]), ra.FetchBlobResponse)  # fmt: skip
    assert answer.status.code == grpc.StatusCode.ABORTED.value[0]  # type: ignore[attr-defined]
    refs = RefIndex.of_store(LocalStore(served.store)).entries([url])
    assert [dict(ref.qualifiers) for ref in refs] == [{"checksum.sri": _sri(BLOB)}]
    # oldest_content_accepted newer than the recorded fetch forces a fetch from origin
    assert client.fetch_blob(url, {"checksum.sri": _sri(BLOB)}, oldest_content_accepted=datetime.datetime.now(
        datetime.UTC)) is not None  # fmt: skip
    assert origin.count("/blob.bin") == 3
    # an origin 404 is NOT_FOUND, a URI outside the allowed prefixes PERMISSION_DENIED
    assert client.fetch_blob(origin.url + "absent") is None
    answer = _fetch(served, "FetchBlob", _blob_request("http://elsewhere.invalid/x"), ra.FetchBlobResponse)
    assert answer.status.code == grpc.StatusCode.PERMISSION_DENIED.value[0]  # type: ignore[attr-defined]


def test_archives_become_trees_and_hostile_ones_are_refused(
    served: ServeProcess, origin: Origin, tmp_path: Path
) -> None:
    client = AssetClient(RemoteSpec(served.url))
    whole = client.fetch_directory(origin.url + "pkg.tar.gz")
    assert whole is not None
    assert whole.digest == import_host_tree(MemoryStore(), str(tmp_path / "tree"))
    sub = client.fetch_directory(origin.url + "pkg.tar.gz", {"directory": "pkg/bin"})
    assert sub is not None and sub.digest == import_host_tree(
        MemoryStore(), str(tmp_path / "tree" / "pkg" / "bin")
    )
    request = ra.FetchDirectoryRequest(uris=[origin.url + "evil.tar"])
    answer = _fetch(served, "FetchDirectory", request, ra.FetchDirectoryResponse)
    assert answer.status.code == grpc.StatusCode.ABORTED.value[0]  # type: ignore[attr-defined]
    assert "unsafe" in answer.status.message or "climbs" in answer.status.message  # type: ignore[attr-defined]
    assert RefIndex.of_store(LocalStore(served.store)).entries([origin.url + "evil.tar"]) == []


def test_qualifiers_the_origin_cannot_honour_get_a_bad_request(served: ServeProcess, origin: Origin) -> None:
    request = _blob_request(
        origin.url + "blob.bin", qualifiers=[ra.Qualifier(name="bazel.canonical_id", value="x")]
    )
    with pytest.raises(grpc.RpcError) as caught:
        _fetch(served, "FetchBlob", request, ra.FetchBlobResponse)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = status_pb2.Status.FromString(dict(caught.value.trailing_metadata())["grpc-status-details-bin"])
    assert details.field_violations(status) == [("qualifiers.name", '"bazel.canonical_id" not supported')]


def test_identical_concurrent_fetches_reach_the_origin_once(served: ServeProcess, origin: Origin) -> None:
    url = origin.url + "slow/blob.bin"
    client = AssetClient(RemoteSpec(served.url))
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _i: client.fetch_blob(url), range(8)))
    assert all(answer is not None for answer in answers)
    assert origin.count("/slow/blob.bin") == 1


def test_a_slow_origin_past_the_timeout_serves_the_next_request(served: ServeProcess, origin: Origin) -> None:
    url = origin.url + "slow/pkg.tar.gz"
    started = time.monotonic()
    answer = _fetch(
        served, "FetchDirectory", ra.FetchDirectoryRequest(uris=[url], timeout={"nanos": 500_000_000}),
        ra.FetchDirectoryResponse,
    )  # fmt: skip
    assert answer.status.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]  # type: ignore[attr-defined]
    assert time.monotonic() - started < 2.5
    time.sleep(3.5)  # the origin answers after 3 s; the fetch went on without the client
    found = AssetClient(RemoteSpec(served.url)).fetch_directory(url)
    assert found is not None
    assert origin.count("/slow/pkg.tar.gz") == 1


def test_without_fetch_allow_a_miss_is_not_found(origin: Origin, tmp_path: Path) -> None:
    with running_serve(tmp_path / "plain") as plain:
        assert AssetClient(RemoteSpec(plain.url)).fetch_blob(origin.url + "blob.bin") is None
    assert origin.count("/blob.bin") == 0


def test_seed_000_one_server_becomes_everyones_mirror(origin: Origin, files: Path, tmp_path: Path) -> None:
    """Machine A fetches a source from origin and pushes it; machine B gets it
    from the server without touching the origin; both have it by name."""
    import json
    import os
    import sys

    from peers.casd import REPO

    url = origin.url + "pkg.tar.gz"
    sha = hashlib.sha256((files / "pkg.tar.gz").read_bytes()).hexdigest()
    urn = "urn:fdc:buildstream.build:2020:source:tar/" + sha[:16]

    def casvfs(store: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "casvfs.cli", "--store", str(tmp_path / store), *args],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
        )  # fmt: skip
        assert (done.returncode == 0) == ok, done.stderr
        return done

    with running_serve(tmp_path / "mirror") as mirror:
        fetch = [
            "--remote",
            mirror.url,
            "source",
            "fetch",
            url,
            "--directory",
            "--sha256",
            sha,
            "--name",
            urn,
        ]
        first = json.loads(casvfs("a", *fetch, "--push", "--json").stdout)
        assert first["found"] == "origin" and first["pushed"]["indexed"] == [mirror.url]
        assert origin.count("/pkg.tar.gz") == 1
        names = {ref.uri for ref in RefIndex.of_store(LocalStore(mirror.store)).by_prefix()}
        assert names == {url, urn}
        second = json.loads(casvfs("b", *fetch, "--json").stdout)
        assert second == {"digest": first["digest"], "found": "remote", "pushed": None}
        assert origin.count("/pkg.tar.gz") == 1
        assert casvfs("b", "--remote", mirror.url, "cat", urn, "pkg/README").stdout == "hello"
        assert json.loads(casvfs("b", *fetch, "--json").stdout)["found"] == "local"
        # by the URN alone, from another machine: the name BuildStream would ask for
        third = json.loads(
            casvfs("c", "--remote", mirror.url, "source", "fetch", urn, "--directory", "--json").stdout
        )
        assert third["found"] == "remote" and third["digest"] == first["digest"]
    # no remote at all: origin, recorded locally; a wrong checksum records nothing
    alone = casvfs("d", "source", "fetch", (files / "blob.bin").as_uri(), "--sri", _sri(BLOB)).stdout.strip()
    assert LocalStore(tmp_path / "d").read_bytes(Digest.parse(alone)) == BLOB
    bad = casvfs("e", "source", "fetch", (files / "blob.bin").as_uri(), "--sha256", "00" * 32, ok=False)
    assert "does not match" in bad.stderr
    assert RefIndex.of_store(LocalStore(tmp_path / "e")).by_prefix() == []
