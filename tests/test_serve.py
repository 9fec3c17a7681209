"""``casvfs serve`` as a subprocess on 127.0.0.1, driven by casvfs's own clients and
by raw gRPC calls: asset matching, BadRequest details, completeness checks,
expiry, restarts and kill -9, metrics, push credentials, bad input, the CAS."""

from __future__ import annotations

import datetime
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from casvfs import CasDirectory, LocalStore, digest_bytes
from casvfs.errors import REASON_REMOTE_DENIED, RemoteError
from casvfs.protos import details, status_pb2
from casvfs.protos import remote_asset_pb2 as ra
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.refs import Ref, utc_now
from casvfs.remote import AssetClient, CasClient, LayeredStore, RemoteAuth, RemoteSpec
from casvfs.remote.publish import push_asset
from peers.casd import stop_server
from peers.casvfs_serve import ServeProcess, restart, running_serve

FETCH = "/build.bazel.remote.asset.v1.Fetch/"
PUSH = "/build.bazel.remote.asset.v1.Push/"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServeProcess]:
    with running_serve(tmp_path / "server", "--metrics-port", "0") as server:
        yield server


def _tree(store: LocalStore, files: dict[str, bytes]) -> CasDirectory:
    tree = CasDirectory(store)
    for path, data in files.items():
        parent, _, name = path.rpartition("/")
        directory = tree.open_directory(parent, create=True) if parent else tree
        with directory.open_file(name, mode="wb") as stream:
            stream.write(data)
    return tree


def _layered(tmp_path: Path, url: str, **spec: object) -> LayeredStore:
    return LayeredStore(LocalStore(tmp_path / "client"), [RemoteSpec(url, push=True, **spec)])  # type: ignore[arg-type]


def _pushed(
    tmp_path: Path, url: str, uri: str, qualifiers: dict[str, str], content: bytes = b"sea"
) -> CasDirectory:
    layered = _layered(tmp_path, url)
    tree = _tree(layered.local, {"a/b.txt": b"bee", "c": content * 1000})  # type: ignore[arg-type]
    ref = Ref(uri, "directory", tree.get_digest(), tuple(sorted(qualifiers.items())))
    push_asset(layered, [AssetClient(RemoteSpec(url))], ref)
    return tree


