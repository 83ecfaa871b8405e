"""kill -9 during a concurrent write load: every acknowledged entry survives at its index."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import time
from pathlib import Path

import httpx

from client import merkle
from client.checkpoint import parse_checkpoint_text
from client.encoding import b64decode_std
from client.note import parse_note
from client.verify import verify_receipt_doc
from tests.conftest import ORIGIN
from tests.serverproc import ServerProc


async def _load(url: str, tag: str, acked: list[tuple[bytes, dict]], stop_after: float,
                killed: asyncio.Event) -> int:
    """64 writers submitting unique entries until killed (or `stop_after`); returns failures."""
    failed = 0
    deadline = time.monotonic() + stop_after

    async def writer(w: int, client: httpx.AsyncClient) -> None:
        nonlocal failed
        i = 0
        while time.monotonic() < deadline and not killed.is_set():
            data = f"{tag}-{w}-{i}".encode() * 4
            i += 1
            try:
                r = await client.post(url + "/v1/entries",
                                      json={"raw": base64.b64encode(data).decode()})
            except httpx.HTTPError:
                failed += 1
                continue
            if r.status_code in (200, 201):
                acked.append((data, r.json()))
            else:
                failed += 1

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        await asyncio.gather(*[writer(w, client) for w in range(64)])
    return failed


def _fsck(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_kill9_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    all_acked: list[tuple[bytes, dict]] = []
    for round_ in range(3):
        srv = ServerProc(data_dir, args=["--allow-raw", "--origin", ORIGIN], workers=2).start()
        acked: list[tuple[bytes, dict]] = []

        async def run(srv: ServerProc = srv, acked: list = acked, round_: int = round_) -> None:
            killed = asyncio.Event()
            task = asyncio.create_task(_load(srv.url, f"r{round_}", acked, 30, killed))
            t0 = time.monotonic()
            while len(acked) < 300 and time.monotonic() - t0 < 20:
                await asyncio.sleep(0.05)
            srv.kill9()  # mid-load: requests are in flight and batches are committing
            killed.set()
            await task

        asyncio.run(run())
        assert len(acked) >= 300, f"round {round_}: only {len(acked)} acknowledged"
        all_acked.extend(acked)

        check = _fsck(data_dir)
        assert check.returncode == 0, check.stdout + check.stderr

    srv = ServerProc(data_dir, args=["--allow-raw", "--origin", ORIGIN]).start()
    try:
        with httpx.Client(timeout=10) as c:
            vkey = c.get(srv.url + "/v1/log").json()["verifier_keys"]
            note = c.get(srv.url + "/checkpoint").content
            final = parse_checkpoint_text(parse_note(note).text)
            indexes: dict[int, bytes] = {}
            for data, receipt in all_acked:
                # The receipt verifies offline, and the entry is still at its acknowledged index.
                idx, size = verify_receipt_doc(receipt, vkey, data)
                assert indexes.setdefault(idx, data) == data
                assert size <= final.size
                assert c.get(f"{srv.url}/v1/entries/{idx}").content == data
            # Every acknowledged checkpoint is a prefix of today's tree.
            sizes = {}
            for _, receipt in all_acked:
                cp = parse_checkpoint_text(parse_note(receipt["checkpoint"].encode()).text)
                sizes[cp.size] = cp.root
            for size, root in sorted(sizes.items())[:: max(1, len(sizes) // 20)]:
                proof = c.get(srv.url + "/v1/proof/consistency",
                              params={"old": size, "new": final.size}).json()["hashes"]
                merkle.verify_consistency(size, final.size, root, final.root,
                                          [b64decode_std(h) for h in proof])
            assert len(indexes) == len(all_acked)
    finally:
        srv.stop()


def test_sequencer_crash_is_survived(tmp_path: Path) -> None:
    """kill -9 of the sequencer alone: submissions get 503 meanwhile, it is restarted, and
    the log carries on consistent."""
    import os
    import signal

    srv = ServerProc(tmp_path / "data", args=["--allow-raw", "--origin", ORIGIN]).start()
    try:
        with httpx.Client(timeout=10) as c:
            def submit(data: bytes) -> httpx.Response:
                return c.post(srv.url + "/v1/entries",
                              json={"raw": base64.b64encode(data).decode()})

            assert submit(b"before").status_code == 201
            seq_pid = int(subprocess.run(["pgrep", "-f", "-P", str(srv.proc.pid), "tlog.sequencer"],
                                         capture_output=True, text=True, timeout=10,
                                         check=True).stdout.split()[0])
            os.kill(seq_pid, signal.SIGKILL)
            codes = set()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                r = submit(b"after")
                codes.add(r.status_code)
                if r.status_code in (200, 201):
                    break
                assert r.status_code == 503 and r.json()["error"]["code"] == "unavailable"
                time.sleep(0.05)
            assert codes & {200, 201} and 503 in codes, codes
            assert c.get(srv.url + "/v1/entries/1").content == b"after"
            assert c.get(srv.url + "/healthz").status_code == 200
    finally:
        srv.stop()
    check = _fsck(tmp_path / "data")
    assert check.returncode == 0, check.stdout
