"""`tlog-client audit --full` on a large log: replay every entry, recompute every tile and root.

    python loadtest/bench_audit.py [--size 1000000] [--entry-bytes 120] [--workers 2]

Bulk-loads `--size` random entries at the storage level (one transaction per batch: far
faster than over HTTP), serves the log
with a real `tlog serve`, then runs the real CLI (`tlog-client audit --full`) against it with
a fresh trust state, and prints entries/s with the CPU split between the client and the
server. It then interrupts a second audit halfway (SIGINT) and resumes it, to show the resume
path at this scale too.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from benchlib import CLK_TCK, group_ticks  # noqa: E402

from client.keyfile import write_key  # noqa: E402
from client.note import Ed25519Signer, sign_note  # noqa: E402
from client.policy import TrustPolicy  # noqa: E402
from tests.serverproc import ServerProc  # noqa: E402
from tlog.storage import LogStore  # noqa: E402

ORIGIN = "audit.example/log"


def load(data: Path, size: int, entry_bytes: int, signer: Ed25519Signer) -> float:
    t0 = time.monotonic()
    store = LogStore(data, create=True, map_size=1 << 34)
    store.initialize(ORIGIN, lambda t: sign_note(t, [signer]))
    rng = random.Random(1)
    for lo in range(0, size, 50_000):
        n = min(50_000, size - lo)
        store.append([rng.randbytes(entry_bytes) + lo.to_bytes(8, "big") + i.to_bytes(4, "big")
                      for i in range(n)], lambda t: sign_note(t, [signer]))
    store.close()
    write_key(data / "log.key", signer)
    return time.monotonic() - t0


def group_cpu(pid: int) -> float:
    """CPU seconds of every process in the server's process group."""
    return group_ticks(pid)[0] / CLK_TCK


def audit(policy: Path, state: Path, interrupt_after: float | None = None) -> tuple[int, str, float]:
    cmd = [sys.executable, "-m", "client.cli", "audit", "--full", "--policy", str(policy),
           "--state", str(state)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=interrupt_after or 3600)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return proc.returncode, out + err[-2000:], cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--entry-bytes", type=int, default=120)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    signer = Ed25519Signer(ORIGIN, os.urandom(32))
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        data, state = Path(tmp) / "data", Path(tmp) / "state"
        secs = load(data, args.size, args.entry_bytes, signer)
        print(f"bulk-loaded {args.size:,} entries of {args.entry_bytes + 12} bytes in {secs:.1f} s")
        server = ServerProc(data, args=["--origin", ORIGIN], workers=args.workers).start()
        try:
            policy = Path(tmp) / "policy.json"
            doc = TrustPolicy(ORIGIN, (signer.verifier(),), allow_raw_log=True).to_dict()
            policy.write_bytes(orjson.dumps(dict(doc, url=server.url)))
            srv0, t0 = group_cpu(server.proc.pid), time.monotonic()  # type: ignore[union-attr]
            code, out, cpu = audit(policy, state)
            wall = time.monotonic() - t0
            srv = group_cpu(server.proc.pid) - srv0  # type: ignore[union-attr]
            print(next((ln for ln in out.splitlines() if ln.startswith("ok:")), out))
            if code != 0:
                print(out)
                return 1
            print(f"full audit: {args.size / wall:,.0f} entries/s wall ({wall:.1f} s); client CPU "
                  f"{cpu / args.size * 1e6:.1f} us/entry, server CPU {srv / args.size * 1e6:.1f} us/entry")
            # Interrupt a fresh audit halfway, then resume it.
            state2 = Path(tmp) / "state2"
            code, out, _ = audit(policy, state2, interrupt_after=wall / 2)
            code, out, _ = audit(policy, state2)
            m = re.search(r"resumed at (\d+)", out)
            print(f"interrupted + resumed: exit {code}, "
                  f"{'resumed at ' + m.group(1) if m else 'NOT resumed'}")
            return 0 if code == 0 and m else 1
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
