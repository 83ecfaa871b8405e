#!/usr/bin/env bash
# Set up (first time) and run the whole test suite: lint, then pytest. Exit 5 (no tests) fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
.venv/bin/ruff check client tlog tsa witness tests loadtest fuzz
set +e
.venv/bin/python -m pytest -q -m "not slow" "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
