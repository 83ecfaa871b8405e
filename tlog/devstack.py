"""A log with local witnesses on one machine: what `scripts/run.sh` starts.

    python -m tlog.devstack [--data-dir tlog-data] [--listen 127.0.0.1:8080] [--witnesses 3]
                            [--quorum 2] [--no-tsa] [other `tlog serve` arguments, e.g. --workers 2]

Creates (first run) the log key and empty log, one key and state directory per witness
under `<data-dir>/witnesses/`, starts every witness (`witness serve`, loopback, any free
port) and a time-stamping authority (`python -m tsa serve`, key and chain in
`<data-dir>/tsa/`) for Sigstore bundles, writes `<data-dir>/devstack.toml` (the log's config
naming those witnesses, k of n, and the TSA) and runs `tlog serve` with it. Stops everything
when `tlog serve` exits or on Ctrl-C.
The witnesses here share a machine with the log, so they show the protocol working; they do
not give the independence that real witnesses run by others give.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from client.keyfile import read_key, write_key
from client.note import CosignatureV1Signer, generate_ed25519
from tlog.cli import prepare
from tlog.config import ServeConfig

START_TIMEOUT = 30.0


def _witness_key(path: Path, name: str) -> CosignatureV1Signer:
    if not path.exists():
        write_key(path, generate_ed25519(name))
    seed = read_key(path)
    return CosignatureV1Signer.from_signer(seed)


def start_witness(d: Path, index: int, origin: str, log_vkey: str) -> tuple[subprocess.Popen[str], str, str]:
    """Start witness `index` for the log; returns (process, URL, cosignature vkey)."""
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = _witness_key(d / "witness.key", f"localhost/witness-{index}-{origin.rsplit('-', 1)[-1]}")
    (d / "witness.toml").write_text(
        '[witness]\nkey_file = "witness.key"\ndata_dir = "state"\n\n'
        f"[[log]]\norigin = {json.dumps(origin)}\nkeys = [{json.dumps(log_vkey)}]\n")
    proc, url = _start([sys.executable, "-m", "witness.cli", "serve", "--config", str(d / "witness.toml"),
                        "--listen", "127.0.0.1:0"], d / "witness.log", f"witness {index}")
    return proc, url, key.verifier().vkey()


def start_tsa(d: Path) -> tuple[subprocess.Popen[str], str]:
    """Start the time-stamping authority whose timestamps go into Sigstore bundles (its key
    and certificate chain are created in `d` on first run); returns (process, URL)."""
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return _start([sys.executable, "-m", "tsa", "serve", "--dir", str(d), "--port", "0"],
                  d / "tsa.log", "the TSA")


def _start(cmd: list[str], log_path: Path, what: str) -> tuple[subprocess.Popen[str], str]:
    """Start one of our servers on a free loopback port; returns it and the URL it printed."""
    out = log_path.open("a")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)  # noqa: S603 - ours
    out.close()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = re.findall(r'listening on (http://[^\s"]+)', log_path.read_text())
        if found:
            return proc, found[-1]
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{what} did not start; see {log_path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tlog-devstack", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default="./tlog-data")
    p.add_argument("--listen", default="127.0.0.1:8080")
    p.add_argument("--witnesses", type=int, default=3, help="local witnesses to start (0: none)")
    p.add_argument("--quorum", type=int, default=2, help="cosignatures needed (k of n)")
    p.add_argument("--no-tsa", action="store_true",
                   help="start no time-stamping authority (Sigstore bundles then carry no timestamp)")
    args, serve_args = p.parse_known_args(argv)  # the rest goes to `tlog serve`
    data = Path(args.data_dir).resolve()
    origin, vkey, _ = prepare(ServeConfig(data_dir=str(data)))
    witnesses: list[subprocess.Popen[str]] = []  # and the TSA: the processes to stop
    lines = ["[log]", f"witness_quorum = {min(args.quorum, args.witnesses)}"]
    try:
        for i in range(1, args.witnesses + 1):
            proc, url, wkey = start_witness(data / "witnesses" / f"w{i}", i, origin, vkey)
            witnesses.append(proc)
            print(f"devstack: witness {i} at {url} ({wkey})", flush=True)
            lines += ["", "[[witness]]", f"url = {json.dumps(url)}", f"vkey = {json.dumps(wkey)}"]
        if not args.no_tsa:
            proc, url = start_tsa(data / "tsa")
            witnesses.append(proc)
            print(f"devstack: time-stamping authority at {url} (docs/sigstore.md)", flush=True)
            lines.insert(1, f"tsa_url = {json.dumps(url)}")
        config = data / "devstack.toml"
        config.write_text("\n".join(lines) + "\n")
        serve = subprocess.Popen([sys.executable, "-m", "tlog.cli", "serve", "--data-dir", str(data),  # noqa: S603
                                  "--listen", args.listen, "--config", str(config), *serve_args])
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda s, _f: serve.send_signal(s))
        return serve.wait()
    finally:
        for proc in witnesses:
            proc.terminate()
        for proc in witnesses:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
