"""`tlog-client`: check what a log hands out, offline.

`verify-receipt` checks a write answer (`POST /v1/entries`) with nothing but the log's
verifier key: the checkpoint signature, then the inclusion proof of the leaf against the
checkpoint's root. With `--entry`, the leaf hash is recomputed from the entry bytes too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from client import merkle
from client.checkpoint import open_checkpoint
from client.encoding import b64decode_std
from client.errors import MalformedError, TlogError, VerificationError
from client.note import parse_vkey

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def verify_receipt_doc(doc: dict, vkeys: list[str], entry: bytes | None = None) -> tuple[int, int]:
    """Verify a receipt document; returns (index, tree size). Raises TlogError subclasses."""
    try:
        verifiers = [parse_vkey(v) for v in vkeys]
        index = doc["index"]
        leaf = b64decode_std(doc["leaf_hash"], length=32, what="leaf_hash")
        proof_doc = doc["inclusion_proof"]
        hashes = [b64decode_std(h, length=32, what="proof hash") for h in proof_doc["hashes"]]
        size = proof_doc["tree_size"]
        note = doc["checkpoint"].encode("utf-8")
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedError(f"receipt is missing or has a malformed field: {exc}") from exc
    if type(index) is not int or type(size) is not int or index < 0:  # JSON true is not 1
        raise MalformedError("receipt index and tree_size must be integers")
    origin = doc.get("origin", verifiers[0].name)
    if origin != verifiers[0].name:
        raise VerificationError(f"receipt is for log {origin!r}, the key is {verifiers[0].name!r}")
    cp, _ = open_checkpoint(note, origin, verifiers)  # type: ignore[arg-type]
    if cp.size != size:
        raise VerificationError(f"proof is for size {size}, checkpoint is size {cp.size}")
    if "leaf" in doc:
        leaf_bytes = b64decode_std(doc["leaf"], what="leaf")
        if merkle.leaf_hash(leaf_bytes) != leaf:
            raise VerificationError("the receipt's leaf does not hash to its leaf_hash")
        if entry is not None and entry != leaf_bytes:
            raise VerificationError("the entry is not the receipt's leaf")
    if entry is not None and merkle.leaf_hash(entry) != leaf:
        raise VerificationError("entry does not hash to the receipt's leaf hash")
    merkle.verify_inclusion(index, size, leaf, hashes, cp.root)
    return index, size


def cmd_verify_receipt(args: argparse.Namespace) -> int:
    try:
        doc = orjson.loads(Path(args.receipt).read_bytes())
        entry = Path(args.entry).read_bytes() if args.entry else None
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"tlog-client: cannot read receipt: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        index, size = verify_receipt_doc(doc, args.vkey, entry)
    except MalformedError as exc:
        print(f"tlog-client: malformed: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TlogError as exc:
        print(f"tlog-client: verification FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"ok: entry {index} is included in the signed checkpoint of size {size}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tlog-client", description="Verify what a tlog log hands out.")
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify-receipt", help="check a write answer offline")
    v.add_argument("receipt", help="JSON answer of POST /v1/entries")
    v.add_argument("--vkey", action="append", required=True, help="the log's verifier key")
    v.add_argument("--entry", help="file holding the entry bytes, to recompute the leaf hash")
    v.set_defaults(func=cmd_verify_receipt)
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
