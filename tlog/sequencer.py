"""The sequencer: pools submissions, integrates them in batches, answers with receipts.

Submitters wait in a pool keyed by leaf hash (so two copies of one entry in flight share one
slot). A single batcher task takes up to `max_batch` entries once the oldest has waited
`max_delay` (or the pool is full), appends them in one LMDB write transaction that fsyncs
and signs one checkpoint, and only then answers every waiting submitter with its index, the
inclusion proof and the signed checkpoint it verifies against. While a batch commits, the
next one fills, so commits group naturally under load.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from client import merkle
from tlog.metrics import Counter, Histogram, Registry
from tlog.storage import AppendResult, LogStore, SignFn

log = logging.getLogger("tlog.sequencer")


class Pushback(Exception):
    """Too many submissions are waiting; the client should retry later (HTTP 503)."""


class SequencerStopped(Exception):
    """The sequencer is not running (shutting down, or stopped after a storage failure)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    index: int
    leaf_hash: bytes
    tree_size: int
    proof: list[bytes]
    checkpoint: bytes
    created: bool


class _Pending:
    __slots__ = ("data", "futures")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.futures: list[asyncio.Future[Receipt]] = []


class Sequencer:
    def __init__(self, store: LogStore, sign: SignFn, registry: Registry, *,
                 max_batch: int = 1024, max_delay: float = 0.002,
                 max_pending: int = 16384) -> None:
        self.store = store
        self.sign = sign
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_pending = max_pending
        self._pool: dict[bytes, _Pending] = {}
        self._first_at = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tlog-integrate")
        self.failure: BaseException | None = None
        self.m_entries = registry.add(Counter(
            "tlog_entries_appended_total", "Entries appended to the log by this worker"))
        self.m_dupes = registry.add(Counter(
            "tlog_entries_duplicate_total", "Submissions answered with an existing index"))
        self.m_batch = registry.add(Histogram(
            "tlog_batch_size", "Entries per integrated batch",
            (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)))
        self.m_integrate = registry.add(Histogram(
            "tlog_integrate_seconds", "Time to append, fsync and sign one batch",
            (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)))
        self.m_failures = registry.add(Counter(
            "tlog_integrate_failures_total", "Batches that failed to commit"))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tlog-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for p in self._pool.values():
            for f in p.futures:
                if not f.done():
                    f.set_exception(SequencerStopped("the log is shutting down"))
        self._pool.clear()
        self._executor.shutdown(wait=True)

    @property
    def healthy(self) -> bool:
        return self._task is not None and not self._task.done() and self.failure is None

    async def submit(self, data: bytes) -> Receipt:
        """Append `data` (or find it) and return its receipt once durable and signed."""
        if not self.healthy:
            raise SequencerStopped("the sequencer is not running")
        lh = merkle.leaf_hash(data)
        existing = self.store.lookup(lh)
        if existing is not None:
            self.m_dupes.inc()
            return await asyncio.get_running_loop().run_in_executor(
                None, self._receipt_for_existing, existing, lh)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Receipt] = loop.create_future()
        pending = self._pool.get(lh)
        if pending is None:
            if len(self._pool) >= self.max_pending:
                raise Pushback("too many submissions waiting")
            if not self._pool:
                self._first_at = loop.time()
            pending = self._pool[lh] = _Pending(data)
            if len(self._pool) == 1 or len(self._pool) >= self.max_batch:
                self._wake.set()
        pending.futures.append(fut)
        return await fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pool:
                wait = self._first_at + self.max_delay - loop.time()
                if wait > 0 and len(self._pool) < self.max_batch:
                    await asyncio.sleep(wait)
                batch = self._take()
                t0 = time.perf_counter()
                try:
                    result, receipts = await loop.run_in_executor(
                        self._executor, self._integrate, [p.data for p in batch])
                except Exception as exc:
                    self.m_failures.inc()
                    log.exception("batch of %d entries failed to commit", len(batch))
                    for p in batch:
                        for f in p.futures:
                            if not f.done():
                                f.set_exception(exc)
                    continue
                self.m_integrate.observe(time.perf_counter() - t0)
                self.m_batch.observe(len(batch))
                self.m_entries.inc(sum(result.created))
                for p, receipt in zip(batch, receipts, strict=True):
                    first = True
                    for f in p.futures:
                        if f.done():
                            continue
                        if first:
                            f.set_result(receipt)
                            first = False
                        else:
                            self.m_dupes.inc()
                            f.set_result(_as_duplicate(receipt))

    def _take(self) -> list[_Pending]:
        keys = list(self._pool)[: self.max_batch]
        batch = [self._pool.pop(k) for k in keys]
        if self._pool:
            self._first_at = asyncio.get_running_loop().time()
        return batch

    def _integrate(self, entries: list[bytes]) -> tuple[AppendResult, list[Receipt]]:
        """Runs in the integration thread: commit (fsync) first, then build receipts."""
        result = self.store.append(entries, self.sign)
        size = result.head.size
        with self.store.read_txn() as txn:
            read = _memo(self.store.node_reader(txn))
            receipts = [
                Receipt(idx, merkle.leaf_hash(data), size,
                        merkle.inclusion_proof(idx, size, read), result.checkpoint, created)
                for data, idx, created in zip(entries, result.indexes, result.created, strict=True)
            ]
        return result, receipts

    def _receipt_for_existing(self, index: int, lh: bytes) -> Receipt:
        with self.store.read_txn() as txn:
            head = self.store.head_in(txn)
            note = self.store.checkpoint_in(txn)
            proof = merkle.inclusion_proof(index, head.size, self.store.node_reader(txn))
        return Receipt(index, lh, head.size, proof, note, created=False)


def _as_duplicate(r: Receipt) -> Receipt:
    return Receipt(r.index, r.leaf_hash, r.tree_size, r.proof, r.checkpoint, created=False)


def _memo(read: merkle.NodeReader) -> merkle.NodeReader:
    """Share node reads across the receipts of one batch (their audit paths overlap)."""
    cache: dict[tuple[int, int], bytes] = {}

    def cached(nodes: Sequence[tuple[int, int]]) -> list[bytes]:
        missing = [n for n in nodes if n not in cache]
        if missing:
            cache.update(zip(missing, read(missing), strict=True))
        return [cache[n] for n in nodes]

    return cached
