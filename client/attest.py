"""Attestation entries: DSSE envelopes (with in-toto Statements) and signed artifact digests.

Pure, no I/O. Everything a log does before accepting an attestation, and everything a
verifier needs to recompute its leaf: parse strictly, verify signatures, build the leaf.

Leaf format v1 (docs/leaf-format.md): ``0x01 || kind || RFC 8785 JSON record``, kind 0x01
for DSSE and 0x02 for hashedrekord. The record holds only *verified* signatures with their
keys, the digest of the payload and, for DSSE, the content address of the whole envelope,
which the log serves at /v1/attestations/<hex>. It copies at most 16 signatures (RSA keys
are capped at 4096 bits) and at most 64 subjects within a 32 KiB budget, so it stays under
the 65,535-byte tile entry limit; anything beyond is still committed to through the
envelope's digest.
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing
import orjson
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from client.encoding import b64decode_any, b64decode_std, b64encode
from client.errors import MalformedError, SignatureError
from client.jcs import canonicalize_record
from client.rekorleaf import HASHES, KIND_REKOR, RekorEntry, parse_rekor_leaf

HASHES_BY_NAME = {name: hl for name, (hl, _) in HASHES.items()}

LEAF_VERSION = 0x01
KIND_DSSE = 0x01
KIND_HASHEDREKORD = 0x02
INTOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
MAX_ENVELOPE_SIGNATURES = 16
MAX_VERIFIERS = 8
MAX_LEAF_SUBJECTS = 64
MAX_DIGESTS_PER_SUBJECT = 4
SUBJECTS_BUDGET = 32 * 1024  # bytes of subject records copied into one leaf
MAX_PEM = 16 * 1024
MAX_LEAF = 0xFFFF
MIN_RSA_BITS, MAX_RSA_BITS = 2048, 4096
RSA_EXPONENTS = (3, 65537)
PREDICATE_TYPE = re.compile(r"[^\x00-\x20\x7f]{1,1024}\Z")  # a URI: no spaces or controls

_HEX = re.compile(r"[0-9a-f]+\Z")
_CONTROL = re.compile(r"[\x00-\x1f]")
_ALG = re.compile(r"[A-Za-z0-9_+-]{1,32}\Z")


# --- errors carrying the API's stable codes -------------------------------------------------

class EntryError(MalformedError):
    """A submission that cannot be accepted; `code` is the stable API error code."""

    code = "malformed_entry"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class UnsupportedKeyError(EntryError):
    code = "unsupported_key"


class StatementMismatchError(EntryError):
    code = "statement_mismatch"


class EntrySignatureError(SignatureError):
    """No signature verifies with a supplied key (API code `signature_invalid`)."""

    code = "signature_invalid"


# --- keys -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PublicKey:
    """A supported signer key: its DER SubjectPublicKeyInfo and the parsed key."""

    der: bytes
    key: Any
    kind: str  # "ed25519" | "ecdsa-p256" | "ecdsa-p384" | "rsa"

    @functools.cached_property
    def digest(self) -> str:
        """`sha256:<hex of the DER SubjectPublicKeyInfo>`, the signer identity in leaves.
        Computed once: loaded keys are memoised and every leaf names its signers."""
        return "sha256:" + hashlib.sha256(self.der).hexdigest()

    @functools.cached_property
    def der_b64(self) -> str:
        """The DER in standard base64, as leaves carry it (once per key, as `digest`)."""
        return b64encode(self.der)


def load_public_key(pem: str) -> PublicKey:
    """Parse one PEM `PUBLIC KEY` (SPKI). Ed25519, ECDSA P-256/P-384, RSA 2048-4096 bits.

    Memoised: signers submit with the same few keys over and over, and parsing PEM costs
    more than an ECDSA verification.
    """
    if not isinstance(pem, str) or len(pem) > MAX_PEM:
        raise EntryError("a verifier must be a PEM public key string", "malformed_entry")
    return _load_public_key(pem)


@functools.lru_cache(maxsize=1024)
def _load_public_key(pem: str) -> PublicKey:
    text = pem.strip()
    if not text.startswith("-----BEGIN PUBLIC KEY-----") or text.count("-----BEGIN") != 1:
        raise UnsupportedKeyError("verifiers must be PEM SubjectPublicKeyInfo (BEGIN PUBLIC KEY)")
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except (ValueError, UnsupportedAlgorithm, UnicodeEncodeError) as exc:
        raise UnsupportedKeyError(f"cannot load the public key: {exc}") from exc
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    if isinstance(key, ed25519.Ed25519PublicKey):
        # libsodium verifies Ed25519 about twice as fast as OpenSSL through cryptography.
        return PublicKey(der, nacl.signing.VerifyKey(key.public_bytes_raw()), "ed25519")
    if isinstance(key, ec.EllipticCurvePublicKey):
        kinds = {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}
        if key.curve.name not in kinds:
            raise UnsupportedKeyError(f"ECDSA curve {key.curve.name} is not supported")
        return PublicKey(der, key, kinds[key.curve.name])
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise UnsupportedKeyError(f"RSA keys must have {MIN_RSA_BITS}-{MAX_RSA_BITS} bits")
        if key.public_numbers().e not in RSA_EXPONENTS:
            # A huge exponent makes every verification slow: a denial of service.
            raise UnsupportedKeyError("RSA public exponent must be 3 or 65537")
        return PublicKey(der, key, "rsa")
    raise UnsupportedKeyError(f"{type(key).__name__} keys are not supported")


def _ecdsa_der(sig: bytes, key: ec.EllipticCurvePublicKey) -> list[bytes]:
    """DER as given, and, for a raw r||s of the curve's size, its DER form (DSSE allows both)."""
    size = (key.curve.key_size + 7) // 8
    out = [sig]
    if len(sig) == 2 * size:
        r, s = int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big")
        out.append(utils.encode_dss_signature(r, s))
    return out


