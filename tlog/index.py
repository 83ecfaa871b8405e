"""The derived index of an LMDB log: search terms and envelope digests, behind a watermark.

Why derived: random-key B-tree inserts (a search key per subject, signer and predicate type,
a content address per envelope) were most of the pages a batch's durable commit wrote, and
the commit is what a submitter waits for. The commit now holds only what the log's promises
need (tiles, entries, envelopes by index, the dedup key, the tree head); this index is built
from the committed log afterwards, by `tlog.indexer` in a process of its own, in larger
transactions, and says how far it got: the watermark. Readers add a scan of the few entries
above the watermark (`TAIL_SCAN`), so answers stay complete while the indexer keeps up.

Its own LMDB environment in `<data dir>/index/`, so a long index transaction never holds
the log's write lock, and `tlog reindex` (or deleting the directory) rebuilds it:

    meta    b"indexed" -> u64be watermark: entries below it are indexed
    search  u8 field || SHA-256(term) || u64be index -> b""
    attest  SHA-256 of a canonical envelope -> u64be index of the first entry that stores it
            by index (envelopes stored content-addressed, as older logs did, are found there)
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import struct
from collections.abc import Callable
from pathlib import Path

import lmdb
import orjson

from client.attest import KIND_DSSE, LEAF_VERSION, parse_leaf, rekor_envelope, rekor_terms, search_keys
from tlog.storage import LogStore, search_key

INDEX_DIR = "index"
TAIL_SCAN = 4096
"""Entries above the watermark a reader scans itself. The indexer lags by one of its
transactions (tens of ms of appends) while it keeps up, so readers rarely scan many. With a
longer lag (a rebuild, an indexer that is down) search answers say how far they are
complete and an envelope not found is answered 503 (IndexBehind), not 404. A scan reads each
leaf's bytes; only leaves that contain the term are parsed, at most `limit` hits."""

log = logging.getLogger("tlog.index")
_U64 = struct.Struct(">Q")
_DSSE_PREFIX = bytes([LEAF_VERSION, KIND_DSSE]) + b'{"attestation":"'
"""A canonical DSSE leaf starts so: `attestation` sorts first among its record's keys."""


def envelope_digest(leaf: bytes) -> bytes | None:
    """The envelope's SHA-256 named by a DSSE leaf's bytes (None for other leaves). Callers
    use it on leaves `search_keys` accepted, or check the envelope's digest themselves."""
    if not leaf.startswith(_DSSE_PREFIX) or leaf[82:83] != b'"':
        return None
    try:
        return bytes.fromhex(leaf[18:82].decode("ascii"))
    except ValueError:
        return None


def entry_terms(store: LogStore, txn: lmdb.Transaction, index: int,
                leaf: bytes) -> tuple[list[tuple[str, str]], bytes | None]:
    """(search terms, SHA-256 of the stored envelope it names) of one entry. A Rekor v2
    leaf does not name its envelope (its bytes are Sigstore's): its envelope, stored by
    index, gives the Statement's terms and is then found by its own hash."""
    if leaf[:1] != b"{":
        terms = search_keys(leaf)
        digest = envelope_digest(leaf) if terms else None
        return terms, (digest if digest is not None and store.envelope_at(txn, index) is not None
                       else None)
    info = parse_leaf(leaf)
    if info is None or info.rekor is None:
        return [], None
    blob = store.envelope_at(txn, index)
    env = rekor_envelope(info.rekor, blob)  # parsed once, for both answers
    return rekor_terms(info.rekor, env), (hashlib.sha256(blob).digest() if env and blob else None)


def _term_bytes(field: str, term: str) -> bytes:
    """Bytes every leaf indexed under (field, term) contains: a cheap filter before parsing."""
    if field == "subject":
        return term.split(":", 1)[1].encode()
    return orjson.dumps(term)[1:-1]  # JSON-escaped as in the canonical leaf


class IndexBehind(Exception):
    """An answer would be incomplete: the indexer is further behind than readers scan (a
    rebuild, or an indexer that is not running). HTTP 503, retry later."""


