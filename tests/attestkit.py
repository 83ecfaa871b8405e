"""Test helpers for attestations: signer keys of every supported type, DSSE envelopes,
in-toto Statements and hashedrekord submissions, built independently of client/attest.py
(only the PAE is reimplemented here, from the DSSE spec)."""

from __future__ import annotations

import base64
import datetime
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.x509.oid import NameOID

INTOTO = "application/vnd.in-toto+json"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
SLSA = "https://slsa.dev/provenance/v1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 PAE, written from specs.md §7.4 (not imported from the code under test)."""
    t = payload_type.encode()
    return b"DSSEv1 " + str(len(t)).encode() + b" " + t + b" " + str(len(payload)).encode() + \
        b" " + payload


@dataclass(frozen=True)
class Signer:
    """A private key and how it signs a message (DSSE) and a SHA-256 digest (hashedrekord)."""

    name: str
    private: Any
    sign_message: Callable[[bytes], bytes]
    sign_digest: Callable[[bytes], bytes] | None

    @property
    def pem(self) -> str:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    @property
    def der(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def signer_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.der).hexdigest()


_PREHASHED = utils.Prehashed(hashes.SHA256())
PSS_DIGEST = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
PSS_MAX = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)


def make_signer(name: str) -> Signer:
    """One fresh key of a supported type (see KEY_TYPES)."""
    if name == "ed25519":
        k: Any = ed25519.Ed25519PrivateKey.generate()
        return Signer(name, k, k.sign, None)
    if name in ("ecdsa-p256", "ecdsa-p384"):
        curve, alg = ((ec.SECP256R1(), hashes.SHA256()) if name == "ecdsa-p256"
                      else (ec.SECP384R1(), hashes.SHA384()))
        k = ec.generate_private_key(curve)
        return Signer(name, k, lambda m: k.sign(m, ec.ECDSA(alg)),
                      lambda d: k.sign(d, ec.ECDSA(_PREHASHED)))
    if name == "rsa2048-pkcs1":
        k = rsa.generate_private_key(65537, 2048)
        return Signer(name, k, lambda m: k.sign(m, padding.PKCS1v15(), hashes.SHA256()),
                      lambda d: k.sign(d, padding.PKCS1v15(), _PREHASHED))
    if name in ("rsa3072-pss", "rsa3072-pss-max"):
        k = rsa.generate_private_key(65537, 3072)
        pad = PSS_DIGEST if name == "rsa3072-pss" else PSS_MAX
        return Signer(name, k, lambda m: k.sign(m, pad, hashes.SHA256()),
                      lambda d: k.sign(d, pad, _PREHASHED))
    raise ValueError(name)


KEY_TYPES = ["ed25519", "ecdsa-p256", "ecdsa-p384", "rsa2048-pkcs1", "rsa3072-pss",
             "rsa3072-pss-max"]
DIGEST_KEY_TYPES = [k for k in KEY_TYPES if k != "ed25519"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def statement(subjects: list[dict[str, str]] | list[str], predicate_type: str = SLSA,
              predicate: Any = None, **extra: Any) -> bytes:
    """An in-toto Statement v1; plain strings are sha256 subject digests."""
    subj = [{"name": f"artifact-{i}", "digest": {"sha256": s}} if isinstance(s, str)
            else {"name": f"artifact-{i}", "digest": s} for i, s in enumerate(subjects)]
    doc = {"_type": STATEMENT_V1, "subject": subj, "predicateType": predicate_type,
           "predicate": predicate if predicate is not None else {}, **extra}
    return orjson.dumps(doc)


def envelope(payload: bytes, signers: list[Signer], payload_type: str = INTOTO,
             keyids: bool = True) -> dict[str, Any]:
    """A DSSE envelope signed by each signer over the PAE."""
    msg = pae(payload_type, payload)
    return {"payload": b64(payload), "payloadType": payload_type,
            "signatures": [{"keyid": s.name if keyids else "", "sig": b64(s.sign_message(msg))}
                           for s in signers]}


def dsse_body(env: dict[str, Any], verifiers: list[Signer]) -> dict[str, Any]:
    return {"dsse": env, "verifiers": [v.pem for v in verifiers]}


def hashedrekord(digest: bytes, signer: Signer) -> dict[str, Any]:
    assert signer.sign_digest is not None
    return {"digest": {"sha256": digest.hex()}, "signature": b64(signer.sign_digest(digest)),
            "verifier": signer.pem}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def public_pem(key: Any) -> str:
    """PEM SubjectPublicKeyInfo of a public key."""
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def self_signed_cert_pem() -> str:
    """A PEM certificate (not a public key) for a fresh P-256 key."""
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(k.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(k, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def oversized_statement() -> bytes:
    """A Statement the parser accepts whose leaf would still exceed 65,535 bytes: 64 subjects
    (the leaf cap) of 4 digests (the per-subject cap) with 32-character algorithm names and
    256-digit values (the parser's limits)."""
    subjects = [{"digest": {f"{c}{'a' * 31}": f"{i:04x}" + "a" * 252 for c in "abcd"}}
                for i in range(64)]
    return orjson.dumps({"_type": STATEMENT_V1, "subject": subjects, "predicateType": SLSA})
