"""A full disk under a real `tlog serve`: the data dir is a small tmpfs that a filler file
fills. Health tells the truth (503 read_only / disk_full), submissions get 507 disk_full with
nothing written, reads keep working, every acknowledged entry stays byte for byte (also
after a restart), and appends resume by themselves once the filler is deleted."""

from __future__ import annotations

import base64
import contextlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import lmdb
import pytest

from client import merkle
from client.encoding import b64decode_std
from tests.attestkit import dsse_body, envelope, make_signer, sha256_hex, statement
from tests.conftest import ORIGIN
from tests.serverproc import ServerProc
from tlog.sequencer import DISK_MARGIN, SequencerProcess

ARGS = ["--allow-raw", "--origin", ORIGIN]
SUBJECT = sha256_hex(b"the artifact")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs mounted as the data dir; the server's log stays outside it."""
    mount = tmp_path / "data"
    mount.mkdir()
    try:
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs",
                              str(mount)], capture_output=True, text=True, timeout=30, check=False)
        error = out.stderr.strip() if out.returncode else ""
    except OSError as exc:
        error = str(exc)
    if error:  # CI runs as root: this test must never pass (or skip) silently
        pytest.fail(f"cannot mount a tmpfs for the full-disk test (needs root): {error}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30, check=False)


@contextlib.contextmanager
def _serving(data: Path) -> Iterator[ServerProc]:
    """A running `tlog serve` on `data`; its log is printed if the test fails."""
    srv = ServerProc(data, args=ARGS).start()
    try:
        yield srv
    except BaseException:
        assert srv.log_path is not None
        print(srv.log_path.read_text()[-8000:])
        raise
    finally:
        srv.stop()


def _fill(path: Path) -> None:
    """Write zeros until the filesystem says no more."""
    block = b"\0" * (1 << 16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, block)
    finally:
        os.close(fd)


def _raw(i: int) -> dict[str, str]:
    return {"raw": base64.b64encode(b"entry %d " % i + os.urandom(400)).decode()}


def _append(http: httpx.Client, body: dict, acked: dict[int, bytes]) -> httpx.Response:
    """Submit; on 201 remember the acknowledged leaf (the bytes the log must serve)."""
    r = http.post("/v1/entries", json=body)
    if r.status_code == 201:
        leaf = b64decode_std(body["raw"]) if "raw" in body else b64decode_std(r.json()["leaf"])
        acked[r.json()["index"]] = leaf
    return r


def test_a_full_disk_is_reported_and_appends_resume_when_space_returns(small_disk: Path) -> None:
    acked: dict[int, bytes] = {}
    with _serving(small_disk) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        signer = make_signer("ed25519")
        attestation = dsse_body(envelope(statement([SUBJECT]), [signer]), [signer])
        assert _append(http, attestation, acked).status_code == 201
        for i in range(20):
            assert _append(http, _raw(i), acked).status_code == 201

        _fill(small_disk / "filler")
        statuses = []
        for i in range(20, 200):  # until a commit fails for want of space
            r = _append(http, _raw(i), acked)
            statuses.append(r.status_code)
            if r.status_code != 201:
                break
        assert r.status_code == 507, (statuses, r.text)
        assert r.json()["error"]["code"] == "disk_full" and r.headers["Retry-After"] == "30"
        t0 = time.monotonic()
        again = http.post("/v1/entries", json=_raw(999))  # refused at once while full
        assert again.status_code == 507 and again.json()["error"]["code"] == "disk_full"
        assert time.monotonic() - t0 < 1.0
        large = http.post("/v1/entries", content=b'{"raw": "' + b"A" * (3 << 19) + b'"}',
                          headers={"Content-Type": "application/json"})  # spooled to the disk
        assert large.status_code == 507 and large.json()["error"]["code"] == "disk_full", large.text

        health = http.get("/healthz")
        assert health.status_code == 503, health.text
        doc = health.json()
        assert doc["status"] == "read_only" and doc["accepting_writes"] is False
        assert doc["error"]["code"] == "disk_full" and doc["tree_size"] == len(acked)
        metrics = http.get("/metrics").text
        assert re.search(r"^tlog_storage_writable\{[^}]*\} 0", metrics, re.M), metrics[-2000:]
        assert re.search(r"^tlog_data_dir_free_bytes\{[^}]*\} ", metrics, re.M)
        _check_reads(http, acked)

        (small_disk / "filler").unlink()
        deadline = time.monotonic() + 20
        while (health := http.get("/healthz")).status_code != 200:
            assert time.monotonic() < deadline, health.text
            time.sleep(0.1)
        assert health.json() == {"status": "ok", "tree_size": len(acked), "accepting_writes": True}
        r = _append(http, _raw(1000), acked)
        assert r.status_code == 201, r.text
        assert re.search(r"^tlog_storage_writable\{[^}]*\} 1", http.get("/metrics").text, re.M)
        _check_reads(http, acked)

    with _serving(small_disk) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:
        _check_reads(http, acked)  # what was acknowledged is durable, not just in memory


def _check_reads(http: httpx.Client, acked: dict[int, bytes]) -> None:
    """Checkpoint, tiles, entries, proofs, receipts and search serve every acknowledged entry."""
    size = len(acked)
    assert sorted(acked) == list(range(size))
    checkpoint = http.get("/checkpoint")
    assert checkpoint.status_code == 200 and f"\n{size}\n" in checkpoint.text
    assert http.get(f"/tile/0/000.p/{size}").content == b"".join(
        merkle.leaf_hash(acked[i]) for i in range(size))
    for index, data in acked.items():
        assert http.get(f"/v1/entries/{index}").content == data
        proof = http.get("/v1/proof/inclusion", params={"index": index, "size": size})
        assert proof.status_code == 200
    assert http.get("/v1/entries/0/receipt").status_code == 200
    hits = http.get("/v1/search", params={"subject": f"sha256:{SUBJECT}"}).json()["hits"]
    assert [h["index"] for h in hits] == [0]


def test_only_a_failed_commit_with_little_free_space_is_disk_full(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Other I/O errors, and a full LMDB map, keep their own codes and set no state."""
    seq = SequencerProcess.__new__(SequencerProcess)  # just the classifier: no process
    seq.problems, seq.conns, seq.store = {}, {}, SimpleNamespace(path=tmp_path)
    batch = [(None, 1, b"x" * 100, None)]
    eio = lmdb.Error("mdb_txn_commit: Input/output error")
    free = [DISK_MARGIN * 10]
    monkeypatch.setattr(os, "statvfs", lambda _: SimpleNamespace(f_bavail=free[0] // 4096,
                                                                 f_frsize=4096))
    assert seq._failed(eio, batch)[0] == "storage_error" and not seq.problems
    free[0] = DISK_MARGIN // 2
    assert seq._failed(lmdb.MapFullError("mdb_put: MDB_MAP_FULL"), batch)[0] == "log_full"
    assert seq._failed(ValueError("a bug"), batch)[0] == "storage_error" and not seq.problems
    assert seq._failed(eio, batch)[0] == "disk_full" and "disk_full" in seq.problems
    assert seq._refusal() is not None and seq._refusal()[0] == "disk_full"  # type: ignore[index]
