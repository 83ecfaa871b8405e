"""`tlog fsck` of a scaled-out log: re-derive the whole tree from the bucket's entry bundles
and check it against the bucket's tiles, the tree head row and both checkpoints, and the
indexes in PostgreSQL against the entries.

The database is read in one REPEATABLE READ snapshot, after the bucket's `checkpoint` (which
a sequencer replaces only after it moved the tree head), so it can run beside a serving log:
every object the snapshot's tree needs exists and never changes (partial tiles and bundles at
the head's width were written before the head moved). Every disagreement is reported.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from client.attest import KIND_DSSE, parse_leaf, search_keys
from client.checkpoint import Checkpoint, open_checkpoint
from client.errors import TlogError
from client.merkle import EMPTY_ROOT, HASH_SIZE, leaf_hash
from client.note import Verifier, parse_vkey
from client.rekor import is_envelope_of
from client.tiles import TILE_HEIGHT, TILE_WIDTH, entries_path, parse_bundle, tile_path, tile_width_at
from client.tiletree import TileTree
from tlog.config import ServeConfig
from tlog.dist.bucket import NO_CACHE, ObjectStore, envelope_path, object_attributes, rekor_envelopes
from tlog.dist.db import Db, Head, db_errors
from tlog.dist.migrate import MARKER
from tlog.dist.settings import bucket_settings
from tlog.fsck import FsckReport
from tlog.storage import SEARCH_FIELDS, search_key

WINDOW = 32  # entry bundles read (concurrently) at a time
GET_CONCURRENCY = 32
FULL_TILE = TILE_WIDTH * HASH_SIZE


class NoLog(Exception):
    """The target holds no log to check."""


@dataclass
class _Entries:
    """Leaves of one window, for the index checks."""

    leaves: list[tuple[int, bytes]] = field(default_factory=list)


class DistFsck:
    def __init__(self, bucket: ObjectStore, db: Db, origin: str, head: Head, *, verifiers: list[Verifier],
                 report: FsckReport) -> None:
        self.bucket, self.db, self.origin, self.head = bucket, db, origin, head
        self.verifiers, self.report = verifiers, report
        self.tree = TileTree()
        self.named: list[tuple[str, Checkpoint]] = []  # checkpoints whose roots the tree must give
        self.roots: dict[int, bytes] = {}  # derived roots at those sizes
        self.notes: list[str] = []
        self.duplicates = 0
        self.search_rows = 0
        self._sem = asyncio.Semaphore(GET_CONCURRENCY)

    def problem(self, text: str) -> None:
        self.report.problem(text)

    async def get(self, path: str) -> bytes | None:
        """An object, its Cache-Control and Content-Type checked; None (reported) if missing."""
        async with self._sem:
            got = await self.bucket.get_with_attributes(path)
        if got is None:
            self.problem(f"{path} is missing from the bucket")
            return None
        data, attrs = got
        cache, ctype = object_attributes(path)
        if attrs.get("Cache-Control", cache) != cache or attrs.get("Content-Type", ctype) != ctype:
            self.problem(f"{path} is stored with Cache-Control {attrs.get('Cache-Control')!r} and "
                         f"Content-Type {attrs.get('Content-Type')!r}, want {cache!r} and {ctype!r}")
        return data

    async def get_many(self, paths: Iterable[str]) -> list[bytes | None]:
        return await asyncio.gather(*(self.get(p) for p in paths))

    def open(self, what: str, note: bytes) -> Checkpoint | None:
        try:
            cp, _ = open_checkpoint(note, self.origin, self.verifiers)
        except TlogError as exc:
            self.problem(f"{what} does not verify with the log's key: {exc}")
            return None
        return cp

    # --- the tree head and the checkpoints -------------------------------------------------

    def check_checkpoints(self, published: tuple[bytes, dict[str, str]] | None) -> None:
        """Each checkpoint verifies; the tree head's names its tree, the cosigned and the
        bucket's one no larger (their roots are checked once the tree is re-derived)."""
        head = self.head
        cp = self.open("the tree head's checkpoint", head.checkpoint)
        if cp is not None and (cp.size, cp.root) != (head.size, head.root):
            self.problem(f"the tree head's checkpoint names size {cp.size} and another root than the tree "
                         f"head (size {head.size})" if cp.size != head.size else
                         "the tree head's checkpoint names another root than the tree head")
        if head.cosigned is not None:
            cos = self.open("the cosigned checkpoint", head.cosigned)
            if cos is not None:
                if cos.size != head.cosigned_size or cos.size > head.size:
                    self.problem(f"the cosigned checkpoint is for size {cos.size}; the tree head says "
                                 f"{head.cosigned_size} (tree size {head.size})")
                self.named.append(("the cosigned checkpoint", cos))
        if published is None:
            self.problem("the bucket holds no checkpoint")
            return
        data, attrs = published
        if attrs.get("Cache-Control", NO_CACHE) != NO_CACHE:
            self.problem(f"the bucket's checkpoint is stored with Cache-Control {attrs['Cache-Control']!r}, "
                         f"want {NO_CACHE!r}")
        pub = self.open("the bucket's checkpoint", data)
        if pub is None:
            return
        if pub.size > head.size:
            self.problem(f"the bucket's checkpoint is for size {pub.size}, beyond the tree head "
                         f"({head.size})")
        elif pub.size < head.size:
            self.notes.append(f"the bucket's checkpoint is at size {pub.size}, the tree head at {head.size} "
                              "(a sequencer publishes it after the tree head moves)")
        self.named.append(("the bucket's checkpoint", pub))

    def check_roots(self) -> None:
        for what, c in self.named:
            root = EMPTY_ROOT if c.size == 0 else self.roots.get(c.size)
            if root is not None and root != c.root:
                self.problem(f"{what} (size {c.size}) names another root than the bucket's tiles give")

    async def check_description(self, vkeys: list[str]) -> None:
        """`v1/log` names this log and its key."""
        data = await self.get("v1/log")
        if data is None:
            return
        try:
            doc = orjson.loads(data)
            ok = doc["origin"] == self.origin and any(v in doc["verifier_keys"] for v in vkeys)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            ok = False
        if not ok:
            self.problem("v1/log does not describe this log (its origin and verifier keys)")

    # --- the tree from the entries --------------------------------------------------------

    async def replay(self) -> None:
        size = self.head.size
        wanted = {c.size for _, c in self.named}
        bundles = (size + TILE_WIDTH - 1) // TILE_WIDTH
        for first in range(0, bundles, WINDOW):
            indexes = range(first, min(first + WINDOW, bundles))
            widths = [tile_width_at(0, b, size) for b in indexes]
            pairs = list(zip(indexes, widths, strict=True))
            got = await asyncio.gather(self.get_many(entries_path(b, w) for b, w in pairs),
                                       self.get_many(tile_path(0, b, w) for b, w in pairs))
            window = _Entries()
            upper: list[tuple[int, int, bytes]] = []
            for b, width, bundle, tile in zip(indexes, widths, got[0], got[1], strict=True):
                hashes = self.leaf_hashes(b, width, bundle, tile, window)
                if hashes is None:
                    self.problem(f"cannot re-derive the tree past entry {b * TILE_WIDTH}: both "
                                 f"{entries_path(b, width)} and {tile_path(0, b, width)} are unusable")
                    return
                for h in hashes:
                    self.tree.append(h)
                    if self.tree.size in wanted:
                        self.roots[self.tree.size] = self.tree.root()
                for (level, index), (derived, _) in self.tree.take_changes().items():
                    if len(derived) == FULL_TILE:
                        self.report.tiles_checked += 1
                        if level:
                            upper.append((level, index, derived))
            stored = await self.get_many(tile_path(lvl, idx) for lvl, idx, _ in upper)
            for (level, index, derived), data in zip(upper, stored, strict=True):
                if data is not None and data != derived:
                    self.problem(f"{tile_path(level, index)} differs from the tile the entries give")
            await self.check_indexes(window)
            await self.check_envelopes(window)

    def leaf_hashes(self, b: int, width: int, bundle: bytes | None, tile: bytes | None,
                    window: _Entries) -> list[bytes] | None:
        """The bundle's leaf hashes, checked against its level-0 tile (the tile's, if the
        bundle is unusable; None if neither is)."""
        bpath, tpath = entries_path(b, width), tile_path(0, b, width)
        hashes: list[bytes] | None = None
        if bundle is not None:
            try:
                entries = parse_bundle(bundle)
            except TlogError as exc:
                self.problem(f"{bpath} is malformed: {exc}")
            else:
                if len(entries) != width:
                    self.problem(f"{bpath} holds {len(entries)} entries, want {width}")
                else:
                    hashes = [leaf_hash(e) for e in entries]
                    window.leaves.extend((b * TILE_WIDTH + i, e) for i, e in enumerate(entries))
                    self.report.entries_checked += width
        stored = None
        if tile is not None:
            if len(tile) != width * HASH_SIZE:
                self.problem(f"{tpath} holds {len(tile)} bytes, want {width * HASH_SIZE}")
            else:
                stored = [tile[i : i + HASH_SIZE] for i in range(0, len(tile), HASH_SIZE)]
        if hashes is not None and stored is not None and hashes != stored:
            pos = next(i for i, (x, y) in enumerate(zip(hashes, stored, strict=True)) if x != y)
            self.problem(f"{tpath}: hash {pos} is not the leaf hash of entry {b * TILE_WIDTH + pos} "
                         f"({bpath})")
        if stored is not None and width < TILE_WIDTH:  # full ones are counted with the tree's
            self.report.tiles_checked += 1
        return hashes if hashes is not None else stored

    async def check_edge(self) -> None:
        """The partial tiles at the head: derived = the bucket's = the tree head row's edge."""
        size, head_edge = self.head.size, list(self.head.edge)
        for level, edge in enumerate(self.tree.edges):
            want = edge.tile_bytes()
            have = head_edge[level] if level < len(head_edge) else b""
            if have != want:
                self.problem(f"the tree head's right edge at level {level} differs from the tiles the "
                             "entries give")
            if level and edge.width():  # level 0's partial tile was checked with its bundle
                path = tile_path(level, size >> (TILE_HEIGHT * (level + 1)), edge.width())
                data = await self.get(path)
                self.report.tiles_checked += 1
                if data is not None and data != want:
                    self.problem(f"{path} differs from the tile the entries give")
        if any(head_edge[len(self.tree.edges):]):
            self.problem("the tree head's right edge has more levels than the tree")

    # --- the indexes ----------------------------------------------------------------------

    async def check_indexes(self, window: _Entries) -> None:
        if not window.leaves:
            return
        found = await self.db.lookup([leaf_hash(leaf) for _, leaf in window.leaves])
        envelopes = await rekor_envelopes(self.bucket, window.leaves)  # Rekor v2 Statements
        leaves = dict(window.leaves)
        for index, blob in envelopes.items():
            if not is_envelope_of(leaves[index], blob):
                self.problem(f"{envelope_path(leaf_hash(leaves[index]))} (the envelope of entry {index}) "
                             "is not the one its leaf logs")
        wanted: list[tuple[int, bytes, int]] = []
        for index, leaf in window.leaves:
            first = found.get(leaf_hash(leaf))
            if first is None:
                self.problem(f"the dedup index (tlog_leaves) has no entry for entry {index}")
            elif first > index:
                self.problem(f"the dedup index points entry {index} at a later index, {first}")
            elif first < index:
                self.duplicates += 1
            wanted.extend((SEARCH_FIELDS[f], search_key(f, t, 0)[1:33], index)
                          for f, t in search_keys(leaf, envelopes.get(index)))
        self.search_rows += len(wanted)
        if not wanted:
            return
        async with db_errors("reading the search index"):
            cur = await self.db.conn.execute(
                "SELECT k.field, k.idx FROM unnest(%s::smallint[], %s::bytea[], %s::bigint[]) "
                "AS k(field, term, idx) WHERE NOT EXISTS (SELECT 1 FROM tlog_search s "
                "WHERE s.field = k.field AND s.term = k.term AND s.idx = k.idx) ORDER BY k.idx",
                [list(col) for col in zip(*wanted, strict=True)])
            missing = await cur.fetchall()
        names = {v: k for k, v in SEARCH_FIELDS.items()}
        for fld, idx in missing[:20]:
            self.problem(f"the search index (tlog_search) lacks a {names.get(fld, fld)} key of entry {idx}")
        if len(missing) > 20:
            self.problem(f"... and {len(missing) - 20} more search keys are missing")

    async def check_envelopes(self, window: _Entries) -> None:
        digests: dict[str, int] = {}
        for index, leaf in window.leaves:
            info = parse_leaf(leaf)
            if info is not None and info.kind == KIND_DSSE:
                digests.setdefault(str(info.record["attestation"]), index)
        blobs = await self.get_many(f"v1/attestations/{d}" for d in digests)
        for (digest, index), blob in zip(digests.items(), blobs, strict=True):
            if blob is not None and hashlib.sha256(blob).hexdigest() != digest:
                self.problem(f"v1/attestations/{digest} (the envelope of entry {index}) does not match "
                             "its digest")

    async def check_tables(self) -> None:
        """Row counts: nothing indexed that is not in the tree or sequenced, nothing lost."""
        head = self.head
        async with db_errors("reading the indexes"):
            cur = await self.db.conn.execute(
                "SELECT (SELECT count(*) FROM tlog_leaves WHERE idx < %(size)s), "
                "(SELECT count(*) FROM tlog_leaves WHERE idx >= %(seq)s), "
                "(SELECT count(*) FROM tlog_search WHERE idx < %(size)s), "
                "(SELECT count(*) FROM tlog_search WHERE idx >= %(seq)s), "
                "(SELECT count(*) FROM tlog_sequenced WHERE idx < %(size)s), "
                "(SELECT count(*) FROM tlog_sequenced WHERE idx >= %(size)s AND idx < %(seq)s), "
                "(SELECT count(*) FROM tlog_sequenced WHERE idx >= %(seq)s)",
                {"size": head.size, "seq": head.sequenced})
            row = await cur.fetchone()
        assert row is not None
        leaves, leaves_after, search, search_after, below, waiting, beyond = (int(v) for v in row)
        complete = self.report.entries_checked == head.size  # else the replay reported why
        if complete and leaves != head.size - self.duplicates:
            self.problem(f"the dedup index holds {leaves} entries below the tree size, want "
                         f"{head.size - self.duplicates}")
        if complete and search != self.search_rows:
            self.problem(f"the search index holds {search} keys below the tree size, the entries give "
                         f"{self.search_rows}")
        if leaves_after or search_after:
            self.problem(f"the indexes hold entries at or beyond the sequenced count {head.sequenced}")
        if head.sequenced < head.size:
            self.problem(f"the tree head's sequenced count {head.sequenced} is below its size {head.size}")
        if below:
            self.problem(f"tlog_sequenced still holds {below} entries below the tree size {head.size}")
        if waiting != max(head.sequenced - head.size, 0) or beyond:
            self.problem(f"tlog_sequenced holds {waiting} entries between the tree size and the sequenced "
                         f"count (want {max(head.sequenced - head.size, 0)}) and {beyond} beyond")