def _raw(url: str, method: str, request: object, response: type) -> object:
    with grpc.insecure_channel(url.removeprefix("http://")) as channel:
        call = channel.unary_unary(
            method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        return call(request, timeout=10)


def test_push_then_fetch_with_a_subset_of_the_qualifiers(served: ServeProcess, tmp_path: Path) -> None:
    tree = _pushed(tmp_path, served.url, "urn:src", {"vcs.commit": "abc", "bst.kind": "git"})
    client = AssetClient(RemoteSpec(served.url))
    found = client.fetch_directory("urn:src", {"vcs.commit": "abc"})
    assert found is not None and found.digest == tree.get_digest()
    assert dict(found.qualifiers) == {"vcs.commit": "abc", "bst.kind": "git"}
    assert found.uri == "urn:src" and found.expires_at is None
    assert client.fetch_directory(["urn:other", "urn:src"]) is not None
    assert client.fetch_directory("urn:src", {"vcs.commit": "def"}) is None
    assert client.fetch_blob("urn:src") is None  # a directory asset is not a blob
    # the tree came through the CAS of the same server, whole
    fresh = LayeredStore(LocalStore(tmp_path / "fresh"), [RemoteSpec(served.url)])
    fresh.pull(found.digest)
    assert CasDirectory(fresh.local, found.digest).open_file("c", mode="rb").read() == b"sea" * 1000


def test_exact_matching_needs_every_qualifier(tmp_path: Path) -> None:
    with running_serve(tmp_path / "exact", "--qualifier-match", "exact") as served:
        _pushed(tmp_path, served.url, "urn:src", {"vcs.commit": "abc", "bst.kind": "git"})
        client = AssetClient(RemoteSpec(served.url))
        assert client.fetch_directory("urn:src", {"vcs.commit": "abc"}) is None
        assert client.fetch_directory("urn:src", {"bst.kind": "git", "vcs.commit": "abc"}) is not None


def test_the_newest_push_wins(served: ServeProcess, tmp_path: Path) -> None:
    client = AssetClient(RemoteSpec(served.url))
    first = _pushed(tmp_path / "1", served.url, "urn:x", {"a": "1"}, b"one")
    second = _pushed(tmp_path / "2", served.url, "urn:x", {"a": "1", "b": "2"}, b"two")
    assert first.get_digest() != second.get_digest()
    found = client.fetch_directory("urn:x", {"a": "1"})
    assert found is not None and found.digest == second.get_digest()
    again = _pushed(tmp_path / "3", served.url, "urn:x", {"a": "1"}, b"one")
    found = client.fetch_directory("urn:x", {"a": "1"})
    assert found is not None and found.digest == again.get_digest() == first.get_digest()
    found = client.fetch_directory("urn:x", {"b": "2"})
    assert found is not None and found.digest == second.get_digest()


def test_unsupported_qualifiers_get_a_bad_request_detail(tmp_path: Path) -> None:
    with running_serve(tmp_path / "allow", "--allow-qualifier", "vcs.commit") as served:
        request = ra.FetchBlobRequest(
            uris=["urn:x"],
            qualifiers=[
                ra.Qualifier(name="vcs.commit", value="1"),
                ra.Qualifier(name="zeta", value="z"),
                ra.Qualifier(name="alpha", value="a"),
            ],
        )
        with pytest.raises(grpc.RpcError) as caught:
            _raw(served.url, FETCH + "FetchBlob", request, ra.FetchBlobResponse)
        error = caught.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        trailer = dict(error.trailing_metadata())["grpc-status-details-bin"]
        status = status_pb2.Status.FromString(trailer)
        assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert [d.type_url for d in status.details] == ["type.googleapis.com/google.rpc.BadRequest"]
        assert details.field_violations(status) == [
            ("qualifiers.name", '"alpha" not supported'),
            ("qualifiers.name", '"zeta" not supported'),
        ]
        # casvfs's client names them in its error
        with pytest.raises(RemoteError, match=r'qualifiers\.name: "alpha" not supported'):
            AssetClient(RemoteSpec(served.url, retries=0)).fetch_blob("urn:x", {"alpha": "a"})


def test_a_request_without_uri_is_invalid_as_buildstream_probes(served: ServeProcess) -> None:
    for method, request, response in (
        ("FetchBlob", ra.FetchBlobRequest(), ra.FetchBlobResponse),
        ("FetchDirectory", ra.FetchDirectoryRequest(), ra.FetchDirectoryResponse),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            _raw(served.url, FETCH + method, request, response)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        _raw(served.url, PUSH + "PushBlob", ra.PushBlobRequest(), ra.PushBlobResponse)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_bad_input_is_invalid_argument_with_a_message(served: ServeProcess) -> None:
    cases = [
        (FETCH + "FetchBlob", ra.FetchBlobRequest(uris=["u"], digest_function=pb.DigestFunction.MD5), "MD5"),
        (FETCH + "FetchBlob", ra.FetchBlobRequest(uris=["u"], instance_name="nope"), "instance"),
        (
            FETCH + "FetchBlob",
            ra.FetchBlobRequest(uris=["u"], qualifiers=[ra.Qualifier(name="a"), ra.Qualifier(name="a")]),
            "twice",
        ),
        (PUSH + "PushBlob", ra.PushBlobRequest(uris=["u"], blob_digest=pb.Digest(hash="xyz")), "SHA-256"),
        (
            PUSH + "PushDirectory",
            ra.PushDirectoryRequest(
                uris=["u"], root_directory_digest=pb.Digest(hash="ab" * 32, size_bytes=-4)
            ),
            "size",
        ),
        (FETCH + "FetchBlob", ra.FetchBlobRequest(uris=["u"] * 1001), "at most"),
    ]
    for method, request, words in cases:
        with pytest.raises(grpc.RpcError) as caught:
            _raw(served.url, method, request, ra.FetchBlobResponse)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, request)
        assert words in caught.value.details(), caught.value.details()
    too_big = pb.BatchUpdateBlobsRequest(
        requests=[pb.BatchUpdateBlobsRequest.Request(digest=digest_bytes(b"x" * (3 << 20)).to_proto(),
                                                    data=b"x" * (3 << 20))] * 2
    )  # fmt: skip
    with pytest.raises(grpc.RpcError) as caught:
        _raw(served.url, "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs",
             too_big, pb.BatchUpdateBlobsResponse)  # fmt: skip
    assert caught.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
    # the server is still there
    assert AssetClient(RemoteSpec(served.url)).fetch_blob("urn:none") is None


def test_push_is_refused_while_content_is_missing(served: ServeProcess, tmp_path: Path) -> None:
    local = LocalStore(tmp_path / "only-here")
    tree = _tree(local, {"f": b"never uploaded"})
    client = AssetClient(RemoteSpec(served.url, retries=0))
    with pytest.raises(RemoteError, match=r"FAILED_PRECONDITION.*not in the CAS") as caught:
        client.push_directory("urn:t", tree.get_digest())
    assert str(tree.get_digest()) in str(caught.value)
    blob = digest_bytes(b"absent")
    with pytest.raises(RemoteError, match=str(blob)):
        client.push_blob("urn:b", blob)
    # a present blob with an absent reference is refused too
    layered = _layered(tmp_path, served.url)
    present = layered.local.put_bytes(b"present")
    push_asset(layered, [], Ref("x", "blob", present))  # content only
    with pytest.raises(RemoteError, match=str(blob)):
        client.push_blob("urn:b", present, references_blobs=[blob])
    client.push_blob("urn:b", present)
    assert client.fetch_blob("urn:b") is not None


def test_fetch_answers_not_found_once_referenced_content_is_gone(
    served: ServeProcess, tmp_path: Path
) -> None:
    layered = _layered(tmp_path, served.url)
    tree = _tree(layered.local, {"d/leaf": b"leaf", "top": b"top"})  # type: ignore[arg-type]
    log = layered.local.put_bytes(b"build log")
    ref = Ref("urn:art", "directory", tree.get_digest(), references_blobs=(log,))
    push_asset(layered, [AssetClient(RemoteSpec(served.url))], ref)
    client = AssetClient(RemoteSpec(served.url))
    assert client.fetch_directory("urn:art") is not None
    server_store = LocalStore(served.store)
    os.unlink(server_store.object_path(log))
    assert client.fetch_directory("urn:art") is None
    push_asset(layered, [AssetClient(RemoteSpec(served.url))], ref)  # uploads the log again
    assert client.fetch_directory("urn:art") is not None
    os.unlink(server_store.object_path(digest_bytes(b"leaf")))
    assert client.fetch_directory("urn:art") is None


def test_expiry_and_oldest_content_accepted(served: ServeProcess, tmp_path: Path) -> None:
    layered = _layered(tmp_path, served.url)
    blob = layered.local.put_bytes(b"content")
    push_asset(layered, [], Ref("x", "blob", blob))
    client = AssetClient(RemoteSpec(served.url))
    soon = utc_now() + datetime.timedelta(hours=1)
    client.push_blob("urn:later", blob, expire_at=soon)
    client.push_blob("urn:gone", blob, expire_at=utc_now() - datetime.timedelta(seconds=1))
    found = client.fetch_blob("urn:later")
    assert found is not None and found.expires_at is not None
    assert abs((found.expires_at - soon).total_seconds()) < 0.001
    assert client.fetch_blob("urn:gone") is None
    pushed_at = utc_now()
    assert client.fetch_blob("urn:later", oldest_content_accepted=pushed_at - datetime.timedelta(minutes=5))
    assert client.fetch_blob("urn:later", oldest_content_accepted=pushed_at) is None
    # pushing again renews the content's age and can lift the expiry
    client.push_blob("urn:later", blob)
    renewed = client.fetch_blob("urn:later", oldest_content_accepted=pushed_at)
    assert renewed is not None and renewed.expires_at is None


def test_references_survive_a_restart_and_kill_9(tmp_path: Path) -> None:
    with running_serve(tmp_path / "server") as served:
        _pushed(tmp_path / "a", served.url, "urn:kept", {"q": "1"})
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=15) == 0
    again = restart(served)
    try:
        assert AssetClient(RemoteSpec(again.url)).fetch_directory("urn:kept", {"q": "1"}) is not None
        _pushed(tmp_path / "b", again.url, "urn:just-before-the-kill", {})
        again.process.kill()
        again.process.wait(timeout=15)
    finally:
        stop_server(again.process)
    third = restart(served)
    try:
        client = AssetClient(RemoteSpec(third.url))
        assert client.fetch_directory("urn:kept") is not None
        assert client.fetch_directory("urn:just-before-the-kill") is not None
    finally:
        stop_server(third.process)


