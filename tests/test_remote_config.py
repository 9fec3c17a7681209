"""Remote configuration (YAML, BuildStream's shape), URL handling, credentials
and the client's retry policy (against a scripted in-process gRPC server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from casvfs import Digest
from casvfs.errors import ConfigError, RemoteError
from casvfs.protos import remote_execution_pb2 as pb
from casvfs.remote import CasClient, RemoteAuth, RemoteConfig, RemoteSpec
from casvfs.remote.client import CAS
from casvfs.remote.config import parse_remote, target

PROJECT = {"name": "foo", "remotes": [{"url": "https://cache.example.com:11001", "instance-name": "main"}]}


def resolve(user: dict[str, Any], project: dict[str, Any] = PROJECT) -> list[tuple[str, str, bool]]:
    config = RemoteConfig.resolve(user, project, user_base="/home/u/.config/casvfs", project_base="/src/foo")
    return [(remote.url, remote.instance_name, remote.push) for remote in config.remotes]


def test_project_remotes_alone() -> None:
    assert resolve({}) == [("https://cache.example.com:11001", "main", False)]


def test_user_remotes_come_first_and_augment() -> None:
    user = {
        "remotes": {"servers": [{"url": "http://local-cache:8080", "push": True}]},
        "projects": {"foo": {"remotes": {"servers": [{"url": "grpcs://team:443"}]}}},
    }
    assert resolve(user) == [
        ("grpcs://team:443", "", False),
        ("http://local-cache:8080", "", True),
        ("https://cache.example.com:11001", "main", False),
    ]


def test_user_override_drops_project_remotes() -> None:
    user = {"remotes": {"override-project-remotes": True, "servers": [{"url": "http://mine:1"}]}}
    assert resolve(user) == [("http://mine:1", "", False)]
    for_other_project = {"projects": {"bar": {"remotes": {"override-project-remotes": True}}}}
    assert resolve(for_other_project) == resolve({})


def test_user_entry_for_a_project_remote_sets_push() -> None:
    """Seed 002: a project recommends a read-only endpoint; a user with
    credentials turns on pushing to it."""
    user = {
        "remotes": {
            "servers": [
                {
                    "url": "https://cache.example.com:11001",
                    "instance-name": "main",
                    "push": True,
                    "auth": {"client-cert": "c.crt", "client-key": "c.key"},
                }
            ]
        }
    }
    config = RemoteConfig.resolve(user, PROJECT, user_base="/home/u/.config/casvfs", project_base="/src/foo")
    (remote,) = config.remotes
    assert remote.push and config.push_remotes == (remote,)
    assert remote.auth.client_cert == "/home/u/.config/casvfs/c.crt"


def yaml_file(directory: Path, name: str, text: str) -> Path:
    """A configuration file *name* in *directory* holding *text*."""
    path = directory / name
    path.write_text(text)
    return path


def test_the_three_scenarios_of_seed_002(tmp_path: Path) -> None:
    """Full remote, read-only cache with local fallback, read-write cache."""
    full = yaml_file(
        tmp_path, "full.yaml", "remotes:\n  servers:\n  - url: http://execution:50051\n    push: true\n"
    )
    read_only = yaml_file(tmp_path, "ro.yaml", "name: foo\nremotes:\n- url: https://cache:11001\n")
    read_write = yaml_file(
        tmp_path, "rw.yaml", "remotes:\n  servers:\n  - url: https://cache:11001\n    push: true\n"
    )
    assert RemoteConfig.load(full).push_remotes[0].url == "http://execution:50051"
    ro = RemoteConfig.load(None, read_only)
    assert [r.url for r in ro.remotes] == ["https://cache:11001"] and ro.push_remotes == ()
    rw = RemoteConfig.load(read_write, read_only)
    assert [r.url for r in rw.push_remotes] == ["https://cache:11001"] and len(rw.remotes) == 1


def test_auth_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "config.yaml"
    path.write_text(
        "remotes:\n  servers:\n  - url: https://cache:1\n    auth:\n"
        "      server-cert: ca.crt\n      client-cert: /abs/c.crt\n      client-key: k.key\n"
        "      access-token: token\n"
    )
    (remote,) = RemoteConfig.load(path).remotes
    assert remote.auth == RemoteAuth(
        server_cert=str(tmp_path / "conf" / "ca.crt"),
        client_cert="/abs/c.crt",
        client_key=str(tmp_path / "conf" / "k.key"),
        access_token=str(tmp_path / "conf" / "token"),
    )


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"url": "ftp://x:1"}, "scheme"),
        ({"url": "http://user:secret@x:1"}, "credentials"),
        ({"url": "https://x:1", "auth": {"client-cert": "c"}}, "client-key"),
        ({"url": "https://x:1", "auth": {"client-key": "k"}}, "client-cert"),
        ({"url": "http://x:1", "auth": {"server-cert": "ca"}}, "https"),
        ({"url": "http://x:1", "push": "yes"}, "push"),
        ({"url": "http://x:1", "pull": True}, "unknown key"),
        ({"url": "http://x:1", "auth": {"password": "p"}}, "unknown key"),
        ({"url": "http://x:1", "timeout": 0}, "timeout"),
        ({"url": "http://cache:80", "auth": {"access-token": "t"}}, "only over TLS"),
        ({"url": "http://x:port"}, "port"),
        ({"push": True}, "url"),
    ],
)
def test_invalid_remotes_are_refused(data: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_remote(data, "/base")
    assert raised.value.reason == "invalid-config"
    assert complaint in str(raised.value)
    assert "secret" not in str(raised.value)


def test_invalid_files_are_refused(tmp_path: Path) -> None:
    bad_yaml = yaml_file(tmp_path, "bad.yaml", "remotes: [\n")
    not_mapping = yaml_file(tmp_path, "list.yaml", "- a\n")
    empty = yaml_file(tmp_path, "empty.yaml", "")
    for path in (bad_yaml, not_mapping, tmp_path / "absent.yaml"):
        with pytest.raises(ConfigError):
            RemoteConfig.load(path)
    assert RemoteConfig.load(empty).remotes == ()
    with pytest.raises(ConfigError):
        RemoteConfig.resolve({"remotes": []}, {}, user_base="/", project_base="/")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://cache", "cache:80"),
        ("https://cache", "cache:443"),
        ("grpc://10.0.0.1:8980", "10.0.0.1:8980"),
        ("grpcs://[::1]:9000", "[::1]:9000"),
        ("unix:/run/casd.sock", "unix:/run/casd.sock"),
    ],
)
def test_targets(url: str, expected: str) -> None:
    assert target(url) == expected


# -- a scripted server: only what real servers cannot be made to do on demand --


def scripted_server(
    handler: Callable[[pb.FindMissingBlobsRequest, grpc.ServicerContext], pb.FindMissingBlobsResponse],
) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(2))
    methods = {
        "FindMissingBlobs": grpc.unary_unary_rpc_method_handler(
            handler,
            request_deserializer=pb.FindMissingBlobsRequest.FromString,
            response_serializer=pb.FindMissingBlobsResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(CAS, methods)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop(None)


def test_retries_resource_exhausted_then_succeeds() -> None:
    attempts: list[int] = []

    def handler(
        request: pb.FindMissingBlobsRequest, context: grpc.ServicerContext
    ) -> pb.FindMissingBlobsResponse:
        attempts.append(1)
        if len(attempts) < 3:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")
        return pb.FindMissingBlobsResponse(missing_blob_digests=request.blob_digests)

    for url in scripted_server(handler):
        client = CasClient(RemoteSpec(url, retries=3))
        digest = Digest("a" * 64, 3)
        assert client.find_missing([digest]) == [digest]
        assert client.calls == {"FindMissingBlobs": 3}


def test_gives_up_after_retries_and_names_the_call() -> None:
    def handler(
        request: pb.FindMissingBlobsRequest, context: grpc.ServicerContext
    ) -> pb.FindMissingBlobsResponse:
        context.abort(grpc.StatusCode.UNAVAILABLE, "going away")

    for url in scripted_server(handler):
        client = CasClient(RemoteSpec(url, retries=2))
        with pytest.raises(RemoteError) as raised:
            client.find_missing([Digest("b" * 64, 1)])
        assert client.calls == {"FindMissingBlobs": 3}
        assert (raised.value.reason, raised.value.remote, raised.value.call) == (
            "remote-unavailable",
            url,
            "FindMissingBlobs",
        )


def test_access_token_is_sent_and_never_shown(tmp_path: Path) -> None:
    seen: list[tuple[tuple[str, str], ...]] = []

    def handler(
        request: pb.FindMissingBlobsRequest, context: grpc.ServicerContext
    ) -> pb.FindMissingBlobsResponse:
        seen.append(tuple((m.key, m.value) for m in context.invocation_metadata()))  # type: ignore[attr-defined]
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")

    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    for url in scripted_server(handler):
        spec = RemoteSpec(url, auth=RemoteAuth(access_token=str(token)))
        with pytest.raises(RemoteError) as raised:
            CasClient(spec).find_missing([Digest("c" * 64, 1)])
        assert raised.value.reason == "remote-denied"
        assert ("authorization", "Bearer s3cret-token") in seen[0]
        assert "s3cret" not in str(raised.value) and "s3cret" not in repr(spec)
    missing = RemoteSpec("http://127.0.0.1:1", auth=RemoteAuth(access_token=str(tmp_path / "none")))
    with pytest.raises(ConfigError):
        CasClient(missing).find_missing([Digest("c" * 64, 1)])
