#!/usr/bin/env python3
"""The sequencer's durable commit in-process: `LogStore.append` of DSSE entries by batch size.

Run by hand, from the repository root:

    python loadtest/bench_sequencer.py [--preload 50000] [--batches 1,20,50,100] [--entries 10000]

A temp log is preloaded with DSSE leaves and their ~1 KiB canonical envelopes (built as
check_dsse builds them; the signatures are not checked here), then `--entries` more are
appended in batches of each size. Per batch size: wall and CPU time per batch and per entry,
the commit's share (page writes and both fdatasyncs), and LMDB pages written per batch
(`wchar` of /proc/self/io: LMDB writes each dirty page once per commit). The per-batch part
of the cost is what larger batches amortise.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from client.keyfile import read_key  # noqa: E402
from client.note import sign_note  # noqa: E402
from tests.test_budgets import _entries, _wchar  # noqa: E402
from tlog.cli import prepare  # noqa: E402
from tlog.config import ServeConfig  # noqa: E402
from tlog.storage import LogStore  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--preload", type=int, default=50_000)
    p.add_argument("--batches", default="1,20,50,100")
    p.add_argument("--entries", type=int, default=10_000, help="entries appended per batch size")
    args = p.parse_args(argv)
    sizes = [int(b) for b in args.batches.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="tlog-bench-seq-"))
    try:
        data = tmp / "data"
        prepare(ServeConfig(data_dir=str(data)))
        signer = read_key(data / "log.key")

        def sign(text: str) -> bytes:
            return sign_note(text, [signer])

        entries = _entries(args.preload + args.entries * len(sizes))
        store = LogStore(data)
        try:
            for start in range(0, args.preload, 5000):
                chunk = entries[start : min(start + 5000, args.preload)]
                store.append([e[0] for e in chunk], sign, blobs=[e[1] for e in chunk])
            print(f"bench: {args.preload} DSSE entries preloaded; {args.entries} more per batch size")
            print(f"{'batch':>6}{'ms/batch':>10}{'commit ms':>11}{'cpu us/batch':>14}{'cpu us/entry':>14}"
                  f"{'pages/batch':>13}")
            pos = args.preload
            for size in sizes:
                n = args.entries // size
                w0, c0, t0, commit = _wchar(), time.process_time(), time.perf_counter(), 0.0
                for _ in range(n):
                    chunk = entries[pos : pos + size]
                    pos += size
                    commit += store.append([e[0] for e in chunk], sign,
                                           blobs=[e[1] for e in chunk]).commit_seconds
                wall, cpu, pages = time.perf_counter() - t0, time.process_time() - c0, (_wchar() - w0) / 4096
                print(f"{size:>6}{wall / n * 1e3:>10.2f}{commit / n * 1e3:>11.2f}{cpu / n * 1e6:>14.0f}"
                      f"{cpu / (n * size) * 1e6:>14.1f}{pages / n:>13.1f}")
        finally:
            store.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