def test_metrics_are_scraped_over_http(served: ServeProcess, tmp_path: Path) -> None:
    _pushed(tmp_path, served.url, "urn:m", {})
    client = AssetClient(RemoteSpec(served.url))
    assert client.fetch_directory("urn:m") is not None
    assert client.fetch_directory("urn:missing") is None
    assert served.metrics_url is not None
    text = urllib.request.urlopen(served.metrics_url, timeout=10).read().decode()
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['casvfs_serve_asset_hits_total{kind="directory"}'] == 1
    assert samples['casvfs_serve_asset_misses_total{kind="directory",why="unknown"}'] == 1
    assert samples['casvfs_serve_asset_pushes_total{kind="directory"}'] == 1
    assert samples['casvfs_serve_requests_total{code="OK",method="FetchDirectory"}'] == 2
    assert samples['casvfs_serve_request_seconds_count{method="FetchDirectory"}'] == 2
    assert samples['casvfs_serve_bytes_total{direction="received"}'] > 3000
    with pytest.raises(grpc.RpcError):
        _raw(served.url, FETCH + "FetchBlob", ra.FetchBlobRequest(), ra.FetchBlobResponse)
    text = urllib.request.urlopen(served.metrics_url, timeout=10).read().decode()
    assert 'casvfs_serve_errors_total{code="INVALID_ARGUMENT",method="FetchBlob"} 1.0' in text


