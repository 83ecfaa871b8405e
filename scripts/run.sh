#!/usr/bin/env bash
# Set up (first time) and run a log on loopback with a generated key and three local witnesses
# (2-of-3 cosigning). Extra args go to `tlog serve`; `--witnesses 0` runs the log alone.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m tlog.devstack --data-dir "${TLOG_DATA:-./tlog-data}" --listen "${TLOG_LISTEN:-127.0.0.1:8080}" "$@"
