#!/bin/sh
# The monitor: build its trust policy from the published keys (the log's key, the three
# witnesses' keys, 2 of 3 cosignatures no older than an hour), then follow the log.
set -eu
STATE=${STATE:-/var/lib/tlog-monitor}
KEYS_DIR=${KEYS_DIR:-/etc/tlog/keys}
CONFIG=${CONFIG:-/etc/tlog/monitor.toml}
: "${LOG_URL:?set LOG_URL}"
tlog-client policy --url "$LOG_URL" --log-key "@$KEYS_DIR/log.vkey" \
  --witness-key "@$KEYS_DIR/witness-1.vkey" --witness-key "@$KEYS_DIR/witness-2.vkey" \
  --witness-key "@$KEYS_DIR/witness-3.vkey" --witness-quorum 2 --max-age 3600 \
  --out "$STATE/policy.toml"
exec tlog-client monitor --config "$CONFIG"