def test_only_clients_with_a_listed_token_may_push(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret\nother\n")
    good = tmp_path / "good"
    good.write_text("s3cret\n")
    bad = tmp_path / "bad"
    bad.write_text("guess\n")
    with running_serve(tmp_path / "auth", "--push-auth", "--push-token-file", str(tokens)) as served:
        layered = _layered(tmp_path / "anon", served.url, retries=0)
        blob = layered.local.put_bytes(b"data")
        with pytest.raises(RemoteError) as caught:
            push_asset(layered, [AssetClient(RemoteSpec(served.url, retries=0))], Ref("urn:p", "blob", blob))
        assert caught.value.reason == REASON_REMOTE_DENIED and "UNAUTHENTICATED" in str(caught.value)
        wrong = RemoteSpec(served.url, retries=0, auth=RemoteAuth(access_token=str(bad)))
        with pytest.raises(RemoteError, match="PERMISSION_DENIED"):
            AssetClient(wrong).push_blob("urn:p", blob)
        allowed = RemoteSpec(served.url, push=True, auth=RemoteAuth(access_token=str(good)))
        trusted = LayeredStore(LocalStore(tmp_path / "trusted"), [allowed])
        trusted.local.put_bytes(b"data")
        push_asset(trusted, [AssetClient(allowed)], Ref("urn:p", "blob", blob))
        # anyone may fetch, and read the content
        found = AssetClient(RemoteSpec(served.url)).fetch_blob("urn:p")
        assert found is not None and found.digest == blob
        reader = LayeredStore(LocalStore(tmp_path / "reader"), [RemoteSpec(served.url)])
        assert reader.read_bytes(blob) == b"data"


def test_tls_with_client_certificates(tmp_path: Path) -> None:
    from peers.buildgrid import make_certificates

    certs = make_certificates(tmp_path / "certs")
    arguments = ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)]
    arguments += ["--tls-client-ca", str(certs.ca_cert), "--push-auth", "--bind", "localhost:0"]
    with running_serve(tmp_path / "tls", *arguments) as served:
        url = served.url.replace("http://", "https://")
        auth = RemoteAuth(
            server_cert=str(certs.ca_cert),
            client_cert=str(certs.client_cert),
            client_key=str(certs.client_key),
        )
        spec = RemoteSpec(url, push=True, auth=auth)
        _pushed_over = LayeredStore(LocalStore(tmp_path / "c"), [spec])
        blob = _pushed_over.local.put_bytes(b"over tls")
        push_asset(_pushed_over, [AssetClient(spec)], Ref("urn:tls", "blob", blob))
        assert AssetClient(spec).fetch_blob("urn:tls") is not None
        no_cert = RemoteSpec(url, retries=0, timeout=5, auth=RemoteAuth(server_cert=str(certs.ca_cert)))
        with pytest.raises(RemoteError):
            AssetClient(no_cert).fetch_blob("urn:tls")


