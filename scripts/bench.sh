#!/usr/bin/env bash
# The benchmark suite from a fresh checkout: set up, then run it (arguments go to
# `python -m benchmarks`; --help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m benchmarks "$@"
