"""Real distributed engines for tests, started by the suite itself: PostgreSQL 15 (initdb +
pg_ctl in a temp dir, about 1 s) and a single-node Ceph RADOS Gateway (memstore, about 13 s).

Both come from Debian (`scripts/setup.sh --test` installs them). Without them the tests that
need them fail when CI or REQUIRE_ENGINES=1 is set, and are skipped otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CEPH_UP = Path(__file__).parent / "ceph-up.sh"
S3_KEY, S3_SECRET = "test", "testtesttest"


def _required() -> bool:
    ci = os.environ.get("CI", "").lower() not in ("", "0", "false")
    return ci or os.environ.get("REQUIRE_ENGINES") == "1"


def require(what: str, ok: bool) -> None:
    if not ok:
        msg = f"{what} is not installed (scripts/setup.sh --test installs it)"
        if _required():
            pytest.fail(msg)
        pytest.skip(msg)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "postgres", "--", *cmd], capture_output=True, text=True,
                          timeout=timeout, check=False)


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (fsync and synchronous commit on, as in
    production: the durability claims are tested against them)."""

    def __init__(self) -> None:
        require("PostgreSQL 15", (PG_BIN / "initdb").exists() and shutil.which("runuser") is not None)
        # Not under pytest's tmp_path: its parents are 0700 root, and postgres must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="tlog-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        out = _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-A", "trust",
                           "-U", "postgres", "--no-sync")
        assert out.returncode == 0, out.stderr
        self._databases = 0
        self.start()

    @property
    def base_dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=300"
        out = _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-o", opts,
                           "-l", str(self.dir / "log"), "-w", "-t", "30", "start")
        assert out.returncode == 0, out.stdout + out.stderr + (self.dir / "log").read_text()

    def stop(self, mode: str = "fast") -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", mode, "-w", "-t", "30",
                     "stop")

    def new_database(self) -> str:
        """A fresh empty database; returns its DSN."""
        self._databases += 1
        name = f"t{self._databases}_{os.getpid()}"
        out = _as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                           "-U", "postgres", name)
        assert out.returncode == 0, out.stderr
        return f"{self.base_dsn} dbname={name}"

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class Ceph:
    """A single-node Ceph cluster with radosgw (S3) on 127.0.0.1, for tests only."""

    def __init__(self) -> None:
        require("Ceph radosgw", all(shutil.which(b) for b in ("ceph-mon", "ceph-osd", "radosgw", "curl")))
        self.dir = Path(tempfile.mkdtemp(prefix="tlog-ceph-"))
        self.port = free_port()
        out = subprocess.run(["bash", str(CEPH_UP), str(self.dir / "c"), str(self.port), str(free_port())],
                             capture_output=True, text=True, timeout=240, check=False)
        if out.returncode != 0 or not out.stdout.rstrip().endswith("ready"):
            self.close()
            raise RuntimeError(f"ceph did not start: {out.stdout[-2000:]}{out.stderr[-2000:]}")
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._buckets = 0

    def admin(self):  # type: ignore[no-untyped-def]
        return s3_admin(self.endpoint)

    def new_bucket(self, public: bool = True) -> str:
        """A fresh bucket; `public`: anyone may read it (GetObject and ListBucket, so a missing
        key is 404, not 403), as a log's bucket is read by clients and CDNs."""
        self._buckets += 1
        name = f"b{self._buckets}-{os.getpid()}"
        s3 = self.admin()
        s3.create_bucket(Bucket=name)
        if public:
            s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
                 "Resource": [f"arn:aws:s3:::{name}/*"]},
                {"Effect": "Allow", "Principal": "*", "Action": ["s3:ListBucket"],
                 "Resource": [f"arn:aws:s3:::{name}"]}]}))
        return name

    def close(self) -> None:
        pids = []
        for p in (self.dir / "c" / "run").glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pids.append(int(p.read_text().strip()))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for pid in pids:
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def s3_admin(endpoint: str):  # type: ignore[no-untyped-def]
    """A boto3 S3 client with the test credentials (bucket set-up, and tampering in tests)."""
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_KEY,
                        aws_secret_access_key=S3_SECRET, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                                      connect_timeout=10, read_timeout=30))


def _alive(pid: int) -> bool:
    """Running and not a zombie (exited daemons linger as zombies that kill -0 still sees)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