async def check(config: ServeConfig, vkeys: list[str], say: Callable[[str], None] = print) -> FsckReport:
    """Check the scaled-out log `config` describes (storage = "s3"); `say` gets notes that
    are not problems."""
    report = FsckReport()
    bucket = ObjectStore(bucket_settings(config))
    db = await Db.open(config.postgres_dsn)
    try:
        published = await bucket.get_with_attributes("checkpoint")  # before the snapshot (see above)
        async with db_errors("reading the log"), db.conn.transaction():
            await db.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur = await db.conn.execute("SELECT to_regclass('tlog_meta') IS NOT NULL")
            row = await cur.fetchone()
            if not (row and row[0]):
                raise NoLog("the database holds no log (no tlog tables)")
            origin, vkey, marker = (await db.origin(), await db.meta_text("vkey"), await db.meta_text(MARKER))
            head = await db.head()
            if origin is None or head is None:
                raise NoLog("the database holds no log yet" + (" (a `tlog migrate` is under way)"
                                                                if marker else ""))
            if marker is not None:
                report.problem("a `tlog migrate` into this log is not finished (run it again to complete it)")
            keys = vkeys or ([vkey] if vkey else [])
            if not keys:
                raise NoLog("the database holds no verifier key: give --vkey")
            report.size = head.size
            verifiers: list[Verifier] = [parse_vkey(v) for v in keys]  # type: ignore[misc]
            f = DistFsck(bucket, db, origin, head, verifiers=verifiers, report=report)
            f.check_checkpoints(published)
            await f.replay()
            if f.tree.size == head.size:
                await f.check_edge()
                if f.tree.root() != head.root:
                    f.problem("the root of the bucket's tiles is not the tree head's root")
            f.check_roots()
            await f.check_tables()
            await f.check_description(keys)
            for note in f.notes:
                say(f"fsck: note: {note}")
    finally:
        await db.close()
    return report
