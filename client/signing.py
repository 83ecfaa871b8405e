"""Signing submissions locally: DSSE envelopes and artifact digests (hashedrekord).

The private key never leaves this process: the log receives the envelope (or digest and
signature) and the public key. Algorithms are those the log verifies: Ed25519 (pure),
ECDSA P-256/SHA-256 and P-384/SHA-384, RSA PKCS#1 v1.5 with SHA-256. hashedrekord signs a
digest, which pure Ed25519 cannot do.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from client.attest import INTOTO_PAYLOAD_TYPE, pae
from client.encoding import b64encode
from client.errors import MalformedError

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
MAX_KEY_FILE = 64 * 1024


def load_private_key(path: str | Path, password: bytes | None = None) -> PrivateKey:
    """A PEM private key (PKCS#8 or traditional) of a supported type."""
    try:
        data = Path(path).read_bytes()[: MAX_KEY_FILE + 1]
    except OSError as exc:
        raise MalformedError(f"cannot read key {path}: {exc.strerror}") from exc
    if len(data) > MAX_KEY_FILE:
        raise MalformedError("key file is too large")
    try:
        key = serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError) as exc:
        raise MalformedError(f"{path} is not a PEM private key (or needs a password): {exc}") from exc
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name not in ("secp256r1", "secp384r1"):
        raise MalformedError("ECDSA keys must be P-256 or P-384")
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise MalformedError("supported keys: Ed25519, ECDSA P-256/P-384, RSA")
    return key


def public_pem(key: PrivateKey) -> str:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def _ec_hash(key: ec.EllipticCurvePrivateKey) -> hashes.HashAlgorithm:
    return hashes.SHA384() if key.curve.name == "secp384r1" else hashes.SHA256()


def sign_message(key: PrivateKey, msg: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(msg)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(msg, ec.ECDSA(_ec_hash(key)))
    return key.sign(msg, padding.PKCS1v15(), hashes.SHA256())


def sign_sha256_digest(key: PrivateKey, digest: bytes) -> bytes:
    prehashed = utils.Prehashed(hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raise MalformedError("Ed25519 cannot sign a digest: use an ECDSA or RSA key for hashedrekord")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(digest, ec.ECDSA(prehashed))
    return key.sign(digest, padding.PKCS1v15(), prehashed)


def dsse_submission(key: PrivateKey, payload: bytes,
                    payload_type: str = INTOTO_PAYLOAD_TYPE) -> dict[str, Any]:
    """`{"dsse": envelope, "verifiers": [public key PEM]}`, the body of POST /v1/entries."""
    sig = sign_message(key, pae(payload_type, payload))
    envelope = {"payload": b64encode(payload), "payloadType": payload_type,
                "signatures": [{"keyid": "", "sig": b64encode(sig)}]}
    return {"dsse": envelope, "verifiers": [public_pem(key)]}


def hashedrekord_submission(key: PrivateKey, artifact: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(artifact).digest()
    return {"hashedrekord": {"digest": {"sha256": digest.hex()},
                             "signature": b64encode(sign_sha256_digest(key, digest)),
                             "verifier": public_pem(key)}}


def rekor_verifier(key: PrivateKey) -> dict[str, Any]:
    """The protojson Verifier of a signer key, with its default key details (what Rekor v2
    and sigstore-go assume); Ed25519 has none that a hashedrekord can take."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raise MalformedError("Rekor v2 entries take ECDSA or RSA signers, not Ed25519 "
                             "(submit Ed25519 DSSE envelopes to /v1/entries)")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        details = {"secp256r1": "PKIX_ECDSA_P256_SHA_256", "secp384r1": "PKIX_ECDSA_P384_SHA_384"}
        name = details[key.curve.name]
    else:
        name = f"PKIX_RSA_PKCS1V15_{key.key_size}_SHA256"
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"publicKey": {"rawBytes": b64encode(der)}, "keyDetails": name}


def rekor_submission(key: PrivateKey, data: bytes, *, dsse: bool,
                     payload_type: str = INTOTO_PAYLOAD_TYPE) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(CreateEntryRequest, DSSE envelope or None): `data` signed as a DSSE payload (sent as
    tlog's dsseRequestV002, so the log keeps the envelope for search) or as an artifact
    (a hashedRekordRequestV002 over its digest). The hash is the key's: SHA-384 for P-384."""
    verifier = rekor_verifier(key)
    if dsse:
        sig = sign_message(key, pae(payload_type, data))
        envelope = {"payload": b64encode(data), "payloadType": payload_type,
                    "signatures": [{"sig": b64encode(sig)}]}
        return {"dsseRequestV002": {"envelope": envelope, "verifiers": [verifier]}}, envelope
    alg = _ec_hash(key) if isinstance(key, ec.EllipticCurvePrivateKey) else hashes.SHA256()
    digest = hashlib.new(alg.name, data).digest()
    prehashed = utils.Prehashed(alg)
    sig = key.sign(digest, ec.ECDSA(prehashed)) if isinstance(key, ec.EllipticCurvePrivateKey) \
        else key.sign(digest, padding.PKCS1v15(), prehashed)  # type: ignore[union-attr]
    return {"hashedRekordRequestV002": {"digest": b64encode(digest), "signature": {
        "content": b64encode(sig), "verifier": verifier}}}, None
