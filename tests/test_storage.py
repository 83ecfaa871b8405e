"""LMDB storage: appends, dedup, tiles against the reference, compare-and-swap, faults, fsck."""

from __future__ import annotations

import multiprocessing
import random
import struct
from pathlib import Path

import pytest

from client import merkle
from client.note import Ed25519Signer, sign_note
from client.tiles import TILE_WIDTH, tiles_for_size
from tests.conftest import ORIGIN, SEED
from tests.reference_merkle import Reference
from tlog.fsck import fsck
from tlog.storage import LogStore, StorageError, TreeHeadConflict, tile_key


def _sign(signer: Ed25519Signer):
    return lambda text: sign_note(text, [signer])


def _entries(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(0, 40)) + i.to_bytes(4, "big") for i in range(n)]


def _check_tiles(store: LogStore, ref: Reference, size: int) -> None:
    for t in tiles_for_size(size):
        assert t.level is not None
        got = store.tile(t.level, t.index, t.width)
        span = TILE_WIDTH ** t.level
        start = t.index * TILE_WIDTH
        want = b"".join(ref.mth((start + i) * span, (start + i + 1) * span) for i in range(t.width))
        assert got == want, t.path()
    if size % TILE_WIDTH < TILE_WIDTH - 1:  # one hash more than exists is not served
        assert store.tile(0, size // TILE_WIDTH, size % TILE_WIDTH + 1) is None


def test_append_dedup_and_tiles(store: LogStore, signer: Ed25519Signer) -> None:
    entries = _entries(700)
    ref = Reference(entries)
    sign = _sign(signer)
    pos = 0
    for batch in (1, 2, 253, 1, 1, 255, 3, 184):
        r = store.append(entries[pos : pos + batch], sign)
        assert r.indexes == list(range(pos, pos + batch)) and all(r.created)
        pos += batch
        assert r.head.size == pos and r.head.root == ref.mth(0, pos)
        _check_tiles(store, ref, pos)
    assert pos == 700
    # Duplicates of old entries, and twice within one batch, keep their first index.
    r = store.append([entries[5], b"new", entries[600], b"new"], sign)
    assert r.indexes == [5, 700, 600, 700]
    assert r.created == [False, True, False, False]
    r = store.append([entries[0]], sign)
    assert r.head.size == 701 and not r.created[0]
    for i in (0, 255, 256, 511, 699):
        assert store.entry(i) == entries[i]
        assert store.lookup(merkle.leaf_hash(entries[i])) == i
    assert store.entry(701) is None
    assert store.bundle(2, 189) is not None and store.bundle(2, 190) is None
    report = fsck(store, [signer.verifier()])
    assert report.ok, report.problems


def test_proofs_from_storage_match_reference(store: LogStore, signer: Ed25519Signer) -> None:
    entries = _entries(66000, seed=3)
    sign = _sign(signer)
    for i in range(0, 65537, 8192):
        store.append(entries[i : min(i + 8192, 65537)], sign)
    ref = Reference(entries[:65537])
    size = store.head().size
    assert size == 65537 and store.head().root == ref.mth(0, size)
    with store.read_txn() as txn:
        read = store.node_reader(txn)
        for idx in (0, 1, 255, 256, 257, 65535, 65536):
            assert merkle.inclusion_proof(idx, size, read) == ref.inclusion(idx, size)
        for old in (1, 255, 256, 257, 65535, 65536):
            assert merkle.consistency_proof(old, size, read) == ref.consistency(old, size)


def test_compare_and_swap(store: LogStore, signer: Ed25519Signer) -> None:
    store.append([b"a", b"b"], _sign(signer))
    with pytest.raises(TreeHeadConflict):
        store.append([b"c"], _sign(signer), expect_size=1)
    assert store.head().size == 2
    store.append([b"c"], _sign(signer), expect_size=2)
    assert store.head().size == 3


def test_failed_commit_writes_nothing(store: LogStore, signer: Ed25519Signer) -> None:
    """A failure inside the transaction (here: the signer) leaves the previous state intact."""
    sign = _sign(signer)
    store.append(_entries(300), sign)
    before = store.head_and_checkpoint()

    def broken(_text: str) -> bytes:
        raise OSError("signer unavailable")

    with pytest.raises(OSError):
        store.append([b"lost-1", b"lost-2"], broken)
    assert store.head_and_checkpoint() == before
    assert store.lookup(merkle.leaf_hash(b"lost-1")) is None
    r = store.append([b"lost-1"], sign)  # the cached right edge was dropped and reloaded
    assert r.indexes == [300]
    assert fsck(store, [signer.verifier()]).ok


def test_origin_is_fixed(store: LogStore, signer: Ed25519Signer) -> None:
    store.initialize(ORIGIN, _sign(signer))  # same origin: no-op
    with pytest.raises(StorageError):
        store.initialize("other.example/log", _sign(signer))


def _worker(path: str, tag: int, n: int) -> None:
    signer = Ed25519Signer(ORIGIN, SEED)
    s = LogStore(path)
    for i in range(0, n, 37):
        s.append([f"{tag}-{j}".encode() for j in range(i, min(i + 37, n))],
                 lambda t: sign_note(t, [signer]))
    s.close()


def test_two_processes_append_concurrently(tmp_path: Path, signer: Ed25519Signer) -> None:
    """LMDB serialises writers; each re-reads the head, so nothing is lost or duplicated."""
    path = tmp_path / "db"
    s = LogStore(path, create=True, map_size=1 << 30)
    s.initialize(ORIGIN, _sign(signer))
    s.close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(path), t, 1500)) for t in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    s = LogStore(path)
    assert s.head().size == 3000
    seen = {s.entry(i) for i in range(3000)}
    assert seen == {f"{t}-{j}".encode() for t in (1, 2) for j in range(1500)}
    report = fsck(s, [signer.verifier()])
    assert report.ok, report.problems
    s.close()


