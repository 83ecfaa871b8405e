"""The Rekor v2 write API's checks, and the Sigstore shapes around its entries. Pure, no I/O.

`check_create_entry` is everything the log does with a `POST /api/v2/log/entries` body
(protojson `CreateEntryRequest`) before it appends the leaf: strict parsing, the signer key
against its declared `keyDetails`, and the signature over the digest. A `dsseRequestV002` is
logged as upstream Rekor v2 now logs DSSE: a hashedrekord over the digest of the envelope's
PAE, with the envelope stored beside the entry so search still sees the Statement.

The rest builds what Sigstore clients read: the `TransparencyLogEntry` (int64 as strings),
the v0.3 bundle, the log ID. What the clients check, field by field, is in docs/sigstore.md.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from client.attest import (
    MAX_LEAF,
    MAX_VERIFIERS,
    RSA_EXPONENTS,
    EntryError,
    EntrySignatureError,
    UnsupportedKeyError,
    is_intoto,
    pae,
    parse_envelope,
    parse_statement,
    rekor_envelope,
)
from client.attest import rekor_envelope_matches as envelope_matches
from client.encoding import b64decode_any, b64encode
from client.errors import MalformedError
from client.note import ECDSAVerifier, Ed25519Verifier
from client.rekorleaf import HASHES, KEY_DETAILS, KIND, RekorEntry, certificate_key, parse_rekor_leaf

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
MAX_SIGNATURE = 1024
_CURVES = {"PKIX_ECDSA_P256_SHA_256": "secp256r1", "PKIX_ECDSA_P384_SHA_384": "secp384r1",
           "PKIX_ECDSA_P521_SHA_512": "secp521r1"}
_HASH_OBJECTS = {"SHA2_256": hashes.SHA256, "SHA2_384": hashes.SHA384, "SHA2_512": hashes.SHA512}
_REFUSED = {
    "PKIX_ED25519": "pure Ed25519 cannot sign a digest: Rekor v2 and Sigstore clients refuse "
                    "it for hashedrekord (sign DSSE envelopes with Ed25519 on /v1/entries)",
    "PKIX_ED25519_PH": "Ed25519ph is not verified here (no maintained Python library "
                       "implements it) nor by sigstore-js 4.1.3",
    **dict.fromkeys(("PKIX_RSA_PSS_2048_SHA256", "PKIX_RSA_PSS_3072_SHA256", "PKIX_RSA_PSS_4096_SHA256"),
                    "RSA-PSS is not a default key details: sigstore-go could not rebuild the "
                    "leaf, and upstream Rekor v2 cannot verify it; sign with PKCS#1 v1.5"),
}


@dataclass(frozen=True)
class RekorSubmission:
    entry: RekorEntry
    leaf: bytes
    envelope: bytes | None  # the canonical DSSE envelope (dsseRequestV002), stored with the entry


# --- protojson parsing ----------------------------------------------------------------------

def _fields(doc: Any, what: str, names: dict[str, str], required: set[str]) -> dict[str, Any]:
    """A protojson message as {camelCase name: value}: the JSON (camelCase) or proto
    (snake_case) name of each field, unknown fields refused, as protojson does."""
    if not isinstance(doc, dict):
        raise EntryError(f"{what} must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = names.get(key)
        if name is None:
            raise EntryError(f"unknown field {key!r} in {what}", "unknown_field")
        if name in out:
            raise EntryError(f"{what} names {name!r} twice")
        out[name] = value
    missing = required - set(out)
    if missing:
        raise EntryError(f"{what} needs {sorted(missing)[0]!r}")
    return out


def _names(*camel: str) -> dict[str, str]:
    """JSON name -> itself, and the proto name (snake_case) -> JSON name."""
    out = {c: c for c in camel}
    for c in camel:
        out["".join("_" + ch.lower() if ch.isupper() else ch for ch in c)] = c
    return out


def _bytes(value: Any, what: str, limit: int) -> bytes:
    """protojson `bytes`: standard or URL-safe base64, padded or not, each decoded strictly."""
    if not isinstance(value, str) or len(value) > (limit + 2) // 3 * 4:
        raise EntryError(f"{what} must be base64 of at most {limit} bytes")
    try:
        raw = b64decode_any(value, what=what)
    except MalformedError as exc:
        raise EntryError(str(exc)) from exc
    if not raw:
        raise EntryError(f"{what} is empty")
    return raw


# --- keys and signatures --------------------------------------------------------------------

def _verifier(doc: Any, what: str) -> tuple[Any, bytes, str, bytes | None]:
    """(key, DER SPKI, keyDetails, DER certificate or None) of a protojson `Verifier`, the key
    checked against its declared details: they must be the key's own (a P-256 key declared as
    P-384 is refused), as sigstore-go assumes when it rebuilds the leaf. A certificate is
    taken as upstream takes it: for its key; its chain is the verifier's business."""
    v = _fields(doc, what, _names("publicKey", "x509Certificate", "keyDetails"), {"keyDetails"})
    if ("publicKey" in v) == ("x509Certificate" in v):
        raise EntryError(f"{what} needs exactly one of publicKey and x509Certificate")
    kind = "publicKey" if "publicKey" in v else "x509Certificate"
    raw = _bytes(_fields(v[kind], f"{what}.{kind}", _names("rawBytes"), {"rawBytes"})["rawBytes"],
                 f"{what}.{kind}.rawBytes", 8192)
    details = v["keyDetails"]
    if not isinstance(details, str):
        raise EntryError(f"{what}.keyDetails must be a PublicKeyDetails name")
    if details in _REFUSED:
        raise UnsupportedKeyError(_REFUSED[details])
    if details not in KEY_DETAILS:
        raise UnsupportedKeyError(f"keyDetails {details!r} is not accepted; accepted: "
                                  + ", ".join(KEY_DETAILS))
    key, der, cert = _checked_key(raw, kind, details, what)
    return key, der, details, cert


