"""Offline verification: checkpoints under a trust policy, and receipts of logged entries.

Everything here is pure (no I/O) and raises the typed errors of `client.errors`; nothing
returns a bool a caller could forget to check. Order matters and follows the safe order of
C2SP: open the signed note with trusted keys first, parse the body only afterwards, and
recompute the leaf from what the caller holds (envelope, artifact) rather than trusting
the log's reading of it.
"""

from __future__ import annotations

import functools
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson

from client import merkle
from client.attest import (
    KIND_DSSE,
    KIND_HASHEDREKORD,
    EntryError,
    EntrySignatureError,
    check_dsse,
    check_hashedrekord,
    is_intoto,
    parse_envelope,
    parse_leaf,
    parse_statement,
)
from client.checkpoint import Checkpoint, parse_checkpoint_text
from client.encoding import b64decode_any, b64decode_hash, b64decode_std, b64encode
from client.errors import (
    LeafMismatchError,
    MalformedError,
    PolicyError,
    SignatureError,
    StaleCheckpointError,
    UnknownKeyError,
    VerificationError,
)
from client.note import ALG_COSIGNATURE_V1, VerifiedNote, Verifier, parse_note, verify_note
from client.policy import TrustPolicy
from client.rekor import envelope_matches, verify_prehashed
from client.rekorleaf import HASHES, RekorEntry

