#!/usr/bin/env python3
"""Core HTTP benchmark of `tlog serve` with wrk: /healthz, raw appends, tiles, inclusion proofs.

Run by hand (not a pytest test), from the repository root:

    python loadtest/bench_core.py [--workers N] [--duration S] [--connections C] [--json FILE]

What it does:

1. Creates a temp data dir, initialises the log in-process (`tlog.cli.prepare`: key + origin),
   bulk-loads `--preload` entries with `LogStore.append` in batches of `--batch`, then starts a
   real `tlog serve --allow-raw --workers N --listen 127.0.0.1:0` (tests/serverproc.ServerProc).
2. For each scenario, waits (bounded) for a quiet machine, then runs
   `wrk --latency -tT -cC -dDs` with a Lua script from this directory:
     healthz       GET /healthz (baseline; run first and last, the mean is the baseline)
     append        POST /v1/entries {"raw": base64(200 unique bytes)}; every body is unique;
                   responses are counted by status and all must be 201
     tile          GET /tile/0/<N>, random full level-0 tiles (data warmed right before)
     proof         GET /v1/proof/inclusion?index=I&size=S, random I < S = current tree size
3. Measures around each wrk run: server CPU (utime+stime of every process in the server's
   process group, from /proc/<pid>/stat), wrk CPU (RUSAGE_CHILDREN delta), total busy CPU
   (/proc/stat) and background = busy - server - wrk - this script; also steal time.
4. Prints one compact table (req/s, ratio to the mean /healthz rate, p50/p99, non-2xx,
   server cores and µs/request, wrk cores, bg), optionally writes JSON (--json FILE).
5. Stops the server and runs `tlog fsck --data-dir DIR`; the append load must leave a
   consistent log. Exit status is 0 only if fsck passed and every run completed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

# The shared helpers live in benchlib.py, next to this script (the script's directory is
# sys.path[0] when it runs); benchlib also puts the repository root on sys.path.
from benchlib import (
    NCPU,
    RunResult,
    ServerProc,
    check_append,
    fmt_table,
    group_ticks,
    healthz_baseline,
    preload,
    run_wrk,
    sequencer_stats,
    teardown,
    tree_size,
    warm,
)

SCENARIOS = ("healthz", "append", "tile", "proof")
# Ratios to the /healthz rate and p99 bounds: issue 15 (raw appends >= 0.8 x with 1 worker;
# inclusion proofs >= 0.7 x, p99 <= 30 ms), and the earlier core issue's (tiles >= 0.8 x).
GOALS = {"append": 0.8, "tile": 0.8, "proof": 0.7}
P99_GOAL_MS = {"append": 250.0, "proof": 30.0}



def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=1, help="tlog serve --workers (default 1)")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    p.add_argument("--timeout", type=int, default=10,
                   help="wrk --timeout seconds (default 10, so slow replies count in p99)")
    p.add_argument("--preload", type=int, default=100_000,
                   help="entries bulk-loaded before the server starts (default 100000)")
    p.add_argument("--batch", type=int, default=10_000, help="preload batch size (default 10000)")
    p.add_argument("--scenarios", default="append,tile,proof",
                   help="comma list among append,tile,proof (healthz always runs first and last)")
    p.add_argument("--quiet-bg", type=float, default=0.4,
                   help="before each run, wait for bg load below this many cores (default 0.4)")
    p.add_argument("--quiet-timeout", type=float, default=40.0,
                   help="give up waiting for quiet after this many seconds (0: do not wait)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temp data dir")
    p.add_argument("--show-wrk", action="store_true", help="print wrk's full output per run")
    args = p.parse_args(argv)
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in scenarios:
        if s not in SCENARIOS[1:]:
            p.error(f"unknown scenario {s!r}")
    if shutil.which("wrk") is None:
        p.error("wrk is not installed (apt-get install wrk)")

    tmp = Path(tempfile.mkdtemp(prefix="tlog-bench-"))
    data_dir = tmp / "data"
    report: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "machine": {"cpus": NCPU, "loadavg_start": os.getloadavg(),
                    "python": sys.version.split()[0]},
    }
    results: list[RunResult] = []
    server: ServerProc | None = None
    fsck_result: dict[str, Any] = {"passed": False, "output": "not run"}
    completed = False
    try:
        print(f"bench: data dir {data_dir}; preloading {args.preload} entries "
              f"in batches of {args.batch}", flush=True)
        secs = preload(data_dir, args.preload, args.batch, seed=12345)
        report["preload"] = {"entries": args.preload, "seconds": secs,
                             "entries_per_s": args.preload / secs if secs else None}
        if secs:
            print(f"bench: preload took {secs:.1f} s ({args.preload / secs:,.0f} entries/s)")

        server = ServerProc(data_dir, args=["--allow-raw"], workers=args.workers).start()
        assert server.proc is not None
        pgid = server.proc.pid  # ServerProc starts a new session: pgid == supervisor pid
        _, pids = group_ticks(pgid)
        print(f"bench: server {server.url}, {args.workers} worker(s), pids {pids}", flush=True)
        url = server.url

        def run(label: str, scenario: str, script: str, sargs: list[str]) -> RunResult:
            print(f"bench: running {label} ({args.duration} s)...", flush=True)
            r = run_wrk(label, scenario, url if scenario != "healthz" else url + "/healthz",
                        script, sargs, args, pgid)
            if args.show_wrk:
                print(r.wrk_output)
            q = r.quiet
            print(f"bench:   {r.rps:,.0f} req/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, "
                  f"non-2xx {r.non2xx}, server {r.cpu['server_cores']:.2f} cores "
                  f"({r.server_us_per_req:.0f} us/req), wrk {r.cpu['wrk_cores']:.2f}, "
                  f"bg {r.cpu['bg_cores']:.2f}"
                  + (f" [waited {q['waited_s']:.1f}s for quiet"
                     + ("" if q.get("quiet") else ", gave up") + "]" if q else ""), flush=True)
            results.append(r)
            return r

        run("healthz(before)", "healthz", "wrk_get.lua", [])
        for s in scenarios:
            if s == "append":
                before = tree_size(url)
                nonce = os.urandom(4).hex()
                r = run("append", "append", "wrk_append.lua", [nonce])
                time.sleep(0.5)  # let requests in flight when wrk stopped finish committing
                check_append(r, before, tree_size(url), args.connections)
                r.extra["sequencer"] = sequencer_stats(url, args.workers)
                for w_pid, st in sorted(r.extra["sequencer"].items()):
                    print(f"bench:   worker {w_pid}: {st['batches']:.0f} batches, mean "
                          f"{st['mean_batch']:.1f} entries, {st['integrate_ms_per_batch']:.2f} "
                          f"ms/batch in the integrator, busy {st['integrate_busy_s']:.1f} s")
                if not r.extra["append_ok"]:
                    print(f"bench:   APPEND PROBLEMS: {r.extra['append_problems']}")
            elif s == "tile":
                size = tree_size(url)
                full = size // 256
                if full < 1:
                    print("bench: skipping tile: no full level-0 tile yet")
                    continue
                w = warm(data_dir)
                print(f"bench:   warmed {w['warm_bytes'] / 2**20:.0f} MiB, "
                      f"{w['warm_values']} values in {w['warm_s']:.1f} s")
                r = run("tile", "tile", "wrk_tile.lua", [str(full)])
                r.extra.update(w, full_tiles=full, tree_size=size)
            elif s == "proof":
                size = tree_size(url)
                w = warm(data_dir)
                print(f"bench:   warmed {w['warm_bytes'] / 2**20:.0f} MiB, "
                      f"{w['warm_values']} values in {w['warm_s']:.1f} s")
                r = run("proof", "proof", "wrk_proof.lua", [str(size)])
                r.extra.update(w, tree_size=size)
        run("healthz(after)", "healthz", "wrk_get.lua", [])
        completed = True
    finally:
        fsck_result = teardown(server, data_dir, tmp, keep=args.keep) or fsck_result

    baseline = healthz_baseline(results)
    for r in results:
        r.ratio = r.rps / baseline if baseline else None

    print()
    print(f"tlog bench_core: workers={args.workers} wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration}s, preload {args.preload}, cpus {NCPU}")
    print(fmt_table(results, baseline))
    hz = [round(r.rps) for r in results if r.scenario == "healthz"]
    print(f"baseline /healthz = mean of {hz} = {baseline:,.0f} req/s")
    goal_lines = []
    for r in results:
        if r.scenario in GOALS and r.ratio is not None:
            ok = r.ratio >= GOALS[r.scenario]
            extra = ""
            if r.scenario in P99_GOAL_MS:
                ok = ok and r.p99_ms <= P99_GOAL_MS[r.scenario]
                extra = f", p99 {r.p99_ms:.0f} ms (goal <= {P99_GOAL_MS[r.scenario]:.0f})"
            if r.scenario == "append":
                ok = ok and bool(r.extra.get("append_ok", True))
                st = r.extra.get("other_statuses") or {}
                extra += (f"; 201s {r.extra.get('created_201')}, other statuses {st}, "
                          f"tree +{r.extra.get('tree_growth')}")
            goal_lines.append(f"  {r.scenario}: {r.ratio:.2f} x healthz "
                              f"(goal >= {GOALS[r.scenario]}){extra} -> "
                              f"{'MET' if ok else 'NOT MET'}")
    if goal_lines:
        print("goals:")
        print("\n".join(goal_lines))
    print(f"fsck: {'PASSED' if fsck_result['passed'] else 'FAILED'}: {fsck_result['output']}")

    report["baseline_healthz_rps"] = baseline
    report["results"] = [{k: v for k, v in asdict(r).items() if k != "wrk_output"}
                         for r in results]
    report["fsck"] = fsck_result
    report["machine"]["loadavg_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"bench: wrote {args.json}")
    append_ok = all(r.extra.get("append_ok", True) for r in results)
    return 0 if completed and fsck_result["passed"] and append_ok else 1


if __name__ == "__main__":
    sys.exit(main())
