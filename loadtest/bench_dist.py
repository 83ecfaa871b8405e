#!/usr/bin/env python3
"""Scaled-out log benchmark (`storage = "s3"`): signed appends through several front ends,
sequencer fail-over time, and tile reads straight from the bucket, on real engines
(PostgreSQL 15 and a single-node Ceph RADOS Gateway, started by this script).

Run by hand (not a pytest test), from the repository root:

    python loadtest/bench_dist.py [--duration S] [--connections C] [--frontends N]
                                  [--lease S] [--failovers K] [--json FILE]

What it does:

1. Starts PostgreSQL and Ceph RGW (tests/engines), a fresh public bucket and database, one
   `tlog serve --role sequencer` and N `tlog serve --role frontend` processes (1 worker each,
   no raw entries: every submission is a DSSE envelope the front end verifies).
2. Appends: `/healthz` on front end 0 (the baseline), then one wrk per front end at once, each
   sending its own pre-signed Ed25519 DSSE bodies (bench_attest.prepare_bodies, one set per
   front end, never a body twice), then `/healthz` again. All statuses must be 201 and the
   tree (the bucket's checkpoint) must grow by the 201s. CPU is measured from /proc per
   component: front ends, sequencer, PostgreSQL (postmaster, its live backends and the CPU of
   backends that exited), radosgw, ceph-osd, ceph-mon (pid files in Ceph's run dir); also wrk,
   this script, the background and steal. The sequencer's batch sizes and cycle times come
   from its /metrics (tlog_batch_size, tlog_integrate_seconds).
3. Tiles: random full level-0 tiles GET from the bucket (radosgw, anonymous, path style) and
   the same through front end 0 (wrk_tile.lua).
4. Fail-over: a second sequencer (standby) joins; under a modest load (wrk on front end 0),
   the leader is killed with SIGKILL and the time to the first new checkpoint in the bucket
   (polled anonymously) is taken; a fresh standby replaces the dead one, --failovers times.
5. Checks the whole log read from the bucket (`tlog-client audit --full`), prints the tables
   and a bottleneck section: CPU per component per entry, and a 3-machine capacity derived
   from those figures. Exit status 0 only if every run was valid and the audit passed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bench_attest import Bodies, code_state, prepare_bodies
from benchlib import (
    CLK_TCK,
    NCPU,
    ROOT,
    RunResult,
    check_append,
    children_seconds,
    fmt_table,
    parse_wrk,
    self_ticks,
    system_ticks,
    wait_until_quiet,
    wrk_command,
)

from tests.distlog import DistLog
from tests.engines import Ceph, Postgres
from tests.serverproc import ServerProc

# A fail-over run's load is modest (a few connections on one front end, each waiting about a
# sequencer cycle per entry); this bounds the bodies its wrk threads load per second of the run.
FAILOVER_RATE = 1000
HTTP = httpx.Client(timeout=10)

# --- CPU per component, from /proc ------------------------------------------------------------


def _scan() -> dict[int, tuple[int, int, int, int, int]]:
    """pid -> (ppid, pgrp, utime, stime, reaped children's utime+stime) of every process."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        f = raw[raw.rindex(")") + 2 :].split()
        out[int(entry.name)] = (int(f[1]), int(f[2]), int(f[11]), int(f[12]), int(f[13]) + int(f[14]))
    return out


@dataclass
class Components:
    """Where each component's CPU is: tlog process groups, the postmaster and its backends
    (with the CPU of backends that exited, which the postmaster reaps), single daemons."""

    groups: dict[str, int] = field(default_factory=dict)  # name -> pgid (tlog serve processes)
    trees: dict[str, int] = field(default_factory=dict)  # name -> parent pid (postmaster)
    single: dict[str, int] = field(default_factory=dict)  # name -> pid (ceph daemons)
    roles: dict[str, str] = field(default_factory=dict)  # name -> role for the summaries

    def ticks(self) -> dict[str, tuple[int, int]]:
        """name -> (user, system) clock ticks."""
        procs = _scan()
        out: dict[str, tuple[int, int]] = {}
        for name, pgid in self.groups.items():
            mine = [p for p in procs.values() if p[1] == pgid]
            out[name] = (sum(p[2] for p in mine), sum(p[3] for p in mine))
        for name, parent in self.trees.items():
            top = procs.get(parent)
            kids = [p for p in procs.values() if p[0] == parent]
            # Exited children's CPU is in the parent's cutime+cstime (counted as user here).
            user = sum(p[2] for p in kids) + (top[2] + top[4] if top else 0)
            out[name] = (user, sum(p[3] for p in kids) + (top[3] if top else 0))
        for name, pid in self.single.items():
            p = procs.get(pid)
            out[name] = (p[2], p[3]) if p else (0, 0)
        return out


@dataclass
class Sample:
    wall: float
    comp: dict[str, tuple[int, int]]
    busy: int
    steal: int
    me: float
    children: float

    @classmethod
    def take(cls, comps: Components) -> Sample:
        ticks = comps.ticks()
        busy, steal = system_ticks()
        return cls(time.monotonic(), ticks, busy, steal, self_ticks(), children_seconds())


def cpu_between(comps: Components, a: Sample, b: Sample) -> dict[str, Any]:
    """Cores per component and per role between two samples, plus benchlib's keys (server =
    every component: tlog processes and both engines), wrk, this script, bg and steal."""
    wall = b.wall - a.wall

    def cores(name: str, i: int | None = None) -> float:
        x, y = a.comp.get(name, (0, 0)), b.comp.get(name, (0, 0))
        d = (y[0] + y[1] - x[0] - x[1]) if i is None else y[i] - x[i]
        return max(0, d) / CLK_TCK / wall

    per = {n: cores(n) for n in b.comp}
    per_sys = {n: cores(n, 1) for n in b.comp}
    roles: dict[str, float] = collections.defaultdict(float)
    for n, c in per.items():
        roles[comps.roles.get(n, n)] += c
    server = sum(per.values())
    wrk = (b.children - a.children) / wall
    me = (b.me - a.me) / CLK_TCK / wall
    busy = (b.busy - a.busy) / CLK_TCK / wall
    return {"wall_s": wall, "components": per, "components_sys": per_sys, "roles": dict(roles),
            "server_cores": server, "server_sys_cores": sum(per_sys.values()), "wrk_cores": wrk,
            "self_cores": me, "busy_cores": busy, "bg_cores": max(0.0, busy - server - wrk - me),
            "steal_cores": (b.steal - a.steal) / CLK_TCK / wall}


def wait_quiet(comps: Components, limit: float, timeout: float, window: float = 1.5) -> dict[str, Any]:
    """Wait until the machine's busy CPU (everything but this script: the engines idle too) stays
    below `limit` cores for `window` s, at most `timeout` s."""
    def load(prev: Sample, cur: Sample) -> float:
        c = cpu_between(comps, prev, cur)
        return c["busy_cores"] - c["self_cores"]

    return wait_until_quiet(lambda: Sample.take(comps), load, limit, timeout, window)


def engine_pids(pg: Postgres, ceph: Ceph) -> tuple[int, dict[str, int]]:
    """(postmaster pid, {ceph daemon name: pid}) from their pid files."""
    postmaster = int((pg.dir / "data" / "postmaster.pid").read_text().split()[0])
    daemons = {}
    for f in sorted((ceph.dir / "c" / "run").glob("*.pid")):
        name = f.stem  # client.rgw.gw, mon.a, osd.0
        kind = "radosgw" if name.startswith("client.rgw") else f"ceph-{name.split('.')[0]}"
        daemons[kind if kind not in daemons else name] = int(f.read_text().strip())
    return postmaster, daemons


# --- wrk -------------------------------------------------------------------------------------


@dataclass
class WrkJob:
    label: str
    scenario: str
    url: str
    script: str
    script_args: list[str]
    threads: int
    connections: int
    duration: int


def start_wrk(job: WrkJob, timeout: int) -> subprocess.Popen[str]:
    cmd = wrk_command(job.url, job.script, job.script_args, threads=job.threads,
                      connections=job.connections, duration=job.duration, timeout=timeout)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_wrk(job: WrkJob, proc: subprocess.Popen[str]) -> RunResult:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{out}\n{err}")
    return parse_wrk(job.label, job.scenario, out, err)


def run_wrks(jobs: list[WrkJob], comps: Components, args: argparse.Namespace
             ) -> tuple[list[RunResult], dict[str, Any], dict[str, Any]]:
    """The jobs' wrk processes at once (after waiting for a quiet machine), CPU measured around
    them all. Returns (results, cpu, quiet)."""
    quiet = wait_quiet(comps, args.quiet_bg, args.quiet_timeout) if args.quiet_timeout > 0 else {}
    before = Sample.take(comps)
    procs = [start_wrk(j, args.timeout) for j in jobs]
    results = [finish_wrk(j, p) for j, p in zip(jobs, procs, strict=True)]
    cpu = cpu_between(comps, before, Sample.take(comps))
    for r in results:
        r.cpu, r.quiet = cpu, quiet
    return results, cpu, quiet


def combined(label: str, scenario: str, parts: list[RunResult], cpu: dict[str, Any],
             quiet: dict[str, Any]) -> RunResult:
    """One row for wrk runs side by side: rates and counts add up; p50/p99/max are the worst
    part's (latency histograms of separate wrk processes do not merge)."""
    r = RunResult(scenario=scenario, label=label, cpu=cpu, quiet=quiet)
    r.rps = sum(p.rps for p in parts)
    r.requests = sum(p.requests for p in parts)
    r.p50_ms, r.p99_ms = max(p.p50_ms for p in parts), max(p.p99_ms for p in parts)
    r.max_ms = max(p.max_ms for p in parts)
    r.non2xx = sum(p.non2xx for p in parts)
    r.socket_errors = sum(p.socket_errors for p in parts)
    statuses: dict[str, int] = collections.Counter()
    for p in parts:
        statuses.update({k: int(v) for k, v in p.statuses.items()})
    r.statuses = dict(statuses)
    if r.rps > 0:
        r.server_us_per_req = cpu["server_cores"] / r.rps * 1e6
    return r


# --- the log ---------------------------------------------------------------------------------


def bucket_checkpoint(bucket_url: str) -> tuple[int, bytes]:
    """(tree size, body) of the bucket's checkpoint, read anonymously as a client would."""
    r = HTTP.get(f"{bucket_url}/checkpoint", headers={"Cache-Control": "no-cache"})
    r.raise_for_status()
    return int(r.content.split(b"\n")[1]), r.content


def health(proc: ServerProc) -> dict[str, Any]:
    try:
        return HTTP.get(proc.url + "/healthz", timeout=2).json()  # type: ignore[no-any-return]
    except (httpx.HTTPError, ValueError):
        return {}


def wait_until(what: str, check: Any, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def settled_size(bucket_url: str, quiet_for: float = 1.0, timeout: float = 30.0) -> int:
    """The bucket's tree size once it stopped moving for `quiet_for` s (requests in flight when
    wrk stopped are committed and published first)."""
    size, since, t0 = bucket_checkpoint(bucket_url)[0], time.monotonic(), time.monotonic()
    while time.monotonic() - t0 < timeout:
        time.sleep(0.1)
        now = bucket_checkpoint(bucket_url)[0]
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            break
    return size


_HIST = re.compile(r'^(\w+)_bucket\{le="([^"]+)"\} (\S+)$|^(\w+)_(sum|count) (\S+)$', re.M)


def histograms(url: str) -> dict[str, dict[str, Any]]:
    """The unlabelled histograms of a sequencer's /metrics: name -> {buckets: {le: cumulative
    count}, sum, count}."""
    text = HTTP.get(url + "/metrics").text
    out: dict[str, dict[str, Any]] = {}
    for name, le, value, name2, kind, value2 in _HIST.findall(text):
        if name:
            out.setdefault(name, {"buckets": {}, "sum": 0.0, "count": 0.0})["buckets"][le] = float(value)
        else:
            out.setdefault(name2, {"buckets": {}, "sum": 0.0, "count": 0.0})[kind] = float(value2)
    return out


def _quantile(buckets: dict[str, float], q: float) -> str:
    """The bucket bound under which a `q` share of the observations fell ('>X' if above all)."""
    total = buckets.get("+Inf", 0.0)
    if not total:
        return "-"
    prev = "0"
    for le, cum in buckets.items():
        if cum >= q * total:
            return f"<={le}" if le != "+Inf" else f">{prev}"
        prev = le
    return "-"


def sequencer_stats(before: dict[str, Any], after: dict[str, Any], wall: float) -> dict[str, Any]:
    """This run's batches: sizes and cycle times (sequence + write + sign + publish), from the
    difference of two /metrics reads."""
    def diff(name: str) -> dict[str, Any]:
        a, b = before.get(name, {}), after.get(name, {})
        was = a.get("buckets", {})
        return {"buckets": {le: v - was.get(le, 0.0) for le, v in b.get("buckets", {}).items()},
                "sum": b.get("sum", 0.0) - a.get("sum", 0.0),
                "count": b.get("count", 0.0) - a.get("count", 0.0)}

    size, secs = diff("tlog_batch_size"), diff("tlog_integrate_seconds")
    n = size["count"]
    return {"batches": n, "entries": size["sum"], "mean_batch": size["sum"] / n if n else 0.0,
            "batch_p50": _quantile(size["buckets"], 0.5), "batch_p99": _quantile(size["buckets"], 0.99),
            "integrate_ms_mean": 1000 * secs["sum"] / secs["count"] if secs["count"] else 0.0,
            "integrate_p50_s": _quantile(secs["buckets"], 0.5),
            "integrate_p99_s": _quantile(secs["buckets"], 0.99),
            "cycle_busy_share": secs["sum"] / wall if wall else 0.0,
            "batch_size_histogram": size["buckets"], "integrate_seconds_histogram": secs["buckets"]}


def audit(bucket_url: str, policy: Path) -> dict[str, Any]:
    """`tlog-client audit --full` of the log read straight from the bucket (every tile, bundle
    and signature against the checkpoint): this benchmark's fsck."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "client.cli", "audit", "--full", "--quiet", "--no-state",
                           "--policy", str(policy), "--log", bucket_url],
                          capture_output=True, text=True, check=False, cwd=ROOT, timeout=600)
    return {"passed": proc.returncode == 0, "returncode": proc.returncode,
            "output": (proc.stdout + proc.stderr).strip()[-2000:], "seconds": time.perf_counter() - t0}


# --- output ----------------------------------------------------------------------------------

ROLE_ORDER = ("frontend", "sequencer", "postgres", "radosgw", "ceph-osd", "ceph-mon")


def fmt_components(results: list[RunResult]) -> str:
    """Cores per role, then µs of CPU per request (per entry for appends) per role."""
    cols = f"{'run':<22}" + "".join(f"{r:>10}" for r in ROLE_ORDER)
    head = cols + f"{'wrk':>7}{'bg':>6}"
    lines = ["server CPU by component, cores:", head, "-" * len(head)]
    for r in results:
        roles = r.cpu.get("roles", {})
        lines.append(f"{r.label:<22}" + "".join(f"{roles.get(k, 0.0):>10.2f}" for k in ROLE_ORDER)
                     + f"{r.cpu['wrk_cores']:>7.2f}{r.cpu['bg_cores']:>6.2f}")
    head = cols + f"{'all':>8}"
    lines += ["", "server CPU by component, µs per request (per entry for appends):", head, "-" * len(head)]
    for r in results:
        roles = r.cpu.get("roles", {})
        us = 1e6 / r.rps if r.rps else 0.0
        lines.append(f"{r.label:<22}" + "".join(f"{roles.get(k, 0.0) * us:>10.0f}" for k in ROLE_ORDER)
                     + f"{r.cpu['server_cores'] * us:>8.0f}")
    return "\n".join(lines)


def bottleneck(append: RunResult, frontends: int, machine_cores: int) -> tuple[str, dict[str, Any]]:
    """Where the CPU of the append run went per entry, and a 3-machine capacity derived from it."""
    rate = append.rps
    roles = append.cpu["roles"]
    us = {k: roles.get(k, 0.0) / rate * 1e6 for k in ROLE_ORDER}
    total = sum(us.values())
    lines = [f"bottleneck: CPU of the signed-append run ({rate:,.0f} entries/s over {frontends} front "
             f"end(s), 1 sequencer, all on this {NCPU}-CPU box)",
             f"  {'component':<34}{'cores':>7}{'µs/entry':>10}{'share':>7}"]
    names = {"frontend": f"front ends ({frontends} x 1 worker)", "sequencer": "sequencer",
             "postgres": "PostgreSQL (postmaster + backends)", "radosgw": "radosgw",
             "ceph-osd": "ceph-osd (memstore)", "ceph-mon": "ceph-mon"}
    for k in ROLE_ORDER:
        lines.append(f"  {names[k]:<34}{roles.get(k, 0.0):>7.2f}{us[k]:>10.0f}"
                     f"{(100 * us[k] / total if total else 0):>6.0f}%")
        if k == "frontend":
            for n, c in sorted(append.cpu["components"].items()):
                if n.startswith("fe"):
                    lines.append(f"    {n:<32}{c:>7.2f}{c / rate * 1e6:>10.0f}")
    lines.append(f"  {'all server processes':<34}{append.cpu['server_cores']:>7.2f}{total:>10.0f}")
    lines.append(f"  machine: busy {append.cpu['busy_cores']:.2f} of {NCPU} CPUs; wrk "
                 f"{append.cpu['wrk_cores']:.2f}, bg {append.cpu['bg_cores']:.2f}, steal "
                 f"{append.cpu['steal_cores']:.2f} cores")
    seq = append.extra.get("sequencer", {})
    if seq:
        lines.append(f"  sequencer cycles: {seq['batches']:.0f} batches, mean {seq['mean_batch']:.1f} "
                     f"entries, {seq['integrate_ms_mean']:.1f} ms each; in a cycle "
                     f"{100 * seq['cycle_busy_share']:.0f}% of the time (near 100%: the pipeline waits on "
                     "the sequencer's round trips)")
    # The derivation: each component's ceiling = the cores it gets / its CPU per entry.
    c = machine_cores
    fe_procs = 2 * c
    fe_us = us["frontend"]
    seq_us = us["sequencer"]
    pg_us = us["postgres"]
    store_us = us["radosgw"] + us["ceph-osd"] + us["ceph-mon"]
    ceilings = {
        f"front ends: machines 1-2, {fe_procs} processes on {fe_procs} cores":
            fe_procs / fe_us * 1e6 if fe_us else 0,
        "sequencer: machine 3, one process (at most 1 core)": 1e6 / seq_us if seq_us else 0,
        f"PostgreSQL: machine 3, the other {c - 1} core(s)":
            (c - 1) / pg_us * 1e6 if pg_us and c > 1 else 0,
    }
    lines += ["", f"3-machine deployment, DERIVED from the µs/entry above (not measured): {c} cores per "
              "machine; ceiling = cores / (CPU µs per entry)"]
    for what, ceiling in ceilings.items():
        lines.append(f"  {what:<62}{ceiling:>10,.0f} entries/s")
    bound = min((v, k) for k, v in ceilings.items() if v)
    store_cores = store_us * bound[0] / 1e6
    own = f"; on a {c}-core machine of its own: {c / store_us * 1e6:,.0f} entries/s" if store_us else ""
    lines += [f"  object store (radosgw + osd + mon here; an S3 service outside the 3 machines): "
              f"{store_us:.0f} µs/entry, {store_cores:.1f} cores at the bound below{own}",
              f"  => bound by {bound[1].split(':')[0]} at ~{bound[0]:,.0f} entries/s; this box measured "
              f"{rate:,.0f}/s ({NCPU / total * 1e6 if total else 0:,.0f}/s if all {NCPU} CPUs did only this)",
              "  Caveats: per-batch costs (sequencer, PostgreSQL) shrink per entry as batches grow, so "
              "their ceilings are low estimates; the front-end figure includes its HTTP stack, the "
              "envelope PUT, the queue insert and the receipt; network round trips between machines "
              "are not modelled (they lengthen the sequencer's cycle, not its CPU)."]
    doc = {"rate": rate, "us_per_entry": us, "all_us_per_entry": total, "machine_cores": c,
           "ceilings": ceilings, "bound": {"what": bound[1], "entries_per_s": bound[0]},
           "object_store_us_per_entry": store_us}
    return "\n".join(lines), doc


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--connections", type=int, default=64,
                   help="wrk -c per front end for appends, and for the read runs (default 64)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t per wrk process (default 2)")
    p.add_argument("--frontends", type=int, default=2, help="front-end processes (default 2)")
    p.add_argument("--lease", type=float, default=3.0,
                   help="lease_seconds of the sequencers (default 3, as in production)")
    p.add_argument("--failovers", type=int, default=3, help="leader kills (default 3)")
    p.add_argument("--failover-connections", type=int, default=8,
                   help="wrk -c of the load during a fail-over (default 8)")
    p.add_argument("--max-rate", type=int, default=4000,
                   help="appends/s one front end may reach before its wrk runs out of bodies "
                        "(default 4000)")
    p.add_argument("--machine-cores", type=int, default=NCPU,
                   help="cores per machine in the derived 3-machine figures (default: this box's)")
    p.add_argument("--timeout", type=int, default=10, help="wrk --timeout seconds (default 10)")
    p.add_argument("--bodies-dir", default=os.path.join(tempfile.gettempdir(), "tlog-bench-dist-bodies"),
                   help="cache of generated bodies, one set per front end (reused: every "
                        "invocation uses a fresh log)")
    p.add_argument("--regenerate", action="store_true", help="regenerate the bodies")
    p.add_argument("--quiet-bg", type=float, default=0.4,
                   help="before each run, wait for the machine's load below this many cores "
                        "(default 0.4)")
    p.add_argument("--quiet-timeout", type=float, default=20.0,
                   help="give up waiting for quiet after this many seconds (0: do not wait)")
    p.add_argument("--skip-failover", action="store_true")
    p.add_argument("--skip-tiles", action="store_true")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, server logs)")
    p.add_argument("--show-wrk", action="store_true", help="print wrk's full output per run")
    args = p.parse_args(argv)
    if shutil.which("wrk") is None:
        p.error("wrk is not installed (apt-get install wrk)")
    if args.frontends < 1 or args.failover_connections < args.threads:
        p.error("need --frontends >= 1 and --failover-connections >= --threads")

    # Bodies: one set (key, files) per front end; front end 0 also feeds the fail-over load.
    max_lines = math.ceil(args.max_rate * args.duration / args.threads)
    fo_window = 4 + 4 * args.lease + 10  # load before, lease expiry and takeover, after
    fo_lines = math.ceil(FAILOVER_RATE * fo_window / args.threads)
    failovers = 0 if args.skip_failover else args.failovers
    bodies: list[Bodies] = []
    for i in range(args.frontends):
        per_thread = max_lines + (fo_lines * failovers if i == 0 else 0)
        bodies.append(prepare_bodies("ed25519", Path(args.bodies_dir) / f"fe{i}", per_thread, args.threads,
                                     1024, args.regenerate))

    tmp = Path(tempfile.mkdtemp(prefix="tlog-bench-dist-"))
    report: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items() if k != "json"}, "code": code_state(),
        "machine": {"cpus": NCPU, "loadavg_start": os.getloadavg(), "python": sys.version.split()[0]},
        "bodies": [b.manifest for b in bodies]}
    results: list[RunResult] = []
    appends: list[RunResult] = []
    fo_runs: list[dict[str, Any]] = []
    problems: list[str] = []
    audit_result: dict[str, Any] = {"passed": False, "output": "not run"}
    pg: Postgres | None = None
    ceph: Ceph | None = None
    dist: DistLog | None = None
    completed = False
    try:
        print("bench: starting PostgreSQL and Ceph RGW (about 15 s)...", flush=True)
        pg = Postgres()
        ceph = Ceph()
        dist = DistLog(tmp, ceph.endpoint, ceph.new_bucket(public=True), pg.new_database(),
                       extra={"lease_seconds": args.lease, "allow_raw": False})
        bucket_url = dist.bucket_url()
        seqs = [dist.start("seq1", "sequencer")]
        wait_until("the sequencer to lead", lambda: health(seqs[0]).get("status") == "leader")
        fes = [dist.start(f"fe{i}", "frontend") for i in range(args.frontends)]
        comps = Components()
        postmaster, daemons = engine_pids(pg, ceph)
        comps.trees["postgres"] = postmaster
        comps.roles["postgres"] = "postgres"
        for name, pid in daemons.items():
            comps.single[name] = pid
            comps.roles[name] = name if name in ROLE_ORDER else "ceph-" + name.split(".")[0]
        for i, fe in enumerate(fes):
            assert fe.proc is not None
            comps.groups[f"fe{i}"] = fe.proc.pid
            comps.roles[f"fe{i}"] = "frontend"

        def add_sequencer(proc: ServerProc) -> None:
            assert proc.proc is not None
            name = proc.data_dir.name
            comps.groups[name] = proc.proc.pid
            comps.roles[name] = "sequencer"

        add_sequencer(seqs[0])
        report["processes"] = {"groups": comps.groups, "postmaster": postmaster, "ceph": daemons}
        print(f"bench: bucket {bucket_url}; sequencer {seqs[0].url}; front ends "
              f"{[fe.url for fe in fes]}; postmaster {postmaster}; ceph {daemons}", flush=True)

        def show(r: RunResult) -> None:
            if args.show_wrk and r.wrk_output:
                print(r.wrk_output)
            q = r.quiet
            print(f"bench:   {r.label}: {r.rps:,.0f} req/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, "
                  f"non-2xx {r.non2xx}, sockerr {r.socket_errors}, server {r.cpu['server_cores']:.2f} "
                  f"cores ({r.server_us_per_req:.0f} µs/req), bg {r.cpu['bg_cores']:.2f}"
                  + (f" [waited {q['waited_s']:.1f}s for quiet" + ("" if q.get("quiet") else ", gave up")
                     + "]" if q else ""), flush=True)

        def read_run(label: str, scenario: str, url: str, script: str, sargs: list[str]) -> RunResult:
            print(f"bench: running {label} ({args.duration} s)...", flush=True)
            job = WrkJob(label, scenario, url, script, sargs, args.threads, args.connections, args.duration)
            (r,), cpu, _ = run_wrks([job], comps, args)
            r.server_us_per_req = cpu["server_cores"] / r.rps * 1e6 if r.rps else 0.0
            if r.non2xx or r.socket_errors or not r.requests:
                problems.append(f"{label}: {r.non2xx} non-2xx, {r.socket_errors} socket errors")
            show(r)
            return r

        # 1. Signed appends through every front end at once, between two /healthz baselines.
        results.append(read_run("healthz(before)", "healthz", fes[0].url + "/healthz", "wrk_get.lua", []))
        for b in bodies:
            b.warm(max_lines)
        size0 = bucket_checkpoint(bucket_url)[0]
        seq0 = histograms(seqs[0].url)
        print(f"bench: running signed appends on {len(fes)} front end(s) at once ({args.duration} s)...",
              flush=True)
        jobs = [WrkJob(f"append fe{i}", "append", fe.url, "wrk_attest.lua", b.script_args(max_lines),
                       args.threads, args.connections, args.duration)
                for i, (fe, b) in enumerate(zip(fes, bodies, strict=True))]
        parts, cpu, quiet = run_wrks(jobs, comps, args)
        for i, (part, b) in enumerate(zip(parts, bodies, strict=True)):
            b.advance(part.extra.get("sent") or [])
            # A front end's row: "server" is that front end's process alone.
            own = cpu["components"][f"fe{i}"]
            part.cpu = dict(cpu, server_cores=own, server_sys_cores=cpu["components_sys"][f"fe{i}"])
            part.server_us_per_req = own / part.rps * 1e6 if part.rps else 0.0
        total = combined(f"append x{len(fes)} total", "append", parts, cpu, quiet)
        size1 = settled_size(bucket_url)
        check_append(total, size0, size1, args.connections * len(fes))
        exhausted = sum(int(part.extra.get("exhausted") or 0) for part in parts)
        if exhausted:
            total.extra["append_ok"] = False
            total.extra["append_problems"].append(
                f"a wrk thread ran out of bodies ({exhausted} requests): raise --max-rate")
        total.extra["sequencer"] = sequencer_stats(seq0, histograms(seqs[0].url), cpu["wall_s"])
        total.extra["parts"] = [{"label": x.label, "rps": x.rps, "p50_ms": x.p50_ms, "p99_ms": x.p99_ms,
                                 "statuses": x.statuses} for x in parts]
        for part in parts:
            show(part)
        show(total)
        st = total.extra["sequencer"]
        print(f"bench:   tree {size0} -> {size1} (+{size1 - size0}), 201s {total.extra['created_201']}; "
              f"sequencer: {st['batches']:.0f} batches, mean {st['mean_batch']:.1f} entries (p50 "
              f"{st['batch_p50']}, p99 {st['batch_p99']}), {st['integrate_ms_mean']:.1f} ms per cycle "
              f"(p50 {st['integrate_p50_s']} s, p99 {st['integrate_p99_s']} s), in a cycle "
              f"{100 * st['cycle_busy_share']:.0f}% of the time", flush=True)
        if not total.extra["append_ok"]:
            problems.append(f"append: {total.extra['append_problems']}")
            print(f"bench:   APPEND RUN PROBLEMS: {total.extra['append_problems']}", flush=True)
        appends = [*parts, total]
        results.append(read_run("healthz(after)", "healthz", fes[0].url + "/healthz", "wrk_get.lua", []))

        # 2. Tiles: straight from the bucket, and through a front end.
        full = size1 // 256
        if args.skip_tiles:
            pass
        elif full < 1:
            problems.append(f"tiles: only {size1} entries, not one full tile (run longer)")
        else:
            print(f"bench: {full} full level-0 tiles", flush=True)
            tiles = [str(full)]
            results.append(read_run("tile (bucket)", "tile-bucket", bucket_url + "/", "wrk_tile.lua", tiles))
            results.append(read_run("tile (front end)", "tile-frontend", fes[0].url, "wrk_tile.lua", tiles))

        # 3. Fail-over: a standby joins; kill -9 the leader under load, K times.
        for k in range(failovers):
            standby = dist.start(f"seq{len(seqs) + 1}", "sequencer")
            seqs.append(standby)
            add_sequencer(standby)
            time.sleep(1.0)  # it tries the lease twice a second: it must keep waiting
            live = [s for s in seqs if s.proc is not None and s.proc.poll() is None]
            states = {s.data_dir.name: health(s).get("status") for s in live}
            leaders = [s for s in live if states[s.data_dir.name] == "leader"]
            if len(leaders) != 1 or len(live) != 2:
                problems.append(f"fail-over {k + 1}: sequencer states {states}")
                break
            leader = leaders[0]
            standby = next(s for s in live if s is not leader)
            epoch = health(leader).get("epoch")
            fo = run_failover(k + 1, leader, standby, bodies[0], fo_lines, bucket_url, fes[0], args)
            fo.update(leader=leader.data_dir.name, standby=standby.data_dir.name, epoch_before=epoch)
            fo_runs.append(fo)
            if not fo["ok"]:
                problems.append(f"fail-over {k + 1}: {fo['problems']}")
                if fo.get("checkpoint_s") is None:
                    break
        completed = True
        if dist is not None:
            audit_result = audit(bucket_url, fes[0].data_dir / "client-policy.toml")
    finally:
        if dist is not None:
            dist.stop()
        for engine in (ceph, pg):
            if engine is not None:
                with contextlib.suppress(Exception):
                    engine.close()
        if args.keep:
            print(f"bench: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    hz = [r.rps for r in results if r.scenario == "healthz"]
    baseline = statistics.mean(hz) if hz else 0.0
    rows = results[:1] + appends + results[1:]
    for r in rows:
        r.ratio = r.rps / baseline if baseline else None
    print()
    code = report["code"]
    print(f"tlog bench_dist: {args.frontends} front end(s) x 1 worker, 1 sequencer, PostgreSQL 15 + Ceph RGW "
          f"on this box; wrk -t{args.threads} -c{args.connections} per front end -d{args.duration}s; "
          f"Ed25519 DSSE ~1 KiB; cpus {NCPU}; code {code['commit']}"
          + (f" + {len(code['modified'])} modified file(s)" if code["modified"] else ""))
    print("(srv = every server process: front ends, sequencer, PostgreSQL, Ceph; in the `append feN` rows, "
          "that front end's process alone)")
    print(fmt_table(rows, baseline))
    print(f"baseline /healthz (front end 0) = mean of {[round(x) for x in hz]} = {baseline:,.0f} req/s")
    print()
    print(fmt_components([r for r in rows if not r.label.startswith("append fe")]))
    tb = next((r for r in rows if r.scenario == "tile-bucket"), None)
    tf = next((r for r in rows if r.scenario == "tile-frontend"), None)
    if tb is not None and tf is not None and tf.rps:
        store = sum(tb.cpu["roles"].get(k, 0.0) for k in ("radosgw", "ceph-osd", "ceph-mon"))
        print(f"\ntiles: straight from the bucket {tb.rps:,.0f} GET/s ({tb.rps / tf.rps:.2f}x the front "
              f"end's {tf.rps:,.0f}/s); radosgw + ceph CPU {store / tb.rps * 1e6:.0f} µs per GET "
              f"(front end: {tf.cpu['roles'].get('frontend', 0.0) / tf.rps * 1e6:.0f} µs, full tiles "
              "cached in memory)")
    if fo_runs:
        print()
        print(f"fail-over (lease_seconds = {args.lease:g}; kill -9 of the leader under wrk -c"
              f"{args.failover_connections} on front end 0):")
        print(f"  {'#':<3}{'lease taken s':>14}{'new checkpoint s':>17}{'epoch':>9}{'load req/s':>11}"
              f"{'max lat ms':>11}{'statuses':>16}  ok")
        for fo in fo_runs:
            lt = fo.get("lease_taken_s")
            cp = fo.get("checkpoint_s")
            epochs = f"{fo['epoch_before']}->{fo.get('epoch_after')}"
            print(f"  {fo['n']:<3}{(f'{lt:.2f}' if lt is not None else '-'):>14}"
                  f"{(f'{cp:.2f}' if cp is not None else '-'):>17}{epochs:>9}{fo.get('rps', 0):>11,.0f}"
                  f"{fo.get('max_ms', 0):>11,.0f}{json.dumps(fo.get('statuses', {})):>16}  "
                  f"{'yes' if fo['ok'] else 'NO ' + str(fo['problems'])}")
        times = [fo["checkpoint_s"] for fo in fo_runs if fo.get("checkpoint_s") is not None]
        if times:
            print(f"  kill -9 -> first new checkpoint in the bucket: median {statistics.median(times):.2f} s "
                  f"(min {min(times):.2f}, max {max(times):.2f}) with lease_seconds {args.lease:g}")
            report["failover_median_s"] = statistics.median(times)
    print()
    verdict = "PASSED" if audit_result["passed"] else "FAILED"
    print(f"audit (tlog-client audit --full of the bucket): {verdict}: {audit_result['output'][-300:]}")
    total_run = next((r for r in appends if r.label.endswith("total")), None)
    if total_run is not None and total_run.rps > 0:
        text, doc = bottleneck(total_run, args.frontends, args.machine_cores)
        print()
        print(text)
        report["bottleneck"] = doc
    if problems:
        print("INVALID runs:\n  " + "\n  ".join(problems))

    report["baseline_healthz_rps"] = baseline
    report["results"] = [{k: v for k, v in asdict(r).items() if k != "wrk_output"} for r in rows]
    report["failovers"] = fo_runs
    report["audit"] = audit_result
    report["problems"] = problems
    report["machine"]["loadavg_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"bench: wrote {args.json}")
    return 0 if completed and audit_result["passed"] and not problems else 1


def run_failover(n: int, leader: ServerProc, standby: ServerProc, bodies: Bodies, lines: int,
                 bucket_url: str, fe: ServerProc, args: argparse.Namespace) -> dict[str, Any]:
    """kill -9 the leader under load; time to the standby taking the lease and to the first new
    checkpoint in the bucket. The load (wrk on one front end) runs until 1 s after that."""
    print(f"bench: fail-over {n}: killing leader {leader.data_dir.name} under load...", flush=True)
    bodies.warm(lines)
    before = settled_size(bucket_url, quiet_for=0.5)
    job = WrkJob(f"failover {n}", "failover", fe.url, "wrk_attest.lua", bodies.script_args(lines),
                 args.threads, args.failover_connections, 600)
    proc = start_wrk(job, args.timeout)
    out: dict[str, Any] = {"n": n, "ok": False, "problems": []}
    try:
        wait_until("the load to be published", lambda: bucket_checkpoint(bucket_url)[0] > before + 50, 30)
        time.sleep(1.0)
        assert leader.proc is not None
        killed = time.monotonic()
        leader.kill9()  # the whole process group, then reaps it
        at_kill = bucket_checkpoint(bucket_url)[0]
        deadline = killed + 4 * args.lease + 20
        while time.monotonic() < deadline:
            if out.get("lease_taken_s") is None and health(standby).get("status") == "leader":
                out["lease_taken_s"] = time.monotonic() - killed
            size = bucket_checkpoint(bucket_url)[0]
            if size > at_kill:
                if health(standby).get("status") == "leader":
                    out["checkpoint_s"] = time.monotonic() - killed
                    out.setdefault("lease_taken_s", out["checkpoint_s"])
                    break
                at_kill = size  # the dead leader's last write, landing late
            time.sleep(0.01)
        else:
            out["problems"].append(f"no new checkpoint within {deadline - killed:.0f} s of the kill")
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGINT)  # wrk stops and reports
    r = finish_wrk(job, proc)
    bodies.advance(r.extra.get("sent") or [])
    after = settled_size(bucket_url)
    out["epoch_after"] = health(standby).get("epoch")
    out.update(rps=r.rps, max_ms=r.max_ms, p99_ms=r.p99_ms, statuses=r.statuses,
               tree_before=before, tree_after=after, size_at_kill=at_kill,
               exhausted=int(r.extra.get("exhausted") or 0))
    # Entries answered 201 must all be in the log; a 503 during the gap is reported, not fatal.
    grew, created = after - before, int(r.statuses.get("201", 0))
    if grew < created:
        out["problems"].append(f"tree grew by {grew}, but {created} answers were 201")
    if out["exhausted"]:
        out["problems"].append("the load ran out of bodies")
    out["ok"] = not out["problems"]
    cp = out.get("checkpoint_s")
    print(f"bench:   lease taken {out.get('lease_taken_s', float('nan')):.2f} s, first new checkpoint "
          f"{cp if cp is None else round(cp, 2)} s after kill -9; load {r.rps:,.0f} req/s, max latency "
          f"{r.max_ms:,.0f} ms, statuses {r.statuses}, epoch {out['epoch_after']}", flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