@functools.lru_cache(maxsize=1024)
def _checked_key(raw: bytes, kind: str, details: str, what: str) -> tuple[Any, bytes, bytes | None]:
    """(key, DER SPKI, DER certificate or None) of a verifier's bytes, checked against its
    details. Memoised: signers submit with the same few keys, and loading and checking one
    costs about as much as the ECDSA verification."""
    cert = None
    if kind == "x509Certificate":
        cert, der = raw, certificate_key(raw)
        if der is None:
            raise EntryError(f"{what}.x509Certificate.rawBytes is not a DER X.509 certificate")
    else:
        der = raw
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UnsupportedKeyError(f"cannot load the public key: {exc}") from exc
    canonical = key.public_bytes(serialization.Encoding.DER,
                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    if canonical != der:
        raise EntryError(f"{what}.publicKey.rawBytes is not a DER SubjectPublicKeyInfo")
    if isinstance(key, ed25519.Ed25519PublicKey):
        raise UnsupportedKeyError(_REFUSED["PKIX_ED25519"])
    if details in _CURVES:
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _CURVES[details]:
            raise UnsupportedKeyError(f"the key is not the {_CURVES[details]} key {details} declares")
    else:
        bits = int(details.split("_")[3])
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size != bits:
            raise UnsupportedKeyError(f"the key is not the {bits}-bit RSA key {details} declares")
        if key.public_numbers().e not in RSA_EXPONENTS:
            raise UnsupportedKeyError("RSA public exponent must be 3 or 65537")
    return key, der, cert


def verify_prehashed(key: Any, details: str, sig: bytes, digest: bytes) -> bool:
    """The signature over `digest` as `details` says: ECDSA (DER) or RSA PKCS#1 v1.5."""
    prehashed = utils.Prehashed(_HASH_OBJECTS[KEY_DETAILS[details]]())
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(sig, digest, ec.ECDSA(prehashed))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, digest, padding.PKCS1v15(), prehashed)
        else:  # a key no keyDetails names: only in a leaf imitated by raw bytes
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _entry(verifier: tuple[Any, bytes, str, bytes | None], digest: bytes, sig: bytes) -> RekorSubmission:
    key, der, details, cert = verifier
    alg = KEY_DETAILS[details]
    if len(digest) != HASHES[alg][1]:
        raise EntryError(f"{details} signs a {alg} digest: {HASHES[alg][1]} bytes, not {len(digest)}")
    if not verify_prehashed(key, details, sig, digest):
        raise EntrySignatureError("the signature does not verify over the digest with this key")
    entry = RekorEntry(alg, digest, sig, der, details, cert)
    leaf = entry.leaf()
    if len(leaf) > MAX_LEAF:
        raise EntryError("the entry does not fit a leaf", "entry_too_large")
    return RekorSubmission(entry, leaf, None)


# --- the two requests -----------------------------------------------------------------------

_REQUEST = _names("hashedRekordRequestV002", "dsseRequestV002")


def check_create_entry(doc: Any) -> RekorSubmission:
    """Everything the log checks for a `CreateEntryRequest`; raises EntryError (with the API
    code) or EntrySignatureError."""
    req = _fields(doc, "CreateEntryRequest", _REQUEST, set())
    if len(req) != 1:
        raise EntryError("give exactly one of hashedRekordRequestV002 and dsseRequestV002",
                         "unknown_entry_kind")
    if "hashedRekordRequestV002" in req:
        return check_hashedrekord_request(req["hashedRekordRequestV002"])
    return check_dsse_request(req["dsseRequestV002"])


def check_hashedrekord_request(doc: Any) -> RekorSubmission:
    r = _fields(doc, "hashedRekordRequestV002", _names("digest", "signature"), {"digest", "signature"})
    s = _fields(r["signature"], "signature", _names("content", "verifier"), {"content", "verifier"})
    verifier = _verifier(s["verifier"], "signature.verifier")
    digest = _bytes(r["digest"], "digest", 64)
    return _entry(verifier, digest, _bytes(s["content"], "signature.content", MAX_SIGNATURE))


