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


MIN_FREE = 64 << 20
"""Free bytes on the data dir's filesystem below which the indexer waits: the log's own
commits need the last of the space more (they are what submitters wait for)."""


def _room(path: Path) -> bool:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize >= MIN_FREE


def run(data_dir: Path, map_size: int) -> None:
    store = LogStore(data_dir, map_size=map_size, readonly=True)
    index = SearchIndex(data_dir, map_size=map_size)
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ)

    def lifeline_closed(timeout: float) -> bool:
        return bool(sel.select(timeout)) and not os.read(sys.stdin.fileno(), 65536)

    try:
        while not lifeline_closed(1.0):
            while _room(data_dir):  # a long backlog (a rebuild) goes in chunks
                done, size = index.catch_up(store)
                if done >= size or lifeline_closed(0):
                    break
            time.sleep(INTERVAL)
    finally:
        index.close()
        store.close()


class IndexerChild:
    """The sequencer's side: start the indexer, wake it after commits, restart it if it
    died (after `RESTART_DELAY` seconds, doubling while it keeps dying, up to a minute),
    stop it by closing its lifeline."""

    RESTART_DELAY = 1.0

    def __init__(self, data_dir: str, map_size: int, log_format: str) -> None:
        self.command = [sys.executable, "-m", "tlog.indexer", "--data-dir", data_dir,
                        "--map-size", str(map_size), "--log-format", log_format]
        self.proc: subprocess.Popen[bytes] | None = None
        self._delay = self.RESTART_DELAY
        self._retry_at = 0.0

    def start(self) -> None:
        """Start it; a failure to start (no memory, no file descriptors) is retried later."""
        try:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE,  # noqa: S603
                                         stdout=subprocess.DEVNULL)
        except OSError as exc:
            log.error("could not start the indexer (%s); retrying in %.0f s", exc, self._delay)
            self.proc = None
            self._backoff()
            return
        assert self.proc.stdin is not None
        os.set_blocking(self.proc.stdin.fileno(), False)
        self._retry_at = time.monotonic() + self._delay  # dying before this doubles the delay

    def notify(self) -> None:
        """New entries are committed. A full pipe already holds a wake-up: nothing to add."""
        proc = self.proc
        if proc is None or proc.stdin is None:
            return
        with contextlib.suppress(OSError):  # BlockingIOError: a wake-up is pending; else it died
            os.write(proc.stdin.fileno(), b"n")

    def check(self) -> bool:
        """Restart a dead indexer (it logged why); the index is derived, so nothing is lost.
        True when one was found dead: its LMDB reader slots may then be stale."""
        proc = self.proc
        if proc is None:
            if self._retry_at and time.monotonic() >= self._retry_at:
                self.start()
            return False
        if proc.poll() is None:
            return False
        log.error("the indexer exited with code %s; restarting it", proc.returncode)
        self._close(proc)
        self.proc = None
        if time.monotonic() < self._retry_at:
            self._backoff()  # it died soon after starting: wait longer before the next try
        else:
            self._delay = self.RESTART_DELAY
            self.start()
        return True

    def _backoff(self) -> None:
        self._retry_at = time.monotonic() + self._delay
        self._delay = min(self._delay * 2, 60.0)

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
