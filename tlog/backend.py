"""The storage seam of the HTTP front end: what a worker needs of the log, whatever holds it.

`LmdbBackend` is the embedded default (one LMDB environment, the sequencer process beside the
workers on a Unix socket); `tlog.dist.frontend.DistBackend` is the scaled-out shape (bucket
and PostgreSQL). The app (tlog/app.py) parses, checks signatures and formats; a backend
reads, proves and appends. Every method answers for the log's current published state.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import lmdb

from client import merkle
from client.metrics import Gauge, Registry
from tlog.config import ServeConfig
from tlog.errors import APIError, bad_request, not_found
from tlog.gauges import add_store_gauges
from tlog.index import IndexBehind, SearchIndex
from tlog.storage import LogStore
from tlog.submit import Receipt, SequencerUnavailable, Submitter, latest_receipt


class Backend(Protocol):
    origin: str

    async def start(self, registry: Registry) -> None: ...

    async def stop(self) -> None: ...

    async def checkpoint(self) -> bytes:
        """The published checkpoint (with witnesses: the newest cosigned one)."""

    async def tree_size(self) -> int: ...

    async def tile(self, level: int, index: int, width: int) -> bytes | None: ...

    async def bundle(self, index: int, width: int) -> bytes | None: ...

    async def entry(self, index: int) -> bytes | None: ...

    async def attestation(self, digest: bytes) -> bytes | None: ...

    async def envelope(self, index: int, leaf: bytes) -> bytes | None:
        """The envelope stored with entry `index` (whose leaf is `leaf`), if any; callers
        check it against the leaf."""

    async def key_attestation(self) -> bytes | None:
        """The TPM2_Certify document of the checkpoint key, or None if it is not in a TPM."""

    async def find(self, field: str, term: str, after: int | None, limit: int,
                   descending: bool = False) -> tuple[list[tuple[int, bytes]], int]:
        """Hits (index, leaf) ascending after `after` (descending: below it), and the tree
        size below which the answer is complete (the derived index may lag the log)."""

    async def minutes_since(self, since: int) -> tuple[list[tuple[int, int]], int]:
        """(first index, minute start) of each minute recorded from `since` on, ascending,
        and the tree size (tlog/activity.py)."""

    async def logged_minutes(self, indexes: list[int]) -> list[int | None]:
        """The minute each of these entries was appended in (None: not recorded)."""

    async def inclusion(self, index: int | None, leaf: bytes | None,
                        size: int | None) -> tuple[int, int, list[bytes]]:
        """(index, tree size, audit path); by index or by leaf hash, at `size` (default: now)."""

    async def consistency(self, old: int, new: int | None) -> tuple[int, int, list[bytes]]: ...

    async def receipt(self, index: int) -> tuple[Receipt, bytes] | None: ...

    async def submit(self, data: bytes, blob: bytes | None) -> Receipt: ...

    def problem(self) -> tuple[str, str, str] | None:
        """Why appends are not taken now: (health status, error code, message), or None."""

    def pending(self) -> int: ...

    async def extra_metrics(self) -> bytes: ...


def _index_behind(message: str) -> APIError:
    return APIError(503, "index_behind", message, {"Retry-After": "5"})


def size_in_range(name: str, size: int | None, current: int) -> int:
    if size is None:
        return current
    if size > current:
        raise bad_request("size_out_of_range", f"{name}={size} is beyond the tree size {current}")
    return size


class LmdbBackend:
    """The embedded log: LMDB read directly, appends through the sequencer's Unix socket."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.store: LogStore | None = None
        self.index: SearchIndex | None = None
        self.sequencer: Submitter | None = None
        self._prover = merkle.EdgeProver()  # most proofs are at the current size: its edge memo
        self.origin = ""

    async def start(self, registry: Registry) -> None:
        self.store = LogStore(Path(self.config.data_dir), map_size=self.config.map_size)
        self.origin = self.store.origin()
        try:  # derived data: a damaged index costs search, never appends or proofs
            self.index = SearchIndex(self.config.data_dir, map_size=self.config.map_size)
        except (lmdb.Error, OSError) as exc:
            logging.getLogger("tlog").error("the search index in %s/index cannot be opened "
                                            "(%s): search and attestations answer 503; "
                                            "`tlog reindex` rebuilds it", self.config.data_dir, exc)
        self.sequencer = Submitter(self.store, self.config.socket_path(),
                                   max_pending=self.config.max_pending,
                                   timeout=self.config.submit_timeout,
                                   witnessed=bool(self.config.witnesses),
                                   wait=self.config.witness_wait,
                                   wait_timeout=self.config.witness_wait_timeout)
        add_store_gauges(registry, self.store, self.config)
        submitter, store, index = self.sequencer, self.store, self.index
        if index is not None:
            registry.add(Gauge("tlog_search_index_behind_entries",
                               "Entries committed but not yet in the derived search index (its "
                               "watermark); readers scan up to 4096 of them themselves",
                               lambda: float(max(0, store.head().size - index.watermark()))))
        registry.add(Gauge("tlog_pending_submissions",
                           "Submissions this worker holds until their batch is durable or cosigned",
                           lambda: float(submitter.pending())))
        await self.sequencer.start()

    async def stop(self) -> None:
        if self.sequencer is not None:
            await self.sequencer.stop()
        if self.index is not None:
            self.index.close()
        if self.store is not None:
            self.store.close()

    @property
    def _store(self) -> LogStore:
        assert self.store is not None
        return self.store

    @property
    def _index(self) -> SearchIndex:
        if self.index is None:
            raise _index_behind("the search index cannot be opened; `tlog reindex` rebuilds it")
        return self.index

    async def checkpoint(self) -> bytes:
        if self.config.witnesses:
            cosigned = self._store.cosigned()
            if cosigned is not None:
                return cosigned[1]
        return self._store.checkpoint()

    async def tree_size(self) -> int:
        return self._store.head().size

    async def tile(self, level: int, index: int, width: int) -> bytes | None:
        return self._store.tile(level, index, width)

    async def bundle(self, index: int, width: int) -> bytes | None:
        return self._store.bundle(index, width)

    async def entry(self, index: int) -> bytes | None:
        return self._store.entry(index)

    async def attestation(self, digest: bytes) -> bytes | None:
        try:
            return self._index.attestation(self._store, digest)
        except IndexBehind as exc:
            raise _index_behind(str(exc)) from exc

    async def envelope(self, index: int, leaf: bytes) -> bytes | None:
        with self._store.read_txn() as txn:
            return self._store.envelope_at(txn, index)

    async def key_attestation(self) -> bytes | None:
        path = Path(self.config.data_dir) / "tpm-attestation.json"
        if not self.config.tpm or not path.exists():
            return None
        return path.read_bytes()

    async def find(self, field: str, term: str, after: int | None, limit: int,
                   descending: bool = False) -> tuple[list[tuple[int, bytes]], int]:
        return self._index.find(self._store, field, term, after, limit, descending=descending)

    async def minutes_since(self, since: int) -> tuple[list[tuple[int, int]], int]:
        store = self._store
        with store.read_txn() as txn:  # minutes are written with the head: none beyond it
            return store.minutes_since(txn, since), store.head_in(txn).size

    async def logged_minutes(self, indexes: list[int]) -> list[int | None]:
        store = self._store
        with store.read_txn() as txn:
            return [store.logged_minute_in(txn, i) for i in indexes]

    async def inclusion(self, index: int | None, leaf: bytes | None,
                        size: int | None) -> tuple[int, int, list[bytes]]:
        store = self._store
        with store.read_txn() as txn:
            tree = size_in_range("size", size, store.head_in(txn).size)
            if leaf is not None:
                index = store.lookup_in(txn, leaf)
                if index is None:
                    raise not_found("no entry with this leaf hash")
            assert index is not None
            if index >= tree:
                raise bad_request("index_out_of_range", f"index {index} is not below size {tree}")
            return index, tree, self._prover.inclusion_proof(index, tree, store.node_getter(txn))

    async def consistency(self, old: int, new: int | None) -> tuple[int, int, list[bytes]]:
        store = self._store
        with store.read_txn() as txn:
            new = size_in_range("new", new, store.head_in(txn).size)
            if old > new:
                raise bad_request("size_out_of_range", f"old={old} is larger than new={new}")
            return old, new, merkle.consistency_proof(old, new, store.node_reader(txn))

    async def receipt(self, index: int) -> tuple[Receipt, bytes] | None:
        return latest_receipt(self._store, index, witnessed=bool(self.config.witnesses))

    async def submit(self, data: bytes, blob: bytes | None) -> Receipt:
        assert self.sequencer is not None
        return await self.sequencer.submit(data, blob)

    def problem(self) -> tuple[str, str, str] | None:
        seq = self.sequencer
        assert seq is not None
        if not seq.connected:
            return "unavailable", "unhealthy", "the sequencer is not reachable"
        if seq.disk_full:
            return "read_only", "disk_full", f"the log takes no entries until space is freed: {seq.disk_full}"
        if seq.signer_error:
            return "read_only", "signer_unavailable", f"checkpoints cannot be signed: {seq.signer_error}"
        return None

    def pending(self) -> int:
        return self.sequencer.pending() if self.sequencer is not None else 0

    async def extra_metrics(self) -> bytes:
        """The sequencer's metrics (batches, integration, appends)."""
        assert self.sequencer is not None
        try:
            return (await self.sequencer.sequencer_metrics()).encode()
        except (SequencerUnavailable, TimeoutError):
            return b"# sequencer unreachable\n"

