"""A scaled-out log on the real engines for tests: a config file for `tlog serve` with
`storage = "s3"` (a fresh Ceph bucket and a fresh PostgreSQL database), and processes started
from it in any role."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tests.engines import S3_KEY, S3_SECRET
from tests.serverproc import ServerProc

ORIGIN = "example.com/dist-test"


@dataclass
class DistLog:
    root: Path
    endpoint: str
    bucket: str
    dsn: str
    extra: dict[str, object] = field(default_factory=dict)
    procs: list[ServerProc] = field(default_factory=list)

    def config(self, name: str, role: str, **extra: object) -> Path:
        """A config file for one process; each gets its own data dir (a sequencer keeps the
        log key there: the first start creates it, the others get a copy)."""
        secret = self.root / "s3-secret"
        if not secret.exists():
            secret.write_text(S3_SECRET)
            secret.chmod(0o600)
        settings: dict[str, object] = {
            "storage": "s3", "role": role, "origin": ORIGIN, "allow_raw": True,
            "s3_endpoint": self.endpoint, "s3_bucket": self.bucket, "s3_access_key_id": S3_KEY,
            "s3_secret_access_key_file": str(secret), "postgres_dsn": self.dsn,
            "lease_seconds": 2.0, **self.extra, **extra}
        lines = ["[log]", *(f"{k} = {json.dumps(v)}" for k, v in settings.items() if k != "witnesses")]
        for url, vkey in settings.get("witnesses", ()):  # type: ignore[attr-defined]
            lines += ["[[witness]]", f"url = {json.dumps(url)}", f"vkey = {json.dumps(vkey)}"]
        path = self.root / f"{name}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, name: str, role: str = "all", workers: int = 1, **extra: object) -> ServerProc:
        data = self.root / name
        data.mkdir(exist_ok=True)
        key = self.root / "log.key"
        if role != "frontend" and key.exists() and not (data / "log.key").exists():
            (data / "log.key").write_bytes(key.read_bytes())
            (data / "log.key").chmod(0o600)
        proc = ServerProc(data, args=["--config", str(self.config(name, role, **extra))], workers=workers)
        proc.start(timeout=60)
        self.procs.append(proc)
        if role != "frontend" and not key.exists():
            key.write_bytes((data / "log.key").read_bytes())
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()

    def bucket_url(self) -> str:
        """The log read straight from the bucket, anonymously (as a CDN or client would)."""
        return f"{self.endpoint}/{self.bucket}"


def wait_bucket_size(d: DistLog, size: int, timeout: float = 30.0) -> int:
    """Wait until the bucket's checkpoint covers `size` entries (it follows the receipts a
    moment later: the leader replaces it after the tree head moved); returns its size."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        body = httpx.get(f"{d.bucket_url()}/checkpoint", timeout=10).content
        got = int(body.split(b"\n")[1])
        if got >= size:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"the bucket's checkpoint stayed at size {got}, below {size}")
        time.sleep(0.05)
