"""Cross-implementation check: Go's golang.org/x/mod/sumdb/{note,tlog} verify our log.

A log is grown with the storage-level bulk loader through sizes that sit on and around tile
boundaries (255, 256, 257, 65535, 65536, 65537, ...) while one real `tlog serve` process
serves it (LMDB lets this process append while the server reads; the server re-reads the
tree head per request). At each size the Go program in tests/go/src/tlogcheck, built in
GOPATH mode against Debian's golang-golang-x-mod-dev, opens the checkpoint with
`note.Open`, recomputes the root with `tlog.TreeHash` over our C2SP tiles, compares every
tile, entry bundle, inclusion proof (`tlog.ProveRecord`/`CheckRecord`) and consistency proof
(`tlog.ProveTree`/`CheckTree`) with the API, and checks earlier checkpoints' roots.

Without Go these tests are skipped, unless REQUIRE_GO=1 or CI is set: then they fail.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.encoding import b64encode
from client.keyfile import write_key
from client.note import Ed25519Signer, sign_note
from tests.conftest import ORIGIN, SEED
from tests.gobuild import build_go
from tests.serverproc import ServerProc
from tlog.storage import LogStore, tile_key

pytestmark = pytest.mark.go

# Sizes the log grows through: small trees, both sides of the first level-0 tile boundary,
# a partial tile, both sides of the first level-1 tile boundary, and partials above it.
SIZES = [1, 7, 255, 256, 257, 1000, 65535, 65536, 65537, 70000]
INDEXES = [0, 1, 6, 254, 255, 256, 257, 511, 512, 999, 65279, 65280, 65534, 65535, 65536,
           65537, 69999]
PAIRS = [(1, 7), (7, 255), (255, 256), (256, 257), (255, 257), (1, 256), (257, 1000),
         (1000, 65535), (65535, 65536), (65536, 65537), (255, 65537), (1, 65537),
         (256, 65536), (65537, 70000), (257, 70000), (70000, 70000)]

BulkLog = tuple[LogStore, Ed25519Signer, ServerProc]
"""This process's store on the log, the log's signer, and the server serving it."""


@pytest.fixture(scope="module")
def tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go checker, built offline in GOPATH mode into a temp dir."""
    return build_go("tlogcheck", tmp_path_factory)


@pytest.fixture
def bulk_log(tmp_path: Path) -> Iterator[BulkLog]:
    """An initialised log with its key file, this process's LogStore, and a server on it."""
    data = tmp_path / "data"
    signer = Ed25519Signer(ORIGIN, SEED)
    store = LogStore(data, create=True)
    store.initialize(ORIGIN, lambda t: sign_note(t, [signer]))
    write_key(data / "log.key", signer)
    server = ServerProc(data, args=["--origin", ORIGIN]).start()
    try:
        yield store, signer, server
    finally:
        server.stop()
        store.close()


def _run(binary: Path, url: str, vkey: str, size: int,
         known: dict[int, bytes]) -> tuple[int, str]:
    """Run the Go checker at `size` with the standard indexes and pairs; (exit status, output)."""
    args = [
        str(binary),
        "-origin", ORIGIN,
        "-vkey", vkey,
        "-size", str(size),
        "-index", ",".join(str(i) for i in sorted({*INDEXES, size - 1}) if 0 <= i < size),
        "-consistency", ",".join(f"{a}:{b}" for a, b in PAIRS if b <= size),
        "-known", ",".join(f"{s}={b64encode(r)}" for s, r in sorted(known.items())),
        url,
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _run_check(binary: Path, url: str, vkey: str, size: int,
               known: dict[int, bytes]) -> str:
    code, out = _run(binary, url, vkey, size, known)
    assert code == 0, f"Go tlogcheck failed at size {size}:\n{out}"
    assert "FAIL" not in out and out.rstrip().splitlines()[-1].startswith("PASS"), out
    return out


def _grow(store: LogStore, signer: Ed25519Signer, rng: random.Random, target: int) -> None:
    """Append random 16-64 byte entries in large batches until the log has `target` entries."""
    def sign(text: str) -> bytes:
        return sign_note(text, [signer])

    size = store.head().size
    batch = [rng.randbytes(rng.randint(16, 64)) for _ in range(target - size)]
    for lo in range(0, len(batch), 20000):
        result = store.append(batch[lo : lo + 20000], sign)
        assert all(result.created), "random entries must not collide"
    assert store.head().size == target


def test_go_verifies_growing_log(tlogcheck: Path, bulk_log: BulkLog) -> None:
    store, signer, server = bulk_log
    vkey = signer.verifier().vkey()
    assert server.vkey == vkey

    rng = random.Random(20240601)
    known: dict[int, bytes] = {}
    for size in SIZES:
        _grow(store, signer, rng, size)
        out = _run_check(tlogcheck, server.url, vkey, size, known)
        # Every size's run exercised each kind of check at least once.
        assert f"tlog.TreeHash({size}) over tiles = checkpoint root" in out
        assert "tlog.CheckRecord ok" in out
        assert "RecordHash of every entry = level-0 tile hash" in out
        if any(b <= size for _, b in PAIRS):
            assert "tlog.CheckTree ok" in out
        for s in known:
            assert f"known root {s}: " in out
        known[size] = store.head().root


def test_go_verifies_empty_log(tlogcheck: Path, bulk_log: BulkLog) -> None:
    _store, signer, server = bulk_log
    out = _run_check(tlogcheck, server.url, signer.verifier().vkey(), 0, {})
    assert "size 0 root 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" in out


def test_go_checker_catches_tampering(tlogcheck: Path, bulk_log: BulkLog) -> None:
    """Negative controls: the checker is not vacuous."""
    store, signer, server = bulk_log
    vkey = signer.verifier().vkey()
    _grow(store, signer, random.Random(7), 600)
    _run_check(tlogcheck, server.url, vkey, 600, {})

    # A root that is not the log's root at size 300.
    code, out = _run(tlogcheck, server.url, vkey, 600, {300: bytes(32)})
    assert code == 1 and "FAIL  known root 300" in out, out

    # A key the log does not sign with: note.Open must refuse the checkpoint.
    other = Ed25519Signer(ORIGIN, bytes(32)).verifier().vkey()
    code, out = _run(tlogcheck, server.url, other, 600, {})
    assert code == 2 and "note.Open" in out, out

    # Corrupt one leaf hash of the full level-0 tile 0 behind the server's back: the tile no
    # longer hashes to its entry in the level-1 tile. At size 600 Go's TileHashReader does
    # not notice (its parent check skips this tile, see tlogcheck's parentTile comment), so
    # this also proves the checker's own tile chaining is in force.
    with store.env.begin(write=True) as txn:
        raw = bytearray(txn.get(tile_key(0, 0), db=store.tiles))
        raw[5 * 32] ^= 1
        txn.put(tile_key(0, 0), bytes(raw), db=store.tiles)
    code, out = _run(tlogcheck, server.url, vkey, 600, {})
    assert code == 1, out
    assert "FAIL  tile /tile/0/000: root" in out, out
    assert "FAIL  bundle /tile/entries/000: entry 5 RecordHash" in out, out
