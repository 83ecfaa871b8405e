"""Split-view evidence: two checkpoints signed by one log that cannot both be true.

Self-contained, checkable offline with only the log's public key::

    {"type": "tlog-split-view/v1",
     "origin": "<origin>",
     "checkpoints": ["<signed note of size m>", "<signed note of size n>"],   # m <= n
     "prefix_root": "<base64>",           # sizes differ: the root of the size-n tree at size m
     "consistency_proof": ["<base64>", ...],  # m -> n, valid for prefix_root and the size-n root
     "reason": "...", "detected_by": "...", "detected_at": <unix seconds>}

Equal sizes: the two roots differ, nothing more is needed. Different sizes: the proof shows
that the tree the log signed at size n has `prefix_root` at size m (it verifies against the
size-n checkpoint's root), and `prefix_root` is not the root the log signed for size m. A
failed proof alone would prove nothing (anyone can send a bad proof); a valid one for
another prefix does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from client import merkle
from client.encoding import b64decode_hash, b64encode
from client.errors import MalformedError, ProofError, VerificationError
from client.note import Verifier
from client.policy import TrustPolicy
from client.verify import VerifiedCheckpoint, verify_checkpoint

EVIDENCE_TYPE = "tlog-split-view/v1"


@dataclass(frozen=True)
class SplitView:
    origin: str
    smaller: VerifiedCheckpoint
    larger: VerifiedCheckpoint
    prefix_root: bytes | None
    proof: tuple[bytes, ...]


def key_policy(policy: TrustPolicy) -> TrustPolicy:
    """What evidence is checked under: any one of the log's keys (no witnesses, no age)."""
    return TrustPolicy(policy.origin, policy.log_keys, "any")


def split_view(a: VerifiedCheckpoint, b: VerifiedCheckpoint, prove_larger: Any = None) -> SplitView | None:
    """The split view between two verified checkpoints, or None if they are consistent.

    `prove_larger(m, larger)` returns (root at m, consistency proof m -> larger.size)
    computed from the tiles of the *larger* checkpoint's tree, verified against its root;
    without it (or when it raises) unequal sizes are undecided: None is returned only for
    provably consistent pairs, so callers that need an answer call again once they can
    prove."""
    small, large = (a, b) if a.size <= b.size else (b, a)
    if small.size == large.size:
        if small.root == large.root:
            return None
        return SplitView(small.checkpoint.origin, small, large, None, ())
    if prove_larger is None:
        raise LookupError("unequal sizes need a proof from the larger tree")
    prefix_root, proof = prove_larger(small.size, large)
    merkle.verify_consistency(small.size, large.size, prefix_root, large.root, proof)  # ProofError: bad tiles
    if prefix_root == small.root:
        return None
    return SplitView(small.checkpoint.origin, small, large, prefix_root, tuple(proof))


def to_document(sv: SplitView, reason: str, detected_by: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "type": EVIDENCE_TYPE,
        "origin": sv.origin,
        "checkpoints": [sv.smaller.note.decode(), sv.larger.note.decode()],
        "consistency_proof": [b64encode(h) for h in sv.proof],
        "reason": reason,
        "detected_by": detected_by,
        "detected_at": int(time.time()),
    }
    if sv.prefix_root is not None:
        doc["prefix_root"] = b64encode(sv.prefix_root)
    return doc


def verify_evidence(doc: Any, log_keys: list[Verifier] | tuple[Verifier, ...]) -> SplitView:
    """Check split-view evidence with only the log's key(s); returns it, or raises
    MalformedError (not evidence) / VerificationError (does not prove a split view)."""
    try:
        if not isinstance(doc, dict) or doc.get("type") != EVIDENCE_TYPE:
            raise MalformedError(f"not a {EVIDENCE_TYPE} document")
        notes = doc["checkpoints"]
        if not isinstance(notes, list) or len(notes) != 2 or not all(isinstance(n, str) for n in notes):
            raise MalformedError("checkpoints must be two signed notes")
        proof = tuple(b64decode_hash(h, what="proof hash") for h in doc.get("consistency_proof", []))
        prefix = doc.get("prefix_root")
        prefix_root = b64decode_hash(prefix, what="prefix_root") if prefix is not None else None
        origin = doc["origin"]
        if not isinstance(origin, str):
            raise MalformedError("origin must be a string")
    except (KeyError, TypeError) as exc:
        raise MalformedError(f"evidence is missing or has a malformed field: {exc}") from exc
    policy = TrustPolicy(origin, tuple(log_keys), "any")
    a, b = (verify_checkpoint(n.encode(), policy) for n in notes)
    small, large = (a, b) if a.size <= b.size else (b, a)
    if small.size == large.size:
        if small.root == large.root:
            raise VerificationError("the two checkpoints are the same tree")
        return SplitView(origin, small, large, None, ())
    if prefix_root is None:
        raise MalformedError("checkpoints of different sizes need prefix_root and consistency_proof")
    try:
        merkle.verify_consistency(small.size, large.size, prefix_root, large.root, list(proof))
    except ProofError as exc:
        raise VerificationError(f"the proof does not hold for the larger checkpoint: {exc}") from exc
    if prefix_root == small.root:
        raise VerificationError("the larger tree extends the smaller one: consistent, no split view")
    return SplitView(origin, small, large, prefix_root, proof)
