"""The derived index (tlog/index.py, tlog/indexer.py): search terms and envelope digests built
after the durable commit, behind a watermark, with readers scanning the tail above it.

Real LMDB in temp dirs; the last test runs a real `tlog serve` and kills its indexer.
"""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import time
from pathlib import Path

import httpx
import pytest

from client.attest import check_dsse, search_keys
from client.note import Ed25519Signer, sign_note
from tests.attestkit import dsse_body, envelope, make_signer, statement
from tests.conftest import ORIGIN
from tests.serverproc import ServerProc
from tlog import index as index_mod
from tlog.fsck import fsck
from tlog.index import IndexBehind, SearchIndex, envelope_digest
from tlog.storage import LogStore, search_key

LOG = Ed25519Signer(ORIGIN, bytes(range(32)))
SIGNER = make_signer("ed25519")


def _sign(text: str) -> bytes:
    return sign_note(text, [LOG])


def _sub(n: int, subjects: int = 1) -> tuple[bytes, bytes]:
    digests = [hashlib.sha256(b"%d/%d" % (n, i)).hexdigest() for i in range(subjects)]
    sub = check_dsse(envelope(statement(digests), [SIGNER]), [SIGNER.pem])
    return sub.leaf, sub.canonical


@pytest.fixture
def store(tmp_path: Path) -> LogStore:
    s = LogStore(tmp_path / "data", create=True, map_size=1 << 28)
    s.initialize(ORIGIN, _sign)
    yield s
    s.close()


def _fill(store: LogStore, n: int) -> list[tuple[bytes, bytes]]:
    """n DSSE entries with envelopes, and a raw entry after every third."""
    subs = []
    for i in range(n):
        leaf, blob = _sub(i)
        store.append([leaf], _sign, blobs=[blob])
        subs.append((leaf, blob))
        if i % 3 == 2:
            store.append([b"raw %d" % i], _sign)
    return subs


def _signer_term(leaf: bytes) -> tuple[str, str]:
    return next(t for t in search_keys(leaf) if t[0] == "signer")


def _leaves(store: LogStore) -> list[bytes]:
    with store.read_txn() as txn:
        return [leaf for _, leaf in store.iter_entries(txn, 0, store.head().size)]


def _expected(store: LogStore, field: str, term: str) -> list[int]:
    with store.read_txn() as txn:
        return [i for i, leaf in store.iter_entries(txn, 0, store.head().size)
                if (field, term) in search_keys(leaf)]


def test_find_is_the_same_whatever_the_watermark(store: LogStore, tmp_path: Path) -> None:
    subs = _fill(store, 60)
    signer = _signer_term(subs[0][0])
    subject = ("subject", "sha256:" + hashlib.sha256(b"7/0").hexdigest())
    index = SearchIndex(tmp_path / "data")
    try:
        want = {q: _expected(store, *q) for q in (signer, subject)}
        assert len(want[signer]) == 60 and len(want[subject]) == 1
        for step in (0, 13, 25, 1000):  # nothing indexed, part of it, then all
            if step:
                index.catch_up(store, limit=step)
            for (field, term), expected in want.items():
                hits, complete = index.find(store, field, term, None, 1000)
                assert [i for i, _ in hits] == expected and complete == store.head().size
                # Paging across the watermark: pages of 7 give the same hits in order.
                got: list[int] = []
                after = None
                while True:
                    page, _ = index.find(store, field, term, after, 7)
                    got += [i for i, _ in page]
                    if len(page) < 7:
                        break
                    after = page[-1][0]
                assert got == expected
                # Newest first, paged the same way: the same hits, reversed.
                got, before = [], None
                while True:
                    page, _ = index.find(store, field, term, before, 7, descending=True)
                    got += [i for i, _ in page]
                    if len(page) < 7:
                        break
                    before = page[-1][0]
                assert got == expected[::-1]
        assert index.watermark() == store.head().size
    finally:
        index.close()


