"""Shared pieces of the wrk benchmarks in this directory (bench_core.py, bench_attest.py,
bench_dist.py).

Not a test module and not part of the package: the scripts import it from their own directory.

* CPU accounting from /proc: the server's whole process group (supervisor, HTTP workers and the
  sequencer child), wrk (RUSAGE_CHILDREN), the busy CPU of the machine, the background
  (busy minus all of those) and steal; per-process and per-thread splits of the server.
* Waiting (bounded) for a quiet machine before a run.
* Data: bulk preload of unique raw entries, warming of the LMDB file (DAMON evicts page cache
  idle for about 60 s on these VMs, so data is read once right before each run).
* Running wrk with a Lua script from this directory that prints one `BENCH_JSON {...}` line
  (wrk_common.lua), and parsing it into a RunResult; append checks; fsck; the result table.
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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from client.keyfile import read_key  # noqa: E402
from client.note import sign_note  # noqa: E402
from tests.serverproc import ServerProc  # noqa: E402
from tlog.cli import KEY_FILE, prepare  # noqa: E402
from tlog.config import ServeConfig  # noqa: E402
from tlog.storage import LogStore  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1

# --- CPU accounting from /proc ---------------------------------------------------------------


def _proc_stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def process_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process (0, 0 if it is gone)."""
    fields = _proc_stat_fields(pid)
    if fields is None:
        return 0.0, 0.0
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


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


