"""Does a monitor keep up with a log receiving 1,000 appends/s? Lag and entries/s, measured.

    python loadtest/bench_monitor.py [--rate 1000] [--seconds 30] [--workers 2]

A real `tlog serve --allow-raw` receives raw 200-byte appends at a fixed rate (an asyncio
client with 64 connections, paced), while a real `tlog-client monitor` follows it (poll
every 0.5 s, one subject watch rule: every entry is checked against it, none matches, so
no reports are written). Every second the script reads the log's
tree size and the monitor's `/metrics` (processed entries, lag). Prints the achieved append
rate, the monitor's entries/s, its lag (max and at the end) and its CPU per entry.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402
from benchlib import process_cpu  # noqa: E402

from client.note import parse_vkey  # noqa: E402
from client.policy import TrustPolicy  # noqa: E402
from tests.serverproc import ServerProc  # noqa: E402


async def append_at(url: str, rate: float, seconds: float, stop: threading.Event) -> tuple[int, int]:
    """POST unique raw entries at `rate`/s for `seconds`; returns (ok, failed)."""
    ok = failed = 0
    nonce = os.urandom(4).hex().encode()
    interval = 64 / rate  # 64 workers, each one request per interval
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:

        async def worker(w: int) -> None:
            nonlocal ok, failed
            n, start = 0, time.monotonic()
            while not stop.is_set() and time.monotonic() - start < seconds:
                body = {"raw": base64.b64encode(nonce + b"%d-%d-" % (w, n) + b"x" * 180).decode()}
                async with session.post(url + "/v1/entries", json=body) as resp:
                    await resp.read()
                    ok, failed = (ok + 1, failed) if resp.status == 201 else (ok, failed + 1)
                n += 1
                delay = start + n * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

        await asyncio.gather(*(worker(w) for w in range(64)))
    return ok, failed


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{name}{{[^}}]*}} (\S+)$", text, re.M)
    return float(m.group(1)) if m else float("nan")


def cpu(pid: int) -> float:
    return sum(process_cpu(pid))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        srv = ServerProc(tmp / "data", args=["--allow-raw"], workers=args.workers).start()
        mdir = tmp / "monitor"
        mdir.mkdir()
        policy = TrustPolicy(parse_vkey(srv.vkey).name, (parse_vkey(srv.vkey),), allow_raw_log=True)
        (mdir / "policy.json").write_bytes(orjson.dumps(dict(policy.to_dict(), url=srv.url)))
        (mdir / "monitor.toml").write_text(
            '[monitor]\nstate_dir = "state"\noutput = "reports.jsonl"\npoll_interval = 0.5\n\n'
            '[[log]]\npolicy = "policy.json"\nsubjects = ["sha256:' + "0" * 64 + '"]\n')
        log = (mdir / "monitor.log").open("w")
        mon = subprocess.Popen([sys.executable, "-m", "client.cli", "monitor", "--config",
                                str(mdir / "monitor.toml")], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            listening = re.compile(r'listening on (http://[^\s"]+)')
            while not (found := listening.findall((mdir / "monitor.log").read_text())):
                if time.monotonic() > deadline:
                    raise RuntimeError("monitor did not start")
                time.sleep(0.05)
            murl = found[-1]
            stop = threading.Event()
            result: list[tuple[int, int]] = []
            writer = threading.Thread(target=lambda: result.append(
                asyncio.run(append_at(srv.url, args.rate, args.seconds, stop))))
            c0, t0 = cpu(mon.pid), time.monotonic()
            writer.start()
            lags, samples = [], []
            with httpx.Client(timeout=10) as http:
                while writer.is_alive():
                    time.sleep(1.0)
                    size = int(http.get(srv.url + "/checkpoint").text.split("\n")[1])
                    done = metric(http.get(murl + "/metrics").text, "tlog_monitor_processed_entries")
                    lags.append(size - done)
                    samples.append((time.monotonic() - t0, size, done))
                writer.join()
                # Then let it catch up, and time that.
                size = int(http.get(srv.url + "/checkpoint").text.split("\n")[1])
                while metric(http.get(murl + "/metrics").text, "tlog_monitor_processed_entries") < size:
                    time.sleep(0.1)
                t_end = time.monotonic() - t0
            c1 = cpu(mon.pid)
        finally:
            mon.terminate()
            mon.wait(timeout=30)
            log.close()
            srv.stop()
    ok, failed = result[0]
    print(f"appends: {ok:,} ok, {failed} failed in {args.seconds:.0f} s = {ok / args.seconds:,.0f}/s "
          f"(target {args.rate:,.0f}/s, {args.workers} server workers)")
    print(f"monitor: {size:,} entries checked in {t_end:.1f} s = {size / t_end:,.0f} entries/s; "
          f"lag max {max(lags):,.0f}, median {statistics.median(lags):,.0f}, last {lags[-1]:,.0f} entries; "
          f"caught up {t_end - args.seconds:.1f} s after the load stopped; "
          f"CPU {(c1 - c0) / size * 1e6:.0f} us/entry")
    return 0


if __name__ == "__main__":
    sys.exit(main())
