"""The indexer process: follows the committed log and keeps its derived index (tlog.index).

The sequencer starts it and writes a byte to its stdin after each commit that added
entries; the indexer then indexes everything new, at most once per `INTERVAL`, so one
index transaction covers many batches. stdin is also its lifeline: when the sequencer goes
(in any way, even SIGKILL), the pipe closes and the indexer exits. Nothing here is needed
for durability: a lost or stale index is derived again from the log.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from client.logs import setup_logging
from tlog.index import SearchIndex
from tlog.storage import LogStore

log = logging.getLogger("tlog.indexer")

INTERVAL = 0.05
"""Seconds between index transactions while entries keep coming: each then holds about
this much of the log's appends (hundreds of entries under load), and search answers scan
that much above the watermark."""


def run(data_dir: Path, map_size: int) -> None:
    store = LogStore(data_dir, map_size=map_size)
    index = SearchIndex(data_dir, map_size=map_size)
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ)
    print("tlog-indexer: ready", flush=True)
    def lifeline_closed(timeout: float) -> bool:
        return bool(sel.select(timeout)) and not os.read(sys.stdin.fileno(), 65536)

    try:
        while not lifeline_closed(1.0):
            while True:  # a long backlog (a rebuild) goes in chunks, watching the lifeline
                done, size = index.catch_up(store)
                if done >= size or lifeline_closed(0):
                    break
            time.sleep(INTERVAL)
    finally:
        index.close()
        store.close()


class IndexerChild:
    """The sequencer's side: start the indexer, wake it after commits, restart it if it
    died (at most every `RESTART_DELAY` seconds), stop it by closing its lifeline."""

    RESTART_DELAY = 1.0

    def __init__(self, data_dir: str, map_size: int, log_format: str) -> None:
        self.command = [sys.executable, "-m", "tlog.indexer", "--data-dir", data_dir,
                        "--map-size", str(map_size), "--log-format", log_format]
        self.proc: subprocess.Popen[bytes] | None = None
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE,  # noqa: S603
                                     stdout=subprocess.DEVNULL)
        assert self.proc.stdin is not None
        os.set_blocking(self.proc.stdin.fileno(), False)

    def notify(self) -> None:
        """New entries are committed. A full pipe already holds a wake-up: nothing to add."""
        proc = self.proc
        if proc is None or proc.stdin is None:
            return
        try:
            os.write(proc.stdin.fileno(), b"n")
        except BlockingIOError:
            pass
        except OSError:  # it died: `check` restarts it
            pass

    def check(self) -> None:
        """Restart a dead indexer (it logged why); the index is derived, so nothing is lost."""
        proc = self.proc
        if proc is None or proc.poll() is None or time.monotonic() - self._started < self.RESTART_DELAY:
            return
        log.error("the indexer exited with code %s; restarting it", proc.returncode)
        self._close(proc)
        self.start()

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        self._close(proc)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    @staticmethod
    def _close(proc: subprocess.Popen[bytes]) -> None:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tlog-indexer")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--map-size", type=int, default=64 << 30)
    p.add_argument("--log-format", default="text")
    args = p.parse_args(argv)
    setup_logging(args.log_format, "tlog-indexer")
    # Like the sequencer: signals to the process group do not stop it; its lifeline does.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        run(Path(args.data_dir), args.map_size)
    except Exception:
        log.exception("the indexer stopped")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