def test_answers_say_how_far_they_are_complete(store: LogStore, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A lag longer than the tail a reader scans (a rebuild): hits above it are not claimed."""
    subs = _fill(store, 12)
    monkeypatch.setattr(index_mod, "TAIL_SCAN", 5)
    index = SearchIndex(tmp_path / "data")
    try:
        signer = _signer_term(subs[0][0])
        hits, complete = index.find(store, *signer, None, 100)
        assert complete == 5 and [i for i, _ in hits] == [i for i in _expected(store, *signer) if i < 5]
        index.catch_up(store, limit=8)
        hits, complete = index.find(store, *signer, None, 100)
        assert complete == 13 and [i for i, _ in hits] == [i for i in _expected(store, *signer) if i < 13]
        hits, _ = index.find(store, *signer, None, 100, descending=True)  # nothing above 13 either
        assert [i for i, _ in hits] == [i for i in _expected(store, *signer) if i < 13][::-1]
    finally:
        index.close()


def test_attestations_are_found_by_index_by_tail_and_content_address(store: LogStore,
                                                                     tmp_path: Path) -> None:
    subs = _fill(store, 6)
    index = SearchIndex(tmp_path / "data")
    try:
        digests = [hashlib.sha256(blob).digest() for _, blob in subs]
        assert [envelope_digest(leaf) for leaf, _ in subs] == digests
        for d, (_, blob) in zip(digests, subs, strict=True):  # from the tail scan
            assert index.attestation(store, d) == blob
        index.catch_up(store)
        for d, (_, blob) in zip(digests, subs, strict=True):  # from the index
            assert index.attestation(store, d) == blob
        assert index.attestation(store, bytes(32)) is None
        # A raw entry that copies a DSSE leaf's bytes but brings no envelope: the envelope,
        # brought later with the same leaf, is stored content-addressed and found.
        leaf, blob = _sub(1000)
        assert store.append([leaf], _sign).created == [True]
        digest = hashlib.sha256(blob).digest()
        assert index.attestation(store, digest) is None
        again = store.append([leaf], _sign, blobs=[blob])
        assert again.created == [False]
        with store.read_txn() as txn:
            assert store.legacy_envelope(txn, digest) == blob
        assert index.attestation(store, digest) == blob
        index.catch_up(store)
        assert index.attestation(store, digest) == blob
        assert fsck(store, [LOG.verifier()], index).ok
    finally:
        index.close()


def test_a_log_from_before_envelopes_by_index_opens_read_only(tmp_path: Path) -> None:
    """`tlog backup` and `tlog migrate` open a log read-only: one written before the
    `envelopes` database existed (its envelopes content-addressed) must still open."""
    data = tmp_path / "data"
    store = LogStore(data, create=True, map_size=1 << 28)
    store.initialize(ORIGIN, _sign)
    leaf, blob = _sub(1)
    store.append([leaf], _sign)
    with store.env.begin(write=True) as txn:
        txn.put(hashlib.sha256(blob).digest(), blob, db=store.attest)
        txn.drop(store.envelopes, delete=True)
    store.close()
    old = LogStore(data, readonly=True)
    try:
        assert old.envelopes is None
        with old.read_txn() as txn:
            assert old.envelope_for(txn, 0, hashlib.sha256(blob).digest()) == blob
        assert fsck(old, [LOG.verifier()]).ok
    finally:
        old.close()


def test_fsck_checks_the_derived_index(store: LogStore, tmp_path: Path) -> None:
    subs = _fill(store, 9)
    index = SearchIndex(tmp_path / "data")
    try:
        index.catch_up(store)
        assert fsck(store, [LOG.verifier()], index).ok
        key = search_key(*search_keys(subs[4][0])[0], 5)
        with index.env.begin(write=True) as txn:
            assert txn.delete(key, db=index.search)
            txn.put(hashlib.sha256(subs[0][1]).digest(), struct.pack(">Q", 2),
                    db=index.attest)  # points at a raw entry
        # Derived data: warnings that name `tlog reindex`, not a failed fsck.
        report = fsck(store, [LOG.verifier()], index)
        assert report.ok and len(report.warnings) == 2
        assert "search index holds" in report.warnings[0]
        assert "envelope index points" in report.warnings[1]
        assert index.rebuild(store) == store.head().size
        report = fsck(store, [LOG.verifier()], index)
        assert report.ok and not report.warnings
        assert index.attestation(store, hashlib.sha256(subs[0][1]).digest()) == subs[0][1]
        with index.env.begin(write=True) as txn:  # an index of a larger (other) log
            txn.put(b"indexed", struct.pack(">Q", 10_000), db=index.meta)
        assert "covers 10000 entries" in fsck(store, [LOG.verifier()], index).warnings[0]
        signer = _signer_term(subs[0][0])
        hits, complete = index.find(store, *signer, None, 100)  # readers do not trust it
        assert [i for i, _ in hits] == _expected(store, *signer) and complete == store.head().size
        index.catch_up(store)  # and the indexer derives it again
        assert index.watermark() == store.head().size
        assert fsck(store, [LOG.verifier()], index).warnings == []
    finally:
        index.close()


def test_an_envelope_beyond_the_scanned_tail_is_503_not_404(store: LogStore, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """While the index is further behind than readers scan, an envelope not found may still
    be in the log: IndexBehind (HTTP 503 `index_behind`), never a 404 that could be cached."""
    subs = _fill(store, 12)
    monkeypatch.setattr(index_mod, "TAIL_SCAN", 5)
    index = SearchIndex(tmp_path / "data")
    try:
        last = hashlib.sha256(subs[-1][1]).digest()
        with pytest.raises(IndexBehind):
            index.attestation(store, last)
        with pytest.raises(IndexBehind):
            index.attestation(store, bytes(32))
        assert index.attestation(store, hashlib.sha256(subs[0][1]).digest()) == subs[0][1]
        index.catch_up(store)
        assert index.attestation(store, last) == subs[-1][1]
        assert index.attestation(store, bytes(32)) is None
    finally:
        index.close()


def test_an_upgrade_takes_the_search_keys_kept_inside_the_log(store: LogStore, tmp_path: Path) -> None:
    """Older versions kept the search index in the log's environment, complete for its size:
    the new index takes those keys and starts at that size, so there is no rebuild window."""
    subs = _fill(store, 7)
    size = store.head().size
    keys = sorted(search_key(f, t, i) for i, leaf in enumerate(_leaves(store))
                  for f, t in search_keys(leaf))
    with store.env.begin(write=True) as txn:
        for key in keys:
            txn.put(key, b"", db=store.search)
    assert store.legacy_search_keys() == len(keys)
    index = SearchIndex(tmp_path / "data")
    try:
        assert index.adopt_legacy(store) == len(keys)
        assert index.watermark() == size and index.count_keys() == len(keys)
        assert index.adopt_legacy(store) == 0  # only into an empty index
        store.drop_legacy_search()
        assert store.legacy_search_keys() == 0
        signer = _signer_term(subs[0][0])
        assert [i for i, _ in index.find(store, *signer, None, 100)[0]] == _expected(store, *signer)
        assert fsck(store, [LOG.verifier()], index).warnings == []
    finally:
        index.close()


def test_the_indexer_follows_the_log_and_is_restarted(tmp_path: Path) -> None:
    """A real server: the indexer child catches up after appends; killed, it is restarted and
    catches up again, and search answers stay complete meanwhile (tail scan)."""
    data = tmp_path / "data"
    srv = ServerProc(data, args=["--origin", ORIGIN]).start()
    http = httpx.Client(timeout=10)
    try:

        def submit(n: int) -> int:
            digest = hashlib.sha256(b"srv %d" % n).hexdigest()
            r = http.post(srv.url + "/v1/entries",
                          json=dsse_body(envelope(statement([digest]), [SIGNER]), [SIGNER]))
            assert r.status_code == 201, r.text
            hits = http.get(srv.url + "/v1/search", params={"subject": f"sha256:{digest}"}).json()
            assert [h["index"] for h in hits["hits"]] == [r.json()["index"]]
            assert hits["indexed_size"] == r.json()["index"] + 1
            return int(r.json()["index"])

        def indexer_pid() -> int:
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                    except OSError:
                        continue
                    if b"tlog.indexer" in cmd and str(data).encode() in cmd:
                        return int(pid)
            raise AssertionError("no indexer process")

        def wait_indexed(size: int) -> None:
            index = SearchIndex(data)
            try:
                deadline = time.monotonic() + 20
                while index.watermark() < size:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            finally:
                index.close()

        last = max(submit(n) for n in range(5))
        wait_indexed(last + 1)
        first = indexer_pid()
        os.kill(first, signal.SIGKILL)
        last = max(submit(n) for n in range(5, 10))
        wait_indexed(last + 1)
        assert indexer_pid() != first
    finally:
        http.close()
        srv.stop()
    assert not any(b"tlog.indexer" in Path(f"/proc/{p}/cmdline").read_bytes()
                   for p in os.listdir("/proc") if p.isdigit() and Path(f"/proc/{p}/cmdline").exists()
                   and str(data).encode() in Path(f"/proc/{p}/cmdline").read_bytes())
