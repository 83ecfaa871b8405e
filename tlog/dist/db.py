"""What must be transactional, in PostgreSQL: the tree head (moved only by compare-and-swap),
the sequencer's lease and fencing token, the queue of accepted submissions, the entries
sequenced but not yet in the bucket, the dedup index and the search index.

Tables (one log per database, or per schema through the DSN's search_path):

    tlog_meta       name -> value: the origin
    tlog_head       the one row: size, root, signed checkpoint, the right edge of the tree
                    (each level's partial tile), entries sequenced so far, the newest
                    cosigned checkpoint, frozen
    tlog_lease      the one row: holder, epoch (the fencing token), expiry
    tlog_pending    submissions accepted by front ends, in arrival order, not yet sequenced
    tlog_sequenced  entries given their index but not yet published (idx -> leaf)
    tlog_leaves     leaf hash -> index of its first occurrence (dedup)
    tlog_search     (field, SHA-256 of term, index): attestations by subject, signer, predicate type

How an entry moves (docs/scale-out.md): a front end inserts it into tlog_pending (its
envelope already in the bucket); the leader, in one transaction, gives each new entry the
next index (tlog_sequenced, tlog_leaves, tlog_search) — from then on its index is fixed, so a
crash anywhere after it leaves nothing to decide again; the leader writes the tiles and
bundles (bytes that depend only on the sequenced entries), then moves the tree head by
compare-and-swap in a second transaction. Every leader transaction first checks, with the
lease row locked, that its lease (holder and epoch) is still current: a deposed or
partitioned leader can commit nothing, and a takeover waits for a transaction in flight.
Expiry uses the database's clock only, so sequencers' clocks never matter.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from client.attest import search_keys
from client.merkle import leaf_hash
from tlog.storage import SEARCH_FIELDS, search_key

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS tlog_meta (name text PRIMARY KEY, value bytea NOT NULL)",
    """CREATE TABLE IF NOT EXISTS tlog_head (
        id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
        size bigint NOT NULL, root bytea NOT NULL, checkpoint bytea NOT NULL,
        signed_at double precision NOT NULL, edge bytea NOT NULL, sequenced bigint NOT NULL,
        cosigned_size bigint, cosigned bytea, frozen boolean NOT NULL DEFAULT false)""",
    """CREATE TABLE IF NOT EXISTS tlog_lease (
        id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
        holder text NOT NULL, epoch bigint NOT NULL, expires timestamptz NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tlog_pending (
        id bigserial PRIMARY KEY, leaf bytea NOT NULL, leaf_hash bytea NOT NULL)""",
    "CREATE TABLE IF NOT EXISTS tlog_sequenced (idx bigint PRIMARY KEY, leaf bytea NOT NULL)",
    "CREATE TABLE IF NOT EXISTS tlog_leaves (leaf_hash bytea PRIMARY KEY, idx bigint NOT NULL)",
    # The first index appended in each UTC minute (tlog/activity.py).
    "CREATE TABLE IF NOT EXISTS tlog_minutes (first_index bigint PRIMARY KEY, minute bigint NOT NULL)",
    """CREATE TABLE IF NOT EXISTS tlog_search (
        field smallint NOT NULL, term bytea NOT NULL, idx bigint NOT NULL,
        PRIMARY KEY (field, term, idx))""",
    "INSERT INTO tlog_lease (id, holder, epoch, expires) VALUES (1, '', 0, to_timestamp(0)) "
    "ON CONFLICT DO NOTHING",
]
TABLES = ("tlog_meta", "tlog_head", "tlog_pending", "tlog_sequenced", "tlog_leaves", "tlog_search",
          "tlog_minutes")
PENDING_CHANNEL = "tlog_pending"
log = logging.getLogger("tlog.dist.db")
HEAD_CHANNEL = "tlog_head"


class DbError(Exception):
    """PostgreSQL could not be reached or refused (the caller answers 503 and retries)."""


class Deposed(DbError):
    """This sequencer's lease is gone (expired and taken, or never held): it must stop."""


class HeadMoved(DbError):
    """The tree head is not the one this sequencer built on (compare-and-swap failed)."""


@dataclass(frozen=True)
class Head:
    size: int
    root: bytes
    checkpoint: bytes
    signed_at: float
    edge: tuple[bytes, ...]  # per level: the level-0 hashes of its partial tile
    sequenced: int  # entries given an index: size <= sequenced
    cosigned_size: int | None = None
    cosigned: bytes | None = None
    frozen: bool = False

    def edge_hashes(self) -> list[list[bytes]]:
        return [[e[i : i + 32] for i in range(0, len(e), 32)] for e in self.edge]


def encode_edge(edges: Iterable[bytes]) -> bytes:
    return msgpack.packb(list(edges))  # type: ignore[no-any-return]


async def connect(dsn: str, *, autocommit: bool = True, timeout: float = 10.0) -> Any:
    import psycopg

    try:
        return await psycopg.AsyncConnection.connect(dsn, autocommit=autocommit, connect_timeout=int(timeout))
    except psycopg.Error as exc:
        raise DbError(f"cannot connect to PostgreSQL: {_first_line(exc)}") from exc


def holder_tag(holder: str) -> str:
    """The application_name of a sequencer's sessions (at most 63 bytes)."""
    return "tlog-sequencer " + hashlib.sha256(holder.encode()).hexdigest()[:32]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@contextlib.asynccontextmanager
async def db_errors(what: str) -> AsyncIterator[None]:
    """psycopg errors as DbError (the message's first line: never the DSN's password)."""
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        raise DbError(f"{what}: {_first_line(exc)}") from exc


class Db:
    """One connection (autocommit; transactions are explicit). Not shared between tasks."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, dsn: str, *, idle_in_transaction: float | None = None, holder: str = "") -> Db:
        """A connection. With `idle_in_transaction` (seconds), PostgreSQL aborts a transaction
        this connection leaves open that long (a leader stopped between two statements);
        with `holder`, the connection is tagged as that sequencer's, so that a standby can end
        the transactions of a holder whose lease expired (a leader stopped or cut off in the
        middle of a pipeline, which no server timeout ends)."""
        db = cls(await connect(dsn))
        async with db_errors("setting up the session"):
            if idle_in_transaction is not None:
                await db.conn.execute(
                    f"SET idle_in_transaction_session_timeout = {max(100, int(idle_in_transaction * 1000))}")
            if holder:
                await db.conn.execute("SELECT set_config('application_name', %s, false)",
                                      [holder_tag(holder)])
        return db

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.conn.close()

    @property
    def closed(self) -> bool:
        return bool(self.conn.closed or self.conn.broken)

    # --- set-up -------------------------------------------------------------------------

    async def create_schema(self) -> None:
        async with db_errors("creating the schema"), self.conn.transaction():
            await self.conn.execute("SELECT pg_advisory_xact_lock(7213)")  # concurrent starts
            for stmt in SCHEMA:
                await self.conn.execute(stmt)

    async def is_empty(self) -> bool:
        """True if no log state is held (a target a log may be migrated into)."""
        async with db_errors("reading the log state"):
            for table in TABLES:
                cur = await self.conn.execute(f"SELECT 1 FROM {table} LIMIT 1")  # noqa: S608 - fixed names
                if await cur.fetchone() is not None:
                    return False
        return True

    async def origin(self) -> str | None:
        return await self.meta_text("origin")

    async def meta_text(self, name: str) -> str | None:
        async with db_errors(f"reading {name}"):
            cur = await self.conn.execute("SELECT value FROM tlog_meta WHERE name = %s", [name])
            row = await cur.fetchone()
        return bytes(row[0]).decode() if row else None

    async def set_meta(self, name: str, value: str) -> None:
        async with db_errors(f"recording {name}"):
            await self.conn.execute(
                "INSERT INTO tlog_meta (name, value) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE "
                "SET value = excluded.value", [name, value.encode()])

    async def initialize(self, origin: str, head: Head) -> None:
        """Record the origin and the first tree head, once (later calls check the origin)."""
        async with db_errors("initialising the log"), self.conn.transaction():
            cur = await self.conn.execute("SELECT value FROM tlog_meta WHERE name = 'origin' FOR UPDATE")
            row = await cur.fetchone()
            if row is not None:
                if bytes(row[0]).decode() != origin:
                    raise DbError(f"this database holds log {bytes(row[0]).decode()!r}, not {origin!r}")
                return
            await self.conn.execute("INSERT INTO tlog_meta (name, value) VALUES ('origin', %s)",
                                    [origin.encode()])
            await self.conn.execute(
                "INSERT INTO tlog_head (id, size, root, checkpoint, signed_at, edge, sequenced, "
                "cosigned_size, cosigned, frozen) VALUES (1, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [head.size, head.root, head.checkpoint, head.signed_at, encode_edge(head.edge),
                 head.sequenced, head.cosigned_size, head.cosigned, head.frozen])

    async def freeze(self) -> None:
        async with db_errors("freezing the log"):
            await self.conn.execute("UPDATE tlog_head SET frozen = true WHERE id = 1")

    # --- reads --------------------------------------------------------------------------

    async def head(self) -> Head | None:
        async with db_errors("reading the tree head"):
            cur = await self.conn.execute(
                "SELECT size, root, checkpoint, signed_at, edge, sequenced, cosigned_size, cosigned, "
                "frozen FROM tlog_head WHERE id = 1")
            row = await cur.fetchone()
        if row is None:
            return None
        return Head(row[0], bytes(row[1]), bytes(row[2]), row[3], tuple(msgpack.unpackb(row[4])),
                    row[5], row[6], bytes(row[7]) if row[7] is not None else None, row[8])

    async def lookup(self, hashes: list[bytes]) -> dict[bytes, int]:
        """Index of each leaf hash already sequenced (a sequenced index is fixed for good)."""
        if not hashes:
            return {}
        async with db_errors("looking up entries"):
            cur = await self.conn.execute(
                "SELECT leaf_hash, idx FROM tlog_leaves WHERE leaf_hash = ANY(%s)", [hashes])
            return {bytes(h): i for h, i in await cur.fetchall()}

    async def find(self, field: str, term: str, after: int | None, below: int, limit: int,
                   *, descending: bool = False) -> list[int]:
        """Indexes under (field, term) below `below`: ascending after `after`, or descending
        below `after` (None: from the newest)."""
        term_hash = search_key(field, term, 0)[1:33]
        if descending:
            sql = ("SELECT idx FROM tlog_search WHERE field = %s AND term = %s AND idx < %s "
                   "ORDER BY idx DESC LIMIT %s")
            args = [SEARCH_FIELDS[field], term_hash, below if after is None else min(after, below), limit]
        else:
            sql = ("SELECT idx FROM tlog_search WHERE field = %s AND term = %s AND idx > %s AND idx < %s "
                   "ORDER BY idx LIMIT %s")
            args = [SEARCH_FIELDS[field], term_hash, -1 if after is None else after, below, limit]
        async with db_errors("searching"):
            cur = await self.conn.execute(sql, args)
            return [r[0] for r in await cur.fetchall()]

    async def record_minute(self, first: int, minute: int) -> None:
        """Entries from `first` on were appended in the minute starting at `minute` (once per
        minute, by the sequencer; only forward, so a restart or a clock step writes nothing)."""
        async with db_errors("recording the minute"):
            await self.conn.execute(
                "INSERT INTO tlog_minutes (first_index, minute) SELECT %s, %s WHERE NOT EXISTS "
                "(SELECT 1 FROM tlog_minutes WHERE minute >= %s OR first_index >= %s)",
                [first, minute, minute, first])

    async def minutes_since(self, since: int, below: int) -> list[tuple[int, int]]:
        """(first index, minute) of the minutes recorded from `since` on, for entries below
        `below` (the published size), ascending."""
        async with db_errors("reading minutes"):
            cur = await self.conn.execute(
                "SELECT first_index, minute FROM tlog_minutes WHERE minute >= %s AND first_index < %s "
                "ORDER BY first_index", [since, below])
            return [(int(a), int(b)) for a, b in await cur.fetchall()]

    async def logged_minutes(self, indexes: list[int]) -> list[int | None]:
        """The minute each entry was appended in (None: before minutes were recorded)."""
        if not indexes:
            return []
        async with db_errors("reading minutes"):
            cur = await self.conn.execute(
                "SELECT i, (SELECT minute FROM tlog_minutes WHERE first_index <= i "
                "ORDER BY first_index DESC LIMIT 1) FROM unnest(%s::bigint[]) AS i", [indexes])
            found = {int(i): (None if m is None else int(m)) for i, m in await cur.fetchall()}
        return [found.get(i) for i in indexes]

    async def sequenced(self, start: int, end: int) -> list[tuple[int, bytes]]:
        async with db_errors("reading sequenced entries"):
            cur = await self.conn.execute(
                "SELECT idx, leaf FROM tlog_sequenced WHERE idx >= %s AND idx < %s ORDER BY idx",
                [start, end])
            return [(i, bytes(leaf)) for i, leaf in await cur.fetchall()]

    async def pending_count(self) -> int:
        async with db_errors("counting pending entries"):
            cur = await self.conn.execute("SELECT count(*) FROM tlog_pending")
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # --- front ends ---------------------------------------------------------------------

    async def add_pending(self, leaves: list[bytes]) -> None:
        """Queue accepted entries for the sequencer (durable once this returns) and wake it."""
        async with db_errors("queueing entries"), self.conn.transaction():
            async with self.conn.cursor() as cur:
                await cur.executemany("INSERT INTO tlog_pending (leaf, leaf_hash) VALUES (%s, %s)",
                                      [(leaf, leaf_hash(leaf)) for leaf in leaves])
            await self.conn.execute(f"NOTIFY {PENDING_CHANNEL}")

    # --- leadership ---------------------------------------------------------------------

    async def try_lead(self, holder: str, ttl: float) -> int | None:
        """Take the lease if it is free or expired; the new epoch (fencing token), or None.

        If the lease has expired but its row is still locked by the old holder's transaction,
        that holder is stopped or cut off: its sessions are ended (their transactions abort,
        nothing of them commits) and the next try takes the lease."""
        import psycopg

        try:
            async with self.conn.transaction():
                await self.conn.execute("SET LOCAL lock_timeout = '500ms'")
                cur = await self.conn.execute(
                    "UPDATE tlog_lease SET holder = %s, epoch = epoch + 1, "
                    "expires = clock_timestamp() + make_interval(secs => %s) "
                    "WHERE id = 1 AND expires < clock_timestamp() RETURNING epoch", [holder, ttl])
                row = await cur.fetchone()
        except psycopg.errors.LockNotAvailable:
            await self._end_expired_holder()
            return None
        except psycopg.Error as exc:
            raise DbError(f"taking the lease: {_first_line(exc)}") from exc
        return int(row[0]) if row else None

    async def _end_expired_holder(self) -> None:
        async with db_errors("ending an expired leader's sessions"):
            cur = await self.conn.execute(
                "SELECT holder FROM tlog_lease WHERE id = 1 AND expires < clock_timestamp()")
            row = await cur.fetchone()
            if row is None or not row[0]:
                return
            cur = await self.conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()", [holder_tag(str(row[0]))])
            ended = await cur.fetchone()
            if ended and ended[0]:
                log.warning("ended %d session(s) of %s, whose lease expired inside a transaction",
                            ended[0], row[0])

    async def renew(self, holder: str, epoch: int, ttl: float) -> bool:
        async with db_errors("renewing the lease"):
            cur = await self.conn.execute(
                "UPDATE tlog_lease SET expires = clock_timestamp() + make_interval(secs => %s) "
                "WHERE id = 1 AND holder = %s AND epoch = %s AND expires > clock_timestamp() RETURNING 1",
                [ttl, holder, epoch])
            return await cur.fetchone() is not None

    async def release(self, holder: str, epoch: int) -> None:
        """Give the lease up at once (a clean stop), so a standby need not wait it out."""
        async with db_errors("releasing the lease"):
            await self.conn.execute(
                "UPDATE tlog_lease SET expires = to_timestamp(0) WHERE id = 1 AND holder = %s AND epoch = %s",
                [holder, epoch])

    async def leader(self) -> tuple[str, int, float]:
        """(holder, epoch, seconds until the lease expires; negative: expired)."""
        async with db_errors("reading the lease"):
            cur = await self.conn.execute(
                "SELECT holder, epoch, extract(epoch FROM expires - clock_timestamp()) "
                "FROM tlog_lease WHERE id = 1")
            row = await cur.fetchone()
        assert row is not None
        return str(row[0]), int(row[1]), float(row[2]) if row[2] is not None else -1.0

    async def _fence(self, holder: str, epoch: int) -> None:
        """Inside a transaction: the lease row locked (a takeover waits for this transaction)
        and still ours, or Deposed."""
        cur = await self.conn.execute(
            "SELECT 1 FROM tlog_lease WHERE id = 1 AND holder = %s AND epoch = %s "
            "AND expires > clock_timestamp() FOR SHARE", [holder, epoch])
        if await cur.fetchone() is None:
            raise Deposed(f"the lease of epoch {epoch} is no longer ours")

    # --- the leader's two transactions ---------------------------------------------------

    async def sequence(self, holder: str, epoch: int, limit: int) -> tuple[int, list[tuple[int, bytes]]]:
        """Give the oldest pending entries their indexes, once and for good. Returns (the
        next index after them, the new (index, leaf) pairs); pending duplicates of entries
        already sequenced are dropped (their submitters find the index in tlog_leaves)."""
        async with db_errors("sequencing"), self.conn.transaction():
            await self._fence(holder, epoch)
            cur = await self.conn.execute("SELECT sequenced, frozen FROM tlog_head WHERE id = 1 FOR UPDATE")
            row = await cur.fetchone()
            if row is None:
                raise DbError("the log is not initialised")
            nxt, frozen = int(row[0]), bool(row[1])
            if frozen:
                return nxt, []
            cur = await self.conn.execute(
                "SELECT id, leaf, leaf_hash FROM tlog_pending ORDER BY id LIMIT %s", [limit])
            taken = [(i, bytes(leaf), bytes(h)) for i, leaf, h in await cur.fetchall()]
            if not taken:
                return nxt, []
            known = await self.lookup(list({h for _, _, h in taken}))
            new: list[tuple[int, bytes]] = []
            hashes: list[tuple[bytes, int]] = []
            for _, leaf, h in taken:
                if h in known:
                    continue
                known[h] = nxt
                new.append((nxt, leaf))
                hashes.append((h, nxt))
                nxt += 1
            async with self.conn.cursor() as c:
                if new:
                    await c.executemany("INSERT INTO tlog_sequenced (idx, leaf) VALUES (%s, %s)", new)
                    await c.executemany("INSERT INTO tlog_leaves (leaf_hash, idx) VALUES (%s, %s)", hashes)
                    keys = [(SEARCH_FIELDS[f], search_key(f, t, 0)[1:33], i)
                            for i, leaf in new for f, t in search_keys(leaf)]
                    if keys:
                        await c.executemany(
                            "INSERT INTO tlog_search (field, term, idx) VALUES (%s, %s, %s) "
                            "ON CONFLICT DO NOTHING", keys)
                await c.execute("DELETE FROM tlog_pending WHERE id = ANY(%s)", [[i for i, _, _ in taken]])
                await c.execute("UPDATE tlog_head SET sequenced = %s WHERE id = 1", [nxt])
            return nxt, new

    async def add_search(self, rows: list[tuple[int, str, str]]) -> None:
        """Search rows (index, field, term) beyond those `sequence` derives from leaves;
        idempotent, so a leader finishing its predecessor's batch may add them again."""
        if not rows:
            return
        keys = [(SEARCH_FIELDS[f], search_key(f, t, 0)[1:33], i) for i, f, t in rows]
        async with db_errors("indexing envelopes"), self.conn.transaction(), self.conn.cursor() as c:
            await c.executemany("INSERT INTO tlog_search (field, term, idx) VALUES (%s, %s, %s) "
                                "ON CONFLICT DO NOTHING", keys)

    async def publish(self, holder: str, epoch: int, old: Head, *, size: int, root: bytes,
                      checkpoint: bytes, signed_at: float, edge: list[bytes],
                      minute: int | None = None) -> None:
        """Move the tree head from `old` to the new one (compare-and-swap, fenced), forget the
        sequenced entries it now holds, and wake the front ends. `minute`: this is the first
        batch of the minute starting then (recorded, see `record_minute`)."""
        async with db_errors("publishing the tree head"), self.conn.transaction():
            await self._fence(holder, epoch)
            cur = await self.conn.execute(
                "UPDATE tlog_head SET size = %s, root = %s, checkpoint = %s, signed_at = %s, edge = %s "
                "WHERE id = 1 AND size = %s AND root = %s AND sequenced >= %s RETURNING 1",
                [size, root, checkpoint, signed_at, encode_edge(edge), old.size, old.root, size])
            if await cur.fetchone() is None:
                raise HeadMoved(f"the tree head is no longer size {old.size}")
            await self.conn.execute("DELETE FROM tlog_sequenced WHERE idx < %s", [size])
            if minute is not None:
                await self.record_minute(old.size, minute)
            await self.conn.execute(f"NOTIFY {HEAD_CHANNEL}, '{int(size)}'")

    async def resign(self, holder: str, epoch: int, head: Head, checkpoint: bytes, signed_at: float) -> None:
        """Replace the checkpoint of an unchanged tree head (the set of keys changed)."""
        async with db_errors("re-signing the checkpoint"), self.conn.transaction():
            await self._fence(holder, epoch)
            cur = await self.conn.execute(
                "UPDATE tlog_head SET checkpoint = %s, signed_at = %s WHERE id = 1 AND size = %s "
                "AND root = %s RETURNING 1", [checkpoint, signed_at, head.size, head.root])
            if await cur.fetchone() is None:
                raise HeadMoved(f"the tree head is no longer size {head.size}")
            await self.conn.execute(f"NOTIFY {HEAD_CHANNEL}, '{int(head.size)}'")

    async def publish_cosigned(self, size: int, note: bytes) -> bool:
        """Record a cosigned checkpoint unless a newer one is recorded (only forward)."""
        async with db_errors("recording a cosigned checkpoint"), self.conn.transaction():
            cur = await self.conn.execute(
                "UPDATE tlog_head SET cosigned_size = %s, cosigned = %s WHERE id = 1 AND size >= %s "
                "AND (cosigned_size IS NULL OR cosigned_size <= %s) RETURNING 1", [size, note, size, size])
            ok = await cur.fetchone() is not None
            if ok:
                await self.conn.execute(f"NOTIFY {HEAD_CHANNEL}, '{int(size)}'")
            return ok
