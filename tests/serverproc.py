"""Run a real `tlog serve` process on 127.0.0.1:0 for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from client.keyfile import write_key
from client.note import CosignatureV1Signer, Ed25519Signer

_LISTEN = re.compile(r'listening on (https?://[^\s"]+)')
_VKEY = re.compile(r'verifier key ([^\s"]+)')


@dataclass
class ServerProc:
    data_dir: Path
    args: list[str] = field(default_factory=list)
    workers: int = 1
    proc: subprocess.Popen[str] | None = None
    url: str = ""
    vkey: str = ""
    log_path: Path | None = None
    verify: Any = True  # httpx's verify for the readiness check (an SSLContext for https)
    _out: IO[str] | None = None

    def start(self, timeout: float = 30.0) -> ServerProc:
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        out = self._out = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text()
            found = _LISTEN.findall(text)
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.command()[2]} exited early:\n{text}")
            if found and self._ready(found[-1]):
                self.url = found[-1]
                vk = _VKEY.findall(text)
                self.vkey = vk[-1] if vk else ""
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tlog serve did not become ready:\n{self.log_path.read_text()}")

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tlog.cli", "serve", "--data-dir", str(self.data_dir),
                "--listen", "127.0.0.1:0", "--workers", str(self.workers), *self.args]

    def _ready(self, url: str) -> bool:
        try:
            return httpx.get(url + "/healthz", timeout=2.0, verify=self.verify).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        try:
            self._stop(sig, timeout)
        finally:
            if self._out is not None:
                self._out.close()
                self._out = None

    def _stop(self, sig: int, timeout: float) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)

    def kill9(self) -> None:
        """SIGKILL the whole process group (supervisor and every worker) at once."""
        self.stop(signal.SIGKILL)


@dataclass
class WitnessProc(ServerProc):
    """A real `witness serve` process: `data_dir` is its state dir, `args` must hold --config."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "witness.cli", "serve", "--data-dir", str(self.data_dir),
                "--listen", "127.0.0.1:0", *self.args]


@dataclass
class TSAProc(ServerProc):
    """A real time-stamping authority (`python -m tsa serve`): `data_dir` holds its key and chain."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "tsa", "serve", "--dir", str(self.data_dir), "--port", "0", *self.args]


@contextlib.contextmanager
def witnessed_log(tmp: Path, log_key: Ed25519Signer, witness_name: str,
                  witness_seed: bytes) -> Iterator[tuple[ServerProc, WitnessProc, TSAProc]]:
    """A log (`log_key`, its origin the key's name) whose receipts wait for the cosignature of
    one witness, and a time-stamping authority for its Sigstore bundles; all stopped after."""
    origin = log_key.name
    tsa = TSAProc(tmp / "tsa").start()
    wdir = tmp / "witness"
    wdir.mkdir()
    write_key(wdir / "witness.key", Ed25519Signer(witness_name, witness_seed))
    (wdir / "witness.toml").write_text(
        '[witness]\nkey_file = "witness.key"\nrate_per_log = 1000.0\nburst = 1000\n\n'
        f'[[log]]\norigin = "{origin}"\nkeys = ["{log_key.verifier().vkey()}"]\n')
    witness = WitnessProc(wdir / "state", args=["--config", str(wdir / "witness.toml")]).start()
    (tmp / "log").mkdir(mode=0o700)
    write_key(tmp / "log" / "log.key", log_key)
    config = tmp / "log.toml"
    config.write_text(f'[log]\norigin = "{origin}"\ntsa_url = "{tsa.url}"\nwitness_interval = 0.05\n'
                      f'\n[[witness]]\nurl = "{witness.url}"\n'
                      f'vkey = "{CosignatureV1Signer(witness_name, witness_seed).verifier().vkey()}"\n')
    try:
        log = ServerProc(tmp / "log", args=["--config", str(config)]).start()
        try:
            yield log, witness, tsa
        finally:
            log.stop()
    finally:
        witness.stop()
        tsa.stop()
