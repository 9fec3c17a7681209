"""The generated protobuf modules are current, wire-compatible with BuildStream's
REAPI modules, and importable in a process that already loaded those."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from casvfs.protos import remote_execution_pb2 as pb
from peers.casd import REPO, SETUP_HINT, peers_python

GENERATED = [
    f"casvfs/protos/{name}_pb2.{suffix}"
    for name in ("remote_execution", "remote_asset", "semver", "status", "error_details", "bytestream")
    for suffix in ("py", "pyi")
]


def test_generated_modules_are_current(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "gen-protos.sh"), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for relative in GENERATED:
        fresh = (tmp_path / relative).read_bytes()
        assert fresh == (REPO / relative).read_bytes(), f"{relative} is stale: run bash scripts/gen-protos.sh"


def _peers() -> Path:
    if platform.machine() != "x86_64":
        pytest.skip("BuildStream's wheel (the peer) is x86_64 only")
    python = peers_python()
    if python is None:
        pytest.fail(f"the peers' venv is missing: {SETUP_HINT}")
    return python


BUILDSTREAM_SIDE = r"""
import json, sys
from buildstream._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as bst
d = bst.Directory()
f = d.files.add(name="a", is_executable=True)
f.digest.hash = "ab" * 32
f.digest.size_bytes = 7
f.node_properties.mtime.seconds = 1600000000
f.node_properties.mtime.nanos = 5000
f.node_properties.unix_mode.value = 0o755
f.node_properties.properties.add(name="owner", value="0")
d.directories.add(name="b").digest.hash = "cd" * 32
d.symlinks.add(name="c", target="../x").node_properties.mtime.seconds = 3
d.node_properties.unix_mode.value = 0o700
ours = bst.Directory()
ours.ParseFromString(bytes.fromhex(sys.argv[1]))
print(json.dumps({"bst": d.SerializeToString(deterministic=True).hex(),
                  "roundtrip": ours.SerializeToString(deterministic=True).hex()}))
"""


def test_wire_format_matches_buildstreams_modules() -> None:
    python = _peers()
    ours = pb.Directory()
    ours.files.add(name="x", is_executable=True).digest.hash = "ef" * 32
    ours.symlinks.add(name="y", target="x").node_properties.unix_mode.value = 0o777
    ours_bytes = ours.SerializeToString(deterministic=True)
    done = subprocess.run(
        [str(python), "-c", BUILDSTREAM_SIDE, ours_bytes.hex()], capture_output=True, text=True, check=True
    )
    answer = json.loads(done.stdout)
    assert bytes.fromhex(answer["roundtrip"]) == ours_bytes
    theirs = pb.Directory()
    theirs.ParseFromString(bytes.fromhex(answer["bst"]))
    assert theirs.files[0].node_properties.unix_mode.value == 0o755
    assert theirs.files[0].node_properties.properties[0].name == "owner"
    assert theirs.SerializeToString(deterministic=True).hex() == answer["bst"]


SERVICE_MESSAGES_SIDE = r"""
import json, sys
from google.protobuf.json_format import MessageToDict
from buildstream._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as reapi
from buildstream._protos.google.bytestream import bytestream_pb2 as bytestream
from buildstream._protos.build.bazel.remote.asset.v1 import remote_asset_pb2 as asset
from buildstream._protos.build.bazel.semver import semver_pb2 as semver
from buildstream._protos.google.rpc import status_pb2 as status
modules = {"reapi": reapi, "bytestream": bytestream, "asset": asset, "semver": semver, "status": status}
answers = []
for module, name, data in json.loads(sys.stdin.read()):
    message = modules[module]
    for part in name.split("."):
        message = getattr(message, part)
    parsed = message.FromString(bytes.fromhex(data))
    answers.append(MessageToDict(parsed, preserving_proto_field_name=True))
