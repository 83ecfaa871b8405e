"""Offline receipt verification: tlog's client vs sigstore-python, same proofs, same run.

    python loadtest/bench_verify.py [--receipts 1000] [--seconds 3] [--size 100000]

Builds a log in process (storage-level bulk load of `--size` in-toto-sized leaves, grown in
steps so that every receipt has its *own* checkpoint), signs checkpoints with Ed25519 (the
log's default key) and with ECDSA P-256, and times per key type:

* tlog: `client.verify.verify_receipt(receipt JSON bytes, policy)` — parses the receipt JSON,
  opens the checkpoint note (signature), checks origin and size, the leaf hash and the
  inclusion proof, and parses the leaf record.
* sigstore-python 4.5.1: `verify_merkle_inclusion` + `verify_checkpoint` on objects built
  beforehand (tests/sigstore_adapter.py; building them is *not* timed: column sigstore/s),
  and with building its models from the same values timed too (column +models/s; our side
  always starts from the receipt's JSON bytes).

Two workloads: "distinct" (each receipt its own checkpoint: every signature is verified) and
"shared" (receipts of one batch share the checkpoint; tlog memoises a verified note, sigstore
re-verifies). Interleaved rounds; the median of each is reported with the ratio.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519  # noqa: E402

from client import merkle, verify  # noqa: E402
from client.note import ECDSASigner, Ed25519Signer, sign_note  # noqa: E402
from client.policy import TrustPolicy  # noqa: E402
from client.verify import Receipt, verify_receipt  # noqa: E402
from tests import sigstore_adapter  # noqa: E402
from tlog.storage import LogStore  # noqa: E402

ORIGIN = "bench.example/log"


def build(size: int, receipts: int, signer: object, seed: int = 1) -> dict[str, list[Receipt]]:
    """Receipts for random indexes: "distinct" each against its own checkpoint (the log grows
    one entry per receipt), "shared" the same indexes against the final checkpoint."""
    rng = random.Random(seed)
    out: dict[str, list[Receipt]] = {"distinct": [], "shared": []}
    with tempfile.TemporaryDirectory() as tmp:
        store = LogStore(Path(tmp) / "db", create=True, map_size=1 << 31)

        def sign(text: str) -> bytes:
            return sign_note(text, [signer])  # type: ignore[list-item]

        def receipt(index: int) -> Receipt:
            with store.read_txn() as txn:
                size = store.head_in(txn).size
                leaf = store.entry_in(txn, index)
                proof = merkle.inclusion_proof(index, size, store.node_reader(txn))
                note = store.checkpoint_in(txn)
            return Receipt(ORIGIN, index, leaf, merkle.leaf_hash(leaf), size, tuple(proof), note)

        store.initialize(ORIGIN, sign)
        store.append([rng.randbytes(rng.randint(300, 700)) for _ in range(size - receipts)], sign)
        for _ in range(receipts):
            store.append([rng.randbytes(rng.randint(300, 700))], sign)
            out["distinct"].append(receipt(rng.randrange(store.head().size)))
        out["shared"] = [receipt(r.index) for r in out["distinct"]]
        store.close()
    return out


def rate(fn: Callable[[], None], n: int, seconds: float) -> float:
    """Calls of `fn` (covering n receipts) per second over at least `seconds`."""
    done, t0 = 0, time.perf_counter()
    while True:
        fn()
        done += n
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return done / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--receipts", type=int, default=1000)
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not sigstore_adapter.available():
        print(f"sigstore-python is not installed: pip install '{sigstore_adapter.SIGSTORE_PIN}' "
              "(it is in the [test] extra)", file=sys.stderr)
        return 2

    keys = {
        "ed25519": Ed25519Signer(ORIGIN, bytes(range(32))),
        "ecdsa-p256": ECDSASigner(ORIGIN, ec.generate_private_key(ec.SECP256R1())),
    }
    pems = {
        "ed25519": ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32))).public_key(),
        "ecdsa-p256": keys["ecdsa-p256"]._key.public_key(),  # type: ignore[attr-defined]
    }
    print(f"{'key':<11} {'workload':<9} {'tlog/s':>9} {'sigstore/s':>11} {'ratio':>6} "
          f"{'+models/s':>13} {'ratio':>6}")
    for name, signer in keys.items():
        policy = TrustPolicy(ORIGIN, (signer.verifier(),))  # type: ignore[attr-defined]
        pem = pems[name].public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        data = build(args.size, args.receipts, signer)
        for workload, items in data.items():
            prepared = [sigstore_adapter.prepare(r.leaf, r.index, r.tree_size, list(r.hashes),
                                                 _root(r), r.checkpoint, ORIGIN, pem) for r in items]
            for r, p in zip(items[:50], prepared[:50], strict=True):  # both accept, before timing
                verify_receipt(r, policy)
                sigstore_adapter.verify_prepared(p)
            raws = [orjson.dumps(r.to_dict()) for r in items]
            memo = workload == "shared"

            def ours(raws: list[bytes] = raws, memo: bool = memo, policy: TrustPolicy = policy) -> None:
                if not memo:  # each checkpoint once per pass: no memoised signature checks
                    verify._clear_memo()
                for raw in raws:
                    verify_receipt(raw, policy)

            def theirs(prepared: list[object] = prepared) -> None:
                for p in prepared:
                    sigstore_adapter.verify_prepared(p)

            def theirs_built(items: list[Receipt] = items, pem: bytes = pem) -> None:
                for r in items:
                    sigstore_adapter.verify_prepared(sigstore_adapter.prepare(
                        r.leaf, r.index, r.tree_size, list(r.hashes), _root(r), r.checkpoint, ORIGIN, pem))

            a, b, c = [], [], []
            for _ in range(args.rounds):
                a.append(rate(ours, len(raws), args.seconds))
                b.append(rate(theirs, len(prepared), args.seconds))
                c.append(rate(theirs_built, len(items), args.seconds))
            ma, mb, mc = statistics.median(a), statistics.median(b), statistics.median(c)
            print(f"{name:<11} {workload:<9} {ma:>9,.0f} {mb:>11,.0f} {ma / mb:>5.2f}x "
                  f"{mc:>13,.0f} {ma / mc:>5.2f}x", flush=True)
    return 0


def _root(r: Receipt) -> bytes:
    from client.checkpoint import parse_checkpoint_text
    from client.note import parse_note

    return parse_checkpoint_text(parse_note(r.checkpoint).text).root


if __name__ == "__main__":
    sys.exit(main())
