"""Token buckets that a log's worker processes share, so that a client's rate limit holds
per log and not per worker (a client whose connections land on N workers would otherwise
get N budgets).

The table is a small file in the data dir (`ratelimit.buckets`, mode 0600), made afresh by
`tlog serve` at each start (renamed into place) and mapped by every worker: fixed-size
slots of (key fingerprint, tokens, time of the last update), found by open addressing over
`PROBES` slots. A key not in its window takes an empty slot, or else the one updated
longest ago (a client forgotten that way starts again with a full bucket, as with the
in-process limiter). One `flock` around each update keeps the read-modify-write whole
across processes; the critical section is a few struct reads, so workers rarely wait on
it. Times are `time.monotonic()`, which on Linux is one clock for every process. The file
holds nothing but counters: it is neither backed up nor fsynced.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import mmap
import os
import struct
import tempfile
from pathlib import Path

from tlog.ratelimit import Budget, take_token

FILE_NAME = "ratelimit.buckets"
MAGIC = b"tlogrb01"
_HEADER = struct.Struct("<8sQ")  # magic, number of slots
_SLOT = struct.Struct("<Qdd")  # key fingerprint (0: empty), tokens, last update
PROBES = 8
DEFAULT_SLOTS = 1 << 17  # 3 MiB: room for about 100,000 clients and classes


class SharedBucketsError(OSError):
    """The table file is missing, not ours, or not a bucket table."""


def create(path: Path, slots: int = DEFAULT_SLOTS) -> Path:
    """Make an empty table at `path`, renamed into place whole: workers of an earlier run
    (draining, or another frontend on the same data dir) keep the file they mapped, and
    none ever maps a half-made one."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # 0600
    try:
        try:
            os.ftruncate(fd, _HEADER.size + slots * _SLOT.size)  # zeros: every slot empty
            os.pwrite(fd, _HEADER.pack(MAGIC, slots), 0)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


@functools.lru_cache(maxsize=65536)
def _fingerprint(cls: str, client: str) -> int:
    """A stable 64-bit key, never 0 (Python's `hash` differs between processes); its low
    bit is forced, so slots are chosen by the others."""
    digest = hashlib.blake2b(f"{cls}\0{client}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") | 1


class SharedBuckets:
    """The table as one worker maps it."""

    def __init__(self, path: Path) -> None:
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise SharedBucketsError(f"rate-limit table {path}: {exc.strerror}") from None
        try:
            st = os.fstat(self._fd)
            if st.st_uid != os.getuid() or st.st_mode & 0o077:
                raise SharedBucketsError(f"rate-limit table {path}: not ours, or open to others")
            self._mm = mmap.mmap(self._fd, st.st_size)
            magic, self.slots = _HEADER.unpack_from(self._mm, 0)
            if magic != MAGIC or self.slots < PROBES or st.st_size != _HEADER.size + self.slots * _SLOT.size:
                self._mm.close()
                raise SharedBucketsError(f"rate-limit table {path}: not a bucket table")
        except BaseException:
            os.close(self._fd)
            raise

    def take(self, cls: str, client: str, budget: Budget, now: float) -> float | None:
        """None if the request may go ahead (it takes a token), else the seconds until it may."""
        fp = _fingerprint(cls, client)
        base = (fp >> 1) % self.slots
        mm, slot, header = self._mm, _SLOT, _HEADER.size
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            victim, oldest = -1, float("inf")
            for i in range(PROBES):
                off = header + ((base + i) % self.slots) * slot.size
                key, tokens, then = slot.unpack_from(mm, off)
                if key == fp:
                    break
                if key == 0:
                    tokens, then = float(budget.burst), now
                    break
                if then < oldest:
                    victim, oldest = off, then
            else:
                off, tokens, then = victim, float(budget.burst), now
            now = max(now, then)  # read before the lock: another worker may have gone ahead
            tokens, wait = take_token(tokens, then, budget, now)
            slot.pack_into(mm, off, fp, tokens, now)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        return wait

    def close(self) -> None:
        self._mm.close()
        os.close(self._fd)
