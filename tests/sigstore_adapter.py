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
