#!/usr/bin/env bash
# The whole test suite: set up, then lint, type-check, check generated code and run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
echo "== ruff" && ruff check casvfs tests benchmarks peers docs
echo "== mypy" && mypy
echo "== pytest" && pytest -q --durations=8 "$@"
