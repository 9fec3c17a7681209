#!/usr/bin/env bash
# Regenerate casvfs/protos/*_pb2.py(i) with the pinned protoc (grpcio-tools 1.62.3,
# libprotoc 25.1). That generator's modules carry no runtime-version gate, so they
# import under any protobuf runtime from 4.25 to 7.x, including the one a
# BuildStream or BuildGrid process already loaded.
#   bash scripts/gen-protos.sh [OUTDIR]   (default: the repo itself)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
[ -x .tools/protoc/bin/python ] || bash scripts/setup.sh
py=.tools/protoc/bin/python
include=$("$py" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
mkdir -p "$out"
"$py" -m grpc_tools.protoc -I. -I"$include" --python_out="$out" --pyi_out="$out" \
    casvfs/protos/semver.proto casvfs/protos/status.proto casvfs/protos/error_details.proto \
    casvfs/protos/remote_execution.proto casvfs/protos/remote_asset.proto casvfs/protos/bytestream.proto
