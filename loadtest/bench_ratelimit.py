#!/usr/bin/env python3
"""Cost of one rate-limit check: the in-process buckets (one worker) against the table the
workers share (tlog.sharedbuckets: an flock and a few struct reads per check).

    python loadtest/bench_ratelimit.py [--checks N] [--clients K]

Prints µs per check for each and their ratio; rounds alternate between the two.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tlog.ratelimit import Budget, RateLimiter
from tlog.sharedbuckets import SharedBuckets, create


def _per_check(limiter: RateLimiter, clients: list[str], n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        limiter.check("tile", clients[i % len(clients)], t0 + i * 1e-6)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--checks", type=int, default=200_000)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    budgets = {"tile": Budget(rate=1000.0, burst=400)}
    clients = [f"198.51.{i // 256 % 256}.{i % 256}/32" for i in range(args.clients)]
    with tempfile.TemporaryDirectory() as tmp:
        shared = SharedBuckets(create(Path(tmp) / "buckets"))
        limiters = {"in-process": RateLimiter(budgets), "shared": RateLimiter(budgets, store=shared)}
        times: dict[str, list[float]] = {k: [] for k in limiters}
        for _ in range(args.rounds):
            for name, limiter in limiters.items():
                times[name].append(_per_check(limiter, clients, args.checks))
        shared.close()
    a, b = (statistics.median(times[k]) for k in ("in-process", "shared"))
    print(f"in-process buckets: {a:.2f} µs/check (median of {args.rounds}, {args.clients} clients)")
    print(f"shared table:       {b:.2f} µs/check")
    print(f"ratio shared/in-process: {b / a:.2f}  (+{b - a:.2f} µs/check)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