def test_the_cas_side_serves_casvfs_push_and_pull(served: ServeProcess, tmp_path: Path) -> None:
    layered = _layered(tmp_path, served.url)
    big = os.urandom(6 << 20)  # past the batch limit: ByteStream both ways
    files = {f"dir{i}/file{j}": os.urandom(100) for i in range(30) for j in range(5)}
    tree = _tree(layered.local, {**files, "big": big})  # type: ignore[arg-type]
    layered.push(tree.get_digest())
    client = CasClient(RemoteSpec(served.url))
    assert client.find_missing(layered.local.tree_blobs(tree.get_digest(), directories=True)) == []
    directories = list(client.get_tree(tree.get_digest()))
    assert len(directories) == 31
    fresh = LayeredStore(LocalStore(tmp_path / "fresh"), [RemoteSpec(served.url)])
    fresh.pull(tree.get_digest())
    copy = CasDirectory(fresh.local, tree.get_digest())
    assert copy.open_file("big", mode="rb").read() == big
    assert copy.open_file("dir7/file3", mode="rb").read() == files["dir7/file3"]
    # GetTree pages when asked to
    request = pb.GetTreeRequest(root_digest=tree.get_digest().to_proto(), page_size=10)
    seen, token = 0, "start"
    with grpc.insecure_channel(served.url.removeprefix("http://")) as channel:
        call = channel.unary_stream(
            "/build.bazel.remote.execution.v2.ContentAddressableStorage/GetTree",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.GetTreeResponse.FromString,
        )
        while token:
            pages = list(call(request, timeout=10))
            seen += sum(len(page.directories) for page in pages)
            token = pages[-1].next_page_token
            request.page_token = token
    assert seen == 31


def test_a_corrupt_upload_is_refused_and_nothing_stored(served: ServeProcess) -> None:
    digest = digest_bytes(b"the real content")
    request = pb.BatchUpdateBlobsRequest(
        requests=[pb.BatchUpdateBlobsRequest.Request(digest=digest.to_proto(), data=b"the fake content")]
    )
    answer = _raw(
        served.url,
        "/build.bazel.remote.execution.v2.ContentAddressableStorage/BatchUpdateBlobs",
        request,
        pb.BatchUpdateBlobsResponse,
    )
    assert answer.responses[0].status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]  # type: ignore[attr-defined]
    assert not LocalStore(served.store).has(digest)


def test_sigterm_stops_the_server_cleanly(tmp_path: Path) -> None:
    with running_serve(tmp_path / "s") as served:
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=15) == 0
        assert time.monotonic() - started < 10