def verify_message(key: PublicKey, sig: bytes, msg: bytes) -> bool:
    """Signature over a message: Ed25519; ECDSA with SHA-256 (P-256) / SHA-384 (P-384);
    RSA PKCS#1 v1.5 or PSS (MGF1) with SHA-256, any salt length."""
    try:
        if key.kind == "ed25519":
            if len(sig) != 64:
                return False
            key.key.verify(msg, sig)
            return True
        if key.kind.startswith("ecdsa"):
            alg = hashes.SHA256() if key.kind == "ecdsa-p256" else hashes.SHA384()
            return _verify_ecdsa(key.key, sig, msg, alg)
        return _verify_rsa(key.key, sig, msg, hashes.SHA256())
    except (InvalidSignature, nacl.exceptions.BadSignatureError, ValueError):
        return False


def verify_digest(key: PublicKey, sig: bytes, digest: bytes) -> bool:
    """Signature over a SHA-256 digest (prehashed): ECDSA and RSA only."""
    if key.kind == "ed25519":
        raise UnsupportedKeyError("Ed25519 cannot verify a signature over a digest (hashedrekord)")
    prehashed = utils.Prehashed(hashes.SHA256())
    try:
        if key.kind.startswith("ecdsa"):
            return _verify_ecdsa(key.key, sig, digest, prehashed)
        return _verify_rsa(key.key, sig, digest, prehashed)
    except (InvalidSignature, ValueError):
        return False


def _verify_ecdsa(key: ec.EllipticCurvePublicKey, sig: bytes, msg: bytes, alg: Any) -> bool:
    for candidate in _ecdsa_der(sig, key):
        try:
            key.verify(candidate, msg, ec.ECDSA(alg))
            return True
        except InvalidSignature:
            continue
    return False


def _verify_rsa(key: rsa.RSAPublicKey, sig: bytes, msg: bytes, alg: Any) -> bool:
    for pad in (padding.PKCS1v15(),
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)):
        try:
            key.verify(sig, msg, pad, alg)
            return True
        except InvalidSignature:
            continue
    return False


# --- DSSE -----------------------------------------------------------------------------------

