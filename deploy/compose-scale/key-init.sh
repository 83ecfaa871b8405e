#!/bin/sh
# One-shot, before the sequencers: create the log's key (once) where the sequencers find it
# (their data dir, /var/lib/tlog/data, on the log-key volume they mount read-only), and its
# verifier key beside it. Safe to run again. Front ends need no key.
set -eu
DATA_DIR=${DATA_DIR:-/var/lib/tlog/data}
: "${TLOG_ORIGIN:?set TLOG_ORIGIN, the log's name, e.g. tlog.example.com/attest1}"
mkdir -p -m 0700 "$DATA_DIR"
tlog keygen --if-missing --origin "$TLOG_ORIGIN" --out "$DATA_DIR/log.key" \
  --vkey-out "$(dirname "$DATA_DIR")/log.vkey"