def test_asset_commands_with_an_index_and_a_storage_remote(tmp_path: Path) -> None:
    """``casvfs asset push`` sends content to the storage remote and the name to
    the index remote (a second casvfs serve, assets alone in front of the first);
    ``asset fetch --pull`` on a fresh store gets both back and records a reference."""
    import json
    import subprocess
    import sys

    from casvfs.refs import RefIndex
    from peers.casd import REPO

    tree_dir = tmp_path / "tree"
    (tree_dir / "sub").mkdir(parents=True)
    (tree_dir / "sub" / "f").write_bytes(b"asset content")

    def casvfs(store: str, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "casvfs.cli", "--store", str(tmp_path / store), *args],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    with (
        running_serve(tmp_path / "storage") as storage,
        running_serve(tmp_path / "index", "--cas", storage.url) as index,
    ):
        config = tmp_path / "remotes.yaml"
        config.write_text(
            "remotes:\n  servers:\n"
            f"  - {{url: {storage.url}, type: storage, push: true}}\n"
            f"  - {{url: {index.url}, type: index, push: true}}\n"
        )
        digest = casvfs("a", "import", str(tree_dir))
        casvfs("a", "ref", "set", "release/2.0", digest, "--qualifier", "os=linux")
        out = casvfs("a", "--config", str(config), "asset", "push", "release/2.0")
        assert f"{storage.url}: sent 3 of 3 blobs" in out
        assert f"{index.url}: release/2.0 -> {digest}" in out
        index_store = LocalStore(index.store)
        assert str(RefIndex.of_store(index_store).get("release/2.0").digest) == digest
        assert list(index_store.iter_objects()) == []  # names only: the content is in storage
        fetched = casvfs("b", "--config", str(config), "asset", "fetch", "release/2.0", "--directory",
                         "--qualifier", "os=linux", "--pull", "--json")  # fmt: skip
        record = json.loads(fetched)
        assert record["digest"] == digest and record["qualifiers"] == {"os": "linux"}
        # the content came with it: readable with no remote at all, by name
        assert casvfs("b", "cat", "release/2.0", "sub/f") == "asset content"
        assert casvfs("c", "--config", str(config), "asset", "fetch", "release/2.0", "--directory",
                      "--tree-only") == digest  # fmt: skip
        assert casvfs("c", "ls", "-R", "release/2.0").splitlines() == ["sub", "sub/f"]
        code = subprocess.run(
            [sys.executable, "-m", "casvfs.cli", "--store", str(tmp_path / "c"), "--config", str(config),
             "asset", "fetch", "release/2.0", "--directory", "--qualifier", "os=mac"],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=False,
        )  # fmt: skip
        assert code.returncode == 1 and "no remote has a directory asset" in code.stderr


def test_automatic_gc_frees_what_no_asset_needs_above_the_quota(tmp_path: Path) -> None:
    from casvfs import ARBITRARY_TIMESTAMP

    store_dir = tmp_path / "gc-store"
    store = LocalStore(store_dir)
    unrooted = _tree(store, {"old": b"nobody names this" * 100}).get_digest()
    for relative, _name in store.iter_objects():
        os.utime(store_dir / relative, (time.time() - 7200, ARBITRARY_TIMESTAMP))
    arguments = ("--gc-quota-high", "1", "--gc-interval", "0.5s", "--metrics-port", "0")
    with running_serve(tmp_path / "gc", *arguments, store=store_dir) as served:
        _pushed(tmp_path, served.url, "urn:kept", {})
        deadline = time.monotonic() + 20
        # polled without has(), which would count as a use and keep it
        while os.path.exists(store.object_path(unrooted)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not os.path.exists(store.object_path(unrooted))
        assert AssetClient(RemoteSpec(served.url)).fetch_directory("urn:kept") is not None  # complete still
        assert served.metrics_url is not None
        text = urllib.request.urlopen(served.metrics_url, timeout=10).read().decode()
        freed = [line for line in text.splitlines() if line.startswith("casvfs_serve_gc_freed_bytes_total ")]
        assert freed and float(freed[0].split()[1]) > 0


def test_get_tree_pages_stay_under_the_message_limit(served: ServeProcess, tmp_path: Path) -> None:
    """A tree whose first 4,096 directories (what casvfs asks for per page) are
    bigger than a gRPC message pulls all the same: pages are cut by size too."""
    layered = _layered(tmp_path, served.url)
    name = "n" * 250
    files = {f"d{i:03}/{name}{j:03}": bytes([i % 256, j % 256]) for i in range(70) for j in range(300)}
    tree = _tree(layered.local, files)  # type: ignore[arg-type]
    layered.push(tree.get_digest())
    assert sum(len(m.SerializeToString()) for _d, m in layered.local.get_tree(tree.get_digest())) > 6 << 20
    fresh = LayeredStore(LocalStore(tmp_path / "fresh"), [RemoteSpec(served.url, retries=0)])
    fresh.pull(tree.get_digest(), tree_only=True)
    assert len(list(CasDirectory(fresh.local, tree.get_digest()).open_directory("d007"))) == 300
