"""Crash loop (slow): `tlog serve` with 2 workers is SIGKILLed, whole process group, at a
random moment under 64 concurrent submitters, then checked by `tlog fsck` and restarted on
the same data dir, TRIALS times. Every few trials and at the end: every acknowledged entry is
byte for byte at its index, its receipt verifies offline, every acknowledged checkpoint is a
verified consistent prefix of today's tree, and no restart ever served a tree smaller than
something already acknowledged or served.

    pytest -m slow tests/test_crash_loop.py -s     # CRASH_LOOP_SEED / CRASH_LOOP_TRIALS to vary
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.serverproc import ServerProc
from tests.test_durability import _fsck, _load
from tests.test_faults import ARGS, Acked, _cp, check_acknowledged

TRIALS = int(os.environ.get("CRASH_LOOP_TRIALS", "20"))
SEED = int(os.environ.get("CRASH_LOOP_SEED", "20260607"))
CHECK_EVERY = 5


async def _until_killed(srv: ServerProc, tag: str, acked: Acked, delay: float) -> int:
    """Submit under load for `delay` seconds, then kill -9 mid-flight; returns failures."""
    killed = asyncio.Event()
    task = asyncio.create_task(_load(srv.url, tag, acked, 60, killed))
    await asyncio.sleep(delay)
    srv.kill9()
    killed.set()
    return await task


@pytest.mark.slow
def test_crash_loop_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    print(f"\nCRASH_LOOP_SEED={SEED} CRASH_LOOP_TRIALS={TRIALS}")
    data = tmp_path / "data"
    acked: Acked = []
    floor = 0  # the largest tree size acknowledged or served so far
    t_start = time.monotonic()
    for trial in range(TRIALS + 1):
        srv = ServerProc(data, args=ARGS, workers=2).start()
        try:
            size = _cp(httpx.get(srv.url + "/checkpoint", timeout=10).content).size
            assert size >= floor, f"trial {trial}: restarted at size {size} < {floor}"
            if trial == TRIALS or (trial and trial % CHECK_EVERY == 0):
                final = check_acknowledged(srv.url, acked)
                print(f"  checked {len(acked)} acknowledged entries against size {final.size}")
            if trial == TRIALS:
                break
            delay = rng.uniform(0.0, 2.5)
            mine: Acked = []
            failed = asyncio.run(_until_killed(srv, f"t{trial}", mine, delay))
        finally:
            srv.stop()
        acked += mine
        floor = max([floor, size, *(r["inclusion_proof"]["tree_size"] for _, r in mine)])
        check = _fsck(data)
        assert check.returncode == 0, check.stdout + check.stderr
        fsck_size = int(re.search(r"size (\d+)", check.stdout).group(1))  # type: ignore[union-attr]
        assert fsck_size >= floor, (fsck_size, floor)
        print(f"trial {trial}: started at {size}, killed after {delay:.2f} s: {len(mine)} acked, "
              f"{failed} failed; fsck size {fsck_size}")
    assert len(acked) >= TRIALS * 20, len(acked)
    print(f"{TRIALS} trials, {len(acked)} acknowledged entries in {time.monotonic() - t_start:.0f} s")
