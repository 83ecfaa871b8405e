#!/usr/bin/env python3
"""Signed-attestation append benchmark of `tlog serve` with wrk: DSSE envelopes (in-toto
Statements, about 1 KiB) signed with Ed25519 or ECDSA P-256, verified by the server.

Run by hand (not a pytest test), from the repository root:

    python loadtest/bench_attest.py [--workers N] [--keys ed25519,ecdsa-p256] [--duration S]
                                    [--repeat R] [--profile DIR] [--json FILE]

What it does:

1. Pre-generates the request bodies, once per key type, and caches them in --bodies-dir:
   `{"dsse": <envelope>, "verifiers": [<PEM public key>]}`, one per line, one file per wrk
   thread. Each envelope carries an in-toto Statement v1 with a unique subject digest (so the
   log, which deduplicates, creates a new entry for every request), a SLSA-shaped predicate
   padded so the compact envelope is --envelope-size bytes (default 1024), and one signature
   over the DSSE PAE with one key per key type. The first body of each file is checked with
   the server's own `client.attest.check_dsse` before any run.
2. Creates a temp data dir, bulk-loads --preload raw entries in-process (so receipts carry
   realistic proofs), then starts `tlog serve --workers N --listen 127.0.0.1:0` (no
   --allow-raw: the benchmark submits only DSSE entries).
3. Runs `wrk --latency -tT -cC -dDs` with wrk_attest.lua: /healthz first, then for each
   repetition one run per key type, then /healthz again (the mean of the two /healthz runs is
   the baseline of the ratios). Each wrk thread reads its own body file from the first body
   not yet sent to this log and sends bodies in order without repeating; per-thread counts
   of consumed bodies come back in the BENCH_JSON line, so the next run continues after them.
   Every status is counted: all must be 201, the tree must grow by the 201s (plus at most
   one in-flight request per connection) and no thread may run out of bodies.
4. Measures around each run (benchlib): server CPU over the whole process group (supervisor,
   HTTP workers and the sequencer child), split per process role, and for each HTTP worker per
   thread (the event-loop thread vs the `tlog-verify` pool threads); wrk CPU; background load
   (busy CPU minus server, wrk and this script); steal. Also the sequencer's batch sizes.
5. With --profile DIR: after the measured runs, two extra Ed25519 runs under py-spy
   (`py-spy record --threads --nonblocking`, 100 Hz): the first samples every thread that is
   on a CPU or runnable, in every HTTP worker and in the sequencer (`-f raw`), plus a
   `-f chrometrace` of each worker to time how often the event-loop thread and the
   `tlog-verify` pool threads are active at the same moment; the second samples only the
   thread holding the GIL (`--gil`, `-f raw`) in the workers. It prints per-thread activity,
   named shares (signature verification, JCS, HTTP stack, thread hand-offs, sequencer parts)
   and the top functions. Profiled runs are reported separately: py-spy costs CPU too.
6. Stops the server and runs `tlog fsck --data-dir DIR`. The exit status is 0 only if fsck
   passed and every attestation run was valid (only 201s, tree growth matches, no body
   exhausted).

Goals (issue 15, 2-core machine), printed as a MET / NOT MET table from the median run per
key type: >= 8,000 Ed25519 appends/s with --workers 2 (>= 5,000 with --workers 1), <= 180 us
of server CPU per append and p99 <= 100 ms (--workers 2), ECDSA P-256 within 15% of Ed25519,
and <= 30 us of sequencer CPU per entry (the indexer's CPU is shown beside it).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchlib import (
    CLK_TCK,
    HERE,
    NCPU,
    RunResult,
    ServerProc,
    check_append,
    fmt_table,
    group_ticks_by_pid,
    healthz_baseline,
    preload,
    run_wrk,
    sequencer_stats,
    server_roles,
    start_server,
    teardown,
    thread_ticks,
    tree_size,
    warm,
)

KEY_TYPES = ("ed25519", "ecdsa-p256")
REKOR = "rekor-p256"
"""Opt-in (--keys ...,rekor-p256): the same ECDSA P-256 DSSE envelopes through the Rekor v2
API (`dsseRequestV002` to POST /api/v2/log/entries), paired with the /v1 ECDSA runs."""
PATHS = {REKOR: "/api/v2/log/entries"}
GOAL_RPS_W2 = 8000.0  # issue 15: signed appends/s with --workers 2 ...
GOAL_RPS_W1 = 5000.0  # ... and with --workers 1
GOAL_SERVER_US = 180.0  # server CPU per append (--workers 2)
GOAL_P99_MS = 100.0
GOAL_ECDSA_RATIO = 0.85  # ECDSA P-256 within 15% of Ed25519
GOAL_SEQUENCER_US = 30.0  # sequencer CPU per entry
BODIES_FORMAT = 1
# Default --max-rate: the most appends/s a run can sustain before a wrk thread runs out of
# bodies (a run that runs out is reported invalid; a body is never repeated). Bodies are
# generated for every run at this rate unless --bodies is given.
MAX_RATE = 12_000
INTOTO = "application/vnd.in-toto+json"
PY_SPY = os.environ.get("PY_SPY") or shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")


# --- request bodies ----------------------------------------------------------------------------


def _private_key(kind: str, der: bytes | None = None) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if der is not None:
        return serialization.load_der_private_key(der, password=None)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind in ("ecdsa-p256", REKOR):
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key type {kind!r}")


def _signer(kind: str, key: Any) -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    if kind == "ed25519":
        return key.sign
    algorithm = ec.ECDSA(hashes.SHA256())
    return lambda msg: key.sign(msg, algorithm)  # DER, as most DSSE signers emit


def _statement(nonce: str, kind: str, n: int, pad: str) -> dict[str, Any]:
    """An in-toto Statement v1 with one subject whose digest is unique per (nonce, kind, n),
    and a SLSA-provenance-shaped predicate carrying `pad`."""
    import hashlib

    tag = f"{nonce}:{kind}:{n}".encode()
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": f"dist/bench-app-{n}.tar.gz",
                     "digest": {"sha256": hashlib.sha256(tag).hexdigest()}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://tlog.example/bench/build@v1",
                "externalParameters": {"ref": "refs/heads/main", "padding": pad},
                "resolvedDependencies": [{
                    "uri": "git+https://git.example.com/bench/app",
                    "digest": {"gitCommit": hashlib.sha1(tag, usedforsecurity=False).hexdigest()},
                }],
            },
            "runDetails": {"builder": {"id": "https://tlog.example/bench/builder@v1"}},
        },
    }


def _envelope(payload: bytes, sig: bytes) -> dict[str, Any]:
    import base64

    return {"payload": base64.b64encode(payload).decode(), "payloadType": INTOTO,
            "signatures": [{"keyid": "", "sig": base64.b64encode(sig).decode()}]}


def _statement_len(kind: str, sign: Any, envelope_size: int) -> int:
    """Statement length (bytes) whose compact envelope is at most `envelope_size` bytes."""
    import orjson

    from client.attest import pae

    sig = sign(pae(INTOTO, b"x"))
    overhead = len(orjson.dumps(_envelope(b"", sig)))
    return 3 * ((envelope_size - overhead) // 4)


def _generate_file(kind: str, key_der: bytes, pem: str, nonce: str, path: str, first: int,
                   count: int, stmt_len: int) -> tuple[int, int]:
    """Write `count` request bodies (one per line) for global sequence numbers first.."""
    import orjson

    from client.attest import pae

    key = _private_key(kind, key_der)
    sign = _signer(kind, key)
    verifiers = [pem]
    if kind == REKOR:
        import base64

        from cryptography.hazmat.primitives import serialization

        spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        verifier = {"publicKey": {"rawBytes": base64.b64encode(spki).decode()},
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256"}
    lengths = set()
    with open(path + ".tmp", "wb") as out:
        for n in range(first, first + count):
            base = len(orjson.dumps(_statement(nonce, kind, n, "")))
            if base > stmt_len:
                raise ValueError(f"--envelope-size too small: the statement alone is {base} B")
            payload = orjson.dumps(_statement(nonce, kind, n, "x" * (stmt_len - base)))
            env = _envelope(payload, sign(pae(INTOTO, payload)))
            lengths.add(len(orjson.dumps(env)))
            if kind == REKOR:
                env["signatures"][0].pop("keyid")
                body = {"dsseRequestV002": {"envelope": env, "verifiers": [verifier]}}
            else:
                body = {"dsse": env, "verifiers": verifiers}
            out.write(orjson.dumps(body) + b"\n")
    os.replace(path + ".tmp", path)
    return min(lengths), max(lengths)


@dataclass
class Bodies:
    """One key type's pre-generated bodies: one file per wrk thread, and a cursor per file
    (the first line not yet sent to the current log)."""

    kind: str
    prefix: str  # files are f"{prefix}{tid}.jsonl"
    manifest: dict[str, Any]
    offsets: list[list[int]]  # per thread: byte offset of every line start, plus the file size
    cursor: list[int]

    def remaining(self) -> list[int]:
        return [len(o) - 1 - c for o, c in zip(self.offsets, self.cursor, strict=True)]

    def _span(self, t: int, max_lines: int) -> tuple[int, int]:
        o, c = self.offsets[t], self.cursor[t]
        return o[c], o[min(c + max_lines, len(o) - 1)] - o[c]

    def script_args(self, max_lines: int) -> list[str]:
        """wrk_attest.lua arguments: each thread reads at most `max_lines` bodies from its
        cursor (a run never needs more: --max-rate x --duration / threads)."""
        spans = [self._span(t, max_lines) for t in range(len(self.offsets))]
        return [self.prefix, ",".join(str(off) for off, _ in spans),
                str(max(n for _, n in spans)), PATHS.get(self.kind, "/v1/entries")]

    def advance(self, consumed: list[int]) -> None:
        for t, n in enumerate(consumed):
            self.cursor[t] = min(self.cursor[t] + int(n), len(self.offsets[t]) - 1)

    def warm(self, max_lines: int) -> int:
        """Read what the next run may send into the page cache (DAMON evicts page cache idle
        for ~60 s), so wrk's init() does not wait on the disk."""
        total = 0
        for t in range(len(self.offsets)):
            off, n = self._span(t, max_lines)
            fd = os.open(f"{self.prefix}{t}.jsonl", os.O_RDONLY)
            try:
                while n > 0 and (got := os.pread(fd, min(1 << 22, n), off)):
                    off += len(got)
                    n -= len(got)
                    total += len(got)
            finally:
                os.close(fd)
        return total


