"""`tlog migrate` from an LMDB log into a scaled-out one, and `tlog fsck` of a scaled-out log,
on the real engines (Ceph RGW, PostgreSQL 15).

The expected target is derived from the LMDB log through its own serving code (LogStore.tile,
.bundle, .attestation, its leaf and search indexes), not from the migration's code: the
bucket must hold exactly those objects, byte for byte, with the tlog-tiles caching headers,
and the database exactly those index rows.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import re
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from client import attest, rekor
from client.checkpoint import Checkpoint
from client.keyfile import write_key
from client.merkle import leaf_hash
from client.note import Ed25519Signer, sign_note
from client.tiles import TILE_WIDTH, entries_path, parse_tile_path, tile_path, tile_width_at, tiles_for_size
from client.verify import verify_receipt_doc
from tests import sigstorekit as kit
from tests.attestkit import envelope, make_signer, sha256_hex, statement
from tests.distlog import ORIGIN, DistLog
from tests.engines import Ceph, Postgres, s3_admin
from tlog import cli
from tlog.dist.bucket import object_attributes
from tlog.dist.db import encode_edge
from tlog.dist.migrate import CHUNK_BUNDLES
from tlog.index import SearchIndex
from tlog.storage import LogStore

SIZE = 100_000
ATTESTED = (3, 4097, 70_000, 99_990)  # DSSE entries (the last one in the partial bundle)
REKORED = (5, 99_991)  # Rekor v2 DSSE entries: envelopes stored by index, found by leaf hash
SEED = bytes(range(32))
_U64 = struct.Struct(">Q")
HTTP = httpx.Client(timeout=30)


@dataclass
class Source:
    """An LMDB log (closed: nothing runs on it), with what it was built from."""

    path: Path
    origin: str
    signer: Ed25519Signer
    entries: list[bytes]
    subjects: dict[int, str]  # index -> subject digest of its attestation


def make_source(path: Path, origin: str, n: int, seed: int, attested: tuple[int, ...] = (),
                rekored: tuple[int, ...] = ()) -> Source:
    rng = random.Random(seed)
    entries = [rng.randbytes(rng.randint(16, 64)) for _ in range(n)]
    blobs: list[bytes | None] = [None] * n
    subjects: dict[int, str] = {}
    signer = make_signer("ecdsa-p256")
    for i in attested:
        subjects[i] = sha256_hex(f"artifact {seed} {i}".encode())
        sub = attest.check_dsse(envelope(statement([subjects[i]]), [signer]), [signer.pem])
        entries[i], blobs[i] = sub.leaf, sub.canonical
    ec_key = ec.generate_private_key(ec.SECP256R1())
    for i in rekored:
        subjects[i] = sha256_hex(f"rekor artifact {seed} {i}".encode())
        rsub = rekor.check_create_entry(kit.dsse_request(ec_key, kit.dsse_envelope(
            ec_key, kit.statement(subjects[i]))))
        entries[i], blobs[i] = rsub.leaf, rsub.envelope
    key = Ed25519Signer(origin, SEED)
    store = LogStore(path, create=True, map_size=1 << 30)
    try:
        store.initialize(origin, lambda t: sign_note(t, [key]))
        for lo in range(0, n, 20_000):
            hi = lo + 20_000
            store.append(entries[lo:hi], lambda t: sign_note(t, [key]), blobs=blobs[lo:hi])
    finally:
        store.close()
    write_key(path / "log.key", key)
    return Source(path, origin, key, entries, subjects)


def grow_source(src: Source, extra: list[bytes]) -> None:
    store = LogStore(src.path, map_size=1 << 30)
    try:
        store.append(extra, lambda t: sign_note(t, [src.signer]))
    finally:
        store.close()
    src.entries.extend(extra)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Source:
    return make_source(tmp_path_factory.mktemp("lmdb") / "data", ORIGIN, SIZE, 1, ATTESTED, REKORED)


def target(root: Path, ceph: Ceph, postgres: Postgres, origin: str = ORIGIN) -> tuple[DistLog, Path]:
    """A fresh bucket and database, and a `storage = "s3"` configuration for them."""
    root.mkdir(parents=True, exist_ok=True)
    d = DistLog(root, ceph.endpoint, ceph.new_bucket(), postgres.new_database())
    return d, d.config("target", "all", origin=origin)


def migrate(src: Path, config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlog.cli", "migrate", "--from", str(src), "--config",
                           str(config), *extra], capture_output=True, text=True, timeout=300, check=False)


def fsck(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`tlog fsck --config` in process (the CLI path, without an interpreter start)."""
    capsys.readouterr()
    code = cli.main(["fsck", "--config", str(config)])
    out = capsys.readouterr()
    return code, out.out + out.err


