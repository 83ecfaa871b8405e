"""Appends with the TPM signer vs the Ed25519-only signer, same log, same run (wrk).

    python loadtest/bench_tpm.py [--duration 10] [--connections 64]

A real swtpm, `tlog tpm init`, then `tlog serve --allow-raw` twice on the same data dir:
once with only its Ed25519 key, once with `--tpm` (every checkpoint also signed by the
ECDSA key in the TPM: one TPM signature per committed batch). Raw 200-byte appends, all
answers must be 201. Prints the table with req/s, p50/p99 and server CPU per append.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchlib import fmt_table, run_wrk, wrk_parser  # noqa: E402

from tests.serverproc import ServerProc  # noqa: E402
from tests.swtpm import Swtpm  # noqa: E402


def main() -> int:
    args = wrk_parser(__doc__.split("\n")[0]).parse_args()
    results = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        tpm = Swtpm(tmp / "tpm").start()
        data = tmp / "data"
        try:
            subprocess.run([sys.executable, "-m", "tlog.cli", "tpm", "init", "--data-dir", str(data),
                            "--tcti", tpm.tcti], check=True, timeout=120, capture_output=True)
            for label, extra in (("ed25519 only", []), ("ed25519 + TPM", ["--tpm", tpm.tcti]),
                                 ("ed25519 only (again)", [])):
                srv = ServerProc(data, args=["--allow-raw", *extra]).start()
                try:
                    assert srv.proc is not None
                    if not results:
                        results.append(run_wrk("healthz", "healthz", srv.url + "/healthz", "wrk_get.lua",
                                               [], args, srv.proc.pid))
                    results.append(run_wrk(label, "append", srv.url, "wrk_append.lua",
                                           [os.urandom(4).hex()], args, srv.proc.pid))
                finally:
                    srv.stop()
        finally:
            tpm.stop()
    print(fmt_table(results, results[0].rps))
    for r in results[1:]:
        print(f"{r.label:<22} statuses {r.statuses}  batches: see server metrics")
    return 0 if all(set(r.statuses) == {"201"} for r in results[1:]) else 1


if __name__ == "__main__":
    sys.exit(main())