def _line_offsets(path: Path) -> list[int]:
    data = path.read_bytes()
    offs = [0]
    pos = data.find(b"\n")
    while pos >= 0:
        offs.append(pos + 1)
        pos = data.find(b"\n", pos + 1)
    if offs[-1] != len(data):
        raise RuntimeError(f"{path}: last line has no newline")
    return offs


def prepare_bodies(kind: str, bodies_dir: Path, per_thread: int, threads: int,
                   envelope_size: int, regenerate: bool) -> Bodies:
    """Load the cached bodies for `kind` if they fit, else generate them (2 processes)."""
    import orjson
    from cryptography.hazmat.primitives import serialization

    from client.attest import check_dsse
    from client.rekor import check_create_entry

    d = bodies_dir / kind
    d.mkdir(parents=True, exist_ok=True)
    prefix = str(d / "bodies-t")
    mpath = d / "manifest.json"
    manifest: dict[str, Any] | None = None
    if mpath.exists() and not regenerate:
        m = json.loads(mpath.read_text())
        files_ok = all(Path(f"{prefix}{t}.jsonl").exists() for t in range(threads))
        if (files_ok and m.get("format") == BODIES_FORMAT and m.get("threads") == threads
                and m.get("envelope_size") == envelope_size and m.get("per_thread", 0) >= per_thread):
            manifest = m
    if manifest is None:
        t0 = time.perf_counter()
        key = _private_key(kind)
        key_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        nonce = os.urandom(8).hex()
        stmt_len = _statement_len(kind, _signer(kind, key), envelope_size)
        print(f"bench: generating {threads} x {per_thread:,} {kind} bodies in {d} ...", flush=True)
        with ProcessPoolExecutor(min(threads, NCPU)) as pool:
            futs = [pool.submit(_generate_file, kind, key_der, pem, nonce, f"{prefix}{t}.jsonl",
                                t * per_thread, per_thread, stmt_len) for t in range(threads)]
            sizes = [f.result() for f in futs]
        manifest = {"format": BODIES_FORMAT, "kind": kind, "threads": threads,
                    "per_thread": per_thread, "envelope_size": envelope_size,
                    "envelope_bytes": [min(s[0] for s in sizes), max(s[1] for s in sizes)],
                    "statement_bytes": stmt_len, "nonce": nonce, "public_key_pem": pem,
                    "generate_s": round(time.perf_counter() - t0, 2)}
        mpath.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"bench:   generated in {manifest['generate_s']} s", flush=True)
    offsets = [_line_offsets(Path(f"{prefix}{t}.jsonl")) for t in range(threads)]
    for t, o in enumerate(offsets):
        if len(o) - 1 < per_thread:
            raise RuntimeError(f"{prefix}{t}.jsonl has {len(o) - 1} bodies, need {per_thread}")
        # The server's own checks must accept what we send (and it must be an attestation).
        with open(f"{prefix}{t}.jsonl", "rb") as fh:
            doc = orjson.loads(fh.readline())
        if kind == REKOR:
            check_create_entry(doc)
        else:
            check_dsse(doc["dsse"], doc["verifiers"])
    body_len = offsets[0][1] - 1
    manifest["request_body_bytes"] = body_len
    print(f"bench: {kind}: {threads} x {min(len(o) - 1 for o in offsets):,} bodies, envelope "
          f"{manifest['envelope_bytes'][0]}-{manifest['envelope_bytes'][1]} B, request body "
          f"~{body_len} B", flush=True)
    return Bodies(kind, prefix, manifest, offsets, [0] * threads)