# --- what the target must hold ----------------------------------------------------------------


def expected_objects(src: Path) -> dict[str, bytes]:
    """Every object of the scaled-out log, as the LMDB log serves it (v1/log aside)."""
    store = LogStore(src, readonly=True)
    try:
        size = store.head().size
        out = {"checkpoint": store.checkpoint()}
        for ref in tiles_for_size(size):
            assert ref.level is not None
            out[ref.path()] = store.tile(ref.level, ref.index, ref.width)  # type: ignore[assignment]
        for b in range((size + TILE_WIDTH - 1) // TILE_WIDTH):
            w = tile_width_at(0, b, size)
            out[entries_path(b, w)] = store.bundle(b, w)  # type: ignore[assignment]
        with store.read_txn() as txn:
            for key, blob in txn.cursor(db=store.envelopes):
                out[f"v1/attestations/{sha256_hex(bytes(blob))}"] = bytes(blob)
                leaf = store.entry_in(txn, _U64.unpack(key)[0])
                if leaf[:1] == b"{":  # a Rekor v2 leaf: its envelope by leaf hash too
                    out[f"v1/envelopes/{leaf_hash(leaf).hex()}"] = bytes(blob)
            for digest, blob in txn.cursor(db=store.attest):  # content-addressed (older logs)
                out[f"v1/attestations/{bytes(digest).hex()}"] = bytes(blob)
    finally:
        store.close()
    return out


def expected_rows(src: Path) -> tuple[set[tuple[bytes, int]], set[tuple[int, bytes, int]]]:
    """The dedup and search rows, from the LMDB log's own indexes."""
    store = LogStore(src, readonly=True)
    index = SearchIndex(src)
    try:
        index.rebuild(store)  # what the LMDB log's indexer derives
        with store.read_txn() as txn:
            leaves = {(bytes(k), _U64.unpack(v)[0]) for k, v in txn.cursor(db=store.leafidx)}
        with index.env.begin() as txn:
            search = {(k[0], bytes(k[1:33]), _U64.unpack(k[33:41])[0])
                      for k in txn.cursor(db=index.search).iternext(values=False)}
    finally:
        index.close()
        store.close()
    return leaves, search


def bucket_objects(d: DistLog) -> dict[str, httpx.Response]:
    """Every object in the bucket, read anonymously (as a CDN or client reads them)."""
    keys: list[str] = []
    for page in s3_admin(d.endpoint).get_paginator("list_objects_v2").paginate(Bucket=d.bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]

    async def fetch() -> list[httpx.Response]:
        sem = asyncio.Semaphore(32)
        async with httpx.AsyncClient(timeout=30) as c:
            async def one(k: str) -> httpx.Response:
                async with sem:
                    return await c.get(f"{d.bucket_url()}/{k}")
            return await asyncio.gather(*(one(k) for k in keys))
    return dict(zip(keys, asyncio.run(fetch()), strict=True))


def rows(dsn: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in conn.execute(sql)]


def execute(dsn: str, sql: str, params: list[object] | None = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql, params)  # type: ignore[arg-type]


def assert_target_is(d: DistLog, src: Path, narrower: int = 0) -> None:
    """The bucket holds exactly the LMDB log's objects (and v1/log, and `narrower` partial
    tiles and bundles of an earlier size: the same bytes as the LMDB log serves at that
    width); the database its rows."""
    want = expected_objects(src)
    got = bucket_objects(d)
    extra = set(got) - set(want) - {"v1/log"}
    assert set(want) <= set(got) and len(extra) == narrower, (sorted(set(want) - set(got))[:10], extra)
    store = LogStore(src, readonly=True)
    try:
        for path in extra:
            ref = parse_tile_path(path)
            served = store.bundle(ref.index, ref.width) if ref.level is None else \
                store.tile(ref.level, ref.index, ref.width)
            assert ref.width < TILE_WIDTH and got[path].content == served, path
    finally:
        store.close()
    for path, data in want.items():
        r = got[path]
        assert r.status_code == 200 and r.content == data, path
        cache, ctype = object_attributes(path)
        assert (r.headers["cache-control"], r.headers["content-type"]) == (cache, ctype), path
    leaves, search = expected_rows(src)
    assert set(rows(d.dsn, "SELECT leaf_hash, idx FROM tlog_leaves")) == leaves
    assert set(rows(d.dsn, "SELECT field, term, idx FROM tlog_search")) == search
    store = LogStore(src, readonly=True)
    try:
        head, note = store.head_and_checkpoint()
        with store.read_txn() as txn:
            minutes = store.minutes_of(txn, 0, head.size)
    finally:
        store.close()
    assert minutes  # the minutes the entries were appended in come along
    assert rows(d.dsn, "SELECT first_index, minute FROM tlog_minutes ORDER BY first_index") == minutes
    assert rows(d.dsn, "SELECT size, root, checkpoint, sequenced, frozen FROM tlog_head") == \
        [(head.size, head.root, note, head.size, False)]
    assert rows(d.dsn, "SELECT name FROM tlog_meta ORDER BY name") == [("origin",), ("vkey",)]
    assert rows(d.dsn, "SELECT count(*) FROM tlog_sequenced") == [(0,)]


def mdb_digest(src: Path) -> str:
    return hashlib.sha256((src / "data.mdb").read_bytes()).hexdigest()


# --- migrating keeps the log ------------------------------------------------------------------


def test_migrated_log_keeps_its_roots_and_serves_on(big: Source, tmp_path: Path, ceph: Ceph,
                                                     postgres: Postgres,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    before = mdb_digest(big.path)
    d, cfg = target(tmp_path, ceph, postgres)
    out = migrate(big.path, cfg)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{SIZE}/{SIZE} entries copied (100%)" in out.stdout
    assert f"migrate: ok: log {ORIGIN!r} at size {SIZE}" in out.stdout
    assert mdb_digest(big.path) == before  # the source is only read
    assert_target_is(d, big.path)
    code, text = fsck(cfg, capsys)
    assert code == 0, text
    assert f"fsck: ok: size {SIZE}, {SIZE} entries" in text
    again = migrate(big.path, cfg)  # a finished migration: nothing more to do
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr

    # The migrated log serves on with the same key: new entries extend the same tree.
    (tmp_path / "log.key").write_bytes((big.path / "log.key").read_bytes())
    srv = d.start("a", "all")
    new = b"the first entry after the migration"
    r = HTTP.post(srv.url + "/v1/entries", json={"raw": base64.b64encode(new).decode()})
    assert r.status_code == 201, r.text
    assert verify_receipt_doc(r.json(), [big.signer.verifier().vkey()], new) == (SIZE, SIZE + 1)
    old = HTTP.post(srv.url + "/v1/entries", json={"raw": base64.b64encode(big.entries[12_345]).decode()})
    assert (old.status_code, old.json()["index"]) == (200, 12_345)
    for index, subject in big.subjects.items():
        hits = HTTP.get(srv.url + "/v1/search", params={"subject": f"sha256:{subject}"}).json()
        assert [h["index"] for h in hits["hits"]] == [index]
    bundle = HTTP.get(f"{srv.url}/v1/entries/{REKORED[0]}/sigstore-bundle").json()
    assert bundle["verificationMaterial"]["tlogEntries"][0]["canonicalizedBody"] == \
        base64.b64encode(big.entries[REKORED[0]]).decode()
    assert "dsseEnvelope" in bundle
    info = attest.parse_leaf(big.entries[ATTESTED[0]])
    assert info is not None
    digest = info.record["attestation"]
    assert sha256_hex(HTTP.get(f"{srv.url}/v1/attestations/{digest}").content) == digest
    proof = HTTP.get(srv.url + "/v1/proof/consistency", params={"old": SIZE, "new": SIZE + 1})
    assert proof.status_code == 200
    srv.stop()
    code, text = fsck(cfg, capsys)
    assert code == 0 and f"fsck: ok: size {SIZE + 1}" in text, text


# --- what is refused ------------------------------------------------------------------------


def test_refuses_a_target_that_holds_anything(tmp_path: Path, ceph: Ceph, postgres: Postgres) -> None:
    ours = make_source(tmp_path / "ours", ORIGIN, 300, 2, (10,))
    other = make_source(tmp_path / "other", "example.com/other-log", 300, 3)

    # A bucket with an object in it: refused before anything is written anywhere.
    d, cfg = target(tmp_path / "t1", ceph, postgres)
    s3_admin(d.endpoint).put_object(Bucket=d.bucket, Key="stray", Body=b"x")
    out = migrate(ours.path, cfg)
    assert out.returncode == 2 and "already holds objects" in out.stderr, out.stderr
    assert rows(d.dsn, "SELECT to_regclass('tlog_meta') IS NULL") == [(True,)]
    assert set(bucket_objects(d)) == {"stray"}

    # A database holding another log (and a fresh bucket): refused, nothing written.
    d2, cfg2 = target(tmp_path / "t2", ceph, postgres, other.origin)
    assert migrate(other.path, cfg2).returncode == 0
    d3 = DistLog(tmp_path / "t2", ceph.endpoint, ceph.new_bucket(), d2.dsn)
    out = migrate(ours.path, d3.config("again", "all"))
    assert out.returncode == 2 and "already holds log 'example.com/other-log'" in out.stderr, out.stderr
    assert bucket_objects(d3) == {}
    assert rows(d2.dsn, "SELECT size FROM tlog_head") == [(300,)]

    # An unfinished migration of another log: refused too.
    _, cfg4 = target(tmp_path / "t3", ceph, postgres, "")
    assert migrate(other.path, cfg4, "--stop-after", "0").returncode == 3
    out = migrate(ours.path, cfg4)
    assert out.returncode == 2 and "unfinished migration of log 'example.com/other-log'" in out.stderr
    # ... and a configuration that is not a scaled-out one.
    lmdb_cfg = tmp_path / "lmdb.toml"
    lmdb_cfg.write_text('[log]\nstorage = "lmdb"\n')
    out = migrate(ours.path, lmdb_cfg)
    assert out.returncode == 2 and 'storage = "s3"' in out.stderr


# --- resuming ---------------------------------------------------------------------------------


def test_an_interrupted_migration_resumes_to_the_same_result(big: Source, tmp_path: Path, ceph: Ceph,
                                                             postgres: Postgres,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    d, cfg = target(tmp_path, ceph, postgres)
    first = migrate(big.path, cfg, "--stop-after", "20000")
    assert first.returncode == 3 and "migrate: stopped" in first.stdout, first.stdout + first.stderr
    # Nothing serves a half-copied log: no tree head, no checkpoint, and `tlog serve` refuses it.
    assert rows(d.dsn, "SELECT count(*) FROM tlog_head") == [(0,)]
    assert HTTP.get(f"{d.bucket_url()}/checkpoint").status_code == 404
    code, text = fsck(cfg, capsys)
    assert code == 1 and "a `tlog migrate` is under way" in text, text
    serve = subprocess.run([sys.executable, "-m", "tlog.cli", "serve", "--config", str(cfg), "--data-dir",
                            str(tmp_path / "srv")], capture_output=True, text=True, timeout=60, check=False)
    assert serve.returncode != 0 and "tlog migrate" in serve.stderr, serve.stderr

    # Killed (SIGKILL) in the middle of a run: wherever it stopped, the next run goes on.
    proc = subprocess.Popen([sys.executable, "-m", "tlog.cli", "migrate", "--from", str(big.path),
                             "--config", str(cfg)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "entries copied" in line:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(30)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, lines
    chunk = CHUNK_BUNDLES * TILE_WIDTH
    stopped = -(-20_000 // chunk) * chunk  # --stop-after copies whole chunks
    assert any(f"resuming the copy of log {ORIGIN!r} at entry {stopped} " in x for x in lines), lines

    last = migrate(big.path, cfg)
    assert last.returncode == 0, last.stdout + last.stderr
    resumed = re.search(r"resuming the copy of log .* at entry (\d+) ", last.stdout)
    assert resumed and int(resumed[1]) > stopped, last.stdout  # the killed run's chunks are kept
    assert "migrate: ok" in last.stdout
    assert_target_is(d, big.path)
    code, text = fsck(cfg, capsys)
    assert code == 0, text


def test_a_source_that_grew_between_runs_is_copied_to_its_new_size(tmp_path: Path, ceph: Ceph,
                                                                   postgres: Postgres) -> None:
    src = make_source(tmp_path / "src", ORIGIN, 9000, 4, (8999,))
    d, cfg = target(tmp_path, ceph, postgres)
    assert migrate(src.path, cfg, "--stop-after", "100000").returncode == 3  # everything, unpublished
    grow_source(src, [b"more %d" % i for i in range(700)])
    out = migrate(src.path, cfg)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "grew from 9000 to 9700 entries" in out.stdout
    assert_target_is(d, src.path, narrower=3)  # the edge at 9000, written by the first run


# --- fsck of a scaled-out log -----------------------------------------------------------------


@pytest.fixture
def small(tmp_path: Path, ceph: Ceph, postgres: Postgres) -> Iterator[tuple[Source, DistLog, Path]]:
    src = make_source(tmp_path / "src", ORIGIN, 1000, 5, (600,))
    d, cfg = target(tmp_path, ceph, postgres)
    out = migrate(src.path, cfg)
    assert out.returncode == 0, out.stdout + out.stderr
    yield src, d, cfg


def test_fsck_catches_a_tampered_bucket_and_tree_head(small: tuple[Source, DistLog, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    src, d, cfg = small
    admin = s3_admin(d.endpoint)
    code, text = fsck(cfg, capsys)
    assert code == 0, text

    def tampered(key: str, body: bytes, want: str, **attrs: str) -> None:
        good = admin.get_object(Bucket=d.bucket, Key=key)
        cache, ctype = object_attributes(key)
        admin.put_object(Bucket=d.bucket, Key=key, Body=body, CacheControl=attrs.get("cache", cache),
                         ContentType=ctype)
        code, text = fsck(cfg, capsys)
        assert code == 1 and want in text and "fsck: FAILED" in text, text
        admin.put_object(Bucket=d.bucket, Key=key, Body=good["Body"].read(), CacheControl=cache,
                         ContentType=ctype)

    def flipped(key: str, at: int = 0) -> bytes:
        data = bytearray(HTTP.get(f"{d.bucket_url()}/{key}").content)
        data[at] ^= 1
        return bytes(data)

    tampered("tile/0/001", flipped("tile/0/001"), "tile/0/001: hash 0 is not the leaf hash of entry 256")
    tampered(tile_path(1, 0, 3), flipped(tile_path(1, 0, 3)), "tile/1/000.p/3 differs from the tile the "
             "entries give")
    tampered(entries_path(3, 232), flipped(entries_path(3, 232), -1),
             "tile/0/003.p/232: hash 231 is not the leaf hash of entry 999")
    info = attest.parse_leaf(src.entries[600])
    assert info is not None
    key = f"v1/attestations/{info.record['attestation']}"
    tampered(key, b"{}", f"{key} (the envelope of entry 600) does not match its digest")
    tampered("tile/entries/000", HTTP.get(f"{d.bucket_url()}/tile/entries/000").content,
             "tile/entries/000 is stored with Cache-Control 'no-cache'", cache="no-cache")
    other = sign_note(Checkpoint(ORIGIN, 999, bytes(32)).text(), [src.signer])
    tampered("checkpoint", other, "the bucket's checkpoint (size 999) names another root")
    code, text = fsck(cfg, capsys)
    assert code == 0, text

    # A tree head row that does not agree with the bucket, or indexes that lost an entry.
    def broken(sql: str, params: list[object], want: str, undo: str, undo_params: list[object]) -> None:
        execute(d.dsn, sql, params)
        code, text = fsck(cfg, capsys)
        assert code == 1 and want in text, text
        execute(d.dsn, undo, undo_params)

    (root, edge), = rows(d.dsn, "SELECT root, edge FROM tlog_head")
    broken("UPDATE tlog_head SET root = %s", [bytes(32)],
           "the root of the bucket's tiles is not the tree head's", "UPDATE tlog_head SET root = %s", [root])
    broken("UPDATE tlog_head SET edge = %s", [encode_edge([bytes(32) * 232, bytes(32) * 3])],
           "the tree head's right edge at level 0 differs", "UPDATE tlog_head SET edge = %s", [edge])
    (lh,), = rows(d.dsn, "SELECT leaf_hash FROM tlog_leaves WHERE idx = 5")
    broken("DELETE FROM tlog_leaves WHERE idx = 5", [],
           "the dedup index (tlog_leaves) has no entry for entry 5",
           "INSERT INTO tlog_leaves VALUES (%s, 5)", [lh])
    broken("INSERT INTO tlog_sequenced VALUES (7, 'x')", [], "tlog_sequenced still holds 1 entries below",
           "DELETE FROM tlog_sequenced", [])
    broken("DELETE FROM tlog_search WHERE idx = 600 AND field = 1", [],
           "the search index (tlog_search) lacks a subject key of entry 600",
           "INSERT INTO tlog_search SELECT 1, %s, 600", [hashlib.sha256(
               f"sha256:{src.subjects[600]}".encode()).digest()])
    code, text = fsck(cfg, capsys)
    assert code == 0, text
