#!/bin/sh
# One-shot, before the log and witnesses: create the log's key (once) in its data dir and
# publish the verifier key for the witnesses and monitors. Safe to run again.
set -eu
DATA_DIR=${DATA_DIR:-/var/lib/tlog/data}
KEYS_DIR=${KEYS_DIR:-/etc/tlog/keys}
: "${TLOG_ORIGIN:?set TLOG_ORIGIN, the log's name, e.g. tlog.example.com/attest1}"
mkdir -p -m 0700 "$DATA_DIR"
tlog keygen --if-missing --origin "$TLOG_ORIGIN" --out "$DATA_DIR/log.key" --vkey-out "$KEYS_DIR/log.vkey"
