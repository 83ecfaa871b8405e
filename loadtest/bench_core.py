#!/usr/bin/env python3
"""Core HTTP benchmark of `tlog serve` with wrk: /healthz, raw appends, tiles, inclusion proofs.

Run by hand (not a pytest test), from the repository root:

    python loadtest/bench_core.py [--workers N] [--duration S] [--connections C] [--json FILE]

What it does (see /work/shared/limits.md for why each step is there):

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
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from client.note import sign_note  # noqa: E402
from tests.serverproc import ServerProc  # noqa: E402
from tlog.cli import KEY_FILE, prepare  # noqa: E402
from tlog.config import ServeConfig  # noqa: E402
from tlog.keys import read_key  # noqa: E402
from tlog.storage import LogStore  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1
SCENARIOS = ("healthz", "append", "tile", "proof")
GOALS = {"append": 0.6, "tile": 0.8}  # ratio to the /healthz rate (issue goals)
APPEND_P99_GOAL_MS = 250.0


# --- CPU accounting from /proc ---------------------------------------------------------------


def _proc_stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def group_ticks_split(pgid: int) -> tuple[int, int, list[int]]:
    """(utime, stime) clock ticks summed over every live process in process group `pgid`."""
    user = system = 0
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        f = _proc_stat_fields(int(entry.name))
        # after comm: [0]=state [1]=ppid [2]=pgrp ... [11]=utime [12]=stime
        if f is None or int(f[2]) != pgid:
            continue
        user += int(f[11])
        system += int(f[12])
        pids.append(int(entry.name))
    return user, system, sorted(pids)


def group_ticks(pgid: int) -> tuple[int, list[int]]:
    """utime+stime (clock ticks) summed over every live process in process group `pgid`."""
    user, system, pids = group_ticks_split(pgid)
    return user + system, pids


def system_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks over all CPUs from /proc/stat.

    busy = user+nice+system+irq+softirq (idle, iowait and steal excluded)."""
    with open("/proc/stat") as fh:
        parts = fh.readline().split()
    v = [int(x) for x in parts[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = v[:7]
    steal = v[7] if len(v) > 7 else 0
    return user + nice + system + irq + softirq, steal


def self_ticks() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * CLK_TCK


def children_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


@dataclass
class CpuSample:
    wall: float
    server: int
    server_sys: int
    busy: int
    steal: int
    me: float
    children: float

    @classmethod
    def take(cls, pgid: int) -> CpuSample:
        user, system, _ = group_ticks_split(pgid)
        busy, steal = system_ticks()
        return cls(time.monotonic(), user + system, system, busy, steal, self_ticks(),
                   children_seconds())


def cpu_between(a: CpuSample, b: CpuSample) -> dict[str, float]:
    """Cores used between two samples: server, wrk (children reaped in between), bg, steal."""
    wall = b.wall - a.wall
    server = (b.server - a.server) / CLK_TCK / wall
    server_sys = (b.server_sys - a.server_sys) / CLK_TCK / wall
    wrk = (b.children - a.children) / wall
    me = (b.me - a.me) / CLK_TCK / wall
    busy = (b.busy - a.busy) / CLK_TCK / wall
    steal = (b.steal - a.steal) / CLK_TCK / wall
    return {"wall_s": wall, "server_cores": server, "server_sys_cores": server_sys,
            "wrk_cores": wrk, "self_cores": me,
            "busy_cores": busy, "bg_cores": max(0.0, busy - server - wrk - me),
            "steal_cores": steal}


def wait_quiet(pgid: int, limit: float, timeout: float, window: float = 1.5) -> dict[str, float]:
    """Wait until bg load < `limit` cores for `window` s (0.5 s samples), at most `timeout` s."""
    t0 = time.monotonic()
    quiet_since: float | None = None
    prev = CpuSample.take(pgid)
    last_bg = 0.0
    while time.monotonic() - t0 < timeout:
        time.sleep(0.5)
        cur = CpuSample.take(pgid)
        # The server idles here, so count its CPU as load too (e.g. a late batch commit).
        c = cpu_between(prev, cur)
        last_bg = c["bg_cores"] + c["server_cores"]
        prev = cur
        if last_bg < limit:
            quiet_since = quiet_since if quiet_since is not None else cur.wall - 0.5
            if cur.wall - quiet_since >= window:
                return {"waited_s": time.monotonic() - t0, "quiet": True, "bg_before": last_bg}
        else:
            quiet_since = None
    return {"waited_s": time.monotonic() - t0, "quiet": False, "bg_before": last_bg}


# --- data: preload, warm ---------------------------------------------------------------------


def preload(data_dir: Path, count: int, batch: int, seed: int) -> float:
    """Initialise the log and bulk-append `count` unique 200-byte entries. Returns seconds."""
    prepare(ServeConfig(data_dir=str(data_dir)))  # key, origin, signed empty tree
    if count <= 0:
        return 0.0
    signer = read_key(data_dir / KEY_FILE)

    def sign(text: str) -> bytes:
        return sign_note(text, [signer])

    rng = random.Random(seed)
    store = LogStore(data_dir)
    t0 = time.perf_counter()
    try:
        done = 0
        while done < count:
            n = min(batch, count - done)
            # 24-byte unique ASCII header (like the wrk script's) + 176 random bytes.
            entries = [b"preload-%016x" % (done + i) + rng.randbytes(176) for i in range(n)]
            result = store.append(entries, sign)
            if not all(result.created):
                raise RuntimeError("preload produced a duplicate entry")
            done += n
        if store.head().size != count:
            raise RuntimeError(f"preload: tree size {store.head().size}, expected {count}")
    finally:
        store.close()
    return time.perf_counter() - t0


def warm(data_dir: Path) -> dict[str, float]:
    """Read the used part of data.mdb into the page cache (never the sparse tail).

    Also walks every key of the tiles, interior and bundles DBs (all tiles read once), so the
    B-tree pages are hot too. DAMON evicts page cache idle for ~60 s on this VM, so this runs
    right before each read scenario.
    """
    t0 = time.perf_counter()
    store = LogStore(data_dir, readonly=True)
    try:
        used = store.stat()["used"]
        n_tiles = 0
        with store.read_txn() as txn:
            for db in (store.tiles, store.interior, store.bundles):
                for _key, value in txn.cursor(db=db):
                    n_tiles += 1
                    _ = value[-1:]  # touch the value's last page too
    finally:
        store.close()
    read = 0
    fd = os.open(data_dir / "data.mdb", os.O_RDONLY)
    try:
        chunk = 1 << 20
        while read < used:
            got = os.pread(fd, min(chunk, used - read), read)
            if not got:
                break
            read += len(got)
    finally:
        os.close(fd)
    return {"warm_s": time.perf_counter() - t0, "warm_bytes": read, "warm_values": n_tiles}


# --- wrk ---------------------------------------------------------------------------------------

_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKERR = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_LAT = re.compile(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def _to_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


@dataclass
class RunResult:
    scenario: str
    label: str
    rps: float = 0.0
    requests: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    non2xx: int = 0
    socket_errors: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    server_us_per_req: float = 0.0
    quiet: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    ratio: float | None = None
    wrk_output: str = ""


def run_wrk(label: str, scenario: str, url: str, script: str, script_args: list[str],
            args: argparse.Namespace, pgid: int) -> RunResult:
    quiet = wait_quiet(pgid, args.quiet_bg, args.quiet_timeout) if args.quiet_timeout > 0 else {}
    cmd = ["wrk", "--latency", f"-t{args.threads}", f"-c{args.connections}",
           f"-d{args.duration}s", f"--timeout={args.timeout}s", "-s", str(HERE / script), url]
    if script_args:
        cmd += ["--", *script_args]
    before = CpuSample.take(pgid)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    after = CpuSample.take(pgid)
    out = proc.stdout
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out}\n{proc.stderr}")
    r = RunResult(scenario=scenario, label=label, quiet=quiet, wrk_output=out)
    r.cpu = cpu_between(before, after)
    m = re.search(r"^BENCH_JSON (.*)$", out, re.M)
    if m is None:
        raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{out}\n{proc.stderr}")
    doc = json.loads(m.group(1))
    lat = doc["latency_us"]
    r.requests = doc["requests"]
    r.rps = doc["requests"] / (doc["duration_us"] / 1e6)
    r.p50_ms, r.p99_ms, r.max_ms = lat["p50"] / 1000, lat["p99"] / 1000, lat["max"] / 1000
    r.non2xx = doc["errors"]["status"]
    e = doc["errors"]
    r.socket_errors = e["connect"] + e["read"] + e["write"] + e["timeout"]
    r.statuses = doc["statuses"]
    r.extra["latency_us"] = lat
    r.extra["errors"] = e
    # Cross-check with wrk's text summary (the --latency distribution).
    text_rps = _RPS.search(out)
    if text_rps:
        r.extra["wrk_text_rps"] = float(text_rps.group(1))
    lat_text = {p: _to_ms(v, u) for p, v, u in _LAT.findall(out)}
    r.extra["wrk_text_latency_ms"] = lat_text
    non2xx = _NON2XX.search(out)
    if non2xx and int(non2xx.group(1)) != r.non2xx:
        r.extra["non2xx_text"] = int(non2xx.group(1))
    if r.rps > 0:
        r.server_us_per_req = r.cpu["server_cores"] / r.rps * 1e6
    return r


# --- orchestration -----------------------------------------------------------------------------


def tree_size(url: str) -> int:
    return int(httpx.get(url + "/v1/log", timeout=10).json()["tree_size"])


_METRIC = re.compile(r'^(tlog_batch_size_sum|tlog_batch_size_count|tlog_integrate_seconds_sum)'
                     r'\{worker="(\d+)"\} (\S+)$', re.M)


def sequencer_stats(url: str, workers: int) -> dict[str, dict[str, float]]:
    """Per-worker batch statistics from /metrics (cumulative since the server started; only the
    append scenario integrates batches). Each worker keeps its own registry, so ask over fresh
    connections until every worker has answered (best effort)."""
    per: dict[str, dict[str, float]] = {}
    for _ in range(max(4, 12 * workers)):
        try:
            text = httpx.get(url + "/metrics", headers={"Connection": "close"}, timeout=5).text
        except httpx.HTTPError:
            continue
        for name, worker, value in _METRIC.findall(text):
            per.setdefault(worker, {})[name] = float(value)
        if len(per) >= workers:
            break
    out = {}
    for worker, m in per.items():
        n = m.get("tlog_batch_size_count", 0.0)
        if n:
            out[worker] = {"batches": n, "entries": m["tlog_batch_size_sum"],
                           "mean_batch": m["tlog_batch_size_sum"] / n,
                           "integrate_ms_per_batch": 1000 * m["tlog_integrate_seconds_sum"] / n,
                           "integrate_busy_s": m["tlog_integrate_seconds_sum"]}
    return out


def check_append(r: RunResult, size_before: int, size_after: int, connections: int) -> None:
    """Every counted response must be 201, and the tree grew by exactly the created entries
    (plus at most one request per connection still in flight when wrk stopped counting)."""
    created = int(r.statuses.get("201", 0))
    other = {k: v for k, v in r.statuses.items() if k != "201"}
    grew = size_after - size_before
    r.extra.update({"created_201": created, "other_statuses": other,
                    "tree_size_before": size_before, "tree_size_after": size_after,
                    "tree_growth": grew})
    problems = []
    if other:
        problems.append(f"non-201 statuses {other}")
    if not created <= grew <= created + connections:
        problems.append(f"tree grew by {grew}, but {created} responses were 201")
    r.extra["append_ok"] = not problems
    r.extra["append_problems"] = problems


def fsck(data_dir: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    return {"passed": proc.returncode == 0, "returncode": proc.returncode,
            "output": (proc.stdout + proc.stderr).strip(), "seconds": time.perf_counter() - t0}


def fmt_table(results: list[RunResult], baseline: float) -> str:
    head = (f"{'scenario':<16}{'req/s':>9}{'x hz':>7}{'p50 ms':>8}{'p99 ms':>8}{'non2xx':>8}"
            f"{'sockerr':>8}{'srv cores':>10}{'(sys)':>6}{'srv us/req':>11}{'wrk cores':>10}{'bg':>6}"
            f"{'steal':>6}")
    lines = [head, "-" * len(head)]
    for r in results:
        ratio = f"{r.rps / baseline:.2f}" if baseline else "-"
        lines.append(
            f"{r.label:<16}{r.rps:>9,.0f}{ratio:>7}{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}"
            f"{r.non2xx:>8}{r.socket_errors:>8}{r.cpu['server_cores']:>10.2f}"
            f"{r.cpu['server_sys_cores']:>6.2f}"
            f"{r.server_us_per_req:>11.0f}{r.cpu['wrk_cores']:>10.2f}{r.cpu['bg_cores']:>6.2f}"
            f"{r.cpu['steal_cores']:>6.2f}")
    return "\n".join(lines)


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
        if server is not None:
            server.stop()
        if server is not None or data_dir.exists():
            print("bench: server stopped; running tlog fsck...", flush=True)
            try:
                fsck_result = fsck(data_dir)
            except OSError as exc:
                fsck_result = {"passed": False, "output": str(exc)}
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"bench: kept {tmp}")

    hz = [r.rps for r in results if r.scenario == "healthz"]
    baseline = statistics.mean(hz) if hz else 0.0
    for r in results:
        r.ratio = r.rps / baseline if baseline else None

    print()
    print(f"tlog bench_core: workers={args.workers} wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration}s, preload {args.preload}, cpus {NCPU}")
    print(fmt_table(results, baseline))
    print(f"baseline /healthz = mean of {[round(x) for x in hz]} = {baseline:,.0f} req/s")
    goal_lines = []
    for r in results:
        if r.scenario in GOALS and r.ratio is not None:
            ok = r.ratio >= GOALS[r.scenario]
            extra = ""
            if r.scenario == "append":
                ok = ok and r.p99_ms <= APPEND_P99_GOAL_MS
                extra = f", p99 {r.p99_ms:.0f} ms (goal <= {APPEND_P99_GOAL_MS:.0f})"
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
