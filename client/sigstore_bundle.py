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

from client.encoding import b64encode
from client.errors import MalformedError
from client.merkle import leaf_hash
from client.policy import TrustPolicy
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
    if not index.isdigit() or not isinstance(size, str) or not size.isdigit():
        raise MalformedError("the bundle's index and tree size must be decimal strings")
    return {"origin": note.split("\n", 1)[0], "index": int(index), "leaf": b64encode(leaf),
            "leaf_hash": b64encode(leaf_hash(leaf)),
            "inclusion_proof": {"tree_size": int(size), "hashes": hashes}, "checkpoint": note}


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
        stamps = bundle["verificationMaterial"].get("timestampVerificationData", {}).get(
            "rfc3161Timestamps", [])
        if not stamps or len(stamps) > MAX_TIMESTAMPS:
            raise MalformedError(f"the bundle needs 1-{MAX_TIMESTAMPS} RFC 3161 timestamps")
        signature = (_b64(envelope["signatures"][0]["sig"], "signature") if envelope is not None
                     else _b64(bundle["messageSignature"]["signature"], "signature"))
        for stamp in stamps:
            times.append(verify_timestamp(_b64(stamp.get("signedTimestamp"), "timestamp"),
                                          signature, tsa_chain))
    return VerifiedBundle(vr, tuple(times))
