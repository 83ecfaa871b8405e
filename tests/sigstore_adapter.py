"""sigstore-python as an independent second verifier of inclusion proofs and checkpoints.

Nothing is reimplemented: we build sigstore's objects from raw inputs and call its own
``sigstore._internal.merkle.verify_merkle_inclusion(entry)`` (RFC 6962 proof for SHA-256(0x00 || leaf))
and ``sigstore._internal.rekor.checkpoint.verify_checkpoint(keyring, entry)`` (signed-note signature,
then note root == proof root). ``entry`` is a ``sigstore.models.TransparencyLogEntry`` around a minimal
``sigstore_models.rekor.v1`` entry whose canonicalized body is the raw leaf; ``keyring`` is a one-key
``sigstore._internal.trust.Keyring``. sigstore ignores the note's origin, size and signer name, so
``prepare`` compares origin and size itself, on sigstore's own ``SignedCheckpoint.from_text`` parse.
sigstore picks the signature whose key ID is ``log_id[:4]``: for ECDSA P-256 we pass its key ID,
SHA-256(DER SPKI), as C2SP type 0x02 does; for Ed25519 the C2SP hash SHA-256(origin "\n" 0x01 key),
which misses the keyring's index, so sigstore falls back to trying every key in it (ours only).

These are private APIs, hence the exact pin (4.5.1, the newest; it requires cryptography>=47).
Failures raise ``sigstore.errors.VerificationError``. Inputs sigstore's models refuse (index >= size,
negative numbers) raise ``pydantic.ValidationError``, a ``ValueError``, as do an undecodable signature
(``binascii.Error``) and a key type the adapter does not map.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

SIGSTORE_PIN = "sigstore==4.5.1"


def available() -> bool:
    try:
        import sigstore._internal.merkle
        import sigstore._internal.rekor.checkpoint
        import sigstore.models  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Prepared:
    entry: Any  # sigstore.models.TransparencyLogEntry
    keyring: Any  # sigstore._internal.trust.RekorKeyring, or None: no checkpoint to verify
    inclusion: bool  # False: verify the checkpoint only


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _keyring(public_key_pem: bytes, origin: str) -> tuple[Any, bytes]:
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from sigstore._internal.trust import Keyring, RekorKeyring
    from sigstore_models.common.v1 import PublicKey, PublicKeyDetails

    key = ser.load_pem_public_key(public_key_pem)
    spki = key.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        details, log_id = PublicKeyDetails.PKIX_ECDSA_P256_SHA_256, hashlib.sha256(spki).digest()
    elif isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw)
        details = PublicKeyDetails.PKIX_ED25519
        log_id = hashlib.sha256(origin.encode() + b"\n\x01" + raw).digest()
    else:
        raise ValueError(f"no sigstore key type for {type(key).__name__}")
    keyring = RekorKeyring(Keyring([PublicKey(raw_bytes=_b64(spki), key_details=details)]))
    if not keyring._keyring:
        raise ValueError("sigstore's Keyring refused the key")
    return keyring, log_id


def prepare(leaf: bytes, index: int, tree_size: int, hashes: list[bytes], root: bytes,
            note: bytes | None = None, origin: str | None = None,
            public_key_pem: bytes | None = None, *, inclusion: bool = True) -> Prepared:
    """Build sigstore's objects once, so that ``verify_prepared`` times only sigstore's own checks.

    The note's origin and size are compared here (on sigstore's parse), since sigstore checks neither.
    """
    from sigstore._internal.rekor.checkpoint import SignedCheckpoint
    from sigstore.errors import VerificationError
    from sigstore.models import TransparencyLogEntry
    from sigstore_models.common.v1 import LogId
    from sigstore_models.rekor.v1 import Checkpoint, InclusionProof, KindVersion
    from sigstore_models.rekor.v1 import TransparencyLogEntry as Inner

    keyring, log_id, envelope = None, bytes(32), "-"
    if note is not None:
        if origin is None or public_key_pem is None:
            raise ValueError("a checkpoint needs its origin and public key")
        keyring, log_id = _keyring(public_key_pem, origin)
        envelope = note.decode()
        cp = SignedCheckpoint.from_text(envelope).checkpoint
        if cp.origin != origin or cp.log_size != tree_size:
            raise VerificationError(f"checkpoint is {cp.origin!r} size {cp.log_size}, "
                                    f"want {origin!r} size {tree_size}")
    if not inclusion:  # sigstore's model wants index < size even with no proof to check
        index, tree_size, hashes = 0, 1, []
    proof = InclusionProof(log_index=str(index), root_hash=_b64(root), tree_size=str(tree_size),
                           hashes=[_b64(h) for h in hashes], checkpoint=Checkpoint(envelope=envelope))
    inner = Inner(log_index=str(index), log_id=LogId(key_id=_b64(log_id)),
                  kind_version=KindVersion(kind="hashedrekord", version="0.0.1"),
                  inclusion_proof=proof, canonicalized_body=_b64(leaf))
    return Prepared(TransparencyLogEntry(inner), keyring, inclusion)


def verify_prepared(p: Prepared) -> None:
    from sigstore._internal.merkle import verify_merkle_inclusion
    from sigstore._internal.rekor.checkpoint import verify_checkpoint

    if p.inclusion:
        verify_merkle_inclusion(p.entry)
    if p.keyring is not None:
        verify_checkpoint(p.keyring, p.entry)


def verify_inclusion(leaf: bytes, index: int, tree_size: int, hashes: list[bytes], root: bytes) -> None:
    verify_prepared(prepare(leaf, index, tree_size, hashes, root))


def verify_checkpoint(note: bytes, origin: str, public_key_pem: bytes, root: bytes, tree_size: int) -> None:
    verify_prepared(prepare(b"", 0, tree_size, [], root, note, origin, public_key_pem, inclusion=False))


# --- a whole public-key bundle, as far as sigstore-python's own code reaches ---------------

def verify_bundle_parts(bundle: dict[str, Any], trusted_root: dict[str, Any], key_pem: bytes,
                        artifact: bytes | None = None) -> None:
    """Run sigstore-python's checks of a v0.3 public-key bundle that its public API cannot
    run (`Bundle.from_json` requires a certificate, `Verifier()` Fulcio CAs): its models
    parse the TrustedRoot, the tlog entry (strict: int64 as strings, no unknown fields) and
    the DSSE envelope; `TransparencyLogEntry._verify` checks the inclusion proof and the
    checkpoint with the TrustedRoot's Rekor keyring; `Verifier._verify_signed_timestamp`
    checks each RFC 3161 timestamp over the signature against the TrustedRoot's TSAs; the
    body is compared as a model with the one rebuilt from the bundle, as
    `_validate_hashedrekord_v002_[dsse_]entry_body` do, with the signer's public key as the
    verifier; the signature is verified as `verify_artifact` / `dsse._verify` do. Raises
    sigstore's VerificationError (or a ValueError from its models) on any failure."""
    import orjson
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec
    from rfc3161_client import decode_timestamp_response
    from sigstore._internal.key_details import _get_prehash
    from sigstore._internal.trust import KeyringPurpose
    from sigstore.dsse import Envelope
    from sigstore.dsse import _verify as dsse_verify
    from sigstore.errors import VerificationError
    from sigstore.models import TransparencyLogEntry, TrustedRoot
    from sigstore.verify.verifier import Verifier
    from sigstore_models.common import v1 as common_v1
    from sigstore_models.rekor import v2
    from sigstore_models.rekor.v1 import TransparencyLogEntry as _TLE
    from sigstore_models.trustroot.v1 import TrustedRoot as _TrustedRoot

    root = TrustedRoot(_TrustedRoot.from_json(orjson.dumps(trusted_root)))
    material = bundle["verificationMaterial"]
    if bundle.get("mediaType") != "application/vnd.dev.sigstore.bundle.v0.3+json":
        raise VerificationError("not a v0.3 bundle")
    (tle_doc,) = material["tlogEntries"]
    entry = TransparencyLogEntry(_TLE.from_json(orjson.dumps(tle_doc)))
    if (entry._inner.kind_version.kind, entry._inner.kind_version.version) != ("hashedrekord", "0.0.2"):
        raise VerificationError("not a hashedrekord/0.0.2 entry")
    entry._verify(root.rekor_keyring(KeyringPurpose.VERIFY))

    key = ser.load_pem_public_key(key_pem)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError("sigstore-python verifies ECDSA signers only")
    spki = key.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)
    details = {"secp256r1": common_v1.PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
               "secp384r1": common_v1.PublicKeyDetails.PKIX_ECDSA_P384_SHA_384,
               "secp521r1": common_v1.PublicKeyDetails.PKIX_ECDSA_P521_SHA_512}[key.curve.name]
    algorithm, hash_func = _get_prehash(details)
    if "dsseEnvelope" in bundle:
        envelope = Envelope._from_json(orjson.dumps(bundle["dsseEnvelope"]))
        digest, signature = hash_func(envelope.pae()).digest(), envelope.signature
        dsse_verify(key, envelope)
    else:
        ms = bundle["messageSignature"]
        signature = base64.b64decode(ms["signature"])
        if artifact is None:
            raise VerificationError("a message-signature bundle needs its artifact")
        digest = hash_func(artifact).digest()
        if base64.b64decode(ms["messageDigest"]["digest"]) != digest:
            raise VerificationError("Bundle message digest mismatch")
        try:
            key.verify(signature, digest, ec.ECDSA(utils_prehashed(hashes, hash_func)))
        except Exception as exc:
            raise VerificationError(f"signature does not verify: {exc}") from exc
    expected = v2.entry.Entry(
        kind="hashedrekord", api_version="0.0.2",
        spec=v2.entry.Spec(hashed_rekord_v002=v2.hashedrekord.HashedRekordLogEntryV002(
            data=common_v1.HashOutput(algorithm=algorithm, digest=base64.b64encode(digest)),
            signature=v2.verifier.Signature(
                content=base64.b64encode(signature),
                verifier=v2.verifier.Verifier(public_key=v2.verifier.PublicKey(raw_bytes=base64.b64encode(spki)),
                                              key_details=details)))))
    if v2.entry.Entry.from_json(entry._inner.canonicalized_body) != expected:
        raise VerificationError("transparency log entry is inconsistent with other materials")

    verifier = object.__new__(Verifier)  # no Fulcio CAs to load: only the TSA check is wanted
    verifier._trusted_root = root
    stamps = material.get("timestampVerificationData", {}).get("rfc3161Timestamps", [])
    results = [verifier._verify_signed_timestamp(
        decode_timestamp_response(base64.b64decode(t["signedTimestamp"])), signature) for t in stamps]
    if not any(results):
        raise VerificationError("no verified timestamp (sigstore-python needs one for a Rekor v2 entry)")


def utils_prehashed(hashes: Any, hash_func: Any) -> Any:
    from cryptography.hazmat.primitives.asymmetric import utils

    return utils.Prehashed({"sha256": hashes.SHA256(), "sha384": hashes.SHA384(),
                            "sha512": hashes.SHA512()}[hash_func().name])
