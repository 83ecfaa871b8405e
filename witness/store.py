"""The witness's state: per origin, the latest checkpoint it cosigned. LMDB, never rolls back.

`advance` is the compare-and-swap the spec asks for: inside one write transaction (LMDB
serialises writers) it re-reads the stored state, and writes the new one only if the stored
size and root are still those the request was checked against; the commit is fsynced before
the caller answers. Two concurrent requests from the same old size cannot both advance it.
"""

from __future__ import annotations

import os
from pathlib import Path

import lmdb
import msgpack

from witness.protocol import Refusal, Stored

DEFAULT_MAP_SIZE = 1 << 30


class WitnessStore:
    def __init__(self, path: str | os.PathLike[str], *, map_size: int = DEFAULT_MAP_SIZE) -> None:
        Path(path).mkdir(parents=True, exist_ok=True, mode=0o700)
        # sync=True, metasync=True (defaults): a committed state is on disk before we answer.
        self.env = lmdb.open(str(path), map_size=map_size, max_dbs=2, subdir=True, lock=True)
        self.logs = self.env.open_db(b"logs")

    def close(self) -> None:
        self.env.close()

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
        """Store `new` if the state is still `expected`; else Refusal(409) with the known size."""
        key = origin.encode("utf-8")
        with self.env.begin(db=self.logs, write=True) as txn:
            current = self._decode(txn.get(key))
            same = (current is None and expected is None) or (
                current is not None and expected is not None
                and (current.size, current.root) == (expected.size, expected.root))
            if not same:
                known = current.size if current else 0
                raise Refusal(409, f"the cosigned size moved to {known} meanwhile", known_size=known)
            if current is not None and new.size < current.size:  # pragma: no cover - decide() refuses
                raise Refusal(409, "refusing to roll back", known_size=current.size)
            txn.put(key, msgpack.packb([new.size, new.root, new.note]))

    def seed(self, origin: str, state: Stored) -> None:
        """Install a configured starting checkpoint for a log we have not cosigned yet."""
        with self.env.begin(db=self.logs, write=True) as txn:
            if txn.get(origin.encode("utf-8")) is None:
                txn.put(origin.encode("utf-8"), msgpack.packb([state.size, state.root, state.note]))
