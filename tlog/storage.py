"""LMDB storage for the log: tiles, entry bundles, the leaf index and the signed tree head.

One environment, these named databases:

    meta      b"origin" -> UTF-8 origin; b"state" -> msgpack [size, root];
              b"checkpoint" -> the signed note for `state`
              b"checkpoint_time" -> when it was signed (big-endian float64 Unix time)
              b"frozen" -> present once the log is frozen: appends are refused for good
              b"cosigned" -> [size, note]: the newest checkpoint that met the witness policy
    tiles     u8 level || u64be index -> level-0 hashes of the tile (W·32 bytes, W <= 256)
    interior  u8 level || u64be index -> levels 1..7 of the tile (fixed layout, 254 hashes = 8128 bytes)
    bundles   u64be index -> full entry bundle (u16be length || entry, 256 times)
    edge      u64be leaf index -> entry, for the entries of the partial bundle only
    leafidx   leaf hash (32 bytes) -> u64be index of its first occurrence (exact dedup)
    envelopes u64be leaf index -> canonical DSSE envelope of that entry, written in the same
              transaction as its leaf, so a leaf is never there without it
    attest    SHA-256 (32 bytes) -> canonical DSSE envelope, content-addressed: envelopes of
              logs written before `envelopes` existed, and an envelope brought later for an
              entry already logged without one
    search    unused since the search index moved to tlog/index.py (dropped when found)
    minutes   u64be first index appended in a UTC minute -> u64be that minute's start (Unix
              seconds): written by the first batch of each minute, so entries [key, next
              key) were appended in that minute (tlog/activity.py reads it)

Search terms and envelope digests are derived data: `tlog.index` builds them after the
commit, in an environment of its own, so the durable commit writes mostly sequential pages.

A partial tile is stored once, at its newest width; every narrower `.p/<W>` is a prefix of
it. Entries of the partial bundle are kept one per key and folded into one bundle value when
the bundle fills, so a batch writes only its own entries, never a growing bundle again.

One process (the sequencer) writes in normal operation, but the store does not depend on it:
LMDB serialises writers, and each writer re-reads the tree head inside its write transaction
(compare-and-swap), so the head only moves forward whatever the interleaving.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lmdb
import msgpack

from client.checkpoint import Checkpoint
from client.merkle import EMPTY_ROOT, HASH_SIZE, consistency_proof, leaf_hash
from client.tiles import (
    MAX_ENTRY_SIZE,
    TILE_HEIGHT,
    TILE_WIDTH,
    encode_bundle,
    interior_slot,
    parse_bundle,
    tile_width_at,
)
from client.tiletree import TileTree

DEFAULT_MAP_SIZE = 64 << 30  # sparse: only used pages take disk space
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")
_TILE_KEY = struct.Struct(">BQ")
_ZERO_HASH = bytes(HASH_SIZE)

SignFn = Callable[[str], bytes]
"""Signs checkpoint text and returns the complete signed note."""


class StorageError(Exception):
    """The store is missing, corrupt, or was changed under us in a way we refuse to follow."""


class LogFrozenError(StorageError):
    """The log is frozen: it takes no new entries, ever (a retired shard)."""


class TreeHeadConflict(StorageError):
    """The stored tree head is not the one this append was built on (compare-and-swap failed)."""


@dataclass(frozen=True, slots=True)
class TreeHead:
    size: int
    root: bytes


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one committed batch did: indexes per input (in order), whether each was new."""

    indexes: list[int]
    created: list[bool]
    head: TreeHead
    checkpoint: bytes
    commit_seconds: float = 0.0  # the LMDB commit: page writes and both fsyncs


def tile_key(level: int, index: int) -> bytes:
    return _TILE_KEY.pack(level, index)