# --- per-process and per-thread CPU of the server ------------------------------------------------


class ServerCpu:
    """Snapshots of the server's CPU per process role and, per HTTP worker, per thread."""

    def __init__(self, pgid: int, workers: int) -> None:
        self.pgid, self.workers = pgid, workers
        self.roles = server_roles(pgid, workers)
        self.t0 = self.t1 = 0.0
        self.p0: dict[int, int] = {}
        self.p1: dict[int, int] = {}
        self.th0: dict[int, dict[int, int]] = {}
        self.th1: dict[int, dict[int, int]] = {}
        self.rq0 = self.rq1 = 0
        self.pc0: list[int] = []
        self.pc1: list[int] = []

    def worker_pids(self) -> list[int]:
        return sorted(p for p, r in self.roles.items() if r == "worker")

    def start(self) -> None:
        self.roles = server_roles(self.pgid, self.workers)
        self.t0 = time.monotonic()
        self.p0 = group_ticks_by_pid(self.pgid)
        self.th0 = {p: thread_ticks(p) for p in self.worker_pids()}
        self.rq0 = runqueue_wait_ns(self.p0)
        self.pc0 = per_cpu_busy()

    def stop(self) -> None:
        self.t1 = time.monotonic()
        self.p1 = group_ticks_by_pid(self.pgid)
        self.th1 = {p: thread_ticks(p) for p in self.worker_pids()}
        self.rq1 = runqueue_wait_ns(self.p1)
        self.pc1 = per_cpu_busy()

    def result(self, names: dict[int, str] | None = None) -> dict[str, Any]:
        wall = self.t1 - self.t0
        per_role: dict[str, float] = collections.defaultdict(float)
        for pid, t in self.p1.items():
            per_role[self.roles.get(pid, "other")] += (t - self.p0.get(pid, 0)) / CLK_TCK / wall
        loop = pool = 0.0
        threads: dict[str, float] = {}
        for pid, after in self.th1.items():
            before = self.th0.get(pid, {})
            for tid, t in after.items():
                cores = (t - before.get(tid, 0)) / CLK_TCK / wall
                if tid == pid:
                    loop += cores
                else:
                    pool += cores
                label = (names or {}).get(tid) or ("loop" if tid == pid else "thread")
                threads[f"{pid}/{tid} {label}"] = round(cores, 3)
        return {"wall_s": wall, "roles": dict(per_role), "loop_cores": loop,
                "other_thread_cores": pool, "threads": threads,
                # threads of the server that were runnable but waited for a CPU (in cores)
                "runqueue_wait_cores": (self.rq1 - self.rq0) / 1e9 / wall,
                # busy share of each CPU, whoever used it
                "per_cpu_busy": [round((b - a) / CLK_TCK / wall, 3)
                                 for a, b in zip(self.pc0, self.pc1, strict=False)]}


def per_cpu_busy() -> list[int]:
    """Busy clock ticks (user+nice+system+irq+softirq) of each CPU, from /proc/stat."""
    out = []
    with open("/proc/stat") as fh:
        for line in fh:
            if line.startswith("cpu") and line[3].isdigit():
                v = [int(x) for x in line.split()[1:8]]
                out.append(v[0] + v[1] + v[2] + v[5] + v[6])
    return out


