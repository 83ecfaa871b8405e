"""The HTTP worker's side of sequencing: forward entries to the sequencer, build receipts.

Each worker keeps one Unix-socket connection to the sequencer process. An entry already in
the log is answered at once from LMDB; a new one is sent to the sequencer and the submitter
waits until its batch is committed (fsynced and signed). The inclusion proofs are computed
here, in the workers, from LMDB, so that the single sequencer does only what must be serial.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from client import merkle
from tlog.index import envelope_digest
from tlog.storage import LogStore
from tlog.wire import FrameError, FrameReader, encode, encode_parts

log = logging.getLogger("tlog.submit")


class Pushback(Exception):
    """Too many submissions are waiting in this worker (HTTP 503, retry later)."""


class SequencerUnavailable(Exception):
    """The sequencer process is not reachable (starting, restarting or stopped)."""


class SequencerRejected(Exception):
    """The sequencer failed to commit the batch holding this entry; nothing was written."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Receipt:
    index: int
    leaf_hash: bytes
    tree_size: int
    proof: list[bytes]
    checkpoint: bytes
    created: bool
    witnessed: bool | None = None  # None: the log has no witnesses


class Submitter:
    def __init__(self, store: LogStore, socket_path: str, *, max_pending: int = 16384,
                 timeout: float = 30.0, witnessed: bool = False, wait: bool = False,
                 wait_timeout: float = 10.0) -> None:
        self.store = store
        self.socket_path = socket_path
        self.max_pending = max_pending
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[asyncio.Future[Any], bytes]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._outbox: list[bytes] = []
        self._prover = merkle.EdgeProver()  # a batch's receipts share their right-edge ranges
        # Witnessing: receipts wait (if `wait`) until a cosigned checkpoint covers them.
        self.witnessed, self.wait, self.wait_timeout = witnessed, wait and witnessed, wait_timeout
        self._parked: dict[int, tuple[asyncio.Future[Any], bytes, int, bool, int, bytes]] = {}
        # Why the sequencer takes no appends now, by kind ("signer", "disk_full"): it says so
        # whenever that changes.
        self.problems: dict[str, str] = {}

    @property
    def signer_error(self) -> str:
        return self.problems.get("signer", "")

    @property
    def disk_full(self) -> str:
        return self.problems.get("disk_full", "")

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def start(self, timeout: float = 10.0) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tlog-submitter")
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.connected:
            if asyncio.get_running_loop().time() > deadline:
                raise SequencerUnavailable(f"no sequencer at {self.socket_path}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail_all(SequencerUnavailable("the log is shutting down"))

    async def submit(self, data: bytes, blob: bytes | None = None) -> Receipt:
        """Append `data` (or find it) and return its receipt once durable and signed.

        `blob` (a DSSE envelope in canonical form) is stored with the entry, atomically.
        """
        lh = merkle.leaf_hash(data)
        existing = self.store.lookup(lh)
        # An entry already logged is answered here, unless it brings an envelope the log
        # does not hold yet: then the sequencer stores it (an acknowledged attestation
        # always has its envelope).
        if existing is not None and (blob is None or self._has_envelope(existing, data, blob)):
            receipt = self._receipt_for_existing(existing, lh)
            if self.wait and not receipt.witnessed:
                return await self._wait_witnessed(existing, lh, receipt)
            return receipt
        writer = self._writer
        if writer is None or writer.is_closing():
            raise SequencerUnavailable("the sequencer is not reachable")
        if len(self._waiting) + len(self._parked) >= self.max_pending:
            raise Pushback("too many submissions waiting")
        req_id = next(self._ids)
        fut: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = (fut, lh)
        if blob is not None and len(blob) > (1 << 20):
            self._flush()  # keep frame order; then write the large frame without copying it
            if self._writer is not None:
                for part in encode_parts(["a", req_id, data, blob]):
                    self._writer.write(part)
        else:
            self._send(encode(["a", req_id, data, blob]))
        # A timer instead of asyncio.wait_for: no extra task per submission on the hot path.
        timer = asyncio.get_running_loop().call_later(self.timeout, self._expire, req_id)
        try:
            return await fut
        finally:
            timer.cancel()

    def _has_envelope(self, index: int, leaf: bytes, blob: bytes) -> bool:
        # A DSSE leaf names its envelope's digest (check_dsse hashed it): no second hash of
        # a possibly large envelope.
        digest = envelope_digest(leaf) or hashlib.sha256(blob).digest()
        with self.store.read_txn() as txn:
            return self.store.envelope_for(txn, index, digest) is not None

    async def _wait_witnessed(self, index: int, lh: bytes, receipt: Receipt) -> Receipt:
        """A resubmitted entry (the advised retry) waits for a cosigned checkpoint like a new
        one, rather than getting the log-signed receipt at once."""
        if len(self._waiting) + len(self._parked) >= self.max_pending:
            raise Pushback("too many submissions waiting")
        req_id = next(self._ids)
        fut: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._parked[req_id] = (fut, lh, index, False, receipt.tree_size, receipt.checkpoint)
        asyncio.get_running_loop().call_later(self.wait_timeout, self._unpark, req_id)
        self._cosigned_published(0)  # published meanwhile?
        return await fut

    def _expire(self, req_id: int) -> None:
        waiting = self._waiting.pop(req_id, None)
        if waiting is not None and not waiting[0].done():
            # The entry may still be committed later; resubmitting it is safe (same index).
            waiting[0].set_exception(
                SequencerUnavailable("timed out waiting for the batch to commit"))

    def _send(self, frame: bytes) -> None:
        """Queue a frame; one write per event-loop iteration carries everything queued."""
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(frame)

    def _flush(self) -> None:
        frames, self._outbox = self._outbox, []
        writer = self._writer
        if writer is None or writer.is_closing():
            return  # the reader task fails every waiting future when the connection drops
        writer.write(b"".join(frames))

    def pending(self) -> int:
        """Submissions waiting for their batch to commit, or parked for cosignatures."""
        return len(self._waiting) + len(self._parked)

    async def sequencer_metrics(self, timeout: float = 5.0) -> str:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise SequencerUnavailable("the sequencer is not reachable")
        req_id = next(self._ids)
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiting[req_id] = (fut, b"")
        self._send(encode(["s", req_id]))
        return await asyncio.wait_for(fut, timeout)

    # --- connection ---------------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.05
        while not self._closing:
            try:
                reader, writer = await asyncio.open_unix_connection(self.socket_path)
            except OSError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.05
            self._writer = writer
            try:
                await self._read_loop(reader)
            except (OSError, FrameError) as exc:
                log.error("lost the sequencer connection: %s", exc)
            finally:
                self._writer = None
                # A restarted sequencer tells its own problems when we reconnect ("h").
                self.problems = {}
                writer.close()
                self._fail_all(SequencerUnavailable("lost the connection to the sequencer"))

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        frames = FrameReader()
        while True:
            data = await reader.read(1 << 20)
            if not data:
                return
            for msg in frames.feed(data):
                self._dispatch(msg)

    def _dispatch(self, msg: list[Any]) -> None:
        kind = msg[0]
        if kind == "b":
            _, size, checkpoint, answers = msg
            self._answer_batch(size, checkpoint, answers)
        elif kind == "w":
            self._cosigned_published(msg[1])
        elif kind == "h":
            self.problems = {str(k): str(v) for k, v in msg[1].items()}
        elif kind == "e":
            _, req_id, code, message = msg
            waiting = self._waiting.pop(req_id, None)
            if waiting and not waiting[0].done():
                waiting[0].set_exception(SequencerRejected(code, message))
        elif kind == "s":
            waiting = self._waiting.pop(msg[1], None)
            if waiting and not waiting[0].done():
                waiting[0].set_result(msg[2])

    def _answer_batch(self, size: int, checkpoint: bytes, answers: list[list[Any]]) -> None:
        """The batch is durable and signed: answer now, or park until a cosigned checkpoint."""
        cosigned = self.store.cosigned() if self.wait else None
        ready: list[tuple[asyncio.Future[Any], bytes, int, bool]] = []
        for req_id, index, created in answers:
            waiting = self._waiting.pop(req_id, None)
            if waiting is None or waiting[0].done():
                continue
            fut, lh = waiting
            if self.wait and (cosigned is None or cosigned[0] <= index):
                self._parked[req_id] = (fut, lh, index, created, size, checkpoint)
                asyncio.get_running_loop().call_later(self.wait_timeout, self._unpark, req_id)
            else:
                ready.append((fut, lh, index, created))
        if ready:
            if cosigned is not None:
                size, checkpoint = cosigned
            self._resolve(ready, size, checkpoint, witnessed=True if cosigned else None)

    def _resolve(self, items: list[tuple[asyncio.Future[Any], bytes, int, bool]], size: int,
                 checkpoint: bytes, witnessed: bool | None) -> None:
        if self.witnessed and witnessed is None:
            witnessed = False
        prover = self._prover
        with self.store.read_txn() as txn:
            node = _memoised(self.store.node_getter(txn))  # a batch's paths share most nodes
            for fut, lh, index, created in items:
                if not fut.done():
                    fut.set_result(Receipt(index, lh, size, prover.inclusion_proof(index, size, node),
                                           checkpoint, created, witnessed))

    def _cosigned_published(self, size: int) -> None:
        """A checkpoint of `size` met the witness policy: answer every receipt it covers."""
        if not self._parked:
            return
        cosigned = self.store.cosigned()
        if cosigned is None:
            return
        size, note = cosigned
        done = [rid for rid, p in self._parked.items() if p[2] < size]
        items = [self._parked.pop(rid)[:4] for rid in done]
        self._resolve(items, size, note, witnessed=True)

    def _unpark(self, req_id: int) -> None:
        """Waited long enough for witnesses: answer with the log-signed checkpoint, and say so."""
        parked = self._parked.pop(req_id, None)
        if parked is not None:
            fut, lh, index, created, size, checkpoint = parked
            self._resolve([(fut, lh, index, created)], size, checkpoint, witnessed=False)

    def _fail_all(self, exc: Exception) -> None:
        waiting, self._waiting = self._waiting, {}
        for fut, _ in waiting.values():
            if not fut.done():
                fut.set_exception(exc)
        # Parked receipts are durable already: answer them with what they have.
        for rid in list(self._parked):
            self._unpark(rid)

    def _receipt_for_existing(self, index: int, lh: bytes) -> Receipt:
        found = latest_receipt(self.store, index, witnessed=self.witnessed)
        if found is None or found[0].leaf_hash != lh:
            raise SequencerUnavailable("the leaf index disagrees with the log")  # cannot happen
        return found[0]


def _memoised(node: Callable[[int, int], bytes]) -> Callable[[int, int], bytes]:
    memo: dict[tuple[int, int], bytes] = {}

    def cached(level: int, index: int) -> bytes:
        h = memo.get((level, index))
        if h is None:
            h = memo[level, index] = node(level, index)
        return h

    return cached


def latest_receipt(store: LogStore, index: int,
                   witnessed: bool = False) -> tuple[Receipt, bytes] | None:
    """The receipt of entry `index` against the latest checkpoint (with `witnessed`: the
    latest cosigned one if it covers the entry), and the entry's leaf; None if the log is
    not that large. One read transaction: head, proof and note agree."""
    with store.read_txn() as txn:
        head = store.head_in(txn)
        if index >= head.size:
            return None
        size, note = head.size, store.checkpoint_in(txn)
        cosigned = store.cosigned_in(txn) if witnessed else None
        if cosigned is not None and cosigned[0] > index:
            size, note = cosigned
        leaf = store.entry_in(txn, index)
        proof = merkle.EdgeProver().inclusion_proof(index, size, store.node_getter(txn))
    return Receipt(index, merkle.leaf_hash(leaf), size, proof, note, created=False,
                   witnessed=(cosigned is not None and size == cosigned[0]) if witnessed else None), leaf
