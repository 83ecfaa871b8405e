"""A real swtpm (TPM 2.0 simulator) per test, on a unix socket in the test's temp dir.

With REQUIRE_TPM=1 (CI), a missing swtpm or tpm2-pytss fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

START_TIMEOUT = 10.0


def require_tpm_tools() -> None:
    problems = []
    if shutil.which("swtpm") is None:
        problems.append("swtpm is not installed")
    try:
        import tpm2_pytss  # noqa: F401
    except ImportError:
        problems.append("tpm2-pytss is not installed")
    if problems:
        msg = "; ".join(problems) + " (scripts/setup.sh installs them)"
        if os.environ.get("REQUIRE_TPM") == "1" or os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


class Swtpm:
    def __init__(self, state: Path) -> None:
        self.state = state
        state.mkdir(parents=True, exist_ok=True)
        self.sock = state / "sock"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def tcti(self) -> str:
        return f"swtpm:path={self.sock}"

    def start(self) -> Swtpm:
        pid = self.state / "swtpm.pid"
        pid.unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={self.state}", "--pid", f"file={pid}",
             "--server", f"type=unixio,path={self.sock}", "--ctrl", f"type=unixio,path={self.sock}.ctrl",
             "--flags", "not-need-init,startup-clear", "--log", f"file={self.state}/swtpm.log,level=0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:  # ready once it has written its pid
            if pid.exists() and pid.read_text().strip() == str(self.proc.pid):
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"swtpm exited with {self.proc.returncode}")
            time.sleep(0.005)
        self.stop()
        raise RuntimeError("swtpm did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


def provision_ek(state: Path, ca_dir: Path) -> tuple[Path, Path]:
    """Manufacture the TPM state with EK certificates from a private local CA (swtpm_setup);
    returns (root CA certificate, intermediate CA certificate)."""
    ca_dir.mkdir(parents=True, exist_ok=True)
    state.mkdir(parents=True, exist_ok=True)
    (ca_dir / "localca.conf").write_text(
        f"statedir = {ca_dir}\nsigningkey = {ca_dir}/signkey.pem\n"
        f"issuercert = {ca_dir}/issuercert.pem\ncertserial = {ca_dir}/certserial\n")
    (ca_dir / "setup.conf").write_text(
        "create_certs_tool= /usr/bin/swtpm_localca\n"
        f"create_certs_tool_config = {ca_dir}/localca.conf\n"
        "create_certs_tool_options = /etc/swtpm-localca.options\nactive_pcr_banks = sha256\n")
    subprocess.run(["swtpm_setup", "--tpm2", "--tpmstate", str(state), "--config",
                    str(ca_dir / "setup.conf"), "--create-ek-cert", "--overwrite"],
                   check=True, capture_output=True, timeout=60)
    return ca_dir / "swtpm-localca-rootca-cert.pem", ca_dir / "issuercert.pem"