def group_ticks_by_pid(pgid: int) -> dict[int, int]:
    """utime+stime (clock ticks) of each live process in process group `pgid`."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        f = _proc_stat_fields(int(entry.name))
        if f is not None and int(f[2]) == pgid:
            out[int(entry.name)] = int(f[11]) + int(f[12])
    return out


def process_role(pid: int, pgid: int) -> str:
    """`sequencer`, `indexer`, `supervisor` (the `tlog serve` process; with 1 worker it is also the only
    HTTP worker, see server_roles), `other` (multiprocessing's resource tracker) or `worker`,
    from the command line."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return "gone"
    if b"tlog.sequencer" in cmdline:
        return "sequencer"
    if b"tlog.indexer" in cmdline:
        return "indexer"  # the sequencer's child that derives the search index
    if b"resource_tracker" in cmdline:
        return "other"  # multiprocessing's helper process (uvicorn --workers > 1)
    return "supervisor" if pid == pgid else "worker"


def server_roles(pgid: int, workers: int) -> dict[int, str]:
    """pid -> role for the server's process group. With `--workers 1`, uvicorn serves in the
    supervisor process itself, so that process is reported as the worker."""
    roles = {pid: process_role(pid, pgid) for pid in group_ticks_by_pid(pgid)}
    if workers == 1:
        roles = {pid: ("worker" if r == "supervisor" else r) for pid, r in roles.items()}
    return roles


def thread_ticks(pid: int) -> dict[int, int]:
    """utime+stime (clock ticks) of each thread (task) of process `pid`."""
    out = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        f = raw[raw.rindex(")") + 2 :].split()
        out[int(tid)] = int(f[11]) + int(f[12])
    return out


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
    def load(prev: CpuSample, cur: CpuSample) -> float:
        # The server idles here, so count its CPU as load too (e.g. a late batch commit).
        c = cpu_between(prev, cur)
        return c["bg_cores"] + c["server_cores"]

    return wait_until_quiet(lambda: CpuSample.take(pgid), load, limit, timeout, window)


def wait_until_quiet(sample: Callable[[], Any], load: Callable[[Any, Any], float], limit: float,
                     timeout: float, window: float = 1.5) -> dict[str, Any]:
    """Take `sample()` every 0.5 s until `load(previous, current)` stays below `limit` cores
    for `window` s, at most `timeout` s. Samples carry `wall` (their monotonic time)."""
    t0 = time.monotonic()
    quiet_since: float | None = None
    prev = sample()
    last = 0.0
    while time.monotonic() - t0 < timeout:
        time.sleep(0.5)
        cur = sample()
        last, prev = load(prev, cur), cur
        if last < limit:
            quiet_since = quiet_since if quiet_since is not None else cur.wall - 0.5
            if cur.wall - quiet_since >= window:
                return {"waited_s": time.monotonic() - t0, "quiet": True, "bg_before": last}
        else:
            quiet_since = None
    return {"waited_s": time.monotonic() - t0, "quiet": False, "bg_before": last}


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
    read = _read_prefix(data_dir / "data.mdb", used)
    # The derived index (tlog/index.py): its random-key pages are as cold as the log's.
    index = data_dir / "index" / "data.mdb"
    if index.exists():
        read += _read_prefix(index, index.stat().st_size)
    return {"warm_s": time.perf_counter() - t0, "warm_bytes": read, "warm_values": n_tiles}


def _read_prefix(path: Path, length: int) -> int:
    """Read the first `length` bytes of a file (an LMDB file's used part) into the page cache."""
    read = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        chunk = 1 << 20
        while read < length:
            got = os.pread(fd, min(chunk, length - read), read)
            if not got:
                break
            read += len(got)
    finally:
        os.close(fd)
    return read


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


def wrk_parser(description: str) -> argparse.ArgumentParser:
    """The options every small wrk benchmark shares (the big ones add their own)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.set_defaults(timeout=30, quiet_bg=0.4, quiet_timeout=20.0)
    return ap


def wrk_command(url: str, script: str, script_args: list[str], *, threads: int, connections: int,
                duration: int, timeout: int) -> list[str]:
    """`wrk --latency` with a Lua script from this directory (its arguments after `--`)."""
    cmd = ["wrk", "--latency", f"-t{threads}", f"-c{connections}", f"-d{duration}s",
           f"--timeout={timeout}s", "-s", str(HERE / script), url]
    return [*cmd, "--", *script_args] if script_args else cmd


def parse_wrk(label: str, scenario: str, out: str, stderr: str = "") -> RunResult:
    """A RunResult from wrk's output: its BENCH_JSON line (wrk_common.lua), cross-checked with
    wrk's text summary. CPU figures are the caller's."""
    r = RunResult(scenario=scenario, label=label, wrk_output=out)
    m = re.search(r"^BENCH_JSON (.*)$", out, re.M)
    if m is None:
        raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{out}\n{stderr}")
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
    # Anything else a script's bench_extra() added to the BENCH_JSON line (wrk_common.lua).
    r.extra.update({k: v for k, v in doc.items()
                    if k not in ("requests", "duration_us", "bytes", "errors", "latency_us",
                                 "statuses")})
    # Cross-check with wrk's text summary (the --latency distribution).
    text_rps = _RPS.search(out)
    if text_rps:
        r.extra["wrk_text_rps"] = float(text_rps.group(1))
    lat_text = {p: _to_ms(v, u) for p, v, u in _LAT.findall(out)}
    r.extra["wrk_text_latency_ms"] = lat_text
    non2xx = _NON2XX.search(out)
    if non2xx and int(non2xx.group(1)) != r.non2xx:
        r.extra["non2xx_text"] = int(non2xx.group(1))
    return r


def run_wrk(label: str, scenario: str, url: str, script: str, script_args: list[str],
            args: argparse.Namespace, pgid: int, *,
            on_start: Callable[[], None] | None = None,
            on_end: Callable[[], None] | None = None) -> RunResult:
    """One wrk run (after waiting for a quiet machine), measured from /proc around it.

    `on_start`/`on_end` run right before wrk starts and right after it exits, inside the CPU
    sampling window (e.g. to snapshot per-thread CPU or start a profiler)."""
    quiet = wait_quiet(pgid, args.quiet_bg, args.quiet_timeout) if args.quiet_timeout > 0 else {}
    cmd = wrk_command(url, script, script_args, threads=args.threads, connections=args.connections,
                      duration=args.duration, timeout=args.timeout)
    before = CpuSample.take(pgid)
    if on_start is not None:
        on_start()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if on_end is not None:
        on_end()
    after = CpuSample.take(pgid)
    out = proc.stdout
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out}\n{proc.stderr}")
    r = parse_wrk(label, scenario, out, proc.stderr)
    r.quiet = quiet
    r.cpu = cpu_between(before, after)
    if r.rps > 0:
        r.server_us_per_req = r.cpu["server_cores"] / r.rps * 1e6
    return r


# --- orchestration -----------------------------------------------------------------------------


def start_server(data_dir: Path, workers: int, extra_args: list[str] | None = None,
                 ) -> tuple[ServerProc, int]:
    """Start `tlog serve --workers N --listen 127.0.0.1:0 [extra_args]` in a new session.
    Returns the server and its process group id (== the supervisor's pid)."""
    server = ServerProc(data_dir, args=list(extra_args or []), workers=workers).start()
    assert server.proc is not None
    return server, server.proc.pid


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


def teardown(server: Any, data_dir: Path, tmp: Path, *, keep: bool) -> dict[str, Any] | None:
    """Stop the server, fsck its data dir (None if there was none), remove or keep `tmp`."""
    result = None
    if server is not None:
        server.stop()
    if server is not None or data_dir.exists():
        print("bench: server stopped; running tlog fsck...", flush=True)
        try:
            result = fsck(data_dir)
        except OSError as exc:
            result = {"passed": False, "output": str(exc)}
    if keep:
        print(f"bench: kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def healthz_baseline(results: list[RunResult]) -> float:
    """Mean /healthz rate of the runs: the same-run baseline every ratio is taken against."""
    hz = [r.rps for r in results if r.scenario == "healthz"]
    return statistics.mean(hz) if hz else 0.0


def paired_medians(rounds: int, runs: dict[str, Callable[[], float]]) -> dict[str, float]:
    """Each run once per round, in turn, so that the machine's noise falls on all of them
    alike; the median of each."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name].append(run())
    return {k: statistics.median(v) for k, v in times.items()}


def print_pair(medians: dict[str, float], unit: str, rounds: int) -> None:
    """The two medians of `paired_medians` (baseline first) and their ratio."""
    (base_name, base), (name, value) = medians.items()
    width = max(len(base_name), len(name)) + 1
    print(f"{base_name + ':':{width}} {base:.2f} {unit} (median of {rounds} paired rounds)")
    print(f"{name + ':':{width}} {value:.2f} {unit}")
    print(f"ratio {name}/{base_name}: {value / base:.3f}  ({value - base:+.2f} {unit})")
