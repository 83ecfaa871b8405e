"""Run sigstore-js's own verifier (@sigstore/verify 4.1.3, pinned in tests/js/package-lock.json)
over a Sigstore bundle, with a local TrustedRoot, a caller-supplied public key and the default
thresholds (one tlog entry, one timestamp), through tests/js/verify_bundle.mjs.

`scripts/setup.sh --test` installs Node.js and the npm packages (`npm ci --prefix tests/js`).
Without them the tests that need them are skipped, unless REQUIRE_SIGSTORE_JS=1,
REQUIRE_ENGINES=1 or CI is set: then they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

JS_DIR = Path(__file__).parent / "js"
SCRIPT = JS_DIR / "verify_bundle.mjs"
VERIFY_PKG = JS_DIR / "node_modules" / "@sigstore" / "verify" / "package.json"


def _required() -> bool:
    if os.environ.get("REQUIRE_SIGSTORE_JS") == "1" or os.environ.get("REQUIRE_ENGINES") == "1":
        return True
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def missing() -> str | None:
    """Why sigstore-js cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is not installed (scripts/setup.sh --test installs it)"
    if not VERIFY_PKG.is_file():
        return (f"@sigstore/verify is not installed in {JS_DIR} "
                "(npm ci --ignore-scripts --no-audit --no-fund --prefix tests/js)")
    return None


def available() -> bool:
    return missing() is None


def require() -> None:
    """Skip the calling test when sigstore-js is unavailable (fail when it is required)."""
    reason = missing()
    if reason is not None:
        if _required():
            pytest.fail(f"REQUIRE_SIGSTORE_JS=1, REQUIRE_ENGINES=1 or CI is set but {reason}")
        pytest.skip(reason)


def verify(trusted_root: dict, bundle: dict, key_pem: bytes, artifact: bytes | None = None,
           timeout: float = 30) -> tuple[bool, str]:
    """Verify `bundle` with sigstore-js; return (True, "") or (False, "<Class>[/<code>]: <msg>").

    `key_pem` is the signer's public key (PEM), returned for whatever hint the bundle carries.
    `artifact` is the signed bytes for a message-signature bundle; None for DSSE.
    Raises RuntimeError when the harness itself fails (node missing, packages not installed,
    timeout, output that is not the one JSON line)."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed")
    with tempfile.TemporaryDirectory(prefix="sigstorejs-") as tmp:
        d = Path(tmp)
        (d / "root.json").write_text(json.dumps(trusted_root))
        (d / "bundle.json").write_text(json.dumps(bundle))
        (d / "key.pem").write_bytes(key_pem)
        cmd = [node, str(SCRIPT), "--trusted-root", str(d / "root.json"),
               "--bundle", str(d / "bundle.json"), "--key", str(d / "key.pem")]
        if artifact is not None:
            (d / "artifact").write_bytes(artifact)
            cmd += ["--artifact", str(d / "artifact")]
        try:
            proc = subprocess.run(cmd, cwd=JS_DIR, capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"sigstore-js timed out after {timeout}s") from e
    if proc.returncode != 0:
        raise RuntimeError(f"sigstore-js harness failed (exit {proc.returncode}): "
                           f"{proc.stderr.strip()}")
    lines = proc.stdout.splitlines()
    try:
        if len(lines) != 1:
            raise ValueError(f"expected one line, got {len(lines)}")
        out = json.loads(lines[0])
        ok = out["ok"]
        if ok is True:
            return True, ""
        if ok is False and isinstance(out.get("error"), str):
            return False, out["error"]
        raise ValueError("no boolean ok / string error")
    except (ValueError, KeyError, TypeError) as e:
        raise RuntimeError(f"sigstore-js harness printed {proc.stdout!r}: {e}") from e
