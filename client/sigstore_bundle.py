"""Verify a Sigstore bundle of a Rekor v2 entry with a tlog trust policy. Pure, no I/O.

Sigstore clients check one log signature on the checkpoint and ignore witness cosignatures;
tlog's policy may require several log signatures, k witnesses, a fresh checkpoint and a TPM
anchor. The bundle's entry is turned into a tlog receipt (leaf = `canonicalizedBody`, index,
audit path, checkpoint) and verified as every receipt is (client.verify.verify_receipt),
with the DSSE envelope or the artifact re-checked against the leaf; its RFC 3161 timestamps,
if a TSA chain is given, are checked over the signature.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from client.encoding import b64encode, parse_decimal
from client.errors import MalformedError
from client.merkle import leaf_hash
from client.policy import TrustPolicy
from client.rekorleaf import parse_rekor_leaf
from client.timestamp import verify_timestamp
from client.verify import VerifiedReceipt, verify_receipt

MEDIA_TYPES = ("application/vnd.dev.sigstore.bundle.v0.3+json",
               "application/vnd.dev.sigstore.bundle+json;version=0.3")
MAX_TIMESTAMPS = 8


@dataclass(frozen=True)
class VerifiedBundle:
    receipt: VerifiedReceipt
    timestamps: tuple[datetime, ...]  # verified genTimes, if a TSA chain was given


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise MalformedError(f"bundle {what} must be base64")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedError(f"bundle {what} is not base64") from exc


def receipt_from_bundle(bundle: Any) -> dict[str, Any]:
    """The tlog receipt of a v0.3 bundle's single tlog entry (not yet verified)."""
    if not isinstance(bundle, dict) or bundle.get("mediaType") not in MEDIA_TYPES:
        raise MalformedError("not a Sigstore v0.3 bundle")
    try:
        (tle,) = bundle["verificationMaterial"]["tlogEntries"]
        proof = tle["inclusionProof"]
        note = proof["checkpoint"]["envelope"]
        index = proof["logIndex"]
        if not isinstance(note, str) or not isinstance(index, str) or index != tle["logIndex"]:
            raise MalformedError("the bundle's entry index and proof index differ")
        leaf = _b64(tle["canonicalizedBody"], "canonicalizedBody")
        hashes = [b64encode(_b64(h, "proof hash")) for h in proof["hashes"]]
        size = proof["treeSize"]
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedError(f"the bundle has no well-formed tlog entry: {exc}") from exc
    if not isinstance(size, str):
        raise MalformedError("the bundle's index and tree size must be decimal strings")
    # Canonical ASCII decimals: str.isdigit() also passes "²" and other digits int() refuses.
    index_n = parse_decimal(index, what="the bundle's log index")
    size_n = parse_decimal(size, what="the bundle's tree size")
    return {"origin": note.split("\n", 1)[0], "index": index_n, "leaf": b64encode(leaf),
            "leaf_hash": b64encode(leaf_hash(leaf)),
            "inclusion_proof": {"tree_size": size_n, "hashes": hashes}, "checkpoint": note}


def verify_bundle(bundle: Any, policy: TrustPolicy, *, artifact: bytes | None = None,
                  tsa_chain: list[bytes] | None = None, now: float | None = None,
                  key_attestation: Any | None = None) -> VerifiedBundle:
    """Verify the bundle's entry under `policy` (inclusion, checkpoint signatures, witnesses,
    freshness), that its DSSE envelope or `artifact` is what the entry logs, and with
    `tsa_chain` (leaf first) every RFC 3161 timestamp over the signature."""
    receipt = receipt_from_bundle(bundle)
    envelope = bundle.get("dsseEnvelope")
    if envelope is None and "messageSignature" not in bundle:
        raise MalformedError("the bundle has neither a DSSE envelope nor a message signature")
    if envelope is None and artifact is None:
        raise MalformedError("a message-signature bundle is verified with its artifact")
    vr = verify_receipt(receipt, policy, envelope=envelope, artifact=artifact, now=now,
                        key_attestation=key_attestation)
    times: list[datetime] = []
    if tsa_chain is not None:
        data = bundle["verificationMaterial"].get("timestampVerificationData", {})
        stamps = data.get("rfc3161Timestamps", []) if isinstance(data, dict) else None
        if not isinstance(stamps, list) or not stamps or len(stamps) > MAX_TIMESTAMPS:
            raise MalformedError(f"the bundle needs 1-{MAX_TIMESTAMPS} RFC 3161 timestamps")
        entry = parse_rekor_leaf(vr.leaf)
        if entry is None:
            raise MalformedError("the bundle's entry is not a Rekor v2 entry: no signature to timestamp")
        # Over the signature the entry logs (verified above), not the bundle's copy of it: a
        # messageSignature is not tied to the entry, and could carry another signature.
        signature = entry.signature
        for stamp in stamps:
            der = _b64(stamp.get("signedTimestamp") if isinstance(stamp, dict) else None, "timestamp")
            times.append(verify_timestamp(der, signature, tsa_chain))
    return VerifiedBundle(vr, tuple(times))
