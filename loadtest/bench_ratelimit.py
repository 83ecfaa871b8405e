#!/usr/bin/env python3
"""Cost of one rate-limit check: the in-process buckets (one worker) against the table the
workers share (tlog.sharedbuckets: an flock and a few struct reads per check).

    python loadtest/bench_ratelimit.py [--checks N] [--clients K]

Prints µs per check for each and their ratio; rounds alternate between the two.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest.benchlib import paired_medians, print_pair
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
        local, table = RateLimiter(budgets), RateLimiter(budgets, store=shared)
        medians = paired_medians(args.rounds, {
            "in-process buckets": lambda: _per_check(local, clients, args.checks),
            "shared table": lambda: _per_check(table, clients, args.checks)})
        shared.close()
    print(f"{args.clients} clients")
    print_pair(medians, "µs/check", args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
