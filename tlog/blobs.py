"""Content-addressed attestation store: SHA-256 -> canonical DSSE envelope, in its own LMDB.

A separate environment so that writing a large envelope (up to tens of MiB) never holds the
log's write lock: HTTP workers store an envelope durably here *before* they hand its leaf to
the sequencer, so a leaf is never acknowledged without its envelope on disk. An envelope
whose leaf never got appended (the sequencer failed) is harmless: content-addressed, and
re-submitting it finds it already stored.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import lmdb

DEFAULT_MAP_SIZE = 256 << 30


class BlobStore:
    def __init__(self, path: str | Path, *, map_size: int = DEFAULT_MAP_SIZE) -> None:
        self.path = Path(path)
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.env = lmdb.open(str(self.path), map_size=map_size, max_dbs=2, sync=True,
                             metasync=True, writemap=False, max_readers=512, mode=0o600)
        self.db = self.env.open_db(b"attestations")

    def close(self) -> None:
        self.env.close()

    def put(self, data: bytes) -> str:
        """Store `data` durably (fsync) under its SHA-256; returns the hex digest."""
        digest = hashlib.sha256(data).digest()
        with self.env.begin(write=True) as txn:
            txn.put(digest, data, db=self.db, overwrite=False)
        return digest.hex()

    def get(self, hex_digest: str) -> bytes | None:
        with self.env.begin() as txn:
            return txn.get(bytes.fromhex(hex_digest), db=self.db)

    def has(self, hex_digest: str) -> bool:
        with self.env.begin() as txn:
            return txn.get(bytes.fromhex(hex_digest), db=self.db) is not None
