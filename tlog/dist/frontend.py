"""A stateless front end of a scaled-out log: any number of them, on any machines.

It parses and verifies submissions (the app does that, the CPU-heavy part), stores an
envelope in the bucket, queues the entry in PostgreSQL (tlog_pending) and waits until the
sequencer has published a tree head that holds it; it then builds the receipt itself, from
the tree head's right edge and full tiles read from the bucket. It hands entries over
through PostgreSQL, not a socket to the leader: nothing needs to find the leader, a
fail-over loses no queued entry (the queue is durable and the next leader drains it), and
the front ends' inserts batch naturally.

Reads (tiles, bundles, entries, proofs, search, checkpoint) come from the bucket and the
tree head row, which every front end follows by LISTEN/NOTIFY (and a poll, in case a
notification is lost while reconnecting).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any

from client import merkle
from client.errors import MalformedError
from client.merkle import leaf_hash
from client.metrics import Gauge, Registry
from client.tiles import TILE_WIDTH, encode_bundle, entries_path, parse_bundle, tile_width_at
from tlog.backend import size_in_range
from tlog.config import ServeConfig
from tlog.dist.bucket import ObjectStore, ObjectStoreError, envelope_path, object_attributes
from tlog.dist.db import HEAD_CHANNEL, Db, DbError, Head
from tlog.dist.settings import bucket_settings
from tlog.dist.tiles import BucketTiles
from tlog.errors import APIError, bad_request, not_found
from tlog.submit import Pushback, Receipt, SequencerRejected, SequencerUnavailable

log = logging.getLogger("tlog.dist.frontend")
_Waiter = tuple[asyncio.Future[Receipt], bytes, int, bool]  # (future, leaf hash, index, created)
HEAD_POLL = 1.0  # seconds between tree head reads when no notification came
STALE_AFTER = 3.0  # seconds without a successful tree head read: PostgreSQL is unreachable
POOL_WAIT = 5.0  # seconds a request waits for a database connection before a 503
MAX_INSERT = 512  # submissions queued in one transaction
BUNDLE_CACHE_BYTES = 64 << 20  # full entry bundles kept per worker (they never change)
MAX_LOOKUP = 512  # leaf hashes looked up in one query
LOOKUP_LOOPS = 2  # lookup queries in flight at once (each takes what arrived meanwhile)


class DistBackend:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.origin = ""
        self.bucket = ObjectStore(bucket_settings(config))
        self.tiles = BucketTiles(self.bucket)
        self.head: Head | None = None
        self._head_ok = 0.0  # monotonic time of the last good tree head read
        self._leader_seen = 0.0  # monotonic time a lease was last seen held
        self._pool: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: dict[bytes, list[tuple[asyncio.Future[Receipt], bool, float]]] = {}
        self._queue: asyncio.Queue[tuple[bytes, asyncio.Future[None]]] = asyncio.Queue()
        self._lookups: asyncio.Queue[tuple[bytes, asyncio.Future[int | None]]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._bundles: OrderedDict[int, list[bytes]] = OrderedDict()
        self._bundle_bytes = 0  # encoded size of the cached full bundles
        self._partial: tuple[int, int, list[bytes]] | None = None  # (index, width, entries)

    # --- life cycle ---------------------------------------------------------------------

    async def start(self, registry: Registry) -> None:
        from psycopg_pool import AsyncConnectionPool

        self._pool = AsyncConnectionPool(self.config.postgres_dsn, min_size=1, max_size=8, open=False,
                                         timeout=min(POOL_WAIT, self.config.submit_timeout),
                                         kwargs={"autocommit": True, "connect_timeout": 5})
        try:
            await self._pool.open(wait=True, timeout=15)
        except Exception as exc:
            raise DbError(f"cannot connect to PostgreSQL: {type(exc).__name__}") from exc
        async with self._db() as db:
            origin = await db.origin()
            if origin is None:
                raise DbError("the database holds no log yet (start a sequencer, or tlog serve, first)")
            self.origin = origin
        await self._refresh()
        registry.add(Gauge("tlog_tree_size", "Entries in the log (tree size)",
                           lambda: float(self.head.size) if self.head else 0.0))
        registry.add(Gauge("tlog_pending_submissions", "Submissions this worker waits on",
                           lambda: float(self.pending())))
        loops = [self._listen(), self._poll(), self._insert_loop()]
        for coro in (*loops, *(self._lookup_loop() for _ in range(LOOKUP_LOOPS))):
            self._tasks.append(asyncio.create_task(coro))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._fail_all(SequencerUnavailable("the log is shutting down"))
        if self._pool is not None:
            await self._pool.close()

    @contextlib.asynccontextmanager
    async def _db(self) -> Any:
        try:
            async with self._pool.connection() as conn:
                yield Db(conn)
        except DbError:
            raise
        except Exception as exc:  # the pool's own errors: timeouts, a refused connection
            raise DbError(f"PostgreSQL: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from exc

    # --- following the tree head ------------------------------------------------------

    async def _refresh(self) -> None:
        async with self._db() as db:
            head = await db.head()
            holder, _epoch, left = await db.leader()
        if head is None:
            raise DbError("the log is not initialised")
        now = time.monotonic()
        self._head_ok = now
        if holder and left > 0:
            self._leader_seen = now
        if self.head is None or _newer(head, self.head):
            self.head = head
        await self._answer()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(HEAD_POLL)
            try:
                await self._refresh()
            except (DbError, ObjectStoreError) as exc:
                log.warning("cannot read the tree head: %s", exc)

    async def _listen(self) -> None:
        """LISTEN for new tree heads on a connection of its own; reconnect with backoff."""
        import psycopg

        delay = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.config.postgres_dsn, autocommit=True,
                                                             connect_timeout=10)
                try:
                    await conn.execute(f"LISTEN {HEAD_CHANNEL}")
                    delay = 0.1
                    await self._refresh()
                    async for _ in conn.notifies():
                        await self._refresh()
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("tree head notifications: %s",
                            str(exc).splitlines()[0][:200] if str(exc) else exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def problem(self) -> tuple[str, str, str] | None:
        now = time.monotonic()
        if now - self._head_ok > STALE_AFTER:
            return "unavailable", "unhealthy", "PostgreSQL is not reachable"
        if now - self._leader_seen > max(STALE_AFTER, 3 * self.config.lease_seconds):
            return "unavailable", "unhealthy", "no sequencer holds the lease"
        return None

    def pending(self) -> int:
        return sum(len(v) for v in self._waiting.values()) + self._queue.qsize()

    async def extra_metrics(self) -> bytes:
        return b""

    # --- submissions --------------------------------------------------------------------

    async def submit(self, data: bytes, blob: bytes | None) -> Receipt:
        """Every step within `submit_timeout` (a hung database or bucket cannot hold the
        submitter for longer; a 503 does not say the entry is lost: a retry is deduplicated)."""
        try:
            async with asyncio.timeout(self.config.submit_timeout):
                return await self._submit(data, blob)
        except TimeoutError:
            raise SequencerUnavailable("timed out waiting for the entry to be published") from None

    async def _submit(self, data: bytes, blob: bytes | None) -> Receipt:
        head = self._current()
        if time.monotonic() - self._head_ok > STALE_AFTER:
            # Refuse at once rather than hold the submitter until the pool gives up.
            raise SequencerUnavailable("PostgreSQL is not reachable; try again shortly")
        if head.frozen:
            raise SequencerRejected("log_frozen", "this log is frozen and takes no new entries")
        if self.pending() >= self.config.max_pending:
            raise Pushback("too many submissions waiting")
        lh = leaf_hash(data)
        # The envelope goes to the bucket while the dedup index is asked (both are needed
        # before the entry is queued; writing a known envelope again rewrites the same bytes).
        lookup = asyncio.ensure_future(self._lookup(lh))
        if blob is not None:
            try:
                paths = [f"v1/attestations/{hashlib.sha256(blob).hexdigest()}"]
                if data[:1] == b"{":  # a Rekor v2 leaf does not name its envelope: by leaf hash
                    paths.append(envelope_path(lh))
                for path in paths:
                    cache, ctype = object_attributes(path)
                    await self.bucket.put(path, blob, cache=cache, ctype=ctype)
            except ObjectStoreError as exc:
                lookup.cancel()
                raise SequencerUnavailable(f"the bucket did not take the envelope: {exc}") from exc
        known = await lookup
        fut: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(lh, []).append((fut, known is None, time.monotonic()))
        try:
            if known is None:
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                await self._queue.put((data, done))
                await done
            else:
                await self._answer()
            return await asyncio.wait_for(asyncio.shield(fut), self.config.submit_timeout)
        except TimeoutError:
            raise SequencerUnavailable("timed out waiting for the entry to be published") from None
        finally:
            self._forget(lh, fut)

    def _forget(self, lh: bytes, fut: asyncio.Future[Receipt]) -> None:
        waiters = self._waiting.get(lh)
        if waiters is not None:
            waiters[:] = [w for w in waiters if w[0] is not fut]
            if not waiters:
                del self._waiting[lh]

    async def _lookup(self, lh: bytes) -> int | None:
        """The index of this leaf if the log holds it, from a query shared with the other
        submissions that arrived meanwhile."""
        fut: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        await self._lookups.put((lh, fut))
        return await fut

    async def _lookup_loop(self) -> None:
        while True:
            items = await _take(self._lookups, MAX_LOOKUP)
            try:
                async with self._db() as db:
                    found = await db.lookup(list({lh for lh, _ in items}))
            except DbError as exc:
                for _, fut in items:
                    if not fut.done():
                        fut.set_exception(SequencerUnavailable(str(exc)))
                continue
            for lh, fut in items:
                if not fut.done():
                    fut.set_result(found.get(lh))

    async def _insert_loop(self) -> None:
        """Queue accepted entries in PostgreSQL, many per transaction."""
        while True:
            items = await _take(self._queue, MAX_INSERT)
            try:
                async with self._db() as db:
                    await db.add_pending([d for d, _ in items])
            except DbError as exc:
                for _, done in items:
                    if not done.done():
                        done.set_exception(SequencerUnavailable(f"the entry could not be queued: {exc}"))
                continue
            for _, done in items:
                if not done.done():
                    done.set_result(None)

    async def _answer(self) -> None:
        """Answer every waiting submission whose entry the current tree head holds."""
        head = self.head
        if not self._waiting or head is None:
            return
        try:
            async with self._db() as db:
                found = await db.lookup(list(self._waiting))
        except DbError as exc:
            log.warning("cannot look up waiting entries: %s", exc)
            return
        ready = {lh: idx for lh, idx in found.items() if idx < head.size}
        if not ready:
            return
        wait = bool(self.config.witnesses) and self.config.witness_wait
        now = time.monotonic()
        items: list[_Waiter] = []
        for lh, idx in ready.items():
            for fut, created, since in self._waiting.get(lh, []):
                covered = head.cosigned_size is not None and head.cosigned_size > idx
                if fut.done() or (wait and not covered and now - since < self.config.witness_wait_timeout):
                    continue
                items.append((fut, lh, idx, created))
        if items:
            await self._resolve(head, items)

    async def _resolve(self, head: Head, items: list[_Waiter]) -> None:
        """Receipts against the cosigned checkpoint where it covers the entry (witnessed),
        else against the log-signed one."""
        witnessed = bool(self.config.witnesses)
        groups: dict[tuple[int, bytes, bool | None], list[_Waiter]] = {}
        for item in items:
            idx = item[2]
            if witnessed and head.cosigned is not None and head.cosigned_size is not None \
                    and head.cosigned_size > idx:
                key = (head.cosigned_size, head.cosigned, True)
            else:
                key = (head.size, head.checkpoint, False if witnessed else None)
            groups.setdefault(key, []).append(item)
        for (size, note, flag), group in groups.items():
            try:
                proofs = await self.tiles.prove(head, lambda read, s=size, g=group: _proofs(read, s, g))
            except (ObjectStoreError, ValueError) as exc:
                log.warning("cannot build receipts: %s", exc)
                continue
            for (fut, lh, idx, created), proof in zip(group, proofs, strict=True):
                if not fut.done():
                    fut.set_result(Receipt(idx, lh, size, proof, note, created, flag))

    def _fail_all(self, exc: Exception) -> None:
        for waiters in self._waiting.values():
            for fut, _, _ in waiters:
                if not fut.done():
                    fut.set_exception(exc)
        self._waiting.clear()

    def _current(self) -> Head:
        if self.head is None:
            raise SequencerUnavailable("the tree head is not known yet")
        return self.head

    # --- reads --------------------------------------------------------------------------

    async def checkpoint(self) -> bytes:
        head = self._current()
        if self.config.witnesses and head.cosigned is not None:
            return head.cosigned
        return head.checkpoint

    async def tree_size(self) -> int:
        return self._current().size

    async def tile(self, level: int, index: int, width: int) -> bytes | None:
        return await self.tiles.tile(self._current(), level, index, width)

    async def _bundle_entries(self, head: Head, index: int) -> list[bytes] | None:
        have = tile_width_at(0, index, head.size)
        if have == 0:
            return None
        if have < TILE_WIDTH:
            cached = self._partial
            if cached is None or cached[:2] != (index, have):
                data = await self.bucket.get(entries_path(index, have))
                if data is None:
                    raise ObjectStoreError(f"{entries_path(index, have)} is missing from the bucket")
                cached = self._partial = (index, have, _parse(data, have))
            return cached[2]
        hit = self._bundles.get(index)
        if hit is None:
            data = await self.bucket.get(entries_path(index))
            if data is None:
                raise ObjectStoreError(f"{entries_path(index)} is missing from the bucket")
            hit = self._bundles[index] = _parse(data, TILE_WIDTH)
            self._bundle_bytes += len(data)
            # Bounded by bytes, not count: a bundle of large entries is up to 16 MiB.
            while self._bundle_bytes > BUNDLE_CACHE_BYTES and len(self._bundles) > 1:
                _, old = self._bundles.popitem(last=False)
                self._bundle_bytes -= sum(len(e) + 2 for e in old)
        else:
            self._bundles.move_to_end(index)
        return hit

    async def bundle(self, index: int, width: int) -> bytes | None:
        head = self._current()
        if width > tile_width_at(0, index, head.size):
            return None
        entries = await self._bundle_entries(head, index)
        return None if entries is None else encode_bundle(entries[:width])

    async def entry(self, index: int) -> bytes | None:
        head = self._current()
        if index >= head.size:
            return None
        entries = await self._bundle_entries(head, index // TILE_WIDTH)
        return None if entries is None else entries[index % TILE_WIDTH]

    async def attestation(self, digest: bytes) -> bytes | None:
        return await self.bucket.get(f"v1/attestations/{digest.hex()}")

    async def envelope(self, index: int, leaf: bytes) -> bytes | None:
        return await self.bucket.get(envelope_path(leaf_hash(leaf)))

    async def key_attestation(self) -> bytes | None:
        try:
            async with self._db() as db:
                doc = await db.meta_text("tpm_attestation")
        except DbError as exc:
            raise APIError(503, "unavailable", "the log's database is not reachable") from exc
        return doc.encode() if doc else None

    async def find(self, field: str, term: str, after: int | None, limit: int,
                   descending: bool = False) -> tuple[list[tuple[int, bytes]], int]:
        """Search terms are committed with their entries here: complete to the tree size."""
        head = self._current()
        async with self._db() as db:
            found = await db.find(field, term, after, head.size, limit, descending=descending)
        out = []
        for idx in found:
            leaf = await self.entry(idx)
            if leaf is not None:
                out.append((idx, leaf))
        return out, head.size

    async def minutes_since(self, since: int) -> tuple[list[tuple[int, int]], int]:
        head = self._current()
        async with self._db() as db:
            return await db.minutes_since(since, head.size), head.size

    async def logged_minutes(self, indexes: list[int]) -> list[int | None]:
        async with self._db() as db:
            return await db.logged_minutes(indexes)

    async def inclusion(self, index: int | None, leaf: bytes | None,
                        size: int | None) -> tuple[int, int, list[bytes]]:
        head = self._current()
        tree = size_in_range("size", size, head.size)
        if leaf is not None:
            async with self._db() as db:
                index = (await db.lookup([leaf])).get(leaf)
            if index is None or index >= head.size:
                raise not_found("no entry with this leaf hash")
        assert index is not None
        if index >= tree:
            raise bad_request("index_out_of_range", f"index {index} is not below size {tree}")
        i = index
        return i, tree, await self.tiles.prove(head, lambda read: merkle.inclusion_proof(i, tree, read))

    async def consistency(self, old: int, new: int | None) -> tuple[int, int, list[bytes]]:
        head = self._current()
        n = size_in_range("new", new, head.size)
        if old > n:
            raise bad_request("size_out_of_range", f"old={old} is larger than new={n}")
        return old, n, await self.tiles.prove(head, lambda read: merkle.consistency_proof(old, n, read))

    async def receipt(self, index: int) -> tuple[Receipt, bytes] | None:
        head = self._current()
        if index >= head.size:
            return None
        leaf = await self.entry(index)
        if leaf is None:
            return None
        witnessed = bool(self.config.witnesses)
        size, note, flag = head.size, head.checkpoint, (False if witnessed else None)
        if witnessed and head.cosigned is not None and head.cosigned_size is not None \
                and head.cosigned_size > index:
            size, note, flag = head.cosigned_size, head.cosigned, True
        proof = await self.tiles.prove(head, lambda read: merkle.inclusion_proof(index, size, read))
        return Receipt(index, leaf_hash(leaf), size, proof, note, False, flag), leaf


async def _take(queue: asyncio.Queue[Any], limit: int) -> list[Any]:
    """The next item, waiting for it, and up to `limit` in all of those already queued."""
    items = [await queue.get()]
    while len(items) < limit and not queue.empty():
        items.append(queue.get_nowait())
    return items


def _newer(a: Head, b: Head) -> bool:
    """`a` is at least as new as `b`: two reads of the head row may finish out of order."""
    return (a.size, a.cosigned_size if a.cosigned_size is not None else -1) >= \
        (b.size, b.cosigned_size if b.cosigned_size is not None else -1)


def _proofs(read: Any, size: int, group: list[tuple[Any, bytes, int, bool]]) -> list[list[bytes]]:
    cache = merkle.RangeHashCache(read)
    return [cache.inclusion_proof(idx, size) for _, _, idx, _ in group]


def _parse(data: bytes, width: int) -> list[bytes]:
    try:
        entries = parse_bundle(data)
    except MalformedError as exc:
        raise ObjectStoreError(f"an entry bundle in the bucket is damaged: {exc}") from exc
    if len(entries) < width:
        raise ObjectStoreError(f"an entry bundle in the bucket has {len(entries)} entries, want {width}")
    return entries

