"""Rekor v2 leaves: the `hashedrekord` v0.0.2 Entry as Sigstore clients rebuild it. Pure.

A Rekor v2 leaf is exactly the RFC 8785 canonical JSON of the protojson `Entry`

    {"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":{
       "data":{"algorithm":"SHA2_256","digest":"<b64>"},
       "signature":{"content":"<b64>","verifier":{"keyDetails":"PKIX_ECDSA_P256_SHA_256",
                                                  "publicKey":{"rawBytes":"<b64 DER SPKI>"}}}}}}

because Sigstore clients hash the bundle's `canonicalizedBody` as the leaf, and sigstore-go
rebuilds those bytes from the artifact. Such a leaf starts with `{`, a byte no v1 leaf
starts with (they start with the version byte 0x01), so both live in one tree without
ambiguity. Only byte-for-byte canonical leaves of this one schema are accepted here, so one
entry has one leaf and bytes that merely parse as JSON are not taken for an attestation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from client.jcs import canonicalize_record

KIND_REKOR = 0x7B
"""The pseudo kind of a Rekor v2 leaf: its first byte, `{`."""
API_VERSION = "0.0.2"
KIND = "hashedrekord"

HASHES = {"SHA2_256": ("sha256", 32), "SHA2_384": ("sha384", 48), "SHA2_512": ("sha512", 64)}
"""protobuf-specs HashAlgorithm name -> (hashlib name, digest size)."""

KEY_DETAILS = {
    "PKIX_ECDSA_P256_SHA_256": "SHA2_256",
    "PKIX_ECDSA_P384_SHA_384": "SHA2_384",
    "PKIX_ECDSA_P521_SHA_512": "SHA2_512",
    "PKIX_RSA_PKCS1V15_2048_SHA256": "SHA2_256",
    "PKIX_RSA_PKCS1V15_3072_SHA256": "SHA2_256",
    "PKIX_RSA_PKCS1V15_4096_SHA256": "SHA2_256",
}
"""The signer key details this log accepts for hashedrekord, and the digest each signs: what
upstream Rekor v2 accepts, less Ed25519ph (see client.rekor). Each is the default details of
its key type, which sigstore-go assumes when it rebuilds a leaf."""


@dataclass(frozen=True)
class RekorEntry:
    algorithm: str  # a HASHES name
    digest: bytes  # of the artifact (or, for a DSSE envelope, of its PAE)
    signature: bytes
    key_der: bytes  # DER SubjectPublicKeyInfo
    key_details: str  # a KEY_DETAILS name
    certificate: bytes | None = None  # DER X.509, if the verifier was a certificate (of key_der)

    @property
    def signer(self) -> str:
        """`sha256:<hex of the DER key>`: the signer identity, as v1 leaves name it (for a
        certificate verifier, its subject public key's)."""
        return "sha256:" + hashlib.sha256(self.key_der).hexdigest()

    @property
    def subject(self) -> str:
        """The signed digest as a search term, `<alg>:<hex>`."""
        return f"{HASHES[self.algorithm][0]}:{self.digest.hex()}"

    def record(self) -> dict[str, Any]:
        """The protojson Entry."""
        b64 = _b64
        return {"apiVersion": API_VERSION, "kind": KIND, "spec": {"hashedRekordV002": {
            "data": {"algorithm": self.algorithm, "digest": b64(self.digest)},
            "signature": {"content": b64(self.signature),
                          "verifier": {"keyDetails": self.key_details} | (
                              {"publicKey": {"rawBytes": b64(self.key_der)}}
                              if self.certificate is None else
                              {"x509Certificate": {"rawBytes": b64(self.certificate)}})}}}}

    def leaf(self) -> bytes:
        return canonicalize_record(self.record())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any) -> bytes | None:
    """Canonical standard base64 (what protojson emits), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if _b64(raw) == text else None


def _exact(doc: Any, keys: set[str]) -> bool:
    return isinstance(doc, dict) and set(doc) == keys


def parse_rekor_leaf(leaf: bytes) -> RekorEntry | None:
    """The entry of a canonical Rekor v2 hashedrekord leaf; None for any other bytes."""
    if not leaf.startswith(b'{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{'):
        return None
    try:
        doc = orjson.loads(leaf)
    except orjson.JSONDecodeError:
        return None
    if not _exact(doc, {"apiVersion", "kind", "spec"}) or not _exact(doc["spec"], {"hashedRekordV002"}):
        return None
    body = doc["spec"]["hashedRekordV002"]
    if not _exact(body, {"data", "signature"}) or not _exact(body["data"], {"algorithm", "digest"}) \
            or not _exact(body["signature"], {"content", "verifier"}):
        return None
    verifier = body["signature"]["verifier"]
    if not isinstance(verifier, dict) or len(verifier) != 2 or "keyDetails" not in verifier:
        return None
    kind = "publicKey" if "publicKey" in verifier else "x509Certificate"
    if not _exact(verifier.get(kind), {"rawBytes"}):
        return None
    alg, details = body["data"]["algorithm"], verifier["keyDetails"]
    digest, sig = _unb64(body["data"]["digest"]), _unb64(body["signature"]["content"])
    raw = _unb64(verifier[kind]["rawBytes"])
    if type(alg) is not str or type(details) is not str or alg not in HASHES \
            or KEY_DETAILS.get(details) != alg or digest is None or sig is None \
            or raw is None or len(digest) != HASHES[alg][1]:
        return None
    cert = None
    if kind == "x509Certificate":
        cert, raw = raw, certificate_key(raw)
        if raw is None:
            return None
    entry = RekorEntry(alg, digest, sig, raw, details, cert)
    return entry if entry.leaf() == leaf else None


def certificate_key(der: bytes) -> bytes | None:
    """The DER SubjectPublicKeyInfo of a DER certificate, or None if it does not parse."""
    try:
        cert = x509.load_der_x509_certificate(der)
        return cert.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):  # InvalidVersion: not a ValueError
        return None
