#!/usr/bin/env bash
# The main job on the embedded default (a local store, no server): import a real
# host directory, show its digest and listing, export it back and check the copy.
#   bash scripts/demo.sh [DIRECTORY]     (default: this repository's casvfs/ package)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source_dir=$(realpath "${1:-casvfs}")
casvfs=.venv/bin/casvfs
echo "== casvfs import $source_dir"
digest=$("$casvfs" import "$source_dir")
echo "$digest"
echo "== casvfs ls --long $digest"
"$casvfs" ls --long "$digest" | head -n 20
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "== casvfs export $digest $out/tree"
"$casvfs" export "$digest" "$out/tree"
echo "== re-import of the export"
again=$("$casvfs" import "$out/tree")
echo "$again"
[ "$again" = "$digest" ] && echo "round trip OK: same digest"