class LogStore:
    """The log's LMDB environment. Thread-safe for readers; one appender per process."""

    def __init__(self, path: str | os.PathLike[str], *, map_size: int = DEFAULT_MAP_SIZE,
                 readonly: bool = False, create: bool = False) -> None:
        self.path = Path(path)
        if not readonly and create:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not (self.path / "data.mdb").exists() and not create:
            raise StorageError(f"no log database in {self.path}")
        self.env = lmdb.open(
            str(self.path), map_size=map_size, max_dbs=16, readonly=readonly,
            subdir=True, sync=True, metasync=True, writemap=False, max_readers=512,
            lock=True, mode=0o600,
        )
        self.meta = self.env.open_db(b"meta", create=not readonly)
        self.tiles = self.env.open_db(b"tiles", create=not readonly)
        self.interior = self.env.open_db(b"interior", create=not readonly)
        self.bundles = self.env.open_db(b"bundles", create=not readonly)
        self.edge = self.env.open_db(b"edge", create=not readonly)
        self.leafidx = self.env.open_db(b"leafidx", create=not readonly)
        self.search = self.env.open_db(b"search", create=not readonly)
        self.attest = self.env.open_db(b"attest", create=not readonly)
        self.envelopes = self._open_new_db(b"envelopes", readonly)
        self.minutes = self._open_new_db(b"minutes", readonly)
        self._minute = 0  # the newest minute recorded in `minutes` (a cache; 0 = unknown)
        self._tree: TileTree | None = None  # cached right edge, valid while size matches
        self._origin: str | None = None

    def _open_new_db(self, name: bytes, readonly: bool) -> lmdb._Database | None:
        """A database newer versions added: absent (None) from an older log opened read-only
        (`tlog backup`, `tlog migrate`); created when opened to write."""
        try:
            return self.env.open_db(name, create=not readonly)
        except lmdb.NotFoundError:
            return None

    def close(self) -> None:
        self.env.close()

    # --- initialisation ------------------------------------------------------------------

    def initialize(self, origin: str, sign: SignFn) -> None:
        """Record the origin and sign the empty tree, once; later calls check the origin."""
        with self.env.begin(write=True) as txn:
            stored = txn.get(b"origin", db=self.meta)
            if stored is not None:
                if stored.decode() != origin:
                    raise StorageError(
                        f"this data dir holds log {stored.decode()!r}, not {origin!r}")
                return
            txn.put(b"origin", origin.encode(), db=self.meta)
            txn.put(b"state", msgpack.packb([0, EMPTY_ROOT]), db=self.meta)
            txn.put(b"checkpoint", sign(Checkpoint(origin, 0, EMPTY_ROOT).text()), db=self.meta)
            txn.put(b"checkpoint_time", _F64.pack(time.time()), db=self.meta)

    def checkpoint_time(self) -> float | None:
        """Unix time the current checkpoint was signed (None for logs from before it was kept)."""
        with self.env.begin() as txn:
            raw = txn.get(b"checkpoint_time", db=self.meta)
        return _F64.unpack(raw)[0] if raw is not None else None

    def freeze(self) -> None:
        """Freeze the log for good: every later append raises LogFrozenError."""
        with self.env.begin(write=True) as txn:
            txn.put(b"frozen", b"1", db=self.meta)

    def probe_write(self) -> None:
        """Commit one tiny write (durably): whether the data dir takes writes again after its
        disk was full. Raises lmdb.Error if it does not."""
        with self.env.begin(write=True) as txn:
            txn.put(b"write_probe", _F64.pack(time.time()), db=self.meta)

    def frozen(self) -> bool:
        with self.env.begin() as txn:
            return txn.get(b"frozen", db=self.meta) is not None

    def resign(self, sign: SignFn) -> bytes:
        """Sign the current tree head again (after the set of checkpoint keys changed) and
        store that checkpoint; returns it. The tree does not change."""
        origin = self.origin()
        with self.env.begin(write=True) as txn:
            head = self._head(txn, self.meta)
            note = sign(Checkpoint(origin, head.size, head.root).text())
            txn.put(b"checkpoint", note, db=self.meta)
            txn.put(b"checkpoint_time", _F64.pack(time.time()), db=self.meta)
        return note

    def origin(self) -> str:
        if self._origin is None:  # fixed once initialised, so cache it
            with self.env.begin() as txn:
                raw = txn.get(b"origin", db=self.meta)
            if raw is None:
                raise StorageError("log is not initialised")
            self._origin = raw.decode()
        return self._origin

    # --- reads ---------------------------------------------------------------------------

    @staticmethod
    def _head(txn: lmdb.Transaction, meta: lmdb._Database) -> TreeHead:
        raw = txn.get(b"state", db=meta)
        if raw is None:
            raise StorageError("log is not initialised")
        size, root = msgpack.unpackb(raw)
        return TreeHead(size, root)

    def head(self) -> TreeHead:
        with self.env.begin() as txn:
            return self._head(txn, self.meta)

    def head_in(self, txn: lmdb.Transaction) -> TreeHead:
        return self._head(txn, self.meta)

    def checkpoint_in(self, txn: lmdb.Transaction) -> bytes:
        return bytes(txn.get(b"checkpoint", db=self.meta))

    def lookup_in(self, txn: lmdb.Transaction, leaf: bytes) -> int | None:
        raw = txn.get(leaf, db=self.leafidx)
        return None if raw is None else _U64.unpack(raw)[0]

    def checkpoint(self) -> bytes:
        """The latest signed checkpoint note."""
        with self.env.begin() as txn:
            raw = txn.get(b"checkpoint", db=self.meta)
        if raw is None:
            raise StorageError("log is not initialised")
        return bytes(raw)

    def head_and_checkpoint(self) -> tuple[TreeHead, bytes]:
        with self.env.begin() as txn:
            return self._head(txn, self.meta), bytes(txn.get(b"checkpoint", db=self.meta))

    def cosigned_in(self, txn: lmdb.Transaction) -> tuple[int, bytes] | None:
        raw = txn.get(b"cosigned", db=self.meta)
        if raw is None:
            return None
        size, note = msgpack.unpackb(raw)
        return size, note

    def cosigned(self) -> tuple[int, bytes] | None:
        """(size, note) of the newest checkpoint published with its witness cosignatures."""
        with self.env.begin() as txn:
            return self.cosigned_in(txn)

    def publish_cosigned(self, size: int, note: bytes) -> bool:
        """Record a cosigned checkpoint unless an older one than recorded; True if recorded.

        Only moves forward (compare in the write transaction; the same size again brings
        fresher cosignatures), so a slow witness round can
        never replace a newer cosigned checkpoint with an older one."""
        with self.env.begin(write=True) as txn:
            current = self.cosigned_in(txn)
            if current is not None and current[0] > size:
                return False
            if size > self._head(txn, self.meta).size:
                raise StorageError(f"cosigned size {size} is beyond the tree")
            txn.put(b"cosigned", msgpack.packb([size, note]), db=self.meta)
        return True

    def lookup(self, leaf: bytes) -> int | None:
        """Index of the first entry with this leaf hash, if any."""
        with self.env.begin() as txn:
            return self.lookup_in(txn, leaf)

    def tile(self, level: int, index: int, width: int) -> bytes | None:
        """Hash tile bytes for (level, index) at `width` hashes, or None if it does not exist yet."""
        with self.env.begin() as txn:
            size = self._head(txn, self.meta).size
            if width > tile_width_at(level, index, size):
                return None
            raw = txn.get(tile_key(level, index), db=self.tiles)
        if raw is None or len(raw) < width * HASH_SIZE:
            raise StorageError(f"tile {level}/{index} is missing or short")
        return raw[: width * HASH_SIZE]

    def bundle(self, index: int, width: int) -> bytes | None:
        """Entry bundle `index` with its first `width` entries, or None if not there yet."""
        with self.env.begin(buffers=True) as txn:
            size = self._head(txn, self.meta).size
            if width > tile_width_at(0, index, size):
                return None
            if (index + 1) * TILE_WIDTH <= size:
                raw = txn.get(_U64.pack(index), db=self.bundles)
                if raw is None:
                    raise StorageError(f"entry bundle {index} is missing")
                return bytes(raw[: _bundle_offset(raw, width)])
            return encode_bundle(self._edge_entries(txn, index * TILE_WIDTH, width))

    def _edge_entries(self, txn: lmdb.Transaction, start: int, count: int) -> list[bytes]:
        out: list[bytes] = []
        cur = txn.cursor(db=self.edge)
        if count and cur.set_key(_U64.pack(start)):
            for _, value in cur:
                out.append(bytes(value))
                if len(out) == count:
                    break
        if len(out) != count:
            raise StorageError(f"entries {start}..{start + count - 1} are missing")
        return out

    def entry(self, index: int) -> bytes | None:
        """The leaf data at `index`, or None if the tree is not that large."""
        with self.env.begin(buffers=True) as txn:
            if index >= self._head(txn, self.meta).size:
                return None
            return self.entry_in(txn, index)

    def entry_in(self, txn: lmdb.Transaction, index: int) -> bytes:
        """Entry `index` (which must be below the tree size) within `txn`."""
        bundle_index, pos = divmod(index, TILE_WIDTH)
        if (bundle_index + 1) * TILE_WIDTH > self._head(txn, self.meta).size:
            return self._edge_entries(txn, index, 1)[0]
        raw = txn.get(_U64.pack(bundle_index), db=self.bundles)
        if raw is None:
            raise StorageError(f"entry bundle {bundle_index} is missing")
        start = _bundle_offset(raw, pos)
        n = (raw[start] << 8) | raw[start + 1]
        return bytes(raw[start + 2 : start + 2 + n])

    def node_getter(self, txn: lmdb.Transaction) -> Callable[[int, int], bytes]:
        """`node(level, index)`: a complete node's hash from the stored tiles, each tile read
        once per getter (a proof touches two or three)."""
        cache: dict[tuple[int, int, int], bytes] = {}
        tiles, interior = self.tiles, self.interior

        def node(level: int, index: int) -> bytes:
            tl, sub = divmod(level, TILE_HEIGHT)
            ti = index >> (TILE_HEIGHT - sub)
            off = index & ((TILE_WIDTH >> sub) - 1)
            key = (sub and 1, tl, ti)
            raw = cache.get(key)
            if raw is None:
                got = txn.get(tile_key(tl, ti), db=interior if sub else tiles)
                if got is None:
                    raise StorageError(f"tile {tl}/{ti} is missing")
                raw = cache[key] = got
            pos = interior_slot(sub, off) * HASH_SIZE if sub else off * HASH_SIZE
            h = raw[pos : pos + HASH_SIZE]
            if len(h) != HASH_SIZE or (sub and h == _ZERO_HASH):
                raise StorageError(f"node {level}/{index} is not stored")
            return h

        return node

    def node_reader(self, txn: lmdb.Transaction) -> Callable[[Sequence[tuple[int, int]]], list[bytes]]:
        """A `client.merkle.NodeReader` over stored tiles, memoising tile reads."""
        node = self.node_getter(txn)
        return lambda nodes: [node(level, index) for level, index in nodes]

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        with self.env.begin() as txn:
            return consistency_proof(old, new, self.node_reader(txn))

    def read_txn(self) -> lmdb.Transaction:
        return self.env.begin()

    # --- the write path ------------------------------------------------------------------

    def _load_tree(self, txn: lmdb.Transaction, size: int) -> TileTree:
        edges: list[list[bytes]] = []
        level = 0
        while size >> (TILE_HEIGHT * level):
            width = (size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)
            hashes: list[bytes] = []
            if width:
                index = size >> (TILE_HEIGHT * (level + 1))
                raw = txn.get(tile_key(level, index), db=self.tiles)
                if raw is None or len(raw) < width * HASH_SIZE:
                    raise StorageError(f"edge tile {level}/{index} is missing")
                hashes = [bytes(raw[i * HASH_SIZE : (i + 1) * HASH_SIZE]) for i in range(width)]
            edges.append(hashes)
            level += 1
        return TileTree(size, edges)

    def append(self, entries: Sequence[bytes], sign: SignFn,
               *, expect_size: int | None = None,
               blobs: Sequence[bytes | None] | None = None) -> AppendResult:
        """Append entries durably in one write transaction and sign one checkpoint.

        Entries whose leaf hash is already in the log (or earlier in this batch) are not
        appended again; their existing index is returned. Returns after the commit, so
        after fsync: nothing is acknowledged before it is durable.

        Crash ordering. Everything below happens inside one LMDB write transaction, and LMDB
        commits by (1) writing the new B-tree pages, (2) fsync, (3) writing the meta page that
        points at them, (4) fsync. A crash before (3) reaches disk leaves the previous tree
        head, checkpoint, tiles, bundles and leaf index all intact and mutually consistent; a
        crash after (4) leaves the new ones. There is no state in between, so no repair step
        exists or is needed. The checkpoint is signed inside the transaction: a signature for
        a state that fails to commit is never published (it is dropped with the transaction),
        and the next attempt signs whatever it commits.
        """
        origin = self.origin()
        try:
            with self.env.begin(write=True) as txn:
                if txn.get(b"frozen", db=self.meta) is not None:
                    raise LogFrozenError("this log is frozen and takes no new entries")
                # Compare-and-swap: build on the head stored now, never on a cached guess.
                head = self._head(txn, self.meta)
                if expect_size is not None and head.size != expect_size:
                    raise TreeHeadConflict(f"tree head is {head.size}, expected {expect_size}")
                tree = self._tree
                if tree is None or tree.size != head.size:
                    tree = self._load_tree(txn, head.size)  # another process appended
                self._tree = None  # until commit succeeds, the cached edge is suspect

                indexes: list[int] = []
                created: list[bool] = []
                new_entries: list[bytes] = []
                seen: dict[bytes, int] = {}
                for pos, data in enumerate(entries):
                    blob = blobs[pos] if blobs is not None else None
                    lh = leaf_hash(data)
                    idx = seen.get(lh)
                    if idx is None:
                        raw = txn.get(lh, db=self.leafidx)
                        idx = _U64.unpack(raw)[0] if raw is not None else None
                    if idx is not None:
                        if blob is not None:  # a logged entry gets the envelope it lacked
                            digest = hashlib.sha256(blob).digest()
                            if self.envelope_for(txn, idx, digest) is None:
                                txn.put(digest, blob, db=self.attest)
                        indexes.append(idx)
                        created.append(False)
                        continue
                    idx = tree.size
                    tree.append(lh)
                    seen[lh] = idx
                    txn.put(lh, _U64.pack(idx), db=self.leafidx)
                    # By index: appended pages, not random ones. (`append` refuses, with
                    # False, a key below the last: that would be a bug, never a lost envelope.)
                    if blob is not None and not txn.put(_U64.pack(idx), blob, db=self.envelopes,
                                                        append=True):
                        raise StorageError(f"envelope {idx} is not above the stored ones")
                    new_entries.append(data)
                    indexes.append(idx)
                    created.append(True)

                if not new_entries:
                    return AppendResult(indexes, created, head, bytes(
                        txn.get(b"checkpoint", db=self.meta)))

                self._put_bundles(txn, head.size, new_entries)
                for (level, index), (tile, interior) in tree.take_changes().items():
                    key = tile_key(level, index)
                    txn.put(key, tile, db=self.tiles)
                    txn.put(key, interior, db=self.interior)

                new_head = TreeHead(tree.size, tree.root())
                if new_head.size <= head.size:  # the head only moves forward
                    raise TreeHeadConflict("append would not grow the tree")
                note = sign(Checkpoint(origin, new_head.size, new_head.root).text())
                now = time.time()
                txn.put(b"state", msgpack.packb([new_head.size, new_head.root]), db=self.meta)
                txn.put(b"checkpoint", note, db=self.meta)
                txn.put(b"checkpoint_time", _F64.pack(now), db=self.meta)
                minute = self._record_minute(txn, head.size, now)
                t_commit = time.perf_counter()
            # Leaving the block committed and fsynced the transaction (env opened sync=True).
            commit_seconds = time.perf_counter() - t_commit
        except BaseException:
            self._tree = None
            raise
        self._tree = tree
        self._minute = max(self._minute, minute)
        return AppendResult(indexes, created, new_head, note, commit_seconds)

    def _record_minute(self, txn: lmdb.Transaction, first: int, now: float) -> int:
        """In the first batch of a UTC minute: record that entries from `first` on were
        appended in it. Once a minute, so the append path writes no page for it otherwise;
        a clock that steps back records nothing until it passes the newest minute again."""
        minute = int(now) // 60 * 60
        if minute <= self._minute or self.minutes is None:
            return minute
        cur = txn.cursor(db=self.minutes)
        if cur.last() and _U64.unpack(cur.value())[0] >= minute:
            return _U64.unpack(cur.value())[0]
        txn.put(_U64.pack(first), _U64.pack(minute), db=self.minutes, append=True)
        return minute

    def logged_minute_in(self, txn: lmdb.Transaction, index: int) -> int | None:
        """The start of the UTC minute entry `index` was appended in (None: before the log
        kept minutes)."""
        if self.minutes is None:
            return None
        cur = txn.cursor(db=self.minutes)
        positioned = cur.prev() if cur.set_range(_U64.pack(index + 1)) else cur.last()
        if not positioned or _U64.unpack(cur.key())[0] > index:
            return None
        return int(_U64.unpack(cur.value())[0])

    def minutes_of(self, txn: lmdb.Transaction, lo: int, hi: int) -> list[tuple[int, int]]:
        """(first index, minute start) of the minutes recorded for entries [lo, hi)."""
        if self.minutes is None:
            return []
        out: list[tuple[int, int]] = []
        cur = txn.cursor(db=self.minutes)
        if cur.set_range(_U64.pack(lo)):
            for key, value in cur:
                first = _U64.unpack(key)[0]
                if first >= hi:
                    break
                out.append((first, _U64.unpack(value)[0]))
        return out

    def minutes_since(self, txn: lmdb.Transaction, since: int) -> list[tuple[int, int]]:
        """(first index, minute start) of every recorded minute from `since` on, ascending."""
        if self.minutes is None:
            return []
        out: list[tuple[int, int]] = []
        cur = txn.cursor(db=self.minutes)
        if cur.last():
            for key, value in cur.iterprev():
                minute = _U64.unpack(value)[0]
                if minute < since:
                    break
                out.append((_U64.unpack(key)[0], minute))
        out.reverse()
        return out

    def _put_bundles(self, txn: lmdb.Transaction, size: int, new_entries: list[bytes]) -> None:
        """Store new entries; fold every bundle they complete into one value."""
        for i, data in enumerate(new_entries):
            if len(data) > MAX_ENTRY_SIZE:
                raise ValueError("entry is larger than 65535 bytes")
            txn.put(_U64.pack(size + i), data, db=self.edge, append=True)
        end = size + len(new_entries)
        for index in range(size >> TILE_HEIGHT, end >> TILE_HEIGHT):
            start = index * TILE_WIDTH
            entries = self._edge_entries(txn, start, TILE_WIDTH)
            txn.put(_U64.pack(index), encode_bundle(entries), db=self.bundles)
            cur = txn.cursor(db=self.edge)
            cur.set_key(_U64.pack(start))
            for _ in range(TILE_WIDTH):
                cur.delete()

    # --- bulk iteration (fsck, reindexing) ----------------------------------------------

    def iter_bundles(self, txn: lmdb.Transaction) -> Iterator[tuple[int, bytes]]:
        """Every bundle in order: the full ones, then the partial one (if any), assembled."""
        size = self._head(txn, self.meta).size
        for key, value in txn.cursor(db=self.bundles):
            yield _U64.unpack(key)[0], bytes(value)
        if size % TILE_WIDTH:
            start = size - size % TILE_WIDTH
            yield size >> TILE_HEIGHT, encode_bundle(self._edge_entries(txn, start, size - start))

    def envelope_at(self, txn: lmdb.Transaction, index: int) -> bytes | None:
        """The envelope stored with entry `index`, if it was stored by index."""
        if self.envelopes is None:
            return None
        return txn.get(_U64.pack(index), db=self.envelopes)

    def legacy_envelope(self, txn: lmdb.Transaction, digest: bytes) -> bytes | None:
        """An envelope stored content-addressed (older logs; envelopes brought later), if it
        is there and still hashes to its address."""
        blob = txn.get(digest, db=self.attest)
        return blob if blob is not None and hashlib.sha256(blob).digest() == digest else None

    def indexed_envelope(self, txn: lmdb.Transaction, index: int, digest: bytes) -> bytes | None:
        """The envelope stored with entry `index`, if there is one and it hashes to `digest`."""
        blob = self.envelope_at(txn, index)
        return blob if blob is not None and hashlib.sha256(blob).digest() == digest else None

    def envelope_for(self, txn: lmdb.Transaction, index: int, digest: bytes) -> bytes | None:
        """Entry `index`'s envelope with this SHA-256, from either place; None if absent (or
        damaged: what is returned always hashes to `digest`)."""
        blob = self.indexed_envelope(txn, index, digest)
        return blob if blob is not None else self.legacy_envelope(txn, digest)

    def iter_entries(self, txn: lmdb.Transaction, start: int, end: int) -> Iterator[tuple[int, bytes]]:
        """(index, entry) for start <= index < end (end at most the tree size), each full
        bundle read and split once."""
        size = self._head(txn, self.meta).size
        end = min(end, size)
        index = start
        while index < end:
            bundle_index, pos = divmod(index, TILE_WIDTH)
            if (bundle_index + 1) * TILE_WIDTH > size:
                for data in self._edge_entries(txn, index, end - index):
                    yield index, data
                    index += 1
                return
            raw = txn.get(_U64.pack(bundle_index), db=self.bundles)
            if raw is None:
                raise StorageError(f"entry bundle {bundle_index} is missing")
            for data in parse_bundle(raw)[pos : min(TILE_WIDTH, end - bundle_index * TILE_WIDTH)]:
                yield index, data
                index += 1

    def legacy_search_keys(self) -> int:
        """Keys of the search index older versions kept in this environment (tlog/index.py
        takes them over)."""
        with self.env.begin() as txn:
            return int(txn.stat(self.search)["entries"])

    def drop_legacy_search(self) -> None:
        """Free the pages of that index once tlog/index.py holds its keys."""
        with self.env.begin(write=True) as txn:
            txn.drop(self.search, delete=False)

    def stat(self) -> dict[str, int]:
        info = self.env.info()
        st = self.env.stat()
        return {"map_size": info["map_size"], "used": (info["last_pgno"] + 1) * st["psize"]}


SEARCH_FIELDS = {"subject": 1, "signer": 2, "predicate_type": 3}


def search_key(field: str, term: str, index: int) -> bytes:
    return (bytes([SEARCH_FIELDS[field]]) + hashlib.sha256(term.encode("utf-8")).digest()
            + _U64.pack(index))


def _bundle_offset(bundle: bytes | memoryview, count: int) -> int:
    """Byte offset just past the first `count` entries of a bundle."""
    pos = 0
    for _ in range(count):
        if pos + 2 > len(bundle):
            raise StorageError("entry bundle is shorter than its width")
        pos += 2 + ((bundle[pos] << 8) | bundle[pos + 1])
    if pos > len(bundle):
        raise StorageError("entry bundle is shorter than its width")
    return pos
