#!/usr/bin/env bash
# Install everything tlog needs on a fresh Debian machine: system packages, then a venv.
# Idempotent; safe to run repeatedly. Usage: scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

apt_pkgs=(python3-venv build-essential pkg-config)
if [ "$want_test" = 1 ]; then
  # Go's sumdb implementation for the interop cross-check; wrk for loadtest/; swtpm and the
  # TSS headers that tpm2-pytss builds against, for the TPM tests. The deploy/ checks:
  # docker-compose (validates the compose file; no engine needed), promtool (from the
  # prometheus package: alert rules, their unit tests, the metrics format), systemd-analyze.
  # The scale-out tests start a real PostgreSQL 15 and a single-node Ceph RADOS Gateway.
  apt_pkgs+=(golang-go golang-golang-x-mod-dev wrk swtpm swtpm-tools libtss2-dev python3-dev
             docker-compose prometheus systemd postgresql-15 ceph-mon ceph-osd radosgw curl)
  # Headless Chromium (with a font for its screenshots) drives the web explorer's tests.
  apt_pkgs+=(chromium fonts-dejavu-core)
  # Node.js runs sigstore-js's verifier (tests/js); keep a Node already on PATH (e.g. NodeSource's).
  command -v node >/dev/null || apt_pkgs+=(nodejs)
  command -v npm >/dev/null || apt_pkgs+=(npm)
fi
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# sigstore-js, pinned by tests/js/package-lock.json; reinstalled only when the lock changed.
if [ "$want_test" = 1 ]; then
  js_stamp=tests/js/node_modules/.tlog-stamp
  js_want="$(sha256sum tests/js/package-lock.json | cut -d' ' -f1)"
  if [ "$(cat "$js_stamp" 2>/dev/null)" != "$js_want" ]; then
    timeout 600 npm ci --ignore-scripts --no-audit --no-fund --prefix tests/js
    echo "$js_want" > "$js_stamp"
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Reinstall only when pyproject.toml (or the extras wanted) changed since the last install.
stamp=".venv/.tlog-setup-$want_test"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  if [ "$want_test" = 1 ]; then
    .venv/bin/python -m pip install -q -e '.[test,tpm,scale]'
  else
    .venv/bin/python -m pip install -q -e .
  fi
  echo "$want" > "$stamp"
fi
