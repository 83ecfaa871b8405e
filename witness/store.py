"""The witness's state: per origin, the latest checkpoint it cosigned. LMDB, never rolls back.

`advance` is the compare-and-swap the spec asks for: inside a write transaction (LMDB
serialises writers) it re-reads the stored state, and writes the new one only if the stored
size and root are still those the request was checked against; the commit is fsynced before
the caller answers. Two concurrent requests from the same old size cannot both advance it.

Group commit: concurrent `advance` calls wait for one committer thread, which applies every
queued swap, each checked against the state as the same transaction left it, and commits
them with one fsync. The fsync, not the checks, is what a request costs most (~0.4 ms).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import lmdb
import msgpack

from witness.protocol import Refusal, Stored

DEFAULT_MAP_SIZE = 1 << 30
COMMIT_TIMEOUT = 30.0


@dataclass
class _Swap:
    origin: str
    expected: Stored | None
    new: Stored
    done: threading.Event = field(default_factory=threading.Event)
    error: Refusal | None = None


class WitnessStore:
    def __init__(self, path: str | os.PathLike[str], *, map_size: int = DEFAULT_MAP_SIZE) -> None:
        Path(path).mkdir(parents=True, exist_ok=True, mode=0o700)
        # sync=True, metasync=True (defaults): a committed state is on disk before we answer.
        self.env = lmdb.open(str(path), map_size=map_size, max_dbs=2, subdir=True, lock=True)
        self.logs = self.env.open_db(b"logs")
        self._queue: list[_Swap] = []
        self._cond = threading.Condition()
        self._running = True
        self._committer = threading.Thread(target=self._commit_loop, name="witness-commit", daemon=True)
        self._committer.start()

    def close(self) -> None:
        with self._cond:
            self._running = False
            self._cond.notify()
        self._committer.join(timeout=COMMIT_TIMEOUT)
        self.env.close()

    def stat(self) -> dict[str, int]:
        info, st = self.env.info(), self.env.stat()
        return {"map_size": info["map_size"], "used": (info["last_pgno"] + 1) * st["psize"]}

    @staticmethod
    def _decode(raw: bytes | None) -> Stored | None:
        if raw is None:
            return None
        size, root, note = msgpack.unpackb(raw)
        return Stored(size, root, note)

    def get(self, origin: str) -> Stored | None:
        with self.env.begin(db=self.logs) as txn:
            return self._decode(txn.get(origin.encode("utf-8")))

    def advance(self, origin: str, expected: Stored | None, new: Stored) -> None:
        """Store `new` if the state is still `expected`, durably; else Refusal(409) with the
        known size. Blocks until the group commit holding it is on disk."""
        swap = _Swap(origin, expected, new)
        with self._cond:
            if not self._running:
                raise Refusal(503, "the witness is shutting down")
            self._queue.append(swap)
            self._cond.notify()
        if not swap.done.wait(COMMIT_TIMEOUT):
            raise Refusal(503, "the state commit timed out")
        if swap.error is not None:
            raise swap.error

    def _commit_loop(self) -> None:
        while True:
            with self._cond:
                while self._running and not self._queue:
                    self._cond.wait()
                batch, self._queue = self._queue, []
                if not batch and not self._running:
                    return
            try:
                with self.env.begin(db=self.logs, write=True) as txn:
                    for swap in batch:
                        swap.error = self._swap_in(txn, swap)
            except lmdb.Error as exc:  # nothing was written: every swap of the batch fails
                for swap in batch:
                    swap.error = Refusal(503, f"the witness could not store its state: {exc}")
            for swap in batch:
                swap.done.set()

    def _swap_in(self, txn: lmdb.Transaction, swap: _Swap) -> Refusal | None:
        key = swap.origin.encode("utf-8")
        current = self._decode(txn.get(key))
        expected = swap.expected
        same = (current is None and expected is None) or (
            current is not None and expected is not None
            and (current.size, current.root) == (expected.size, expected.root))
        if not same:
            known = current.size if current else 0
            return Refusal(409, f"the cosigned size moved to {known} meanwhile", known_size=known)
        if current is not None and swap.new.size < current.size:  # pragma: no cover - decide() refuses
            return Refusal(409, "refusing to roll back", known_size=current.size)
        txn.put(key, msgpack.packb([swap.new.size, swap.new.root, swap.new.note]))
        return None

    def seed(self, origin: str, state: Stored) -> None:
        """Install a configured starting checkpoint for a log we have not cosigned yet."""
        with self.env.begin(db=self.logs, write=True) as txn:
            if txn.get(origin.encode("utf-8")) is None:
                txn.put(origin.encode("utf-8"), msgpack.packb([state.size, state.root, state.note]))