@pytest.mark.parametrize("damage", ["tile", "interior", "bundle", "leafidx", "checkpoint",
                                    "state", "extra_tile", "edge_entry", "extra_edge"])
def test_fsck_finds_damage(store: LogStore, signer: Ed25519Signer, damage: str) -> None:
    store.append(_entries(600), _sign(signer))
    assert fsck(store, [signer.verifier()]).ok
    with store.env.begin(write=True) as txn:
        if damage == "tile":
            raw = bytearray(txn.get(tile_key(0, 1), db=store.tiles))
            raw[40] ^= 1
            txn.put(tile_key(0, 1), bytes(raw), db=store.tiles)
        elif damage == "interior":
            raw = bytearray(txn.get(tile_key(0, 0), db=store.interior))
            raw[0] ^= 1
            txn.put(tile_key(0, 0), bytes(raw), db=store.interior)
        elif damage == "bundle":
            raw = bytearray(txn.get(struct.pack(">Q", 1), db=store.bundles))
            raw[-1] ^= 1
            txn.put(struct.pack(">Q", 1), bytes(raw), db=store.bundles)
        elif damage == "leafidx":
            txn.delete(merkle.leaf_hash(_entries(600)[10]), db=store.leafidx)
        elif damage == "checkpoint":
            other = Ed25519Signer(ORIGIN, bytes(32))
            txn.put(b"checkpoint", sign_note(f"{ORIGIN}\n600\n{'A' * 43}=\n", [other]),
                    db=store.meta)
        elif damage == "state":
            import msgpack
            txn.put(b"state", msgpack.packb([599, bytes(32)]), db=store.meta)
        elif damage == "extra_tile":
            txn.put(tile_key(0, 9), bytes(32), db=store.tiles)
        elif damage == "edge_entry":  # entries 512..599 make up the partial bundle
            txn.put(struct.pack(">Q", 590), b"tampered", db=store.edge)
        elif damage == "extra_edge":
            txn.put(struct.pack(">Q", 700), b"beyond the tree", db=store.edge)
    report = fsck(store, [signer.verifier()])
    assert not report.ok
    assert report.problems