def runqueue_wait_ns(pids: Any) -> int:
    """Time the threads of these processes spent runnable but waiting for a CPU
    (/proc/<pid>/task/<tid>/schedstat, field 2, ns), summed. Threads that exited in between
    are lost, which is fine for a long-lived server."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return total


def thread_names(pid: int) -> dict[int, str]:
    """tid -> Python thread name, from `py-spy dump` (best effort, empty if unavailable)."""
    try:
        out = subprocess.run([PY_SPY, "dump", "-p", str(pid)], capture_output=True, text=True,
                             timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {int(t): n for t, n in re.findall(r'^Thread (\d+) \([^)]*\): "([^"]*)"', out, re.M)}


# --- py-spy profile ----------------------------------------------------------------------------

_RAW = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(.*) \((.*?)(?::(\d+))?\)$")

# Named shares (inclusive: a sample counts if any frame of its stack matches; "leaf:" only
# the innermost frame), in the order they are printed. Patterns are matched against
# "function (file)" with line numbers removed.
CATEGORIES = [
    ("signature verify (verify_message: OpenSSL verify, GIL released)", r"^verify_message "),
    ("  check_dsse total (parse, keys, verify, JCS, leaf)", r"^check_dsse "),
    ("  PEM public key parsing (load_public_key)", r"^load_public_key "),
    ("  RFC 8785 JCS canonicalize", r"^canonicalize(_record)? \(client/jcs"),
    ("  strict base64 decoding", r"^b64decode_any "),
    ("  in-toto Statement parsing", r"^parse_statement "),
    ("submit: leaf hash, dedupe lookup, send to sequencer", r"^Submitter\.submit "),
    ("receipts: inclusion proofs per batch (_answer_batch)", r"^Submitter\._answer_batch "),
    ("receipt JSON (_receipt_json: base64 of the proof)", r"^(_json|LogApp\._receipt_json) "),
    ("request body read (small_body, spooled_body)", r"^(small_body|spooled_body) "),
    ("uvicorn protocol code, self (parse, send)", r"leaf:\(uvicorn/"),
    ("starlette code, self (routing, middleware, Request/Response)", r"leaf:\(starlette/"),
    ("metrics middleware HTTPInstrument, self", r"leaf:^HTTPInstrument\.__call__ "),
    ("event loop internals, self (uvloop run loop, asyncio)", r"leaf:^Runner\.run |leaf:\(asyncio/"),
    ("thread hand-off: run_in_executor/submit, future chaining back to the loop",
     r"^(BaseEventLoop\.run_in_executor|ThreadPoolExecutor\.submit|_chain_future\S*"
     r"|_copy_future_state|_set_concurrent_future_state|wrap_future) "),
    ("pool thread in the executor loop itself (leaf frame _worker)",
     r"leaf:^_worker \(concurrent/futures/thread"),
    ("sequencer: LogStore.append (tree, tiles, LMDB, fsync, checkpoint)", r"^LogStore\.append "),
    ("  LogStore.append self (LMDB puts/commit: pwrite + fdatasync)", r"leaf:^LogStore\.append "),
    ("  checkpoint note signing", r"^sign_note "),
    ("sequencer: socket read / frame decode", r"^(SequencerProcess\._read|FrameReader\.feed) "),
    ("sequencer: select() wait", r"^(BaseSelector\.select|EpollSelector\.select|select) "),
    ("indexer: one index transaction (SearchIndex.catch_up)", r"^SearchIndex\.catch_up "),
    ("  reading the new entries (iter_entries)", r"^LogStore\.iter_entries "),
    ("  search terms (search_keys -> parse_leaf -> JCS)", r"^search_keys "),
    ("  catch_up self (LMDB puts/commit: pwrite + fdatasync)", r"leaf:^SearchIndex\.catch_up "),
]


def _module(frame: str) -> str:
    """Where a frame's code lives: the project file (client/x.py, tlog/x.py) or the library."""
    m = re.search(r"\(([^()]*)\)$", frame)
    path = m.group(1) if m else ""
    if path.startswith(("client/", "tlog/")):
        return path
    if frame.startswith("Runner.run "):
        return "uvloop (C event loop, under Runner.run)"
    head = path.split("/")[0] or path
    return head.removesuffix(".py")


