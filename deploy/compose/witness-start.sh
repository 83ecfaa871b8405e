#!/bin/sh
# A witness: create its cosigning key (once), publish the verifier key for the log and
# monitors, then serve. KEY_NAME is the witness's name (unique per witness).
set -eu
STATE=${STATE:-/var/lib/witness}
KEYS_DIR=${KEYS_DIR:-/etc/tlog/keys}
CONFIG=${CONFIG:-/etc/tlog/witness.toml}
: "${KEY_NAME:?set KEY_NAME, the witness name}"
witness keygen --if-missing --name "$KEY_NAME" --out "$STATE/witness.key" \
  --vkey-out "$KEYS_DIR/${KEY_NAME%%.*}.vkey"
exec witness serve --config "$CONFIG"