def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what signatures sign."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Envelope:
    payload_type: str
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (keyid hint, signature)

    def canonical(self) -> bytes:
        """The envelope in canonical form (RFC 8785, standard base64): what the log stores."""
        rest = canonicalize_record({
            "payloadType": self.payload_type,
            "signatures": [{"keyid": kid, "sig": b64encode(sig)} for kid, sig in self.signatures],
        })
        # JCS puts "payload" first (it sorts before "payloadType"), and base64 needs no
        # escaping: splice the payload in as bytes, so a large one is copied once, not as
        # str, quoted str, joined str and encoded bytes in turn.
        return b"".join((b'{"payload":"', binascii.b2a_base64(self.payload, newline=False),
                         b'",', rest[1:]))

    def digest(self) -> str:
        """Content address of the envelope: hex SHA-256 of its canonical form."""
        return hashlib.sha256(self.canonical()).hexdigest()


def parse_envelope(doc: Any) -> Envelope:
    """A DSSE envelope from parsed JSON, strictly: required fields and types, strict base64."""
    if not isinstance(doc, dict):
        raise EntryError("dsse must be a JSON object", "malformed_envelope")
    payload, ptype, sigs = doc.get("payload"), doc.get("payloadType"), doc.get("signatures")
    if not isinstance(payload, str) or not isinstance(ptype, str) or not isinstance(sigs, list):
        raise EntryError("a DSSE envelope needs string payload and payloadType and a "
                         "signatures list", "malformed_envelope")
    if not ptype or len(ptype) > 256 or _CONTROL.search(ptype):
        raise EntryError("payloadType must be 1-256 printable characters", "malformed_envelope")
    if not sigs or len(sigs) > MAX_ENVELOPE_SIGNATURES:
        raise EntryError(f"an envelope needs 1-{MAX_ENVELOPE_SIGNATURES} signatures",
                         "malformed_envelope")
    try:
        data = b64decode_any(payload, what="payload")
        parsed: list[tuple[str, bytes]] = []
        for s in sigs:
            if not isinstance(s, dict) or not isinstance(s.get("sig"), str):
                raise EntryError("each signature needs a base64 sig", "malformed_envelope")
            kid = s.get("keyid", "")
            if not isinstance(kid, str) or len(kid) > 1024:
                raise EntryError("keyid must be a string", "malformed_envelope")
            sig = b64decode_any(s["sig"], what="sig")
            if not 0 < len(sig) <= 1024:
                raise EntryError("a signature must be 1-1024 bytes", "malformed_envelope")
            parsed.append((kid, sig))
    except EntryError:
        raise
    except MalformedError as exc:
        raise EntryError(str(exc), "malformed_envelope") from exc
    return Envelope(ptype, data, tuple(parsed))


def load_verifiers(pems: Any) -> list[PublicKey]:
    if not isinstance(pems, list) or not 1 <= len(pems) <= MAX_VERIFIERS:
        raise EntryError(f"verifiers must be a list of 1-{MAX_VERIFIERS} PEM public keys")
    keys: dict[bytes, PublicKey] = {}
    for p in pems:
        key = load_public_key(p)
        keys.setdefault(key.der, key)  # the same key twice would only cost verifications
    return list(keys.values())


def verify_envelope(env: Envelope, keys: list[PublicKey]) -> list[tuple[PublicKey, bytes]]:
    """Every (key, signature) pair that verifies over the PAE; at least one must."""
    msg = pae(env.payload_type, env.payload)
    verified: list[tuple[PublicKey, bytes]] = []
    seen: set[bytes] = set()
    for _, sig in env.signatures:
        if sig in seen:  # the same signature twice proves nothing more: record it once
            continue
        seen.add(sig)
        for key in keys:
            if verify_message(key, sig, msg):
                verified.append((key, sig))
                break
    if not verified:
        raise EntrySignatureError("no envelope signature verifies with a supplied key")
    return verified


# --- in-toto Statements ---------------------------------------------------------------------

@dataclass(frozen=True)
class Statement:
    predicate_type: str
    subjects: tuple[tuple[str, dict[str, str]], ...]  # (name, digest set)


def is_intoto(payload_type: str) -> bool:
    return payload_type == INTOTO_PAYLOAD_TYPE or (
        payload_type.startswith("application/vnd.in-toto.") and payload_type.endswith("+json"))