class SearchIndex:
    """The index environment. Readers in every worker; one writer at a time (LMDB's lock),
    normally the indexer process; each write re-checks the watermark it built on."""

    def __init__(self, data_dir: str | Path, *, map_size: int = 64 << 30) -> None:
        path = Path(data_dir) / INDEX_DIR
        path.mkdir(mode=0o700, exist_ok=True)
        # metasync off: a system crash may undo the last index transaction (LMDB keeps the
        # environment intact), which the indexer then redoes; one fsync per transaction less
        # on the disk the log's commits wait on.
        self.env = lmdb.open(str(path), map_size=map_size, max_dbs=4, subdir=True, sync=True,
                             metasync=False, max_readers=512, lock=True, mode=0o600)
        self.meta = self.env.open_db(b"meta")
        self.search = self.env.open_db(b"search")
        self.attest = self.env.open_db(b"attest")

    def close(self) -> None:
        self.env.close()

    def watermark(self) -> int:
        with self.env.begin() as txn:
            return self.watermark_in(txn)

    def watermark_in(self, txn: lmdb.Transaction) -> int:
        """The watermark as of an index read transaction (for callers that read more in it)."""
        raw = txn.get(b"indexed", db=self.meta)
        return 0 if raw is None else _U64.unpack(raw)[0]

    def _mark(self, txn: lmdb.Transaction, size: int) -> int:
        """The watermark readers may trust: none, if it claims more than the log holds (an
        index of another log, copied here): the indexer then derives it again."""
        mark = self.watermark_in(txn)
        return mark if mark <= size else 0

    def reset(self) -> None:
        """Derive the search terms again from entry 0. The envelope digests stay: every one
        is checked against the envelope it names before use, and dropping them would leave
        acknowledged envelopes unfindable until the rebuild passes them."""
        with self.env.begin(write=True) as txn:
            txn.drop(self.search, delete=False)
            txn.put(b"indexed", _U64.pack(0), db=self.meta)

    def adopt_legacy(self, store: LogStore) -> int:
        """Take the search keys an older version kept inside the log (complete for its tree
        size: they were written with the entries) instead of deriving them again, so an
        upgrade has no rebuild window; their envelopes are content-addressed there, found
        without this index. Only into an empty index. Returns the keys taken."""
        if self.watermark() or self.count_keys():
            return 0
        n = 0
        with store.read_txn() as txn:
            size = store.head_in(txn).size
            keys = txn.cursor(db=store.search).iternext(values=False)
            while True:
                chunk = list(itertools.islice(keys, 50_000))
                with self.env.begin(write=True) as itxn:
                    for key in chunk:
                        itxn.put(key, b"", db=self.search)
                    if len(chunk) < 50_000:
                        itxn.put(b"indexed", _U64.pack(size), db=self.meta)
                n += len(chunk)
                if len(chunk) < 50_000:
                    return n

    def catch_up(self, store: LogStore, limit: int = 8192) -> tuple[int, int]:
        """Index up to `limit` entries above the watermark in one transaction. Returns
        (watermark, tree size). Reading happens before the write transaction, so the
        write lock is held only for the sorted inserts."""
        start = self.watermark()
        keys: list[bytes] = []
        digests: list[tuple[bytes, int]] = []
        with store.read_txn() as txn:
            size = store.head_in(txn).size
            if start > size:
                log.warning("the index covers %d entries, the log only %d: it is not this "
                            "log's; deriving it again", start, size)
                self.reset()
                start = 0
            end = min(size, start + limit)
            for index, leaf in store.iter_entries(txn, start, end):
                terms, digest = entry_terms(store, txn, index, leaf)
                keys.extend(search_key(f, t, index) for f, t in terms)
                if digest is not None:
                    digests.append((digest, index))
        if end == start:
            return start, size
        with self.env.begin(write=True) as wtxn:
            if self.watermark_in(wtxn) != start:  # another writer (a reindex) moved it
                return self.watermark_in(wtxn), size
            keys.sort()
            for key in keys:
                wtxn.put(key, b"", db=self.search)
            for digest, index in sorted(digests):
                wtxn.put(digest, _U64.pack(index), db=self.attest, overwrite=False)
            wtxn.put(b"indexed", _U64.pack(end), db=self.meta)
        return end, size

    def rebuild(self, store: LogStore, progress: Callable[[int], None] | None = None) -> int:
        """`tlog reindex`: derive the index again from entry 0; returns the entries indexed.
        Envelope digests that do not name the envelope of their entry are dropped first (the
        rest stay findable meanwhile), and derived again."""
        self.reset()
        with store.read_txn() as txn, self.env.begin(write=True) as itxn:
            for digest, raw in list(itxn.cursor(db=self.attest)):
                if store.indexed_envelope(txn, _U64.unpack(raw)[0], digest) is None:
                    itxn.delete(digest, db=self.attest)
        while True:
            done, size = self.catch_up(store, limit=20_000)
            if progress is not None:
                progress(done)
            if done >= size:
                return done

    # --- reads: the index below the watermark, plus a scan of the tail above it ------------

    def find(self, store: LogStore, field: str, term: str, after: int | None,
             limit: int, *, descending: bool = False) -> tuple[list[tuple[int, bytes]], int]:
        """Up to `limit` (index, leaf) pairs under (field, term), and the size below which the
        answer is complete. Ascending: indexes after `after`; descending (newest first):
        indexes below `after` (None: from the newest)."""
        with store.read_txn() as txn, self.env.begin() as itxn:
            size = store.head_in(txn).size
            mark = self._mark(itxn, size)
            complete = min(size, mark + TAIL_SCAN)
            if descending:
                top = complete if after is None else min(after, complete)
                out = self._tail(store, txn, field=field, term=term, start=mark, end=top)[::-1][:limit]
                out += self._indexed(store, txn, itxn, field=field, term=term, start=min(top, mark) - 1,
                                     limit=limit - len(out), descending=True)
            else:
                first = 0 if after is None else after + 1
                out = self._indexed(store, txn, itxn, field=field, term=term, start=first,
                                    limit=limit, mark=mark)
                if len(out) < limit:
                    out += self._tail(store, txn, field=field, term=term, start=max(first, mark),
                                      end=complete, limit=limit - len(out))
        return out, complete

    def _indexed(self, store: LogStore, txn: lmdb.Transaction, itxn: lmdb.Transaction, *,
                 field: str, term: str, start: int, limit: int, mark: int = 0,
                 descending: bool = False) -> list[tuple[int, bytes]]:
        """Hits from the index keys: ascending from `start` (below `mark`), or descending
        from `start` down."""
        prefix = search_key(field, term, 0)[:-8]
        out: list[tuple[int, bytes]] = []
        if limit <= 0 or start < 0 or (not descending and start >= mark):
            return out
        cur = itxn.cursor(db=self.search)
        if descending:
            positioned = cur.prev() if cur.set_range(search_key(field, term, start + 1)) else cur.last()
            keys = cur.iterprev(keys=True, values=False) if positioned else iter(())
        else:
            keys = cur.iternext(keys=True, values=False) if cur.set_range(
                search_key(field, term, start)) else iter(())
        for key in keys:
            index = _U64.unpack(key[-8:])[0]
            if not key.startswith(prefix) or len(out) >= limit or (not descending and index >= mark):
                break
            out.append((index, store.entry_in(txn, index)))
        return out

    @staticmethod
    def _tail(store: LogStore, txn: lmdb.Transaction, *, field: str, term: str, start: int,
              end: int, limit: int | None = None) -> list[tuple[int, bytes]]:
        """Hits among the entries [start, end) above the watermark, scanned, ascending."""
        out: list[tuple[int, bytes]] = []
        needle = _term_bytes(field, term)
        for index, leaf in store.iter_entries(txn, start, end):
            if (needle in leaf or (leaf[:1] == b"{" and field != "signer")) and \
                    (field, term) in entry_terms(store, txn, index, leaf)[0]:
                out.append((index, leaf))
                if limit is not None and len(out) >= limit:
                    break
        return out

    def attestation(self, store: LogStore, digest: bytes) -> bytes | None:
        """The canonical envelope with this SHA-256, wherever the log stores it; None if the
        log has none. Raises IndexBehind if it may have one the index has not reached."""
        with store.read_txn() as txn, self.env.begin() as itxn:
            raw = itxn.get(digest, db=self.attest)
            blob = store.indexed_envelope(txn, _U64.unpack(raw)[0], digest) if raw else None
            if blob is None:
                blob = store.legacy_envelope(txn, digest)
            if blob is not None:
                return blob
            size = store.head_in(txn).size
            mark = self._mark(itxn, size)
            for index, leaf in store.iter_entries(txn, mark, min(size, mark + TAIL_SCAN)):
                if envelope_digest(leaf) == digest or (leaf[:1] == b"{" and \
                        entry_terms(store, txn, index, leaf)[1] == digest):
                    blob = store.indexed_envelope(txn, index, digest)
                    if blob is not None:
                        return blob
        if size - mark > TAIL_SCAN:
            raise IndexBehind(f"the index covers {mark} of {size} entries; an envelope "
                              "logged after it may not be found yet")
        return None

    def count_keys(self) -> int:
        with self.env.begin() as txn:
            return int(txn.stat(self.search)["entries"])