print(json.dumps(answers))
"""


def _asset_messages() -> list[tuple[str, Message]]:
    from google.protobuf.duration_pb2 import Duration
    from google.protobuf.timestamp_pb2 import Timestamp

    from casvfs.protos import remote_asset_pb2 as ra
    from casvfs.protos import semver_pb2, status_pb2

    digest = pb.Digest(hash="cd" * 32, size_bytes=3)
    when = Timestamp(seconds=1_700_000_000, nanos=5)
    qualifiers = [ra.Qualifier(name="vcs.branch", value="main"), ra.Qualifier(name="checksum.sri", value="x")]
    common = {"instance_name": "i", "uris": ["urn:a", "https://b"], "qualifiers": qualifiers}
    pushed = {
        **common,
        "expire_at": when,
        "references_blobs": [digest],
        "references_directories": [digest, digest],
        "digest_function": 1,
    }
    fetch = {**common, "timeout": Duration(seconds=9), "oldest_content_accepted": when, "digest_function": 1}
    answer = {
        "status": status_pb2.Status(code=5, message="gone"),
        "uri": "urn:a",
        "qualifiers": qualifiers,
        "expires_at": when,
        "digest_function": 1,
    }
    action = pb.Action(
        command_digest=digest, input_root_digest=digest, timeout=Duration(seconds=3), do_not_cache=True
    )
    action.platform.properties.add(name="OSFamily", value="linux")
    command = pb.Command(arguments=["sh", "-c", "x"], output_paths=["out"], working_directory="w")
    command.environment_variables.add(name="PATH", value="/bin")
    result = pb.ActionResult(exit_code=3, stdout_raw=b"o", stdout_digest=digest, stderr_digest=digest)
    result.output_files.add(path="a", digest=digest, is_executable=True)
    result.output_directories.add(path="d", tree_digest=digest, is_topologically_sorted=True)
    result.output_symlinks.add(path="l", target="a")
    result.execution_metadata.worker = "w"
    result.execution_metadata.worker_start_timestamp.CopyFrom(when)
    return [
        ("asset", ra.FetchBlobRequest(**fetch)),
        ("asset", ra.FetchDirectoryRequest(**fetch)),
        ("asset", ra.FetchBlobResponse(**answer, blob_digest=digest)),
        ("asset", ra.FetchDirectoryResponse(**answer, root_directory_digest=digest)),
        ("asset", ra.PushBlobRequest(**pushed, blob_digest=digest)),
        ("asset", ra.PushDirectoryRequest(**pushed, root_directory_digest=digest)),
        ("reapi", action),
        ("reapi", command),
        ("reapi", result),
        ("reapi", pb.GetActionResultRequest(instance_name="i", action_digest=digest, inline_stdout=True)),
        (
            "reapi",
            pb.UpdateActionResultRequest(
                instance_name="i",
                action_digest=digest,
                action_result=result,
                results_cache_policy=pb.ResultsCachePolicy(priority=2),
            ),
        ),
        (
            "reapi",
            pb.ServerCapabilities(
                cache_capabilities=pb.CacheCapabilities(
                    action_cache_update_capabilities=pb.ActionCacheUpdateCapabilities(update_enabled=True),
                    symlink_absolute_path_strategy=1,
                ),
                execution_capabilities=pb.ExecutionCapabilities(digest_function=1, exec_enabled=True),
                low_api_version=semver_pb2.SemVer(major=2),
                high_api_version=semver_pb2.SemVer(major=2, minor=3),
            ),
        ),
        ("semver", semver_pb2.SemVer(major=1, minor=2, patch=3, prerelease="rc1")),
    ]


def _service_messages() -> list[tuple[str, Message]]:
    from casvfs.protos import bytestream_pb2 as bs

    digest = pb.Digest(hash="ab" * 32, size_bytes=12)
    directory = pb.Directory()
    directory.files.add(name="f", digest=digest, is_executable=True)
    status = {"code": 5, "message": "missing"}
    return [
        ("reapi", pb.FindMissingBlobsRequest(instance_name="i", blob_digests=[digest], digest_function=1)),
        ("reapi", pb.FindMissingBlobsResponse(missing_blob_digests=[digest, digest])),
        (
            "reapi",
            pb.BatchUpdateBlobsRequest(
                instance_name="i",
                requests=[pb.BatchUpdateBlobsRequest.Request(digest=digest, data=b"hello", compressor=1)],
                digest_function=1,
            ),
        ),
        (
            "reapi",
            pb.BatchUpdateBlobsResponse(
                responses=[pb.BatchUpdateBlobsResponse.Response(digest=digest, status=status)]
            ),
        ),
        (
            "reapi",
            pb.BatchReadBlobsRequest(
                instance_name="i", digests=[digest], acceptable_compressors=[0, 1], digest_function=1
            ),
        ),
        (
            "reapi",
            pb.BatchReadBlobsResponse(
                responses=[
                    pb.BatchReadBlobsResponse.Response(digest=digest, data=b"x", status=status, compressor=2)
                ]
            ),
        ),
        (
            "reapi",
            pb.GetTreeRequest(
                instance_name="i", root_digest=digest, page_size=7, page_token="t", digest_function=1
            ),
        ),
        ("reapi", pb.GetTreeResponse(directories=[directory, directory], next_page_token="n")),
        ("reapi", pb.GetCapabilitiesRequest(instance_name="i")),
        (
            "reapi",
            pb.ServerCapabilities(
                cache_capabilities=pb.CacheCapabilities(
                    digest_functions=[1, 5],
                    max_batch_total_size_bytes=4 << 20,
                    supported_compressors=[1],
                    supported_batch_update_compressors=[2],
                )
            ),
        ),
        ("bytestream", bs.ReadRequest(resource_name="i/blobs/h/1", read_offset=3, read_limit=9)),
        ("bytestream", bs.ReadResponse(data=b"chunk")),
        (
            "bytestream",
            bs.WriteRequest(
                resource_name="i/uploads/u/blobs/h/1", write_offset=4, finish_write=True, data=b"d"
            ),
        ),
        ("bytestream", bs.WriteResponse(committed_size=11)),
        ("bytestream", bs.QueryWriteStatusRequest(resource_name="r")),
        ("bytestream", bs.QueryWriteStatusResponse(committed_size=2, complete=True)),
        *_asset_messages(),
    ]


BAD_REQUEST_SIDE = r"""
import json, sys
from buildgrid._protos.google.rpc import error_details_pb2, status_pb2
status = status_pb2.Status.FromString(bytes.fromhex(sys.argv[1]))
detail = error_details_pb2.BadRequest()
assert status.details[0].Unpack(detail), status.details[0].type_url
print(json.dumps([status.code, [[v.field, v.description] for v in detail.field_violations]]))
"""


def test_bad_request_details_unpack_in_buildgrids_modules() -> None:
    """The BadRequest detail unpacks as google.rpc.BadRequest in a module of the
    real googleapis package (BuildGrid's copy): type URL and fields match."""
    from casvfs.protos import details, status_pb2
    from peers.buildgrid import SETUP_HINT as BUILDGRID_HINT
    from peers.buildgrid import buildgrid_python

    python = buildgrid_python()
    if python is None:
        pytest.fail(f"BuildGrid's venv is missing: {BUILDGRID_HINT}")
    violations = [("qualifiers.name", '"x" not supported'), ("qualifiers.name", '"y" not supported')]
    status = status_pb2.Status(code=3, message="bad", details=[details.bad_request(violations)])
    done = subprocess.run(
        [str(python), "-c", BAD_REQUEST_SIDE, status.SerializeToString().hex()],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == [3, [list(pair) for pair in violations]]
    assert details.field_violations(status) == violations


def _name_in_package(message: Message) -> str:
    descriptor = message.DESCRIPTOR
    return descriptor.full_name[len(descriptor.file.package) + 1 :]


def test_service_messages_match_buildstreams_modules() -> None:
    """Every CAS/ByteStream message casvfs sends or reads parses field for field
    in BuildStream's own REAPI modules."""
    python = _peers()
    messages = _service_messages()
    payload = [
        (module, _name_in_package(message), message.SerializeToString(deterministic=True).hex())
        for module, message in messages
    ]
    done = subprocess.run(
        [str(python), "-c", SERVICE_MESSAGES_SIDE],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        check=True,
    )
    answers = json.loads(done.stdout)
    for (_module, message), theirs in zip(messages, answers, strict=True):
        assert theirs == MessageToDict(message, preserving_proto_field_name=True), message.DESCRIPTOR.name


COEXIST = r"""
import warnings
warnings.simplefilter("error")
from buildstream._protos.build.bazel.remote.execution.v2 import remote_execution_pb2  # noqa: F401
from buildstream._protos.build.buildgrid import local_cas_pb2  # noqa: F401
import casvfs
from casvfs import CasDirectory, MemoryStore
tree = CasDirectory(MemoryStore())
with tree.open_directory("a/b", create=True).open_file("f", mode="wb") as stream:
    stream.write(b"hello")
print(tree.get_digest())
"""


def test_casvfs_imports_beside_buildstreams_reapi_modules() -> None:
    python = _peers()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([str(python), "-c", COEXIST], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    from casvfs import CasDirectory, MemoryStore

    tree = CasDirectory(MemoryStore())
    with tree.open_directory("a/b", create=True).open_file("f", mode="wb") as stream:
        stream.write(b"hello")
    assert done.stdout.strip() == str(tree.get_digest())
    assert sys.modules["casvfs.protos.remote_execution_pb2"].DESCRIPTOR.package == "casvfs.reapi.v2"
