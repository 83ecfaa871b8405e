"""Build the Go cross-checkers in tests/go/src offline, in GOPATH mode against Debian's
golang-golang-x-mod-dev (no module proxy, no network).

Without Go the tests that need it are skipped, unless REQUIRE_GO=1 or CI is set: then they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

GO_SRC = Path(__file__).parent / "go"
SYSTEM_GOPATH = Path("/usr/share/gocode")
X_MOD = SYSTEM_GOPATH / "src/golang.org/x/mod/sumdb"


def require_go() -> bool:
    if os.environ.get("REQUIRE_GO") == "1":
        return True
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def missing_go() -> str | None:
    if shutil.which("go") is None:
        return "the go toolchain is not installed"
    if not (X_MOD / "note").is_dir() or not (X_MOD / "tlog").is_dir():
        return f"golang.org/x/mod is not at {X_MOD} (apt install golang-golang-x-mod-dev)"
    return None


def build_go(package: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build tests/go/src/<package> into a temp dir and return the binary; skip (or fail, when
    Go is required) if Go or x/mod is missing. Builds share one Go build cache per session."""
    reason = missing_go()
    if reason is not None:
        if require_go():
            pytest.fail(f"REQUIRE_GO=1 or CI is set but {reason}")
        pytest.skip(reason)
    out = tmp_path_factory.mktemp(f"go-{package}")
    binary = out / package
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{GO_SRC}:{SYSTEM_GOPATH}",
        "GOCACHE": str(tmp_path_factory.getbasetemp() / "go-build-cache"),
        "GOFLAGS": "",
        "GOPROXY": "off",
    }
    if shutil.which(os.environ.get("CC", "gcc")) is None:
        env["CGO_ENABLED"] = "0"  # slower (rebuilds net), but needs no C compiler
    proc = subprocess.run(["go", "build", "-o", str(binary), package], env=env,
                          cwd=out, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"go build {package} failed:\n{proc.stdout}{proc.stderr}"
    return binary
