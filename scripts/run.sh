#!/usr/bin/env bash
# Set up (first time) and run a log on loopback with a generated key. Extra args go to `tlog serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/tlog serve --data-dir "${TLOG_DATA:-./tlog-data}" --listen "${TLOG_LISTEN:-127.0.0.1:8080}" "$@"