def check_dsse_request(doc: Any) -> RekorSubmission:
    """A DSSE envelope with exactly one signature (a Sigstore bundle carries one), verified
    over its PAE with one of the verifiers; logged as a hashedrekord over the PAE digest."""
    r = _fields(doc, "dsseRequestV002", _names("envelope", "verifiers"), {"envelope", "verifiers"})
    e = _fields(r["envelope"], "envelope", _names("payload", "payloadType", "signatures"),
                {"payload", "payloadType", "signatures"})
    sigs = e["signatures"]
    if not isinstance(sigs, list) or len(sigs) != 1:
        raise EntryError("a Sigstore DSSE envelope carries exactly one signature", "malformed_envelope")
    sig_doc = _fields(sigs[0], "envelope.signatures[0]", _names("sig", "keyid"), {"sig"})
    env = parse_envelope({"payload": e["payload"], "payloadType": e["payloadType"],
                          "signatures": [{"sig": sig_doc["sig"], "keyid": sig_doc.get("keyid", "")}]})
    if is_intoto(env.payload_type):
        parse_statement(env.payload)  # a malformed Statement is refused, as on /v1/entries
    verifiers = r["verifiers"]
    if not isinstance(verifiers, list) or not 1 <= len(verifiers) <= MAX_VERIFIERS:
        raise EntryError(f"verifiers must be a list of 1-{MAX_VERIFIERS} verifiers")
    msg = pae(env.payload_type, env.payload)
    sig = env.signatures[0][1]
    for i, v in enumerate(verifiers):
        verifier = _verifier(v, f"verifiers[{i}]")
        key, _, details, _ = verifier
        digest = hashlib.new(HASHES[KEY_DETAILS[details]][0], msg).digest()
        if verify_prehashed(key, details, sig, digest):
            sub = _entry(verifier, digest, sig)
            return RekorSubmission(sub.entry, sub.leaf, env.canonical())
    raise EntrySignatureError("the envelope's signature verifies with none of the verifiers")


def is_envelope_of(leaf: bytes, blob: bytes) -> bool:
    """Whether stored envelope bytes (canonical JSON) are the envelope a Rekor v2 leaf logs."""
    entry = parse_rekor_leaf(leaf)
    return entry is not None and rekor_envelope(entry, blob) is not None


# --- what clients read ----------------------------------------------------------------------

def log_id(verifier: Ed25519Verifier | ECDSAVerifier) -> bytes:
    """The Rekor v2 log ID of a checkpoint key, which Sigstore clients match against the
    TrustedRoot and whose first 4 bytes are the checkpoint signature's key hint: for Ed25519
    the whole C2SP key hash SHA-256(name || LF || 0x01 || key), for ECDSA SHA-256(DER SPKI)."""
    if isinstance(verifier, Ed25519Verifier):
        return hashlib.sha256(verifier.name.encode() + b"\n\x01" + verifier.public).digest()
    return hashlib.sha256(verifier.spki_der).digest()


def transparency_log_entry(index: int, leaf: bytes, *, log_key_id: bytes, tree_size: int,
                           root: bytes, proof: list[bytes], checkpoint: bytes) -> dict[str, Any]:
    """The protojson TransparencyLogEntry of a Rekor v2 entry: no integrated time of its own
    ("0", as upstream) and no promise; size and root are the checkpoint's."""
    return {
        "logIndex": str(index),
        "logId": {"keyId": b64encode(log_key_id)},
        "kindVersion": {"kind": KIND, "version": "0.0.2"},
        "integratedTime": "0",
        "inclusionProof": {"logIndex": str(index), "rootHash": b64encode(root),
                           "treeSize": str(tree_size), "hashes": [b64encode(h) for h in proof],
                           "checkpoint": {"envelope": checkpoint.decode()}},
        "canonicalizedBody": b64encode(leaf),
    }


def bundle(tle: dict[str, Any], entry: RekorEntry, envelope: Any | None,
           timestamps: list[bytes]) -> dict[str, Any]:
    """A v0.3 Sigstore bundle for a public-key signer. `envelope` (a parsed DSSE envelope the
    entry logs) makes it a DSSE bundle, else a message-signature bundle. `timestamps` are
    whole RFC 3161 TimeStampResp DER blobs over the signature."""
    signer: dict[str, Any] = {"publicKey": {"hint": entry.signer}} if entry.certificate is None \
        else {"certificate": {"rawBytes": b64encode(entry.certificate)}}
    material: dict[str, Any] = {**signer, "tlogEntries": [tle]}
    if timestamps:
        material["timestampVerificationData"] = {
            "rfc3161Timestamps": [{"signedTimestamp": b64encode(t)} for t in timestamps]}
    out: dict[str, Any] = {"mediaType": BUNDLE_MEDIA_TYPE, "verificationMaterial": material}
    if envelope is not None:
        if not envelope_matches(entry, envelope):
            raise MalformedError("the envelope is not the one this entry logs")
        keyid, sig = envelope.signatures[0]
        out["dsseEnvelope"] = {"payload": b64encode(envelope.payload),
                               "payloadType": envelope.payload_type,
                               "signatures": [{"sig": b64encode(sig)} | ({"keyid": keyid} if keyid else {})]}
    else:
        out["messageSignature"] = {"messageDigest": {"algorithm": entry.algorithm,
                                                     "digest": b64encode(entry.digest)},
                                   "signature": b64encode(entry.signature)}
    return out
