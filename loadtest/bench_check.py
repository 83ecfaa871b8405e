#!/usr/bin/env python3
"""CPU cost of one signed-submission check (client.attest.check_dsse), in-process, no server.

    python loadtest/bench_check.py [--keys ed25519,ecdsa-p256] [--number N] [--repeat R]

The envelopes are bench_attest.py's: an in-toto Statement v1 with one subject and a padded
SLSA-shaped predicate, 1 KiB compact, one signature. Prints the best of R timings (CPU time)
in µs per check, then the same without the signature verification: what the parsing, the
JCS and the leaf cost on their own, which is what a change to the Python around the crypto
moves.
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
from bench_attest import INTOTO, KEY_TYPES, _envelope, _private_key, _signer, _statement, _statement_len
from cryptography.hazmat.primitives import serialization

from client import attest


def submission(kind: str, envelope_size: int = 1024) -> tuple[dict[str, Any], list[str]]:
    """One request's `dsse` envelope and `verifiers`, as the server receives them."""
    key = _private_key(kind)
    sign = _signer(kind, key)
    stmt_len = _statement_len(kind, sign, envelope_size)
    base = len(orjson.dumps(_statement("bench", kind, 0, "")))
    payload = orjson.dumps(_statement("bench", kind, 0, "x" * (stmt_len - base)))
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return _envelope(payload, sign(attest.pae(INTOTO, payload))), [pem]


def per_check_us(env: dict[str, Any], pems: list[str], number: int, repeat: int) -> float:
    attest.check_dsse(env, pems)  # warm the key cache, as a running log has
    # CPU time of this process: another process's load on a shared machine does not count.
    best = min(timeit.repeat(lambda: attest.check_dsse(env, pems), timer=time.process_time,
                             number=number, repeat=repeat))
    return best / number * 1e6


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--keys", default=",".join(KEY_TYPES))
    p.add_argument("--number", type=int, default=5000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    for kind in args.keys.split(","):
        env, pems = submission(kind)
        full = per_check_us(env, pems, args.number, args.repeat)
        with mock.patch.object(attest, "verify_message", lambda *_: True):
            rest = per_check_us(env, pems, args.number, args.repeat)
        print(f"{kind:12s} check_dsse {full:7.2f} µs   without the signature check {rest:7.2f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
