"""Appends with witnesses, in both receipt modes (durable acknowledgement, and a receipt that
waits for a cosigned checkpoint), in one run (wrk).

    python loadtest/bench_witnessed.py [--duration 10] [--connections 64] [--wait-connections 256]

One log (raw 200-byte entries), three real `witness serve` processes on loopback (2-of-3),
and four `tlog serve` configurations on the same data dir, one after the other:

    no witnesses          the baseline
    durable ack           witnesses configured, witness_wait = false: answered once durable
    cosigned (1 s)        witness_wait = true, witness_interval = 1 s (the default)
    cosigned (0.1 s)      witness_wait = true, witness_interval = 0.1 s

A waiting receipt takes about one witness round, so the cosigned runs use more connections
(`--wait-connections`); their throughput is bounded by connections / round time, which is
the point of reporting them. Every run must answer only 201s; the cosigned runs must
answer `witnessed: true` (checked on a sample after the run).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from benchlib import fmt_table, run_wrk, wrk_parser  # noqa: E402

from tests.serverproc import ServerProc  # noqa: E402
from tests.test_witnessing import init_log, start_witnesses, witness_vkey  # noqa: E402


def serve(tmp: Path, data: Path, witnesses: list, name: str, lines: list[str]) -> ServerProc:  # type: ignore[type-arg]
    cfg = tmp / f"{name}.toml"
    text = ["[log]", *lines]
    for i, w in enumerate(witnesses):
        text += ["", "[[witness]]", f'url = "{w.url}"', f'vkey = "{witness_vkey(i)}"']
    cfg.write_text("\n".join(text) + "\n")
    return ServerProc(data, args=["--allow-raw", "--config", str(cfg)]).start()


def main() -> int:
    ap = wrk_parser(__doc__.split("\n")[0])
    ap.add_argument("--wait-connections", type=int, default=256)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        witnesses = start_witnesses(tmp)
        data = tmp / "log"
        init_log(data)
        runs = [
            ("no witnesses", [], [], args.connections),
            ("durable ack", ["witness_quorum = 2", "witness_wait = false"], witnesses, args.connections),
            ("cosigned (1 s)", ["witness_quorum = 2", "witness_interval = 1.0"], witnesses,
             args.wait_connections),
            ("cosigned (0.1 s)", ["witness_quorum = 2", "witness_interval = 0.1"], witnesses,
             args.wait_connections),
        ]
        try:
            for label, lines, ws, conns in runs:
                srv = serve(tmp, data, ws, label.split()[0], lines)
                try:
                    assert srv.proc is not None
                    if not results:
                        results.append(run_wrk("healthz", "healthz", srv.url + "/healthz",
                                               "wrk_get.lua", [], args, srv.proc.pid))
                    args.connections, saved = conns, args.connections
                    nonce = os.urandom(4).hex()  # unique entries per run: the log is shared
                    r = run_wrk(label, "append", srv.url, "wrk_append.lua", [nonce], args, srv.proc.pid)
                    args.connections = saved
                    r.extra["connections"] = conns
                    results.append(r)
                    if "cosigned" in label:
                        last = httpx.get(f"{srv.url}/v1/entries/0/receipt", timeout=10).json()
                        r.extra["witnessed_sample"] = last.get("witnessed")
                finally:
                    srv.stop()
        finally:
            for w in witnesses:
                w.stop()
    print(fmt_table(results, results[0].rps))
    for r in results[1:]:
        print(f"{r.label:<18} connections {r.extra['connections']:>4}  statuses {r.statuses}"
              + (f"  sample witnessed={r.extra.get('witnessed_sample')}" if "witnessed_sample" in r.extra
                 else ""))
    ok = all(set(r.statuses) == {"201"} for r in results[1:])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