def parse_statement(payload: bytes) -> Statement:
    """An in-toto Statement (v1, or v0.1 which has the same shape), strictly."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise StatementMismatchError("payloadType is in-toto but the payload is not JSON") from exc
    if not isinstance(doc, dict) or doc.get("_type") not in STATEMENT_TYPES:
        raise StatementMismatchError("payloadType is in-toto but the payload is not an in-toto "
                                     "Statement (_type)")
    ptype = doc.get("predicateType")
    if not isinstance(ptype, str) or not PREDICATE_TYPE.match(ptype):
        raise StatementMismatchError("the Statement needs a predicateType URI (1-1024 "
                                     "characters, no spaces or control characters)")
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise StatementMismatchError("the Statement has no subjects")
    out: list[tuple[str, dict[str, str]]] = []
    for s in subjects:
        if not isinstance(s, dict) or not isinstance(s.get("digest"), dict) or not s["digest"]:
            raise StatementMismatchError("every subject needs a non-empty digest set")
        name = s.get("name", "")
        if not isinstance(name, str):
            raise StatementMismatchError("a subject name must be a string")
        digests: dict[str, str] = {}
        for alg, value in s["digest"].items():
            if not isinstance(value, str) or not _ALG.match(alg) or not _HEX.match(value) \
                    or len(value) > 256:
                raise StatementMismatchError("subject digests must be lowercase hex")
            digests[alg] = value
        if "sha256" in digests and len(digests["sha256"]) != 64:
            raise StatementMismatchError("a sha256 subject digest must be 64 hex digits")
        out.append((name, digests))
    return Statement(ptype, tuple(out))


# --- leaves ---------------------------------------------------------------------------------

def _leaf(kind: int, record: dict[str, Any]) -> bytes:
    leaf = bytes([LEAF_VERSION, kind]) + canonicalize_record(record)
    if len(leaf) > MAX_LEAF:
        raise EntryError("the leaf record would exceed 65,535 bytes", "entry_too_large")
    return leaf


def _sig_record(key: PublicKey, sig: bytes) -> dict[str, str]:
    return {"key": key.der_b64, "sig": b64encode(sig), "signer": key.digest}


def dsse_leaf(env: Envelope, verified: list[tuple[PublicKey, bytes]],
              statement: Statement | None, digest: str | None = None) -> bytes:
    """The v1 leaf for a verified DSSE envelope (and its Statement, when in-toto)."""
    record: dict[str, Any] = {
        "attestation": digest or env.digest(),
        "payload_sha256": hashlib.sha256(env.payload).hexdigest(),
        "payload_type": env.payload_type,
        "signatures": [_sig_record(k, s) for k, s in verified[:MAX_ENVELOPE_SIGNATURES]],
    }
    if statement is not None:
        # Copy subjects in order while they fit the budget (and the count cap): the leaf
        # then always fits a tile entry, whatever the Statement holds.
        subjects: list[dict[str, Any]] = []
        used = 0
        for _, d in statement.subjects[:MAX_LEAF_SUBJECTS]:
            subject = {"digest": dict(sorted(d.items())[:MAX_DIGESTS_PER_SUBJECT])}
            used += len(canonicalize_record(subject)) + 1
            if used > SUBJECTS_BUDGET:
                break
            subjects.append(subject)
        record["statement"] = {
            "predicate_type": statement.predicate_type,
            "subjects": subjects,
            "subjects_total": len(statement.subjects),
        }
    return _leaf(KIND_DSSE, record)


@dataclass(frozen=True)
class DSSESubmission:
    canonical: bytes  # the envelope as the log stores it, at /v1/attestations/<sha256>
    leaf: bytes


def check_dsse(envelope_doc: Any, verifier_pems: Any) -> DSSESubmission:
    """Everything the log checks for a `{"dsse": ..., "verifiers": [...]}` submission."""
    env = parse_envelope(envelope_doc)
    keys = load_verifiers(verifier_pems)
    verified = verify_envelope(env, keys)
    statement = parse_statement(env.payload) if is_intoto(env.payload_type) else None
    canonical = env.canonical()
    digest = hashlib.sha256(canonical).hexdigest()
    return DSSESubmission(canonical, dsse_leaf(env, verified, statement, digest))


def check_hashedrekord(doc: Any) -> bytes:
    """Verify a `{"hashedrekord": {digest, signature, verifier}}` submission; returns its leaf."""
    if not isinstance(doc, dict) or set(doc) != {"digest", "signature", "verifier"}:
        raise EntryError("hashedrekord needs exactly digest, signature and verifier")
    digest = doc["digest"]
    if not isinstance(digest, dict) or set(digest) != {"sha256"} or \
            not isinstance(digest["sha256"], str) or not _HEX.match(digest["sha256"]) or \
            len(digest["sha256"]) != 64:
        raise EntryError('digest must be {"sha256": "<64 lowercase hex digits>"}')
    if not isinstance(doc["signature"], str):
        raise EntryError("signature must be base64")
    try:
        sig = b64decode_std(doc["signature"], what="signature")
    except MalformedError as exc:
        raise EntryError(str(exc)) from exc
    if not 0 < len(sig) <= 1024:
        raise EntryError("a signature must be 1-1024 bytes")
    key = load_public_key(doc["verifier"])
    if not verify_digest(key, sig, bytes.fromhex(digest["sha256"])):
        raise EntrySignatureError("the signature does not verify over the digest with this key")
    return _leaf(KIND_HASHEDREKORD, {"digest": {"sha256": digest["sha256"]},
                                     "signature": _sig_record(key, sig)})


# --- reading leaves back (search indexes, verifiers) -----------------------------------------

@dataclass(frozen=True)
class LeafInfo:
    kind: int  # KIND_DSSE, KIND_HASHEDREKORD, or KIND_REKOR (a Rekor v2 leaf)
    record: dict[str, Any]
    rekor: RekorEntry | None = None  # the decoded entry of a Rekor v2 leaf


def parse_leaf(leaf: bytes) -> LeafInfo | None:
    """The record of an attestation leaf, or None for other bytes (raw entries).

    Accepts only leaves that are byte-for-byte canonical, so one record has one leaf.
    """
    if leaf[:1] == b"{":
        entry = parse_rekor_leaf(leaf)
        return None if entry is None else LeafInfo(KIND_REKOR, entry.record(), entry)
    if len(leaf) < 3 or leaf[0] != LEAF_VERSION or leaf[1] not in (KIND_DSSE, KIND_HASHEDREKORD):
        return None
    try:
        record = orjson.loads(leaf[2:])
    except orjson.JSONDecodeError:
        return None
    # The schema first: it admits strings, lists, dicts and one int, never a float, so the
    # canonical form can then be computed without looking for floats.
    if not isinstance(record, dict) or not _valid_record(leaf[1], record):
        return None
    try:
        if canonicalize_record(record) != leaf[2:]:
            return None
    except (TypeError, ValueError):
        return None
    return LeafInfo(leaf[1], record)


_DIGEST64 = re.compile(r"[0-9a-f]{64}\Z")
_SIGNER = re.compile(r"sha256:[0-9a-f]{64}\Z")


def _valid_sig(s: Any) -> bool:
    return (isinstance(s, dict) and set(s) == {"key", "sig", "signer"}
            and all(isinstance(v, str) for v in s.values()) and bool(_SIGNER.match(s["signer"])))


def _valid_record(kind: int, rec: dict[str, Any]) -> bool:
    """The v1 record schema (docs/leaf-format.md), exactly: readers may then index it freely,
    and bytes that merely parse as JSON are not mistaken for an attestation."""
    if kind == KIND_HASHEDREKORD:
        d = rec.get("digest")
        return (set(rec) == {"digest", "signature"} and isinstance(d, dict) and set(d) == {"sha256"}
                and isinstance(d["sha256"], str) and bool(_DIGEST64.match(d["sha256"]))
                and _valid_sig(rec["signature"]))
    if not {"attestation", "payload_sha256", "payload_type", "signatures"} <= set(rec) or \
            not set(rec) <= {"attestation", "payload_sha256", "payload_type", "signatures", "statement"}:
        return False
    sigs = rec["signatures"]
    if not (isinstance(rec["attestation"], str) and _DIGEST64.match(rec["attestation"])
            and isinstance(rec["payload_sha256"], str) and _DIGEST64.match(rec["payload_sha256"])
            and isinstance(rec["payload_type"], str) and isinstance(sigs, list)
            and 1 <= len(sigs) <= MAX_ENVELOPE_SIGNATURES and all(_valid_sig(x) for x in sigs)):
        return False
    st = rec.get("statement")
    if st is None:
        return "statement" not in rec
    if not (isinstance(st, dict) and set(st) == {"predicate_type", "subjects", "subjects_total"}
            and isinstance(st["predicate_type"], str) and isinstance(st["subjects"], list)
            and type(st["subjects_total"]) is int and st["subjects_total"] >= len(st["subjects"])):
        return False
    return all(isinstance(x, dict) and set(x) == {"digest"} and isinstance(x["digest"], dict)
               and all(isinstance(k, str) and isinstance(v, str) for k, v in x["digest"].items())
               for x in st["subjects"])


def search_keys(leaf: bytes, envelope: bytes | None = None) -> list[tuple[str, str]]:
    """(index name, term) pairs an attestation leaf is found under; empty for raw entries.

    Terms: subjects as `<alg>:<hex>`, signers as `sha256:<hex>` key digests, predicate types
    as given. Derived from the leaf, and for a Rekor v2 leaf logging a DSSE envelope also
    from that envelope (stored with the entry, `envelope`: its Statement is not in the leaf,
    whose bytes Sigstore fixes), so a rebuilt index is identical.
    """
    info = parse_leaf(leaf)
    if info is None:
        return []
    out: list[tuple[str, str]] = []
    rec = info.record
    if info.rekor is not None:
        return rekor_terms(info.rekor, rekor_envelope(info.rekor, envelope))
    try:
        if info.kind == KIND_DSSE:
            for s in rec.get("signatures", []):
                out.append(("signer", s["signer"]))
            st = rec.get("statement")
            if st:
                out.append(("predicate_type", st["predicate_type"]))
                for subj in st["subjects"]:
                    for alg, value in subj["digest"].items():
                        out.append(("subject", f"{alg}:{value}"))
        else:
            out.append(("subject", f"sha256:{rec['digest']['sha256']}"))
            out.append(("signer", rec["signature"]["signer"]))
    except (KeyError, TypeError, AttributeError):
        return []
    return sorted(set(out))


def _statement_terms(st: Statement) -> list[tuple[str, str]]:
    out = [("predicate_type", st.predicate_type)]
    for _, digests in st.subjects[:MAX_LEAF_SUBJECTS]:
        out.extend(("subject", f"{alg}:{value}")
                   for alg, value in sorted(digests.items())[:MAX_DIGESTS_PER_SUBJECT])
    return out


def rekor_envelope_matches(entry: RekorEntry, envelope: Envelope) -> bool:
    """Whether a parsed DSSE envelope is the one a Rekor v2 entry logs: its PAE hashes to the
    entry's digest and its one signature is the entry's (both committed to by the leaf)."""
    msg = pae(envelope.payload_type, envelope.payload)
    return (len(envelope.signatures) == 1 and envelope.signatures[0][1] == entry.signature
            and hashlib.new(HASHES_BY_NAME[entry.algorithm], msg).digest() == entry.digest)


def rekor_envelope(entry: RekorEntry, blob: bytes | None) -> Envelope | None:
    """The stored envelope bytes, parsed, if they are the envelope this entry logs."""
    if blob is None:
        return None
    try:
        env = parse_envelope(orjson.loads(blob))
    except (orjson.JSONDecodeError, MalformedError):
        return None
    return env if rekor_envelope_matches(entry, env) else None


def rekor_terms(entry: RekorEntry, envelope: Envelope | None) -> list[tuple[str, str]]:
    """Search terms of a Rekor v2 entry: its signer and signed digest, and the in-toto
    Statement of the envelope it logs (already matched: `rekor_envelope`), with as many
    subjects and digests as a v1 leaf would copy."""
    out = {("signer", entry.signer), ("subject", entry.subject)}
    if envelope is not None and is_intoto(envelope.payload_type):
        with contextlib.suppress(MalformedError):  # an in-toto type over a non-Statement
            out.update(_statement_terms(parse_statement(envelope.payload)))
    return sorted(out)