def _norm(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    func, path = m.group(1), m.group(2)
    return f"{func} ({path})"


def parse_raw(path: Path) -> list[tuple[int, str, list[str], int]]:
    """py-spy raw (`--threads`): (tid, thread name, frames outermost first, count)."""
    out = []
    for line in path.read_text().splitlines():
        m = _RAW.match(line)
        if not m:
            continue
        stack, count = m.group(1), int(m.group(2))
        parts = stack.split(";")
        tid, name = 0, ""
        head = re.match(r"^thread \((?:0x)?([0-9A-Fa-f]+)\): ?(.*)$", parts[0])
        if head:
            tid = int(head.group(1), 16 if parts[0].startswith("thread (0x") else 10)
            name = head.group(2)
            parts = parts[1:]
        out.append((tid, name, parts, count))
    return out


def summarize_profile(path: Path, seconds: float, rate: int, top: int = 25) -> dict[str, Any]:
    """Per-thread activity and where the samples go. `ticks` = seconds x rate sampling
    instants; a thread's activity = its samples / ticks (1.0 = on a CPU, or holding the GIL
    for a --gil profile, all the time)."""
    rows = parse_raw(path)
    total = sum(c for *_, c in rows)
    ticks = max(1, round(seconds * rate))
    per_thread: dict[str, int] = collections.Counter()
    self_t: dict[str, int] = collections.Counter()
    incl: dict[str, int] = collections.Counter()
    cats: dict[str, int] = collections.Counter()
    mods: dict[str, int] = collections.Counter()
    # "leaf:" patterns match the innermost frame only (self samples), others any frame.
    cat_re = [(name, p.startswith("leaf:"), re.compile(p.removeprefix("leaf:").replace("|leaf:", "|")))
              for name, p in CATEGORIES]
    for tid, name, frames, count in rows:
        per_thread[f"{name or 'thread'} ({tid})"] += count
        norm = [_norm(f) for f in frames]
        if norm:
            self_t[norm[-1]] += count
            mods[_module(norm[-1])] += count
        for f in set(norm):
            incl[f] += count
        for cname, leaf_only, rx in cat_re:
            if any(rx.search(f) for f in (norm[-1:] if leaf_only else norm)):
                cats[cname] += count
    pct = (lambda n: 100.0 * n / total) if total else (lambda n: 0.0)
    return {
        "file": str(path), "samples": total, "ticks": ticks,
        "mean_active_threads": total / ticks,
        "threads": {k: {"samples": v, "activity": v / ticks, "pct": pct(v)}
                    for k, v in sorted(per_thread.items(), key=lambda kv: -kv[1])},
        "self_top": [(f, pct(n)) for f, n in self_t.most_common(top)],
        "inclusive_top": [(f, pct(n)) for f, n in incl.most_common(top)],
        "categories": [(c, pct(cats[c])) for c, _ in CATEGORIES if cats[c]],
        "self_by_module": [(m, pct(n)) for m, n in mods.most_common()],
    }


def fmt_profile(title: str, s: dict[str, Any], n_self: int = 18, n_incl: int = 22) -> str:
    lines = [f"--- {title}: {s['samples']} samples over ~{s['ticks']} sampling instants "
             f"(mean {s['mean_active_threads']:.2f} threads active per instant) ---",
             "  threads (activity = share of sampling instants the thread was sampled in; "
             "sum over threads = mean busy threads):"]
    for k, v in s["threads"].items():
        lines.append(f"    {k:<40} {v['activity']:6.2f}  ({v['pct']:5.1f}% of samples)")
    lines.append("  named shares (inclusive, % of samples):")
    for c, p in s["categories"]:
        lines.append(f"    {p:5.1f}%  {c}")
    lines.append("  self samples by module (sums to 100%):")
    lines.append("    " + ", ".join(f"{m} {p:.1f}%" for m, p in s["self_by_module"][:14]))
    lines.append("  top functions by self samples:")
    for f, p in s["self_top"][:n_self]:
        lines.append(f"    {p:5.1f}%  {f}")
    lines.append("  top functions by inclusive samples:")
    for f, p in s["inclusive_top"][:n_incl]:
        lines.append(f"    {p:5.1f}%  {f}")
    return "\n".join(lines)


class Profiler:
    """py-spy record jobs (pid, role, format) for `seconds`, all with `--threads
    --nonblocking` (and `--gil` if asked).

    --nonblocking: py-spy reads the stacks without stopping the process, and a thread counts
    as active when its OS state is R (on a CPU or runnable). In the default (blocking) mode on
    this VM, threads sleeping in Condition.wait or on the executor queue were reported active
    (the sequencer-watch thread, which polls every 0.2 s, showed up 31% of the time)."""

    def __init__(self, out_dir: Path, jobs: list[tuple[int, str, str]], seconds: float,
                 rate: int, gil: bool, tag: str) -> None:
        self.out_dir, self.jobs, self.seconds, self.rate = out_dir, jobs, seconds, rate
        self.gil, self.tag = gil, tag
        self.procs: list[tuple[int, str, str, Path, subprocess.Popen[bytes]]] = []
        self.sampler: StateSampler | None = None

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.sampler is not None:
            self.sampler.start()
        for pid, role, fmt in self.jobs:
            ext = "raw" if fmt == "raw" else "json"
            out = self.out_dir / f"{self.tag}-{role}-{pid}.{ext}"
            cmd = [PY_SPY, "record", "-p", str(pid), "-f", fmt, "-o", str(out), "--threads",
                   "--nonblocking", "-r", str(self.rate), "-d", str(math.ceil(self.seconds))]
            if self.gil:
                cmd.append("--gil")
            log = open(out.with_suffix(".log"), "wb")  # noqa: SIM115 - the child holds it
            self.procs.append((pid, role, fmt, out,
                               subprocess.Popen(cmd, stdout=log, stderr=log)))
            log.close()

    def stop_sampler(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()

    def wait(self) -> list[tuple[int, str, str, Path]]:
        done = []
        for pid, role, fmt, out, proc in self.procs:
            try:
                proc.wait(timeout=self.seconds + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if out.exists():
                done.append((pid, role, fmt, out))
        return done


class StateSampler:
    """Samples the scheduler state (/proc/<pid>/task/<tid>/stat: R = on a CPU or runnable,
    S = sleeping, e.g. in epoll or waiting for the GIL on a futex, D = disk wait) of each
    HTTP worker's event-loop thread and its `tlog-verify` pool threads, every `period` s, in
    a thread of this script. Answers: how often do the loop and a pool thread run at the
    same moment? (py-spy cannot: its chrometrace output does not mark idle gaps.)"""

    def __init__(self, threads: dict[int, dict[int, str]], period: float = 0.001) -> None:
        self.threads = threads  # pid -> {tid: "loop" | "pool"}
        self.period = period
        self.counts: dict[int, collections.Counter[str]] = {
            pid: collections.Counter() for pid in threads}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="state-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()

    def _run(self) -> None:
        fds = {pid: [(os.open(f"/proc/{pid}/task/{tid}/stat", os.O_RDONLY), role)
                     for tid, role in tids.items()] for pid, tids in self.threads.items()}
        try:
            while not self._stop.wait(self.period):
                for pid, items in fds.items():
                    loop = pool = 0
                    cpus = set()
                    for fd, role in items:
                        try:
                            raw = os.pread(fd, 512, 0)
                        except OSError:
                            continue
                        f = raw[raw.rindex(b")") + 2 :].split()
                        if f[0] == b"R":
                            cpus.add(f[36])  # the CPU it last ran on (stat field 39)
                            if role == "loop":
                                loop = 1
                            else:
                                pool += 1
                    c = self.counts[pid]
                    c["n"] += 1
                    c["loop"] += loop
                    c["pool_any"] += pool > 0
                    c["pool_two"] += pool > 1
                    c["loop_and_pool"] += loop and pool > 0
                    c["several_r_one_cpu"] += loop + pool > 1 and len(cpus) == 1
                    c["neither"] += not loop and not pool
        finally:
            for items in fds.values():
                for fd, _ in items:
                    os.close(fd)

    def result(self) -> dict[str, dict[str, float]]:
        return {str(pid): {k: v / c["n"] for k, v in c.items() if k != "n"} | {"samples": c["n"]}
                for pid, c in self.counts.items() if c["n"]}


def fmt_overlap(pid: str, o: dict[str, float]) -> str:
    return (f"  worker {pid}: share of {o['samples']:.0f} instants (1 ms apart) in state R: "
            f"event loop {o['loop']:.2f}; any verify-pool thread {o['pool_any']:.2f} (both "
            f"{o['pool_two']:.2f}); loop AND a pool thread {o['loop_and_pool']:.2f}; two or "
            f"more R on the same CPU {o['several_r_one_cpu']:.2f}; neither {o['neither']:.2f}\n"
            "  (R = on a CPU or runnable; compare with the /proc CPU split: R time above the "
            "CPU time is time spent waiting for a CPU)")


# --- orchestration -----------------------------------------------------------------------------


def code_state() -> dict[str, Any]:
    """The commit and the modified files of the server code being measured (best effort)."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], capture_output=True, text=True, cwd=HERE.parent,
                                  timeout=10, check=False).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "modified": git("status", "--porcelain", "--", "tlog", "client").splitlines()}


def fmt_roles(results: list[RunResult]) -> str:
    head = (f"{'run':<22}{'workers':>9}{'sequencer':>10}{'indexer':>8}{'supervisor':>11}{'loop thr':>9}"
            f"{'pool thr':>9}{'runq wait':>10}{'cpu busy':>12}{'batches':>9}{'mean batch':>11}"
            f"{'ms/batch':>9}")
    lines = [head, "-" * len(head)]
    for r in results:
        sc = r.extra.get("server_cpu")
        if not sc:
            continue
        roles = sc["roles"]
        seq = r.extra.get("sequencer") or {}
        batches = sum(s["batches"] for s in seq.values())
        entries = sum(s["entries"] for s in seq.values())
        busy = sum(s["integrate_busy_s"] for s in seq.values())
        lines.append(
            f"{r.label:<22}{roles.get('worker', 0):>9.2f}{roles.get('sequencer', 0):>10.2f}"
            f"{roles.get('indexer', 0):>8.2f}"
            f"{roles.get('supervisor', 0):>11.2f}{sc['loop_cores']:>9.2f}"
            f"{sc['other_thread_cores']:>9.2f}{sc.get('runqueue_wait_cores', 0):>10.2f}"
            f"{'/'.join(f'{x:.2f}' for x in sc.get('per_cpu_busy', [])):>12}"
            f"{batches:>9.0f}"
            f"{(entries / batches if batches else 0):>11.1f}"
            f"{(1000 * busy / batches if batches else 0):>9.2f}")
    return "\n".join(lines)


def _median_run(results: list[RunResult], scenario: str) -> RunResult | None:
    runs = sorted((r for r in results if r.scenario == scenario), key=lambda r: r.rps)
    return runs[len(runs) // 2] if runs else None


def _ecdsa_ratio(results: list[RunResult], num: str = "attest-ecdsa-p256",
                 den: str = "attest-ed25519") -> float | None:
    """Median over `num` (ECDSA) runs of its rate / the mean of the `den` (Ed25519) runs just
    before and after it. Runs alternate Ed25519, ECDSA, ... and the log grows run after run
    (every run costs a little more than the one before it), so comparing medians would favour
    the earlier key type."""
    runs = [r for r in results if r.scenario in (den, num)]
    ratios = []
    for i, r in enumerate(runs):
        if r.scenario != num:
            continue
        near = [x.rps for x in (runs[i - 1] if i else None, runs[i + 1] if i + 1 < len(runs) else None)
                if x is not None and x.scenario == den]
        if near:
            ratios.append(r.rps / (sum(near) / len(near)))
    return statistics.median(ratios) if ratios else None


def fmt_goals(results: list[RunResult], workers: int) -> str:
    """The issue's goal rows this benchmark measures, from the median run per key type:
    MET / NOT MET each (an invalid run never meets a goal)."""
    ed, ec = _median_run(results, "attest-ed25519"), _median_run(results, "attest-ecdsa-p256")
    rows: list[tuple[str, str, str, bool]] = []

    def valid(r: RunResult) -> bool:
        return bool(r.extra.get("append_ok"))

    if ed is not None:
        target = GOAL_RPS_W2 if workers >= 2 else GOAL_RPS_W1
        rows.append((f"Ed25519 DSSE appends/s, --workers {workers}", f"{ed.rps:,.0f}",
                     f">= {target:,.0f}", valid(ed) and ed.rps >= target))
        if workers >= 2:
            rows.append(("  server CPU per append", f"{ed.server_us_per_req:.0f} us",
                         f"<= {GOAL_SERVER_US:.0f} us", valid(ed) and ed.server_us_per_req <= GOAL_SERVER_US))
            rows.append(("  p99 latency", f"{ed.p99_ms:.0f} ms", f"<= {GOAL_P99_MS:.0f} ms",
                         valid(ed) and ed.p99_ms <= GOAL_P99_MS))
        roles = (ed.extra.get("server_cpu") or {}).get("roles", {})
        seq_us = roles.get("sequencer", 0.0) / ed.rps * 1e6 if ed.rps else 0.0
        idx_us = roles.get("indexer", 0.0) / ed.rps * 1e6 if ed.rps else 0.0
        rows.append(("sequencer CPU per entry", f"{seq_us:.0f} us (+ indexer {idx_us:.0f} us)",
                     f"<= {GOAL_SEQUENCER_US:.0f} us", valid(ed) and seq_us <= GOAL_SEQUENCER_US))
    ratio = _ecdsa_ratio(results)
    if ed is not None and ec is not None and ratio is not None:
        rows.append(("ECDSA P-256 vs Ed25519 appends/s", f"{ec.rps:,.0f}: {ratio:.2f}x (paired)",
                     f">= {GOAL_ECDSA_RATIO:.2f}x", valid(ed) and valid(ec) and ratio >= GOAL_ECDSA_RATIO))
    rk = _median_run(results, f"attest-{REKOR}")
    rk_ratio = _ecdsa_ratio(results, f"attest-{REKOR}", "attest-ecdsa-p256")
    if rk is not None and ec is not None and rk_ratio is not None:
        rows.append(("Rekor v2 API vs /v1, ECDSA DSSE", f"{rk.rps:,.0f}: {rk_ratio:.2f}x (paired)",
                     "(no goal)", valid(rk) and valid(ec)))
    head = f"{'goal (issue 15)':<40}{'measured':>30}{'goal':>14}  result"
    lines = ["goals (median run per key type):", head, "-" * len(head)]
    lines += [f"{name:<40}{got:>30}{goal:>14}  {'MET' if ok else 'NOT MET'}"
              for name, got, goal, ok in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=1, help="tlog serve --workers (default 1)")
    p.add_argument("--keys", default=",".join(KEY_TYPES),
                   help="comma list among ed25519,ecdsa-p256 (default both)")
    p.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    p.add_argument("--repeat", type=int, default=1,
                   help="runs per key type, interleaved (default 1)")
    p.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    p.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    p.add_argument("--timeout", type=int, default=10,
                   help="wrk --timeout seconds (default 10, so slow replies count in p99)")
    p.add_argument("--preload", type=int, default=100_000,
                   help="raw entries bulk-loaded before the server starts (default 100000)")
    p.add_argument("--batch", type=int, default=10_000, help="preload batch size (default 10000)")
    p.add_argument("--max-rate", type=int, default=MAX_RATE,
                   help="appends/s a run may reach before it runs out of bodies; each wrk "
                        "thread loads rate x duration / threads bodies per run "
                        f"(default {MAX_RATE:,})")
    p.add_argument("--bodies", type=int, default=0,
                   help="bodies per key type (default: --max-rate x --duration x runs)")
    p.add_argument("--envelope-size", type=int, default=1024,
                   help="bytes of each compact DSSE envelope (default 1024)")
    p.add_argument("--bodies-dir", default=os.path.join(tempfile.gettempdir(),
                                                        "tlog-bench-attest-bodies"),
                   help="cache of generated bodies (reused across invocations: every "
                        "invocation uses a fresh log)")
    p.add_argument("--regenerate", action="store_true", help="regenerate the bodies")
    p.add_argument("--profile", metavar="DIR",
                   help="after the measured runs, profile two extra Ed25519 runs with py-spy "
                        "and write the raw profiles to DIR")
    p.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s (default 100)")
    p.add_argument("--summarize", nargs="+", metavar="RAW",
                   help="only print the summary of existing py-spy raw files (recorded for "
                        "--duration seconds at --profile-rate) and exit")
    p.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for `tlog serve` (repeatable), e.g. "
                        "--serve-arg=--config --serve-arg=/tmp/tlog.toml")
    p.add_argument("--quiet-bg", type=float, default=0.4,
                   help="before each run, wait for bg load below this many cores (default 0.4)")
    p.add_argument("--quiet-timeout", type=float, default=40.0,
                   help="give up waiting for quiet after this many seconds (0: do not wait)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temp data dir")
    p.add_argument("--show-wrk", action="store_true", help="print wrk's full output per run")
    args = p.parse_args(argv)
    if args.summarize:
        for f in args.summarize:
            print(fmt_profile(f, summarize_profile(Path(f), args.duration, args.profile_rate)))
        return 0
    keys = [k.strip() for k in args.keys.split(",") if k.strip()]
    for k in keys:
        if k not in (*KEY_TYPES, REKOR):
            p.error(f"unknown key type {k!r}")
    if args.profile and "ed25519" not in keys:
        p.error("--profile profiles Ed25519 runs: include ed25519 in --keys")
    if args.profile and not Path(PY_SPY).exists():
        p.error(f"py-spy not found ({PY_SPY}); set PY_SPY")
    if shutil.which("wrk") is None:
        p.error("wrk is not installed (apt-get install wrk)")

    max_lines = math.ceil(args.max_rate * args.duration / args.threads)
    runs_per_key = {k: args.repeat + (2 if args.profile and k == "ed25519" else 0) for k in keys}
    bodies: dict[str, Bodies] = {}
    for k in keys:
        total = args.bodies or args.max_rate * args.duration * runs_per_key[k]
        per_thread = math.ceil(total / args.threads)
        bodies[k] = prepare_bodies(k, Path(args.bodies_dir), per_thread, args.threads,
                                   args.envelope_size, args.regenerate)

    tmp = Path(tempfile.mkdtemp(prefix="tlog-bench-attest-"))
    data_dir = tmp / "data"
    report: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "code": code_state(),
        "machine": {"cpus": NCPU, "loadavg_start": os.getloadavg(),
                    "python": sys.version.split()[0]},
        "bodies": {k: b.manifest for k, b in bodies.items()},
    }
    results: list[RunResult] = []
    profiled: list[RunResult] = []
    profiles: list[dict[str, Any]] = []
    server: ServerProc | None = None
    fsck_result: dict[str, Any] = {"passed": False, "output": "not run"}
    completed = False
    try:
        print(f"bench: data dir {data_dir}; preloading {args.preload} raw entries", flush=True)
        secs = preload(data_dir, args.preload, args.batch, seed=4242)
        report["preload"] = {"entries": args.preload, "seconds": secs}
        server, pgid = start_server(data_dir, args.workers, args.serve_arg)
        url = server.url
        roles = server_roles(pgid, args.workers)
        print(f"bench: server {url}, {args.workers} worker(s), processes "
              f"{ {pid: r for pid, r in sorted(roles.items())} }", flush=True)
        report["server_processes"] = {str(k): v for k, v in roles.items()}

        def measure(label: str, scenario: str, script: str, sargs: list[str],
                    profiler: Profiler | None = None) -> RunResult:
            print(f"bench: running {label} ({args.duration} s)...", flush=True)
            cpu = ServerCpu(pgid, args.workers)

            def on_start() -> None:
                cpu.start()
                if profiler is not None:
                    profiler.start()

            def on_end() -> None:
                cpu.stop()
                if profiler is not None:
                    profiler.stop_sampler()

            r = run_wrk(label, scenario, url if scenario != "healthz" else url + "/healthz",
                        script, sargs, args, pgid, on_start=on_start, on_end=on_end)
            r.extra["server_cpu"] = cpu.result()
            if args.show_wrk:
                print(r.wrk_output)
            q = r.quiet
            sc = r.extra["server_cpu"]
            print(f"bench:   {r.rps:,.0f} req/s, p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms, "
                  f"non-2xx {r.non2xx}, server {r.cpu['server_cores']:.2f} cores "
                  f"({r.server_us_per_req:.0f} us/req; workers {sc['roles'].get('worker', 0):.2f}, "
                  f"sequencer {sc['roles'].get('sequencer', 0):.2f}; loop threads "
                  f"{sc['loop_cores']:.2f}, other threads {sc['other_thread_cores']:.2f}), "
                  f"wrk {r.cpu['wrk_cores']:.2f}, bg {r.cpu['bg_cores']:.2f}"
                  + (f" [waited {q['waited_s']:.1f}s for quiet"
                     + ("" if q.get("quiet") else ", gave up") + "]" if q else ""), flush=True)
            return r

        def attest_run(kind: str, label: str, profiler: Profiler | None = None) -> RunResult:
            b = bodies[kind]
            b.warm(max_lines)
            before = tree_size(url)
            seq_before = sequencer_stats(url, args.workers)
            r = measure(label, f"attest-{kind}", "wrk_attest.lua", b.script_args(max_lines),
                        profiler)
            consumed = r.extra.get("sent") or []
            if len(consumed) != args.threads:
                raise RuntimeError(f"wrk_attest.lua reported no per-thread counts: {consumed}")
            b.advance(consumed)
            time.sleep(0.5)  # let requests in flight when wrk stopped finish committing
            check_append(r, before, tree_size(url), args.connections)
            if r.extra.get("exhausted"):
                r.extra["append_ok"] = False
                r.extra["append_problems"].append(
                    f"a wrk thread ran out of bodies ({r.extra['exhausted']} requests): use more "
                    "--bodies or a shorter --duration")
            # /metrics batch counters are cumulative: keep this run's difference.
            seq_after = sequencer_stats(url, args.workers)
            seq = {}
            for w, st in seq_after.items():
                prev = seq_before.get(w, {"batches": 0.0, "entries": 0.0, "integrate_busy_s": 0.0})
                n = st["batches"] - prev["batches"]
                if n > 0:
                    e = st["entries"] - prev["entries"]
                    busy = st["integrate_busy_s"] - prev["integrate_busy_s"]
                    seq[w] = {"batches": n, "entries": e, "mean_batch": e / n,
                              "integrate_ms_per_batch": 1000 * busy / n, "integrate_busy_s": busy}
            r.extra["sequencer"] = seq
            for st in seq.values():  # one sequencer (every worker relays its counters)
                print(f"bench:   sequencer: {st['batches']:.0f} batches, mean "
                      f"{st['mean_batch']:.1f} entries, {st['integrate_ms_per_batch']:.2f} ms/batch "
                      f"integrating, busy {st['integrate_busy_s']:.1f} s")
            if not r.extra["append_ok"]:
                print(f"bench:   ATTEST RUN PROBLEMS: {r.extra['append_problems']}")
            r.extra["bodies_left_per_thread"] = b.remaining()
            return r

        results.append(measure("healthz(before)", "healthz", "wrk_get.lua", []))
        for rep in range(args.repeat):
            for k in keys:
                label = k if args.repeat == 1 else f"{k} #{rep + 1}"
                w = warm(data_dir)
                results.append(attest_run(k, label))
                results[-1].extra["warm"] = w
        results.append(measure("healthz(after)", "healthz", "wrk_get.lua", []))

        if args.profile:
            out_dir = Path(args.profile)
            roles = server_roles(pgid, args.workers)
            names: dict[int, str] = {}
            for pid, role in roles.items():
                if role == "worker":
                    names.update(thread_names(pid))
            cpu_jobs = [(pid, r, "raw") for pid, r in sorted(roles.items())
                        if r in ("worker", "sequencer", "indexer")]
            gil_jobs = [(pid, r, "raw") for pid, r in sorted(roles.items()) if r == "worker"]
            for tag, gil, jobs in (("cpu", False, cpu_jobs), ("gil", True, gil_jobs)):
                prof = Profiler(out_dir, jobs, args.duration, args.profile_rate, gil, tag)
                sampler = None
                if tag == "cpu":
                    sampler = StateSampler({
                        pid: {tid: ("loop" if tid == pid else "pool")
                              for tid, n in thread_names(pid).items()
                              if tid == pid or n.startswith("tlog-verify")}
                        for pid, r in roles.items() if r == "worker"})
                    prof.sampler = sampler
                warm(data_dir)
                r = attest_run("ed25519", f"ed25519 py-spy {tag}", prof)
                r.extra["server_cpu"]["thread_names"] = {str(t): n for t, n in names.items()}
                profiled.append(r)
                for pid, role, _fmt, path in prof.wait():
                    s = summarize_profile(path, args.duration, args.profile_rate)
                    s.update(pid=pid, role=role, mode=tag)
                    profiles.append(s)
                if sampler is not None:
                    overlap = sampler.result()
                    r.extra["thread_states"] = overlap
                    report["thread_states"] = overlap
        completed = True
    finally:
        fsck_result = teardown(server, data_dir, tmp, keep=args.keep) or fsck_result

    baseline = healthz_baseline(results)
    for r in results + profiled:
        r.ratio = r.rps / baseline if baseline else None

    print()
    if profiles:
        print("py-spy profiles of the extra Ed25519 runs (see also the 'py-spy' rows below):")
        states = report.get("thread_states") or {}
        if states:
            print("--- event loop vs verify pool, sampled from /proc during the py-spy cpu run ---")
            for pid, o in states.items():
                print(fmt_overlap(pid, o))
        for s in profiles:
            what = ("threads on a CPU or runnable" if s["mode"] == "cpu"
                    else "only the thread holding the GIL")
            print(fmt_profile(f"{s['role']} {s['pid']}, {what}", s))
        print()
    b0 = next(iter(bodies.values())).manifest
    code = report["code"]
    print(f"tlog bench_attest: workers={args.workers} wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration}s, preload {args.preload}, envelopes ~{b0['envelope_bytes'][1]} B, "
          f"cpus {NCPU}; code {code['commit']}"
          + (f" + {len(code['modified'])} modified file(s)" if code["modified"] else ""))
    print(fmt_table(results + profiled, baseline))
    hz = [round(r.rps) for r in results if r.scenario == "healthz"]
    print(f"baseline /healthz = mean of {hz} = {baseline:,.0f} req/s")
    print()
    print("server CPU split (cores): HTTP workers / sequencer / supervisor; worker event-loop "
          "threads vs other worker threads (tlog-verify pool); runq wait = server threads "
          "runnable but waiting for a CPU; sequencer batches")
    print(fmt_roles(results + profiled))
    print()
    print(fmt_goals(results, args.workers))
    for r in results:
        if r.scenario.startswith("attest-") and not r.extra.get("append_ok"):
            print(f"  {r.label}: INVALID: {r.extra.get('append_problems')} "
                  f"(201s {r.extra.get('created_201')}, other statuses "
                  f"{r.extra.get('other_statuses') or {}}, tree +{r.extra.get('tree_growth')})")
    print(f"fsck: {'PASSED' if fsck_result['passed'] else 'FAILED'}: {fsck_result['output']}")

    report["baseline_healthz_rps"] = baseline
    report["results"] = [{k: v for k, v in asdict(r).items() if k != "wrk_output"}
                         for r in results]
    report["profiled_results"] = [{k: v for k, v in asdict(r).items() if k != "wrk_output"}
                                  for r in profiled]
    report["profiles"] = profiles
    report["fsck"] = fsck_result
    report["machine"]["loadavg_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"bench: wrote {args.json}")
    attest_ok = all(r.extra.get("append_ok", True) for r in results + profiled)
    return 0 if completed and fsck_result["passed"] and attest_ok else 1


if __name__ == "__main__":
    sys.exit(main())
