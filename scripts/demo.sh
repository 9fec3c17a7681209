#!/usr/bin/env bash
# The main job on the embedded default (a local store, no server): import a real
# host directory, show its digest and listing, export it back and check the copy.
#   bash scripts/demo.sh [DIRECTORY]     (default: this repository's casvfs/ package)
#   CASVFS_STORE=DIR bash scripts/demo.sh   (a store other than ~/.cache/casvfs)
set -euo pipefail
# relative paths are the caller's, so resolve them before moving to the checkout
source_dir=$(realpath "${1:-$(dirname "$0")/../casvfs}")
# casvfs's own default (casvfs.stores.default_store_dir), made absolute and
# exported so the line below names exactly the store the commands use
CASVFS_STORE=$(realpath -m "${CASVFS_STORE:-${XDG_CACHE_HOME:-$HOME/.cache}/casvfs}")
export CASVFS_STORE
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "== store: $CASVFS_STORE (another: CASVFS_STORE=DIR bash scripts/demo.sh); export to: $out/tree (removed at exit)"
cd "$(dirname "$0")/.."
bash scripts/setup.sh
casvfs=.venv/bin/casvfs
echo "== casvfs import $source_dir"
digest=$("$casvfs" import "$source_dir")
echo "$digest"
echo "== casvfs ls --long $digest"
"$casvfs" ls --long "$digest" | head -n 20
echo "== casvfs export $digest $out/tree"
"$casvfs" export "$digest" "$out/tree"
echo "== re-import of the export"
again=$("$casvfs" import "$out/tree")
echo "$again"
[ "$again" = "$digest" ] && echo "round trip OK: same digest"
