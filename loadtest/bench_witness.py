"""Witness throughput: add-checkpoint requests/s against a real `witness serve` with 1,000 logs.

    python loadtest/bench_witness.py [--logs 1000] [--rounds 10] [--concurrency 64]

Each configured log has its own Ed25519 key and an in-memory tree; every round, each log's
next checkpoint (one more entry) is sent with its consistency proof from the previous one,
so every request is a full check: log signature, consistency proof, cosignature (Ed25519),
compare-and-swap commit with fsync. Requests for one log are sent in order (never two at
once: the witness would answer 409), logs in parallel over `--concurrency` connections
(aiohttp). Prints requests/s, latency percentiles, the witness's CPU per request, and a
`GET /healthz` baseline from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from benchlib import process_cpu  # noqa: E402

from client import merkle  # noqa: E402
from client.checkpoint import Checkpoint  # noqa: E402
from client.encoding import b64encode  # noqa: E402
from client.keyfile import write_key  # noqa: E402
from client.note import Ed25519Signer, sign_note  # noqa: E402
from tests.serverproc import WitnessProc  # noqa: E402


def requests_for_log(n: int, rounds: int) -> tuple[str, str, list[bytes]]:
    """(origin, vkey, bodies): checkpoints of sizes 1..rounds, each with its proof."""
    origin = f"bench.example/log-{n}"
    signer = Ed25519Signer(origin, n.to_bytes(4, "big") * 8)
    leaves = [merkle.leaf_hash(f"{origin}/{i}".encode()) for i in range(rounds)]

    def read(nodes: list[tuple[int, int]]) -> list[bytes]:
        out = []
        for level, index in nodes:
            hashes = leaves[index << level : (index + 1) << level]
            while len(hashes) > 1:
                hashes = [merkle.node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
            out.append(hashes[0])
        return out

    bodies = []
    for size in range(1, rounds + 1):
        note = sign_note(Checkpoint(origin, size, merkle.tree_root(size, read)).text(), [signer])
        old = size - 1
        proof = merkle.consistency_proof(old, size, read) if old else []
        bodies.append(f"old {old}\n".encode() + b"".join(b64encode(h).encode() + b"\n" for h in proof)
                      + b"\n" + note)
    return origin, signer.verifier().vkey(), bodies


cpu_seconds = process_cpu


async def drive(url: str, per_log: list[list[bytes]], concurrency: int) -> tuple[list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue: asyncio.Queue[list[bytes]] = asyncio.Queue()
    for bodies in per_log:
        queue.put_nowait(list(bodies))
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def worker() -> None:
            while not queue.empty():
                bodies = queue.get_nowait()
                body = bodies.pop(0)
                t0 = time.perf_counter()
                async with session.post(url + "/add-checkpoint", data=body) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                latencies.append(time.perf_counter() - t0)
                if bodies:
                    queue.put_nowait(bodies)  # the log's next checkpoint, after this one

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses


async def healthz_rate(url: str, seconds: float, concurrency: int) -> float:
    done = 0
    end = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < end:
                async with session.get(url + "/healthz") as resp:
                    await resp.read()
                done += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--logs", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    t0 = time.monotonic()
    logs = [requests_for_log(n, args.rounds) for n in range(args.logs)]
    print(f"prepared {args.logs * args.rounds:,} requests for {args.logs:,} logs in "
          f"{time.monotonic() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_key(d / "witness.key", Ed25519Signer("bench.example/witness", b"\x77" * 32))
        lines = ['[witness]', 'key_file = "witness.key"', "rate_per_log = 1000.0", "burst = 1000"]
        for origin, vkey, _ in logs:
            lines += ["[[log]]", f'origin = "{origin}"', f'keys = ["{vkey}"]']
        (d / "witness.toml").write_text("\n".join(lines) + "\n")
        w = WitnessProc(d / "state", args=["--config", str(d / "witness.toml")]).start(timeout=120)
        try:
            assert w.proc is not None
            base = asyncio.run(healthz_rate(w.url, 3.0, args.concurrency))
            (u0, s0), t0 = cpu_seconds(w.proc.pid), time.monotonic()
            latencies, statuses = asyncio.run(drive(w.url, [b for _, _, b in logs], args.concurrency))
            (u1, s1), wall = cpu_seconds(w.proc.pid), time.monotonic() - t0
            cpu, sys_cpu = (u1 - u0) + (s1 - s0), s1 - s0
        finally:
            w.stop()
    n = len(latencies)
    q = statistics.quantiles(latencies, n=100)
    print(f"healthz baseline: {base:,.0f} req/s")
    print(f"add-checkpoint: {n:,} requests in {wall:.1f} s = {n / wall:,.0f} req/s "
          f"({n / wall / base:.2f}x healthz); p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms; "
          f"witness CPU {cpu / n * 1e6:.0f} us/request ({sys_cpu / n * 1e6:.0f} in the kernel); "
          f"statuses {statuses}")
    return 0 if statuses == {200: n} else 1


if __name__ == "__main__":
    sys.exit(main())
