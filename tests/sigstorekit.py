"""Sigstore-style requests for tests: what a Sigstore client sends to `/api/v2/log/entries`
(camelCase protojson, as sigstore-python 4.5.1 builds it), signed with real keys."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from client.attest import pae

STATEMENT_TYPE = "application/vnd.in-toto+json"
_DETAILS = {"secp256r1": ("PKIX_ECDSA_P256_SHA_256", hashes.SHA256),
            "secp384r1": ("PKIX_ECDSA_P384_SHA_384", hashes.SHA384),
            "secp521r1": ("PKIX_ECDSA_P521_SHA_512", hashes.SHA512)}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def spki(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def pem(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def details(key: Any) -> tuple[str, Any]:
    """(keyDetails, hash class) of a signer key, as Sigstore clients choose them."""
    if isinstance(key, rsa.RSAPrivateKey):
        return f"PKIX_RSA_PKCS1V15_{key.key_size}_SHA256", hashes.SHA256
    return _DETAILS[key.curve.name]


def sign_digest(key: Any, digest: bytes) -> bytes:
    alg = utils.Prehashed(details(key)[1]())
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, padding.PKCS1v15(), alg)
    return key.sign(digest, ec.ECDSA(alg))


def verifier(key: Any) -> dict[str, Any]:
    return {"publicKey": {"rawBytes": b64(spki(key))}, "keyDetails": details(key)[0]}


def hashedrekord_request(key: Any, artifact: bytes) -> tuple[dict[str, Any], bytes]:
    """(request, signature) for a message signature over `artifact`."""
    digest = hashlib.new(details(key)[1].name, artifact).digest()
    sig = sign_digest(key, digest)
    return {"hashedRekordRequestV002": {"digest": b64(digest), "signature": {
        "content": b64(sig), "verifier": verifier(key)}}}, sig


def statement(subject_digest: str, predicate_type: str = "https://slsa.dev/provenance/v1") -> bytes:
    return json.dumps({"_type": "https://in-toto.io/Statement/v1",
                       "subject": [{"name": "app.tar.gz", "digest": {"sha256": subject_digest}}],
                       "predicateType": predicate_type, "predicate": {"builder": "tests"}}).encode()


def dsse_envelope(key: Any, payload: bytes, payload_type: str = STATEMENT_TYPE) -> dict[str, Any]:
    msg = pae(payload_type, payload)
    sig = sign_digest(key, hashlib.new(details(key)[1].name, msg).digest())
    return {"payload": b64(payload), "payloadType": payload_type, "signatures": [{"sig": b64(sig)}]}


def dsse_request(key: Any, envelope: dict[str, Any]) -> dict[str, Any]:
    """tlog's `dsseRequestV002`: the envelope itself, logged as a hashedrekord over its PAE."""
    return {"dsseRequestV002": {"envelope": envelope, "verifiers": [verifier(key)]}}


def dsse_as_hashedrekord(key: Any, envelope: dict[str, Any]) -> dict[str, Any]:
    """What sigstore-python sends for a DSSE envelope: a hashedrekord over SHA-256(PAE)."""
    msg = pae(envelope["payloadType"], base64.b64decode(envelope["payload"]))
    digest = hashlib.new(details(key)[1].name, msg).digest()
    return {"hashedRekordRequestV002": {"digest": b64(digest), "signature": {
        "content": envelope["signatures"][0]["sig"], "verifier": verifier(key)}}}