MAX_RECEIPT_PROOF = 64  # an RFC 6962 audit path for a 2^64 tree has at most 64 hashes
CLOCK_SKEW_SECONDS = 300


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint that met a policy: the parsed body, the note, and who signed it."""

    checkpoint: Checkpoint
    note: bytes
    log_signers: tuple[str, ...]  # vkeys of the log keys whose signatures verified
    witnesses: tuple[str, ...]  # names of the witnesses whose cosignatures verified
    cosigned_at: int | None  # Unix seconds of the k-th newest trusted cosignature (None: no witnesses)

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


MAX_CHECKPOINT_NOTE = 64 * 1024  # a checkpoint with 100 signature lines is ~12 KiB


@functools.lru_cache(maxsize=4096)
def _open_cached(digest: bytes, verifiers: tuple[Verifier, ...], note: bytes) -> VerifiedNote:
    opened = verify_note(parse_note(note, max_size=MAX_CHECKPOINT_NOTE), list(verifiers))
    return VerifiedNote(opened.text, opened.verified, ())  # keep only what verified


def _open_note(note: bytes, verifiers: tuple[Verifier, ...]) -> VerifiedNote:
    """Signature checks of a note, memoised by its SHA-256: receipts of one batch share their
    checkpoint, and a valid signature stays valid. Failures raise and are not cached."""
    if len(note) > MAX_CHECKPOINT_NOTE:
        raise MalformedError(f"checkpoint note is larger than {MAX_CHECKPOINT_NOTE} bytes")
    key = hashlib.sha256(note).digest()
    try:
        return _open_cached(key, verifiers, note)
    except TypeError:  # pragma: no cover - unhashable verifier: verify without the memo
        return verify_note(parse_note(note, max_size=MAX_CHECKPOINT_NOTE), list(verifiers))


def _clear_memo() -> None:
    _open_cached.cache_clear()


def verify_checkpoint(note: bytes, policy: TrustPolicy, *, now: float | None = None) -> VerifiedCheckpoint:
    """Open a signed checkpoint and check it against every requirement of the policy.

    Witness cosignatures dated in the future (beyond a clock skew) do not count, and the
    checkpoint's age is that of the k-th newest counted cosignature (k = the quorum): one
    witness with a fast or stuck clock can neither block verification nor vouch alone."""
    opened = _open_note(bytes(note), policy.verifiers())
    verified = {(s.name, s.key_id) for s in opened.verified}
    log_ok = tuple(v.vkey() for v in policy.log_keys if (v.name, v.key_id) in verified)
    if not log_ok:
        raise UnknownKeyError(f"checkpoint has no signature by a log key of {policy.origin!r}")
    if policy.log_signatures == "all" and len(log_ok) != len(policy.log_keys):
        missing = [v.vkey() for v in policy.log_keys if v.vkey() not in log_ok]
        raise PolicyError(f"checkpoint lacks the signature of required log key(s) {missing}")
    cp = parse_checkpoint_text(opened.text)
    if cp.origin != policy.origin:
        raise PolicyError(f"checkpoint is for origin {cp.origin!r}, the policy trusts {policy.origin!r}")

    clock = time.time() if now is None else now
    stamps: dict[str, int] = {}
    future = 0
    for sig in opened.verified:
        for w in policy.witnesses:
            if (w.name, w.key_id) == (sig.name, sig.key_id) and w.alg == ALG_COSIGNATURE_V1:
                ts = int.from_bytes(sig.sig[:8], "big")
                if ts > clock + CLOCK_SKEW_SECONDS:
                    future += 1
                else:
                    stamps[w.name] = max(ts, stamps.get(w.name, 0))
    if len(stamps) < policy.witness_quorum:
        late = f" ({future} more dated in the future)" if future else ""
        raise PolicyError(f"checkpoint has {len(stamps)} trusted witness cosignature(s){late}, the "
                          f"policy needs {policy.witness_quorum} of {len(policy.witnesses)}")
    kth = sorted(stamps.values(), reverse=True)[policy.witness_quorum - 1] if stamps and \
        policy.witness_quorum else None
    if policy.max_age_seconds is not None and kth is not None and clock - kth > policy.max_age_seconds:
        raise StaleCheckpointError(
            f"the quorum's cosignatures are {int(clock - kth)} s old, the policy allows "
            f"{policy.max_age_seconds} s")
    return VerifiedCheckpoint(cp, note, log_ok, tuple(sorted(stamps)), kth)


# --- receipts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """The answer of `POST /v1/entries` (docs/receipts.md), parsed strictly."""

    origin: str
    index: int
    leaf: bytes
    leaf_hash: bytes
    tree_size: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "index": self.index,
            "leaf": b64encode(self.leaf),
            "leaf_hash": b64encode(self.leaf_hash),
            "inclusion_proof": {"tree_size": self.tree_size,
                                "hashes": [b64encode(h) for h in self.hashes]},
            "checkpoint": self.checkpoint.decode("utf-8"),
        }


def _uint(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value < 1 << 63:  # JSON true is not 1
        raise MalformedError(f"receipt {what} must be a non-negative integer")
    return value


def _json(doc: Any, what: str) -> Any:
    """A JSON document given as bytes, decoded; anything else as it is (already decoded)."""
    if isinstance(doc, bytes | bytearray | memoryview):
        try:
            return orjson.loads(doc)
        except orjson.JSONDecodeError as exc:
            raise MalformedError(f"{what} is not JSON: {exc}") from exc
    return doc


def parse_receipt(doc: Any) -> Receipt:
    """A receipt from its JSON document (bytes or an already-decoded object)."""
    doc = _json(doc, "receipt")
    try:
        proof = doc["inclusion_proof"]
        hashes = proof["hashes"]
        if not isinstance(hashes, list) or len(hashes) > MAX_RECEIPT_PROOF:
            raise MalformedError("receipt proof hashes must be a list of at most 64")
        if not all(isinstance(x, str) for x in (doc["origin"], doc["leaf"], doc["leaf_hash"],
                                                doc["checkpoint"], *hashes)):
            raise MalformedError("receipt origin, leaf, leaf_hash, hashes and checkpoint are strings")
        return Receipt(
            origin=doc["origin"],
            index=_uint(doc["index"], "index"),
            leaf=b64decode_std(doc["leaf"], what="receipt leaf"),
            leaf_hash=b64decode_hash(doc["leaf_hash"], what="receipt leaf_hash"),
            tree_size=_uint(proof["tree_size"], "tree_size"),
            hashes=tuple([b64decode_hash(h, what="proof hash") for h in hashes]),
            checkpoint=doc["checkpoint"].encode("utf-8"),
        )
    except (KeyError, TypeError) as exc:
        raise MalformedError(f"receipt is missing a field or has a malformed one: {exc}") from exc


@dataclass(frozen=True)
class VerifiedReceipt:
    index: int
    leaf: bytes
    checkpoint: VerifiedCheckpoint
    kind: int | None  # leaf kind (0x01 DSSE, 0x02 hashedrekord), None for raw entries
    record: dict[str, Any] | None
    signers: tuple[str, ...]  # `sha256:<hex>` digests of the keys whose signatures the leaf holds
    checked: tuple[str, ...]  # what was checked beyond inclusion: "envelope", "artifact", "signer"


def leaf_signers(kind: int | None, record: dict[str, Any] | None) -> tuple[str, ...]:
    if record is None:
        return ()
    try:
        if kind == KIND_DSSE:
            return tuple(s["signer"] for s in record["signatures"])
        return (record["signature"]["signer"],)
    except (KeyError, TypeError) as exc:
        raise MalformedError("leaf record has no well-formed signatures") from exc


def _pem(der_b64: str) -> str:
    """PEM of a leaf's base64 DER key, the form the submission checks take."""
    lines = [der_b64[i : i + 64] for i in range(0, len(der_b64), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


def _recompute(build: Any, *args: Any) -> bytes:
    """Run a leaf builder of client.attest, mapping its errors to verification errors."""
    try:
        return build(*args)  # type: ignore[no-any-return]
    except EntrySignatureError as exc:
        raise SignatureError(f"the signature does not verify: {exc}") from exc
    except EntryError as exc:
        raise MalformedError(str(exc)) from exc


def _check_envelope(leaf: bytes, record: dict[str, Any], envelope: Any) -> dict[str, Any]:
    """Recompute the DSSE leaf from the envelope with the leaf's own keys; returns the envelope."""
    envelope = _json(envelope, "envelope")
    if isinstance(envelope, dict) and "dsse" in envelope and "payloadType" not in envelope:
        envelope = envelope["dsse"]  # a submission body {"dsse": ..., "verifiers": ...}
    pems = list(dict.fromkeys(_pem(s["key"]) for s in record["signatures"]))  # one per key
    if not pems:
        raise LeafMismatchError("the leaf records no verified signature")
    got = _recompute(lambda e, p: check_dsse(e, p).leaf, envelope, pems)
    if got != leaf:
        raise LeafMismatchError("the envelope does not produce the logged leaf")
    return envelope  # type: ignore[no-any-return]


def _rekor_signature_verifies(entry: RekorEntry) -> None:
    """Re-verify a Rekor v2 leaf's signature over its digest with its own key: the leaf's
    claims count only once checked here (a log accepting raw bytes could imitate any leaf)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_der_public_key(entry.key_der)
    except (ValueError, UnsupportedAlgorithm) as exc:  # raw bytes can imitate a leaf with any "key"
        raise LeafMismatchError("the Rekor v2 leaf's key is not a public key") from exc
    if not verify_prehashed(key, entry.key_details, entry.signature, entry.digest):
        raise LeafMismatchError("the Rekor v2 leaf's signature does not verify with its key")


def _check_rekor_envelope(entry: RekorEntry, envelope: Any) -> dict[str, Any]:
    """The envelope is the one a Rekor v2 leaf logs (PAE digest and signature), and its
    signature verifies with the leaf's key. Returns it as parsed JSON."""
    envelope = _json(envelope, "envelope")
    try:
        env = parse_envelope(envelope)
    except EntryError as exc:
        raise MalformedError(str(exc)) from exc
    if not envelope_matches(entry, env):
        raise LeafMismatchError("the envelope is not the one the Rekor v2 entry logs")
    _rekor_signature_verifies(entry)
    return envelope  # type: ignore[no-any-return]


def _check_rekor_artifact(entry: RekorEntry, artifact: bytes, envelope: Any | None) -> None:
    """An artifact of a Rekor v2 entry: the signed digest itself, or (with its envelope) a
    subject of the Statement the entry logs."""
    if envelope is not None:
        if f"sha256:{hashlib.sha256(artifact).hexdigest()}" not in _envelope_subjects(envelope):
            raise LeafMismatchError("the artifact is not a subject of the attestation")
        return
    if hashlib.new(HASHES[entry.algorithm][0], artifact).digest() != entry.digest:
        raise LeafMismatchError("the artifact's digest is not the logged one")
    _rekor_signature_verifies(entry)


def _envelope_subjects(envelope: dict[str, Any]) -> set[str]:
    """`sha256:<hex>` of every subject of the (already verified) envelope's in-toto Statement."""
    if not is_intoto(envelope.get("payloadType", "")):
        raise LeafMismatchError("the envelope is not an in-toto attestation: it names no subjects")
    try:
        statement = parse_statement(b64decode_any(envelope["payload"], what="payload"))
    except EntryError as exc:
        raise LeafMismatchError(f"the envelope's payload is not an in-toto Statement: {exc}") from exc
    return {f"sha256:{d['sha256']}" for _, d in statement.subjects if "sha256" in d}


def verify_receipt(
    receipt: Receipt | dict[str, Any] | bytes,
    policy: TrustPolicy,
    envelope: Any = None,
    artifact: bytes | None = None,
    *,
    signers: set[str] | frozenset[str] | None = None,
    now: float | None = None,
    key_attestation: Any = None,
) -> VerifiedReceipt:
    """Check a receipt offline; raises a `client.errors` error on any failure.

    - the checkpoint meets `policy` (log signatures, witness k of n, age, origin);
    - the leaf hashes to `leaf_hash`, and the inclusion proof leads to the checkpoint's root;
    - with `envelope`: the DSSE leaf recomputed from it (signatures re-verified with the keys
      the leaf records) is byte-identical to the logged leaf;
    - with `artifact`: its SHA-256 is the hashedrekord digest (signature re-verified), or a
      subject of the DSSE Statement (which then needs the envelope, to check the signature);
    - with `signers` (`sha256:<hex>` key digests): at least one of them signed.
    """
    r = receipt if isinstance(receipt, Receipt) else parse_receipt(receipt)
    if policy.requires_tpm:  # the ECDSA checkpoint key must be proven to live in a trusted TPM
        if key_attestation is None:
            raise MalformedError("the policy requires TPM anchoring: give the log's key attestation")
        from client.tpmattest import check_anchoring

        check_anchoring(key_attestation, policy)
    if r.origin != policy.origin:
        raise PolicyError(f"receipt is for log {r.origin!r}, the policy trusts {policy.origin!r}")
    vc = verify_checkpoint(r.checkpoint, policy, now=now)
    if r.tree_size != vc.size:
        raise VerificationError(f"proof is for size {r.tree_size}, the checkpoint is size {vc.size}")
    if merkle.leaf_hash(r.leaf) != r.leaf_hash:
        raise LeafMismatchError("the receipt's leaf does not hash to its leaf_hash")
    merkle.verify_inclusion(r.index, r.tree_size, r.leaf_hash, list(r.hashes), vc.root)

    info = parse_leaf(r.leaf)
    kind, record = (info.kind, info.record) if info else (None, None)
    checked: list[str] = []
    if (envelope is not None or artifact is not None or signers) and info is None:
        raise LeafMismatchError("the logged leaf is not an attestation leaf (raw entry)")
    if envelope is not None:
        if info is not None and info.rekor is not None:
            envelope = _check_rekor_envelope(info.rekor, envelope)
        elif kind != KIND_DSSE:
            raise LeafMismatchError("an envelope was given but the leaf is not a DSSE entry")
        else:
            envelope = _check_envelope(r.leaf, record, envelope)  # type: ignore[arg-type]
        checked.append("envelope")
    if artifact is not None:
        digest = hashlib.sha256(artifact).hexdigest()
        if info is not None and info.rekor is not None:
            _check_rekor_artifact(info.rekor, artifact, envelope)
        elif kind == KIND_HASHEDREKORD:
            if record["digest"] != {"sha256": digest}:  # type: ignore[index]
                raise LeafMismatchError("the artifact's digest is not the logged one")
            sig = record["signature"]  # type: ignore[index]
            doc = {"digest": {"sha256": digest}, "signature": sig["sig"], "verifier": _pem(sig["key"])}
            if _recompute(check_hashedrekord, doc) != r.leaf:  # re-verifies the signature
                raise LeafMismatchError("the artifact's record does not produce the logged leaf")
        else:
            if envelope is None:
                raise MalformedError("a DSSE entry needs its envelope to check an artifact "
                                     "(the signature covers the envelope, not the artifact)")
            if f"sha256:{digest}" not in _envelope_subjects(envelope):
                raise LeafMismatchError("the artifact is not a subject of the attestation")
        checked.append("artifact")
    found = (info.rekor.signer,) if info is not None and info.rekor is not None \
        else leaf_signers(kind, record)
    if signers:
        # The leaf's signer fields are only claims until a signature was re-verified here
        # (raw bytes on a log that accepts them could imitate any leaf).
        if not checked:
            raise MalformedError("checking the signer needs the envelope (or, for a hashedrekord "
                                 "entry, the artifact) to re-verify the signature")
        if not set(found) & set(signers):
            raise PolicyError(f"the entry is signed by {list(found)}, none of the required signers")
        checked.append("signer")
    return VerifiedReceipt(r.index, r.leaf, vc, kind, record, found, tuple(checked))


def verify_receipt_doc(doc: Any, vkeys: list[str], entry: bytes | None = None) -> tuple[int, int]:
    """Key-only check of a receipt (no policy file): signature by any of `vkeys`, inclusion,
    and with `entry` that the leaf is exactly these bytes. Returns (index, tree size)."""
    from client.note import parse_vkey

    verifiers = tuple(parse_vkey(v) for v in vkeys)
    if not verifiers:
        raise MalformedError("need at least one verifier key")
    policy = TrustPolicy(origin=verifiers[0].name, log_keys=verifiers, log_signatures="any")
    vr = verify_receipt(doc, policy)
    if entry is not None and entry != vr.leaf:
        raise LeafMismatchError("the entry is not the receipt's leaf")
    return vr.index, vr.checkpoint.size
