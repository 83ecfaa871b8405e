#!/usr/bin/env python3
"""uvicorn against granian as the HTTP server of tlog's workers, on the real routes.

Run by hand (not a pytest test), from the repository root; needs wrk and granian
(`pip install granian`, not a dependency of tlog):

    python loadtest/bench_granian.py [--duration S] [--rounds R] [--preload N]

One sequencer (started here, as `tlog serve` starts it) on a preloaded log, and two HTTP
servers in their own process groups serving the same app (`tlog.app:app_from_env`, one
worker each, uvloop): uvicorn with httptools as `tlog serve` runs it, and granian (ASGI,
HTTP/1). For R rounds, alternating servers: `/healthz`, raw appends (unique bodies,
wrk_append.lua) and random inclusion proofs (wrk_proof.lua). Per run: req/s, p50/p99, the
HTTP server's CPU per request (its process group), the sequencer's cores, background load.
Appends must all be 201 and grow the tree by the 201s; `tlog fsck` runs at the end.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from benchlib import (  # noqa: E402
    RunResult,
    check_append,
    fsck,
    preload,
    process_cpu,
    run_wrk,
    tree_size,
    warm,
    wrk_parser,
)

from tlog.cli import SequencerSupervisor, prepare  # noqa: E402
from tlog.config import ServeConfig  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _commands(kind: str, port: int) -> list[str]:
    py = sys.executable
    if kind == "uvicorn":  # as tlog.cli.run_workers configures it
        return [py, "-m", "uvicorn", "--factory", "tlog.app:app_from_env", "--host", "127.0.0.1",
                "--port", str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                "--log-level", "warning", "--lifespan", "on", "--timeout-keep-alive", "30"]
    return [py, "-m", "granian", "--interface", "asgi", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--loop", "uvloop", "--http", "1", "--no-ws",
            "--log-level", "warning", "tlog.app:app_from_env"]


def _start(kind: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(_commands(kind, port), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"{kind} did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(15)


def main(argv: list[str] | None = None) -> int:
    p = wrk_parser(__doc__ or "")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--preload", type=int, default=100_000)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        p.error("needs wrk")
    tmp = Path(tempfile.mkdtemp(prefix="tlog-bench-granian-"))
    data = tmp / "data"
    config = ServeConfig(data_dir=str(data), allow_raw=True, sequencer_socket=str(tmp / "seq.sock"))
    print(f"bench: preloading {args.preload} entries in {data}", flush=True)
    preload(data, args.preload, 10_000, seed=4321)
    _, vkey, _ = prepare(config)
    env = {**os.environ, "TLOG_SERVE_CONFIG": orjson.dumps(dataclasses.asdict(config)).decode(),
           "TLOG_VKEY": vkey, "TLOG_EXTRA_VKEYS": ""}
    sequencer = SequencerSupervisor(config)
    sequencer.start()
    assert sequencer.proc is not None
    results: list[tuple[str, RunResult, float]] = []
    ok = True
    try:
        for _ in range(args.rounds):
            for kind in ("uvicorn", "granian"):
                proc, url = _start(kind, env)
                try:
                    for scenario, script in (("healthz", "wrk_get.lua"), ("append", "wrk_append.lua"),
                                             ("proof", "wrk_proof.lua")):
                        size = tree_size(url)
                        sargs = {"healthz": [], "append": [os.urandom(4).hex()], "proof": [str(size)]}
                        warm(data)
                        s0 = sum(process_cpu(sequencer.proc.pid))
                        t0 = time.monotonic()
                        r = run_wrk(f"{kind} {scenario}", scenario,
                                    url + "/healthz" if scenario == "healthz" else url, script,
                                    sargs[scenario], args, proc.pid)
                        seq = (sum(process_cpu(sequencer.proc.pid)) - s0) / (time.monotonic() - t0)
                        if scenario == "append":
                            time.sleep(0.5)
                            check_append(r, size, tree_size(url), args.connections)
                            ok = ok and bool(r.extra.get("append_ok"))
                        results.append((kind, r, seq))
                        print(f"bench: {kind:8} {scenario:8} {r.rps:>8,.0f} req/s  p99 {r.p99_ms:5.1f} ms  "
                              f"http {r.server_us_per_req:4.0f} us/req  sequencer {seq:.2f} cores  "
                              f"bg {r.cpu['bg_cores']:.2f}", flush=True)
                finally:
                    _stop(proc)
    finally:
        sequencer.stop()
    check = fsck(data)
    print()
    print(f"{'server':<10}{'route':<10}{'req/s (median)':>16}{'p99 ms':>9}{'http us/req':>13}"
          f"{'vs uvicorn':>12}")
    medians: dict[tuple[str, str], float] = {}
    for kind in ("uvicorn", "granian"):
        for scenario in ("healthz", "append", "proof"):
            runs = [(r, s) for k, r, s in results if k == kind and r.scenario == scenario]
            rps = statistics.median(r.rps for r, _ in runs)
            medians[kind, scenario] = rps
            p99 = statistics.median(r.p99_ms for r, _ in runs)
            us = statistics.median(r.server_us_per_req for r, _ in runs)
            ratio = rps / medians["uvicorn", scenario]
            print(f"{kind:<10}{scenario:<10}{rps:>16,.0f}{p99:>9.1f}{us:>13.0f}{ratio:>11.2f}x")
    print(f"fsck: {'PASSED' if check['passed'] else 'FAILED'}: {check['output']}")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok and check["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
