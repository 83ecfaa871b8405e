"""The sequencer of a scaled-out log: one active leader per log, any number of standbys.

Every sequencer process tries to take the lease (PostgreSQL, tlog_lease) about twice a
second; the one that holds it leads, renewing it every quarter of its length, and steps down
the moment a renewal or a fenced transaction fails. A leader's cycle:

1. sequence: the oldest pending submissions get their indexes, durably, in one fenced
   transaction (tlog.dist.db): from here on nothing about them is decided again;
2. integrate: append them to the in-memory right edge of the tree, write the tiles and
   entry bundles they complete or change to the bucket (bytes that depend only on the
   sequenced entries, so a leader that crashed and one that took over write the same bytes
   at the same paths), sign the checkpoint;
3. publish: move the tree head by compare-and-swap in a second fenced transaction (front ends
   are woken by NOTIFY and answer their submitters), then replace the bucket's `checkpoint`
   conditionally (If-Match on the ETag this leader last saw).

A new leader first finishes what its predecessor sequenced but did not publish, and brings
the bucket's checkpoint up to the tree head. A deposed leader can commit nothing (every
transaction checks the lease with its row locked) and cannot put an older checkpoint back in
the bucket (its ETag is stale once the new leader wrote). Two sequencers racing cannot fork
the log: indexes are given once, in PostgreSQL, and everything else follows from them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from client import merkle
from client.attest import search_keys
from client.checkpoint import Checkpoint, parse_checkpoint_text
from client.errors import MalformedError
from client.logs import setup_logging
from client.merkle import leaf_hash
from client.metrics import Counter, Gauge, Histogram, Registry
from client.note import parse_note, sign_note
from client.tiles import TILE_WIDTH, encode_bundle, entries_path, parse_bundle, tile_path
from client.tiletree import TileTree
from tlog.dist.bucket import (
    JSON,
    NO_CACHE,
    TEXT,
    ObjectStore,
    ObjectStoreError,
    S3Settings,
    log_description,
    object_attributes,
    rekor_envelopes,
)
from tlog.dist.db import Db, DbError, Deposed, Head, HeadMoved, db_errors
from tlog.dist.tiles import BucketTiles

log = logging.getLogger("tlog.dist.sequencer")
LEADER_CONFIG_ENV = "TLOG_LEADER_CONFIG"  # how `tlog serve` hands a sequencer its settings


class SignerError(Exception):
    """A checkpoint key (the TPM) did not sign; the batch is retried."""


@dataclass(frozen=True)
class LeaderConfig:
    dsn: str
    s3: dict[str, Any]
    key_file: str
    origin: str
    rotation_key_file: str = ""
    max_batch: int = 1024
    lease_seconds: float = 3.0
    listen: str = "127.0.0.1:0"
    allow_raw: bool = False
    witnesses: tuple[tuple[str, str], ...] = ()
    witness_quorum: int = 0
    witness_timeout: float = 5.0
    witness_interval: float = 1.0
    witness_access: dict[str, Any] = field(default_factory=dict)  # WitnessAccess, as JSON
    log_format: str = "text"
    vkeys: tuple[str, ...] = field(default_factory=tuple)
    tpm: str = ""  # TCTI of the TPM holding the ECDSA checkpoint key (`tlog tpm init`)
    tpm_timeout: float = 10.0
    data_dir: str = ""  # where `tlog tpm init` left tpm.json and tpm-attestation.json


class Leader:
    def __init__(self, config: LeaderConfig) -> None:
        from client.keyfile import read_key

        self.config = config
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.signers: list[Any] = [read_key(Path(config.key_file))]
        if config.rotation_key_file:
            self.signers.append(read_key(Path(config.rotation_key_file)))
        self.key_attestation: bytes | None = None
        if config.tpm:  # `tlog serve` checked the TPM holds the recorded key before we start
            from tlog.tpm import open_signer

            data = Path(config.data_dir)
            record = orjson.loads((data / "tpm.json").read_bytes())
            self.signers.append(open_signer(config.origin, config.tpm, handle=int(record["handle"]),
                                            timeout=config.tpm_timeout))
            self.key_attestation = (data / "tpm-attestation.json").read_bytes()
        self.bucket = ObjectStore(S3Settings(**config.s3))
        self.tiles = BucketTiles(self.bucket)
        self.epoch: int | None = None
        self.head: Head | None = None
        self.stopping = asyncio.Event()
        self._etag: str | None = None  # of the bucket's checkpoint, as this leader last saw it
        self._minute = 0  # the newest minute this leader recorded (tlog/activity.py)
        self.registry = reg = Registry(worker_label=False)
        self.m_entries = reg.add(Counter("tlog_entries_appended_total", "Entries appended"))
        self.m_batch = reg.add(Histogram("tlog_batch_size", "Entries per integrated batch",
                                         (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)))
        self.m_integrate = reg.add(Histogram(
            "tlog_integrate_seconds", "Time to sequence, write, sign and publish one batch",
            (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)))
        self.m_failures = reg.add(Counter("tlog_integrate_failures_total",
                                          "Leader cycles that failed (retried; nothing acknowledged)"))
        self.m_takeovers = reg.add(Counter("tlog_leader_takeovers_total", "Times this process became leader"))
        reg.add(Gauge("tlog_leader", "1 while this sequencer holds the lease",
                      lambda: float(self.epoch is not None)))
        reg.add(Gauge("tlog_leader_epoch", "Epoch (fencing token) of this sequencer's lease, 0 if none",
                      lambda: float(self.epoch or 0)))
        reg.add(Gauge("tlog_tree_size", "Entries in the log (tree size)",
                      lambda: float(self.head.size) if self.head else 0.0))
        self.collector: Any = None
        self.witness_registry: Registry | None = None  # the current collector's metrics

    # --- the standby loop ---------------------------------------------------------------

    async def run(self) -> None:
        db: Db | None = None
        while not self.stopping.is_set():
            try:
                if db is None or db.closed:
                    db = await Db.open(self.config.dsn, idle_in_transaction=self.config.lease_seconds,
                                  holder=self.holder)
                epoch = await db.try_lead(self.holder, self.config.lease_seconds)
                if epoch is None:
                    # Wake when the lease would run out (the holder renews it well before),
                    # checking at least twice a second.
                    _, _, left = await db.leader()
                    await self._sleep(min(0.5, max(0.02, left + 0.01)))
                    continue
                self.epoch = epoch
                self.m_takeovers.inc()
                log.info("leading (epoch %d) as %s", epoch, self.holder)
                await self._lead(db, epoch)
            except Deposed as exc:
                log.warning("stepped down: %s", exc)
            except (DbError, ObjectStoreError, SignerError) as exc:
                log.error("sequencer: %s", exc)
                if db is not None:
                    await db.close()
                    db = None
                await self._sleep(1.0)
            except Exception:
                # Whatever else went wrong: step down (the lease lapses), start afresh.
                log.exception("sequencer: unexpected error; stepping down")
                if db is not None:
                    await db.close()
                    db = None
                await self._sleep(1.0)
            finally:
                if self.epoch is not None:
                    self._stop_collector()
                self.epoch = None
        if db is not None:
            await db.close()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    # --- leading ------------------------------------------------------------------------

    async def _lead(self, db: Db, epoch: int) -> None:
        lost = asyncio.Event()
        renewer = asyncio.create_task(self._renew(epoch, lost))
        listen: Db | None = None
        try:
            listen = await Db.open(self.config.dsn, idle_in_transaction=self.config.lease_seconds,
                                   holder=self.holder)
            async with db_errors("listening for submissions"):
                await listen.conn.execute("LISTEN tlog_pending")
            await self._take_over(db, epoch)
            while not self.stopping.is_set():
                if lost.is_set():
                    raise Deposed("the lease could not be renewed")
                head = self.head
                assert head is not None
                t0 = time.perf_counter()
                try:
                    if head.sequenced > head.size:  # a predecessor's, or ours before a failure
                        batch = await db.sequenced(head.size, head.sequenced)
                    else:
                        _, batch = await db.sequence(self.holder, epoch, self.config.max_batch)
                    if batch:
                        await self._integrate(db, epoch, batch)
                        self.m_integrate.observe(time.perf_counter() - t0)
                        continue
                except HeadMoved:
                    raise Deposed("the tree head moved under us: another sequencer published") from None
                except (DbError, ObjectStoreError, SignerError) as exc:
                    if isinstance(exc, Deposed):
                        raise
                    self.m_failures.inc()
                    log.error("batch failed (retried): %s", exc)
                    await self._sleep(0.5)
                    self.head = fresh = await db.head()
                    if fresh is not None and fresh.size != self.tree.size:
                        # The head moved although we saw an error (a commit whose answer
                        # was lost): follow it, or every later batch would be refused.
                        self.tree = TileTree(fresh.size, fresh.edge_hashes())
                        self.partial = await self._partial_bundle(fresh.size)
                    continue
                await self._wait_pending(listen, lost)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewer
            if listen is not None:
                await listen.close()
            if self.stopping.is_set() and not lost.is_set():
                with contextlib.suppress(DbError):
                    await db.release(self.holder, epoch)

    async def _renew(self, epoch: int, lost: asyncio.Event) -> None:
        """Renew every quarter of the lease; on failure, mark it lost (the cycle stops)."""
        try:
            db = await Db.open(self.config.dsn, idle_in_transaction=self.config.lease_seconds,
                               holder=self.holder)
        except DbError as exc:
            log.error("cannot renew the lease: %s", exc)
            lost.set()
            return
        try:
            while True:
                await asyncio.sleep(self.config.lease_seconds / 4)
                try:
                    ok = await asyncio.wait_for(db.renew(self.holder, epoch, self.config.lease_seconds),
                                                self.config.lease_seconds / 2)
                except (DbError, TimeoutError) as exc:
                    log.error("cannot renew the lease: %s", exc)
                    ok = False
                if not ok:
                    lost.set()
                    return
        finally:
            await db.close()

    async def _wait_pending(self, listen: Db, lost: asyncio.Event) -> None:
        """Until a front end queues an entry (NOTIFY), or a short while (a missed wake-up,
        the lease check)."""
        gen = listen.conn.notifies(timeout=0.25, stop_after=1)
        async with db_errors("waiting for submissions"):
            with contextlib.suppress(TimeoutError):
                async for _ in gen:
                    break

    async def _take_over(self, db: Db, epoch: int) -> None:
        """Load the right edge, bring the bucket's checkpoint up to the tree head, publish the
        log's description, re-sign if the keys changed, start the witness rounds."""
        head = await db.head()
        if head is None:
            raise DbError("the log is not initialised (run tlog serve once to create it)")
        self.head = head
        self._etag = None  # whatever an earlier leadership saw may be stale
        self.tree = TileTree(head.size, head.edge_hashes())
        self.partial = await self._partial_bundle(head.size)
        keys = {(s.name, s.key_id) for s in self.signers}
        if {(s.name, s.key_id) for s in parse_note(head.checkpoint).signatures} != keys:
            note = await self._sign(Checkpoint(self.config.origin, head.size, head.root).text())
            await db.resign(self.holder, epoch, head, note, time.time())
            self.head = head = await db.head()  # type: ignore[assignment]
            log.info("checkpoint keys changed: re-signed the current checkpoint")
        # The keys front ends publish are the leader's: recorded when it takes over, so a
        # standby started with other keys changes nothing until it leads (and re-signs).
        await db.set_meta("vkeys", orjson.dumps(list(self.config.vkeys)).decode())
        await db.set_meta("tpm_attestation", self.key_attestation.decode() if self.key_attestation else "")
        description = log_description(self.config.origin, list(self.config.vkeys), self.config.allow_raw,
                                      head.frozen)
        await self.bucket.put("v1/log", description, cache=NO_CACHE, ctype=JSON)
        if self.key_attestation is not None:
            await self.bucket.put("v1/log/key-attestation", self.key_attestation, cache=NO_CACHE, ctype=JSON)
        await self._publish_object(self._published_note(head))
        if self.config.witnesses:
            await self._start_collector()
            self.collector.offer(head.size, head.checkpoint)

    async def _sign(self, text: str) -> bytes:
        """The checkpoint signed by every key; a TPM that fails or hangs fails the batch
        (retried: nothing is acknowledged before its checkpoint is signed)."""
        try:
            return await asyncio.to_thread(sign_note, text, self.signers)
        except Exception as exc:
            if type(exc).__name__ == "TpmError":
                raise SignerError(f"the TPM did not sign: {exc}") from exc
            raise

    async def _partial_bundle(self, size: int) -> list[bytes]:
        """The entries of the partial bundle at the tree head (written before it moved)."""
        width = size % TILE_WIDTH
        if not width:
            return []
        data = await self.bucket.get(entries_path(size // TILE_WIDTH, width))
        if data is None:
            raise ObjectStoreError(f"{entries_path(size // TILE_WIDTH, width)} is missing from the bucket")
        try:
            entries = parse_bundle(data)
        except MalformedError as exc:
            raise ObjectStoreError(f"{entries_path(size // TILE_WIDTH, width)}: {exc}") from exc
        if len(entries) != width:
            raise ObjectStoreError(f"the partial bundle has {len(entries)} entries, "
                                   f"the tree head says {width}")
        return entries

    async def _index_rekor_envelopes(self, db: Db, batch: list[tuple[int, bytes]]) -> None:
        """Search rows from the envelopes of the batch's Rekor v2 DSSE entries (written to the
        bucket before their entries were queued), added before the head covers them, so
        search stays complete to the tree size; the rest were written when sequencing."""
        blobs = await rekor_envelopes(self.bucket, batch)
        if blobs:
            leaves = dict(batch)
            await db.add_search([(i, f, t) for i, blob in blobs.items()
                                 for f, t in set(search_keys(leaves[i], blob)) - set(search_keys(leaves[i]))])

    async def _integrate(self, db: Db, epoch: int, batch: list[tuple[int, bytes]]) -> None:
        head, tree = self.head, self.tree
        assert head is not None
        if batch[0][0] != tree.size or batch[-1][0] != tree.size + len(batch) - 1:
            raise DbError(f"sequenced entries {batch[0][0]}.. do not follow the tree of size {tree.size}")
        objects: list[tuple[str, bytes, str, str]] = []

        def add(path: str, data: bytes) -> None:
            objects.append((path, data, *object_attributes(path)))

        partial = list(self.partial)
        for idx, leaf in batch:
            tree.append(leaf_hash(leaf))
            partial.append(leaf)
            if len(partial) == TILE_WIDTH:
                add(entries_path(idx // TILE_WIDTH), encode_bundle(partial))
                partial = []
        if partial:
            add(entries_path(tree.size // TILE_WIDTH, len(partial)), encode_bundle(partial))
        for (level, index), (tile, _interior) in tree.take_changes().items():
            add(tile_path(level, index, len(tile) // 32), tile)
        try:
            await self.bucket.put_many(objects)
            await self._index_rekor_envelopes(db, batch)
            root = tree.root()
            text = Checkpoint(self.config.origin, tree.size, root).text()
            note = await self._sign(text)
            signed_at = time.time()
            edge = [e.tile_bytes() for e in tree.edges]
            minute = int(signed_at) // 60 * 60
            await db.publish(self.holder, epoch, head, size=tree.size, root=root, checkpoint=note,
                             signed_at=signed_at, edge=edge,
                             minute=minute if minute > self._minute else None)
            self._minute = max(self._minute, minute)
        except BaseException:
            # The in-memory edge is suspect: rebuild it from the tree head before going on.
            self.tree = TileTree(head.size, head.edge_hashes())
            raise
        self.partial = partial
        self.head = Head(tree.size, root, note, signed_at, tuple(edge), max(head.sequenced, tree.size),
                         head.cosigned_size, head.cosigned, head.frozen)
        self.m_entries.inc(len(batch))
        self.m_batch.observe(len(batch))
        if self.collector is not None:
            self.collector.offer(tree.size, note)
        else:
            await self._publish_object(note)

    def _published_note(self, head: Head) -> bytes:
        """What the bucket's `checkpoint` should hold: with witnesses, the newest cosigned one."""
        if self.config.witnesses and head.cosigned is not None:
            return head.cosigned
        return head.checkpoint

    async def _publish_object(self, note: bytes) -> None:
        """Replace the bucket's checkpoint with `note`, conditionally (never backwards)."""
        want = parse_checkpoint_text(parse_note(note).text)
        for _ in range(3):
            if self._etag is None:
                got = await self.bucket.get_with_etag("checkpoint")
                if got is None:
                    self._etag = await self.bucket.create("checkpoint", note, cache=NO_CACHE, ctype=TEXT)
                    if self._etag is not None:
                        return
                    continue  # created by someone else meanwhile: look at it
                body, self._etag = got
                if self._newer_or_same(body, want, note):
                    return
            new = await self.bucket.replace("checkpoint", note, self._etag, cache=NO_CACHE, ctype=TEXT)
            if new:
                self._etag = new
                return
            self._etag = None  # changed since we saw it: look again
        raise ObjectStoreError("the bucket's checkpoint keeps changing under this leader")

    def _newer_or_same(self, body: bytes, want: Checkpoint, note: bytes) -> bool:
        """True if the stored checkpoint needs no replacing: it is this one, or larger (then
        another sequencer published after us: we are not the leader any more)."""
        try:
            stored = parse_checkpoint_text(parse_note(body).text)
        except MalformedError:
            return False
        if body == note:
            return True
        if stored.size > want.size:
            if self.head is not None and stored.size <= self.head.size:
                # Within the tree head we hold (a log-signed checkpoint newer than the newest
                # cosigned one, from before witnesses were configured): keep it until a
                # larger one is cosigned.
                return True
            raise Deposed(f"the bucket holds a checkpoint of size {stored.size}, "
                          f"newer than ours ({want.size})")
        return False

    # --- witnesses ----------------------------------------------------------------------

    async def _start_collector(self) -> None:
        from tlog.witnessing import WitnessAccess, WitnessCollector

        loop = asyncio.get_running_loop()
        store = _CosignStore(self, loop)
        self.witness_registry = Registry(worker_label=False)
        # Built on a thread: it reads the store, whose calls run on this loop.
        self.collector = await asyncio.to_thread(
            WitnessCollector, store, [tuple(w) for w in self.config.witnesses],
            self.config.witness_quorum or len(self.config.witnesses), timeout=self.config.witness_timeout,
            interval=self.config.witness_interval, registry=self.witness_registry,
            on_publish=lambda size, note: None, access=WitnessAccess.of(self.config.witness_access))
        self.collector.start()

    def _stop_collector(self) -> None:
        if self.collector is not None:
            self.collector.stop()
            asyncio.get_running_loop().create_task(self.collector.store.close())
            self.collector = None


class _CosignStore:
    """The witness collector's view of a scaled-out log (it runs on a thread: each call is a
    coroutine on the leader's loop, on a connection of its own)."""

    def __init__(self, leader: Leader, loop: asyncio.AbstractEventLoop) -> None:
        self.leader, self.loop = leader, loop
        self._db: Db | None = None

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def close(self) -> None:
        """Close the collector's connection (on the leader's loop, once the collector stopped)."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _conn(self) -> Db:
        if self._db is None or self._db.closed:
            self._db = await Db.open(self.leader.config.dsn,
                                     idle_in_transaction=self.leader.config.lease_seconds,
                                     holder=self.leader.holder)
        return self._db

    def cosigned(self) -> tuple[int, bytes] | None:
        async def read() -> tuple[int, bytes] | None:
            head = await (await self._conn()).head()
            if head is None or head.cosigned is None or head.cosigned_size is None:
                return None
            return head.cosigned_size, head.cosigned
        return self._run(read())  # type: ignore[no-any-return]

    def publish_cosigned(self, size: int, note: bytes) -> bool:
        async def publish() -> bool:
            if not await (await self._conn()).publish_cosigned(size, note):
                return False
            await self.leader._publish_object(note)
            return True
        return self._run(publish())  # type: ignore[no-any-return]

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        async def prove() -> list[bytes]:
            head = self.leader.head
            assert head is not None and new <= head.size
            return await self.leader.tiles.prove(head, lambda read: merkle.consistency_proof(old, new, read))
        return self._run(prove())  # type: ignore[no-any-return]


# --- the process ------------------------------------------------------------------------------


def _health_app(leader: Leader) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def healthz(_request: Any) -> Response:
        doc = {"status": "leader" if leader.epoch is not None else "standby", "holder": leader.holder,
               "epoch": leader.epoch, "tree_size": leader.head.size if leader.head else None}
        return JSONResponse(doc)

    async def metrics(_request: Any) -> Response:
        text = leader.registry.render()
        if leader.witness_registry is not None:
            text += leader.witness_registry.render()
        return Response(text, media_type="text/plain; version=0.0.4")

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", metrics)])


async def serve(config: LeaderConfig, *, lifeline: bool = False) -> None:
    """Run a sequencer candidate until SIGTERM/SIGINT (or, with `lifeline`, until stdin
    closes: the parent `tlog serve` stopped or died), serving /healthz and /metrics."""
    import uvicorn

    leader = Leader(config)
    await leader.bucket.self_test()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, leader.stopping.set)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload of `tlog serve` is not a stop
    if lifeline:
        def parent_gone() -> None:
            try:
                if os.read(sys.stdin.fileno(), 4096):
                    return
            except OSError:
                pass
            loop.remove_reader(sys.stdin.fileno())
            leader.stopping.set()

        loop.add_reader(sys.stdin.fileno(), parent_gone)
    host, _, port = config.listen.rpartition(":")
    sock = socket.socket(socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), int(port)))
    server = uvicorn.Server(uvicorn.Config(_health_app(leader), log_level="warning", access_log=False,
                                           log_config=None, lifespan="off", ws="none", proxy_headers=False))
    web = asyncio.create_task(server.serve(sockets=[sock]))
    bound = sock.getsockname()
    print(f"tlog-sequencer: ready; listening on http://{bound[0]}:{bound[1]} (health and metrics) "
          f"as {leader.holder}", flush=True)
    try:
        await leader.run()
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(web, 5)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tlog-dist-sequencer")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--config-json", help="the LeaderConfig as JSON")
    g.add_argument("--config-env", help="the environment variable holding the LeaderConfig as JSON")
    p.add_argument("--lifeline", action="store_true", help="stop when stdin closes")
    args = p.parse_args(argv)
    if args.config_env:
        text = os.environ.pop(args.config_env, "")
        if not text:
            p.error(f"{args.config_env} is not set")
        doc = orjson.loads(text)
    else:
        doc = orjson.loads(args.config_json)
    doc["witnesses"] = tuple(tuple(w) for w in doc.get("witnesses", ()))
    doc["vkeys"] = tuple(doc.get("vkeys", ()))
    config = LeaderConfig(**doc)
    setup_logging(config.log_format, "tlog-sequencer")
    try:
        asyncio.run(serve(config, lifeline=args.lifeline))
    except ObjectStoreError as exc:
        print(f"tlog-sequencer: error: {exc}", file=sys.stderr)
        return 2
    return 0


def config_json(config: LeaderConfig) -> str:
    return orjson.dumps(asdict(config)).decode()


if __name__ == "__main__":
    code = main()
    # Everything is committed or released by now; do not wait at exit for witness requests
    # still in flight on pool threads (their answers are no longer wanted).
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
