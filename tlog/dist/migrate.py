"""`tlog migrate`: an embedded (LMDB) log copied into an empty bucket and PostgreSQL database,
as the same log: same origin, key, tree, roots and signed checkpoint (docs/scale-out.md).

Why it is safe:

- the source is read in one LMDB read transaction (a consistent snapshot) and never written;
  every tile is re-derived from the entries and must equal the stored one, and the root must
  be the signed one, so a damaged source is refused rather than published;
- a target holding anything is refused, unless it holds an interrupted migration of this same
  log (the `migrating` marker in tlog_meta, with the snapshot's size and root and how far the
  copy got): then the copy goes on from there;
- the copy goes in chunks of whole entry bundles: envelopes, bundles and tiles first (bytes
  that depend only on the entries, so writing them again after a crash is harmless), then the
  chunk's dedup and search rows and the marker's progress, in one transaction;
- only at the end are the bucket's `checkpoint` and the tree head row written (and the marker
  removed with it): no front end or sequencer serves the log before, since they need the
  tree head row, and `tlog serve` refuses a database that holds the marker.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from client import merkle
from client.attest import KIND_DSSE, parse_leaf, search_keys
from client.checkpoint import open_checkpoint, parse_checkpoint_text
from client.errors import TlogError
from client.keyfile import KeyFileError, read_key
from client.merkle import HASH_SIZE, leaf_hash
from client.note import parse_note
from client.rekor import is_envelope_of
from client.tiles import TILE_HEIGHT, TILE_WIDTH, encode_bundle, entries_path, parse_bundle, tile_path
from client.tiletree import TileTree
from tlog.config import ServeConfig
from tlog.dist.bucket import (
    JSON,
    NO_CACHE,
    TEXT,
    ObjectStore,
    ObjectStoreError,
    envelope_path,
    log_description,
    object_attributes,
)
from tlog.dist.db import Db, DbError, Head, db_errors
from tlog.dist.settings import KEY_FILE, bucket_settings
from tlog.storage import SEARCH_FIELDS, LogStore, StorageError, search_key, tile_key

MARKER = "migrating"  # tlog_meta row while a migration is under way
LOCK_KEY = 0x746C6D67  # advisory lock: one `tlog migrate` per database at a time
CHUNK_BUNDLES = 32  # entry bundles per chunk (one transaction, one progress step)
CHUNK_BYTES = 64 << 20  # and at most about this much bundle data in memory
PUT_CONCURRENCY = 32
ENVELOPE_BATCH_BYTES = 128 << 20
PROGRESS_EVERY = 2.0  # seconds between progress lines
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")
Object = tuple[str, bytes, str, str]  # path, data, Cache-Control, Content-Type


class MigrateError(Exception):
    """The source or the target is refused, or the copy failed (a later run resumes it)."""


@dataclass
class Marker:
    """What the target records while a migration is under way (tlog_meta `migrating`)."""

    origin: str
    size: int  # the source snapshot being copied
    root: bytes
    copied: int  # entries whose objects and index rows are in the target

    def text(self) -> str:
        return orjson.dumps({"origin": self.origin, "size": self.size, "root": self.root.hex(),
                             "copied": self.copied}).decode()

    @classmethod
    def parse(cls, text: str) -> Marker:
        try:
            doc = orjson.loads(text)
            return cls(str(doc["origin"]), int(doc["size"]), bytes.fromhex(doc["root"]), int(doc["copied"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MigrateError(f"the database's migration marker is unreadable: {exc}") from exc


@dataclass
class Result:
    origin: str
    size: int
    root: bytes
    finished: bool = False
    already: bool = False  # the target already held exactly this log
    resumed_at: int = 0
    copied: int = 0  # entries copied by this run
    objects: int = 0
    envelopes: int = 0
    search_keys: int = 0
    seconds: float = 0.0


class Source:
    """The LMDB log, read in one transaction from open to close (never written)."""

    def __init__(self, data_dir: Path) -> None:
        try:
            self.store = LogStore(data_dir, readonly=True)
        except StorageError as exc:
            raise MigrateError(f"--from {data_dir}: {exc}") from exc
        except Exception as exc:  # lmdb's own errors: not a log, no access
            raise MigrateError(f"--from {data_dir}: cannot open the log: {exc}") from exc
        self.data_dir = data_dir
        self.txn = self.store.read_txn()
        try:
            self.origin = self.store.origin()
            self.head = self.store.head_in(self.txn)
        except StorageError as exc:
            self.close()
            raise MigrateError(f"--from {data_dir}: {exc}") from exc
        self.checkpoint = self.store.checkpoint_in(self.txn)
        self.cosigned = self.store.cosigned_in(self.txn)
        self.frozen = self.txn.get(b"frozen", db=self.store.meta) is not None
        raw = self.txn.get(b"checkpoint_time", db=self.store.meta)
        self.signed_at = _F64.unpack(raw)[0] if raw is not None else time.time()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.txn.abort()
        self.store.close()

    def damaged(self, what: str) -> MigrateError:
        return MigrateError(f"the source log is damaged: {what}; run `tlog fsck --data-dir {self.data_dir}`")

    def bundle(self, index: int, width: int) -> bytes:
        """Entry bundle `index` as the LMDB log serves it (full, or partial at the head)."""
        if width == TILE_WIDTH:
            raw = self.txn.get(_U64.pack(index), db=self.store.bundles)
            if raw is None:
                raise self.damaged(f"entry bundle {index} is missing")
            return bytes(raw)
        entries: list[bytes] = []
        cur = self.txn.cursor(db=self.store.edge)
        if cur.set_key(_U64.pack(index * TILE_WIDTH)):
            for _, value in cur:
                entries.append(bytes(value))
                if len(entries) == width:
                    break
        if len(entries) != width:
            raise self.damaged(f"entries of the partial bundle {index} are missing")
        return encode_bundle(entries)

    def tile(self, level: int, index: int, width: int) -> bytes:
        raw = self.txn.get(tile_key(level, index), db=self.store.tiles)
        if raw is None or len(raw) < width * HASH_SIZE:
            raise self.damaged(f"tile {level}/{index} is missing or short")
        return bytes(raw[: width * HASH_SIZE])

    def first_index(self, lh: bytes) -> int | None:
        return self.store.lookup_in(self.txn, lh)

    def envelope(self, index: int, digest_hex: str) -> bytes:
        blob = self.store.envelope_for(self.txn, index, bytes.fromhex(digest_hex))
        if blob is None:
            raise self.damaged(f"the envelope {digest_hex} is missing or does not match its digest")
        return bytes(blob)

    def rekor_envelope(self, index: int, leaf: bytes) -> bytes | None:
        """The envelope stored with a Rekor v2 entry, if any; it must be the one it logs."""
        blob = self.store.envelope_at(self.txn, index)
        if blob is None:
            return None
        if not is_envelope_of(leaf, blob):
            raise self.damaged(f"the envelope stored with entry {index} is not the one it logs")
        return bytes(blob)

    def tree_at(self, size: int) -> TileTree:
        """The right edge at `size` (<= the head), from the stored tiles (partial tiles are
        prefixes of the stored ones)."""
        edges: list[list[bytes]] = []
        level = 0
        while size >> (TILE_HEIGHT * level):
            width = (size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)
            tile = self.tile(level, size >> (TILE_HEIGHT * (level + 1)), width) if width else b""
            edges.append([tile[i : i + HASH_SIZE] for i in range(0, len(tile), HASH_SIZE)])
            level += 1
        return TileTree(size, edges)

    def root_at(self, size: int) -> bytes:
        try:
            return merkle.tree_root(size, self.store.node_reader(self.txn))
        except StorageError as exc:
            raise self.damaged(str(exc)) from exc

    def current_head(self) -> tuple[int, bytes]:
        """The head now, outside the snapshot: whether the log took entries meanwhile."""
        head = self.store.head()
        return head.size, head.root

    def minutes(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """The minutes recorded for entries [lo, hi) (when they were appended)."""
        return self.store.minutes_of(self.txn, lo, hi)


@dataclass
class Chunk:
    """One step of the copy: entries [lo, hi), their objects and index rows."""

    lo: int
    hi: int
    objects: list[Object] = field(default_factory=list)
    envelopes: list[tuple[str, int]] = field(default_factory=list)  # (digest hex, entry), no repeats
    leaves: list[tuple[bytes, int]] = field(default_factory=list)
    search: list[tuple[int, bytes, int]] = field(default_factory=list)
    minutes: list[tuple[int, int]] = field(default_factory=list)  # (first index, minute)


def obj(path: str, data: bytes) -> Object:
    return (path, data, *object_attributes(path))


class Migration:
    def __init__(self, src: Source, config: ServeConfig, bucket: ObjectStore, db: Db,
                 say: Callable[[str], None]) -> None:
        self.src, self.config, self.bucket, self.db, self.say = src, config, bucket, db, say
        self.size = src.head.size
        self.result = Result(src.origin, src.head.size, src.head.root)

    # --- the target ---------------------------------------------------------------------

    async def lock(self) -> None:
        async with db_errors("locking the database"):
            cur = await self.db.conn.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
            row = await cur.fetchone()
        if not (row and row[0]):
            raise MigrateError("another `tlog migrate` is running against this database")

    async def _has_schema(self) -> bool:
        async with db_errors("reading the schema"):
            cur = await self.db.conn.execute("SELECT to_regclass('tlog_meta') IS NOT NULL")
            row = await cur.fetchone()
        return bool(row and row[0])

    async def target_marker(self) -> Marker | None:
        """The migration to go on with (new, or an interrupted one of this log), or None if
        the target already holds exactly this log. Refuses anything else, writing nothing."""
        src, where = self.src, describe_target(self.bucket)
        if await self._has_schema():
            origin = await self.db.origin()
            text = await self.db.meta_text(MARKER)
            if text is not None and origin is None:
                return await self._resume(Marker.parse(text))
            if origin is not None:
                head = await self.db.head()
                same = (src.head.size, src.head.root, src.checkpoint)
                if text is None and origin == src.origin and head is not None and \
                        (head.size, head.root, head.checkpoint) == same:
                    return None
                size = f" (size {head.size})" if head is not None else ""
                raise MigrateError(f"the database already holds log {origin!r}{size}: refusing to migrate "
                                   f"{src.origin!r} into it (migrate into an empty database and bucket)")
            if not await self.db.is_empty():
                raise MigrateError("the database holds tlog tables with rows but no log: refusing to "
                                   "migrate into it (use an empty database)")
        if not await self.bucket.is_empty():
            raise MigrateError(f"{where} already holds objects: refusing to migrate into it (use an "
                               "empty bucket, or an unused prefix)")
        await self.bucket.self_test()
        await self.db.create_schema()
        marker = Marker(src.origin, self.size, src.head.root, 0)
        async with db_errors("recording the migration"), self.db.conn.transaction():
            cur = await self.db.conn.execute(
                "SELECT name FROM tlog_meta WHERE name IN ('origin', %s) FOR UPDATE", [MARKER])
            if await cur.fetchone() is not None:
                raise MigrateError("another process started a log in this database meanwhile")
            await self.db.conn.execute("INSERT INTO tlog_meta (name, value) VALUES (%s, %s)",
                                       [MARKER, marker.text().encode()])
        self.say(f"migrate: copying log {src.origin!r} ({self.size} entries) from {src.data_dir} into "
                 f"{where} and PostgreSQL")
        return marker

    async def _resume(self, marker: Marker) -> Marker:
        src = self.src
        if marker.origin != src.origin:
            raise MigrateError(f"the database holds an unfinished migration of log {marker.origin!r}, "
                               f"not {src.origin!r}: refusing to mix two logs")
        if self.size < marker.size or src.root_at(marker.size) != marker.root:
            raise MigrateError(f"the database holds an unfinished migration of {marker.origin!r} at size "
                               f"{marker.size} that the source log (size {self.size}) does not extend: "
                               "it is another copy of the log; refusing to mix them")
        published = await self.bucket.get("checkpoint")
        if published is not None:
            try:
                cp = parse_checkpoint_text(parse_note(published).text)
            except TlogError as exc:
                raise MigrateError(f"the bucket holds an unreadable checkpoint: {exc}") from exc
            if cp.origin != src.origin:
                raise MigrateError(f"the bucket holds a checkpoint of log {cp.origin!r}: refusing to mix "
                                   "two logs")
        if (marker.size, marker.root) != (self.size, src.head.root):
            self.say(f"migrate: the source grew from {marker.size} to {self.size} entries since the last "
                     "run: copying the new ones too")
            new = Marker(marker.origin, self.size, src.head.root, marker.copied)
            await self._set_marker(marker, new)
            marker = new
        self.result.resumed_at = marker.copied
        self.say(f"migrate: resuming the copy of log {src.origin!r} at entry {marker.copied} of {self.size}")
        return marker

    async def _set_marker(self, old: Marker, new: Marker) -> None:
        """Inside the caller's transaction or on its own: move the marker, if it is `old`."""
        cur = await self.db.conn.execute(
            "UPDATE tlog_meta SET value = %s WHERE name = %s AND value = %s RETURNING 1",
            [new.text().encode(), MARKER, old.text().encode()])
        if await cur.fetchone() is None:
            raise MigrateError("the migration marker changed under this run (another `tlog migrate`?)")

    # --- the copy -----------------------------------------------------------------------

    def chunk(self, tree: TileTree, lo: int) -> Chunk:
        """Read, check and encode entries from `lo` for one chunk (appending them to `tree`)."""
        src, size = self.src, self.size
        first = lo // TILE_WIDTH
        b, held = first, 0
        out = Chunk(lo, lo)
        seen: set[str] = set()
        while b * TILE_WIDTH < size and b - first < CHUNK_BUNDLES and held < CHUNK_BYTES:
            width = min(TILE_WIDTH, size - b * TILE_WIDTH)
            raw = src.bundle(b, width)
            held += len(raw)
            try:
                entries = parse_bundle(raw)
            except TlogError as exc:
                raise src.damaged(f"entry bundle {b}: {exc}") from exc
            if len(entries) != width:
                raise src.damaged(f"entry bundle {b} has {len(entries)} entries, want {width}")
            for pos in range(max(lo - b * TILE_WIDTH, 0), width):
                index, data = b * TILE_WIDTH + pos, entries[pos]
                lh = leaf_hash(data)
                tree.append(lh)
                known = src.first_index(lh)
                if known is None or known > index:
                    raise src.damaged(f"the leaf index does not hold entry {index}")
                if known == index:
                    out.leaves.append((lh, index))
                info = parse_leaf(data)
                blob = None
                if info is not None and info.kind == KIND_DSSE:
                    digest = str(info.record["attestation"])
                    if digest not in seen:
                        seen.add(digest)
                        out.envelopes.append((digest, index))
                elif info is not None and info.rekor is not None and known == index:
                    # Stored by index here; by leaf hash in the bucket (envelope_path), and
                    # content-addressed like every envelope.
                    blob = src.rekor_envelope(index, data)
                    if blob is not None:
                        digest = hashlib.sha256(blob).hexdigest()
                        if digest not in seen:
                            seen.add(digest)
                            out.envelopes.append((digest, index))
                        out.objects.append(obj(envelope_path(lh), blob))
                for f, t in search_keys(data, blob):
                    out.search.append((SEARCH_FIELDS[f], search_key(f, t, 0)[1:33], index))
            out.objects.append(obj(entries_path(b, width), raw))
            b += 1
        out.hi = min(b * TILE_WIDTH, size)
        out.minutes = self.src.minutes(lo, out.hi)
        for (level, index), (tile, _) in tree.take_changes().items():
            if len(tile) == TILE_WIDTH * HASH_SIZE:
                self._check_tile(level, index, tile)
                out.objects.append(obj(tile_path(level, index), tile))
        if out.hi == size:  # the right edge, at the final size
            for level, edge in enumerate(tree.edges):
                if edge.width():
                    index = size >> (TILE_HEIGHT * (level + 1))
                    self._check_tile(level, index, edge.tile_bytes())
                    out.objects.append(obj(tile_path(level, index, edge.width()), edge.tile_bytes()))
        return out

    def _check_tile(self, level: int, index: int, tile: bytes) -> None:
        if self.src.tile(level, index, len(tile) // HASH_SIZE) != tile:
            raise self.src.damaged(f"tile {level}/{index} differs from the one its entries give")

    async def put_all(self, objects: list[Object]) -> None:
        for i in range(0, len(objects), PUT_CONCURRENCY):
            await self.bucket.put_many(objects[i : i + PUT_CONCURRENCY])
        self.result.objects += len(objects)

    async def put_envelopes(self, digests: list[tuple[str, int]]) -> None:
        batch: list[Object] = []
        held = 0
        for digest, index in digests:
            blob = self.src.envelope(index, digest)
            batch.append(obj(f"v1/attestations/{digest}", blob))
            held += len(blob)
            if len(batch) == PUT_CONCURRENCY or held >= ENVELOPE_BATCH_BYTES:
                await self.put_all(batch)
                batch, held = [], 0
        if batch:
            await self.put_all(batch)
        self.result.envelopes += len(digests)

    async def commit(self, chunk: Chunk, old: Marker, new: Marker) -> None:
        """The chunk's dedup and search rows and the marker's progress, all or nothing."""
        conn = self.db.conn
        async with db_errors("recording copied entries"), conn.transaction():
            await self._set_marker(old, new)
            async with conn.cursor() as cur:
                if chunk.leaves:
                    async with cur.copy("COPY tlog_leaves (leaf_hash, idx) FROM STDIN") as copy:
                        for row in chunk.leaves:
                            await copy.write_row(row)
                if chunk.search:
                    async with cur.copy("COPY tlog_search (field, term, idx) FROM STDIN") as copy:
                        for row in chunk.search:
                            await copy.write_row(row)
                if chunk.minutes:
                    await cur.executemany("INSERT INTO tlog_minutes (first_index, minute) VALUES (%s, %s)",
                                          chunk.minutes)
        self.result.search_keys += len(chunk.search)

    async def copy(self, marker: Marker, stop_after: int | None) -> Marker:
        """Copy from the marker's progress on; returns the marker at the end."""
        tree = self.src.tree_at(marker.copied)
        start, last_say = marker.copied, time.monotonic()
        while marker.copied < self.size:
            if stop_after is not None and marker.copied - start >= stop_after:
                break
            chunk = await asyncio.to_thread(self.chunk, tree, marker.copied)
            await self.put_envelopes(chunk.envelopes)  # before the entries that name them
            await self.put_all(chunk.objects)
            new = Marker(marker.origin, marker.size, marker.root, chunk.hi)
            await self.commit(chunk, marker, new)
            marker = new
            self.result.copied += chunk.hi - chunk.lo
            now = time.monotonic()
            if chunk.lo == start or now - last_say >= PROGRESS_EVERY or marker.copied == self.size:
                last_say = now
                self.say(f"migrate: {marker.copied}/{self.size} entries copied "
                         f"({100 * marker.copied // max(self.size, 1)}%), {self.result.objects} objects")
        if marker.copied == self.size and tree.root() != self.src.head.root:
            raise self.src.damaged("the root of its tiles is not the signed tree head's")
        return marker

    # --- the end ------------------------------------------------------------------------

    async def finish(self, marker: Marker, vkey: str) -> None:
        """Publish: the bucket's checkpoint, then the tree head row (the marker goes with it)."""
        src = self.src
        now = src.current_head()
        if now != (src.head.size, src.head.root):
            raise MigrateError(f"the source log took entries during the copy (size {src.head.size} -> "
                               f"{now[0]}): stop it, then run `tlog migrate` again (it copies only "
                               "what is new)")
        tree = src.tree_at(self.size)
        # What the LMDB log serves at /checkpoint, and a sequencer would publish: with
        # witnesses, the newest cosigned checkpoint.
        published = src.cosigned[1] if self.config.witnesses and src.cosigned is not None else src.checkpoint
        description = log_description(src.origin, [vkey], self.config.allow_raw, src.frozen)
        await self.bucket.put("v1/log", description, cache=NO_CACHE, ctype=JSON)
        await self.bucket.put("checkpoint", published, cache=NO_CACHE, ctype=TEXT)
        cos_size, cos_note = src.cosigned if src.cosigned is not None else (None, None)
        head = Head(self.size, src.head.root, src.checkpoint, src.signed_at,
                    tuple(e.tile_bytes() for e in tree.edges), self.size, cos_size, cos_note, src.frozen)
        conn = self.db.conn
        async with db_errors("writing the tree head"), conn.transaction():
            cur = await conn.execute("SELECT value FROM tlog_meta WHERE name = %s FOR UPDATE", [MARKER])
            row = await cur.fetchone()
            if row is None or bytes(row[0]).decode() != marker.text():
                raise MigrateError("the migration marker changed under this run (another `tlog migrate`?)")
            if await self.db.origin() is not None:
                raise MigrateError("another process started a log in this database meanwhile")
            await self.db.initialize(src.origin, head)
            await self.db.set_meta("vkey", vkey)
            await conn.execute("DELETE FROM tlog_meta WHERE name = %s", [MARKER])
        self.result.finished = True


def describe_target(bucket: ObjectStore) -> str:
    s = bucket.settings
    return f"bucket {s.bucket!r}" + (f" (prefix {s.prefix!r})" if s.prefix else "") + f" at {s.endpoint}"


def check_source(src: Source, config: ServeConfig) -> str:
    """The source's key and checkpoint agree with each other and the configuration; the
    verifier key."""
    if config.origin and config.origin != src.origin:
        raise MigrateError(f"the configuration's origin is {config.origin!r} but the source holds log "
                           f"{src.origin!r}")
    try:
        signer = read_key(src.data_dir / KEY_FILE)
    except (KeyFileError, OSError) as exc:
        raise MigrateError(f"the log's key: {exc} (the scaled-out log signs with the same key)") from exc
    if signer.name != src.origin:
        raise MigrateError(f"{src.data_dir / KEY_FILE} is a key for {signer.name!r}, not {src.origin!r}")
    try:
        cp, _ = open_checkpoint(src.checkpoint, src.origin, [signer.verifier()])
    except TlogError as exc:
        raise MigrateError(f"the source's checkpoint does not verify with {KEY_FILE}: {exc}") from exc
    if (cp.size, cp.root) != (src.head.size, src.head.root):
        raise src.damaged("its checkpoint is not for its tree head")
    return signer.verifier().vkey()


async def migrate(data_dir: Path, config: ServeConfig, *, stop_after: int | None = None,
                  say: Callable[[str], None] = print) -> Result:
    """Copy the LMDB log in `data_dir` into the target `config` describes (storage = "s3").
    `stop_after`: copy about this many entries (whole chunks) and stop before publishing."""
    if config.storage != "s3":
        raise MigrateError('the target configuration must have storage = "s3"')
    t0 = time.monotonic()
    src = Source(data_dir)
    try:
        vkey = check_source(src, config)
        bucket = ObjectStore(bucket_settings(config))
        try:
            db = await Db.open(config.postgres_dsn)
        except DbError as exc:
            raise MigrateError(str(exc)) from exc
        m = Migration(src, config, bucket, db, say)
        try:
            await m.lock()
            marker = await m.target_marker()
            if marker is None:
                m.result.already = m.result.finished = True
                return m.result
            marker = await m.copy(marker, stop_after)
            if stop_after is None and marker.copied == src.head.size:
                await m.finish(marker, vkey)
        except (DbError, ObjectStoreError) as exc:
            raise MigrateError(f"{exc} (run `tlog migrate` again: it resumes)") from exc
        finally:
            await db.close()
    finally:
        src.close()
    m.result.seconds = time.monotonic() - t0
    return m.result


def run(data_dir: Path, config: ServeConfig, stop_after: int | None) -> int:
    """`tlog migrate`: 0 done, 3 stopped before the end (run it again), MigrateError otherwise."""
    r = asyncio.run(migrate(data_dir, config, stop_after=stop_after, say=lambda s: print(s, flush=True)))
    if r.already:
        print(f"migrate: ok: the target already holds log {r.origin!r} at size {r.size} "
              f"(root {r.root.hex()[:16]}…): nothing to do")
        return 0
    summary = (f"{r.copied} entries, {r.objects} objects ({r.envelopes} envelopes), {r.search_keys} "
               f"search keys copied in {r.seconds:.1f} s")
    if not r.finished:
        print(f"migrate: stopped: {summary}; the log is not published yet: run `tlog migrate` again "
              "(without --stop-after) to finish")
        return 3
    print(f"migrate: ok: log {r.origin!r} at size {r.size} (root {r.root.hex()[:16]}…) is in the target; "
          f"{summary}. Give its sequencers the key ({KEY_FILE}) and start `tlog serve` on it.")
    return 0
