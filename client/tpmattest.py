"""TPM key attestation, checked without a TPM library: is the log's ECDSA key inside a TPM?

The log publishes (GET /v1/log/key-attestation)::

    {"key_public": "<base64 TPMT_PUBLIC of the checkpoint key>",
     "ak_public": "<base64 TPMT_PUBLIC of the attestation key>",
     "certify_info": "<base64 TPMS_ATTEST from TPM2_Certify>",
     "certify_signature": "<base64 TPMT_SIGNATURE by the AK>",
     "ek_certificates": ["<PEM>", ...]}        # may be empty

and a verifier checks, from the TPM 2.0 structures (Part 2) parsed here by hand: the AK is a
*restricted* signing key (a restricted key cannot sign anything that looks like a TPM
attestation, so only the TPM could have produced the certification) and is trusted (pinned
by its name); its ECDSA signature over the TPMS_ATTEST verifies; the attestation is a
TPM-generated CERTIFY of the checkpoint key's name (the name is a hash of the public area, so
it binds the attributes) with the expected qualifying data; the key's attributes say it was
made inside that TPM and can never leave it (fixedTPM, fixedParent, sensitiveDataOrigin);
and the key is the one whose signature the policy requires on checkpoints.
"""

from __future__ import annotations

import datetime
import hashlib
import struct
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from client.encoding import b64decode_std
from client.errors import MalformedError, PolicyError, SignatureError

TPM_GENERATED = 0xFF544347
ST_ATTEST_CERTIFY = 0x8017
ALG_ECC, ALG_SHA256, ALG_NULL, ALG_ECDSA = 0x0023, 0x000B, 0x0010, 0x0018
ECC_NIST_P256 = 0x0003
FIXED_TPM, FIXED_PARENT, SENSITIVE_DATA_ORIGIN = 0x2, 0x10, 0x20
RESTRICTED, SIGN = 0x10000, 0x40000
KEY_ATTRIBUTES = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | SIGN
AK_ATTRIBUTES = KEY_ATTRIBUTES | RESTRICTED
MAX_STRUCT = 4096
AK_NAME_URI = "urn:tlog:tpm-ak:"  # the AK certificate names the AK by its TPM name
MAX_CHAIN = 8


def qualifying_data(origin: str) -> bytes:
    """What the log passes to TPM2_Certify, binding the certification to this log."""
    return hashlib.sha256(b"tlog key attestation v1\n" + origin.encode()).digest()


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MalformedError(f"{self.what} is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def tpm2b(self) -> bytes:
        return self.take(self.u16())

    def end(self) -> None:
        if self.pos != len(self.data):
            raise MalformedError(f"{self.what} has trailing bytes")


@dataclass(frozen=True)
class TpmPublic:
    """An ECC P-256 TPMT_PUBLIC: its attributes, its public point, and its TPM name."""

    attributes: int
    spki_der: bytes
    name: bytes  # nameAlg (u16) || SHA-256(TPMT_PUBLIC)


def parse_public(data: bytes, what: str = "TPMT_PUBLIC") -> TpmPublic:
    if len(data) > MAX_STRUCT:
        raise MalformedError(f"{what} is too large")
    r = _Reader(data, what)
    if r.u16() != ALG_ECC:
        raise MalformedError(f"{what} is not an ECC key")
    if r.u16() != ALG_SHA256:
        raise MalformedError(f"{what}'s name algorithm is not SHA-256")
    attributes = r.u32()
    r.tpm2b()  # authPolicy
    sym = r.u16()
    if sym != ALG_NULL:
        r.u16()
        r.u16()  # keyBits, mode
    scheme = r.u16()
    if scheme != ALG_NULL:
        r.u16()  # hashAlg
    if r.u16() != ECC_NIST_P256:
        raise MalformedError(f"{what} is not on P-256")
    if r.u16() != ALG_NULL:
        r.u16()  # kdf
    x, y = r.tpm2b(), r.tpm2b()
    r.end()
    if len(x) != 32 or len(y) != 32:
        raise MalformedError(f"{what} has a malformed point")
    try:
        key = ec.EllipticCurvePublicNumbers(int.from_bytes(x, "big"), int.from_bytes(y, "big"),
                                            ec.SECP256R1()).public_key()
    except ValueError as exc:
        raise MalformedError(f"{what}'s point is not on P-256") from exc
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    name = ALG_SHA256.to_bytes(2, "big") + hashlib.sha256(data).digest()
    return TpmPublic(attributes, spki, name)


def _ecdsa_der(sig: bytes) -> bytes:
    r = _Reader(sig, "TPMT_SIGNATURE")
    if r.u16() != ALG_ECDSA or r.u16() != ALG_SHA256:
        raise MalformedError("the certification is not an ECDSA/SHA-256 signature")
    sig_r, sig_s = r.tpm2b(), r.tpm2b()
    r.end()
    return encode_dss_signature(int.from_bytes(sig_r, "big"), int.from_bytes(sig_s, "big"))


@dataclass(frozen=True)
class CertifyInfo:
    extra_data: bytes
    name: bytes


def parse_certify(data: bytes) -> CertifyInfo:
    if len(data) > MAX_STRUCT:
        raise MalformedError("TPMS_ATTEST is too large")
    r = _Reader(data, "TPMS_ATTEST")
    if r.u32() != TPM_GENERATED:
        raise MalformedError("TPMS_ATTEST is not TPM-generated")
    if r.u16() != ST_ATTEST_CERTIFY:
        raise MalformedError("TPMS_ATTEST is not a certification")
    r.tpm2b()  # qualifiedSigner
    extra = r.tpm2b()
    r.u64()
    r.u32()
    r.u32()
    r.u8()  # clockInfo: obfuscated for owner-hierarchy AKs, not relied on
    r.u64()  # firmwareVersion
    name = r.tpm2b()
    r.tpm2b()  # qualifiedName
    r.end()
    return CertifyInfo(extra, name)


@dataclass(frozen=True)
class KeyAttestation:
    key: TpmPublic
    ak: TpmPublic


def verify_chain(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                 roots: list[x509.Certificate], what: str) -> None:
    """`leaf` chains, through CA `intermediates`, to one of `roots`, every link valid now."""
    try:
        for c in (leaf, *intermediates, *roots):
            _ = c.subject, c.issuer  # cryptography parses names lazily: a bad one raises on use
    except (ValueError, TypeError) as exc:  # TypeError: an attribute of the wrong string type
        raise MalformedError(f"{what}: a certificate's names do not parse: {exc}") from exc
    now = datetime.datetime.now(datetime.UTC)
    cert = leaf
    for _ in range(MAX_CHAIN):
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise PolicyError(f"{what}: a certificate in the chain is not valid now ({cert.subject})")
        for root in roots:
            if root.subject == cert.issuer and _issued_by(cert, root):
                if not root.not_valid_before_utc <= now <= root.not_valid_after_utc:
                    raise PolicyError(f"{what}: the trusted root {root.subject} is not valid now")
                return
        parent = next((c for c in intermediates if c.subject == cert.issuer and _issued_by(cert, c)
                       and _is_ca(c)), None)
        if parent is None:
            issuer = cert.issuer.rfc4514_string()
            raise PolicyError(f"{what} does not chain to a trusted root (issuer {issuer})")
        cert = parent
    raise PolicyError(f"{what}: the chain is too long")


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):  # e.g. an unknown key type
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _trusted_ak(doc: Any, ak: TpmPublic, pins: tuple[str, ...], cas: tuple[str, ...]) -> None:
    """The AK is pinned by name, or certified (after credential activation) by a trusted AK CA."""
    if ak.name.hex() in pins:
        return
    if not cas:
        raise PolicyError(f"the attestation key {ak.name.hex()} is not one the policy trusts")
    pem = doc.get("ak_certificate") if isinstance(doc, dict) else None
    if not isinstance(pem, str):
        raise PolicyError("the attestation key has no certificate from an AK CA")
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
        roots = [x509.load_pem_x509_certificate(c.encode()) for c in cas]
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is not a ValueError
        raise MalformedError(f"an AK or AK CA certificate does not parse: {exc}") from exc
    verify_chain(cert, [], roots, "the AK certificate")
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if spki != ak.spki_der or AK_NAME_URI + ak.name.hex() not in uris:
        raise PolicyError("the AK certificate is for another key")


def check_anchoring(doc: Any, policy: Any) -> KeyAttestation:
    """The policy's TPM requirement: the attestation holds, by a trusted AK (pinned, or
    certified by a trusted AK CA), and the attested key is the ECDSA log key whose checkpoint
    signature the policy requires."""
    att = verify_key_attestation(doc, policy.origin, policy.tpm_aks, policy.tpm_ak_cas)
    ecdsa = [v for v in policy.log_keys if v.alg == 0x02]
    if not any(v.spki_der == att.key.spki_der for v in ecdsa):
        raise PolicyError("the policy's ECDSA log key is not the key the TPM certified "
                          "(a software key, or another TPM's)")
    return att


def verify_key_attestation(doc: Any, origin: str, trusted_aks: tuple[str, ...],
                           ak_cas: tuple[str, ...] = ()) -> KeyAttestation:
    """Check a key attestation document; returns the attested key. `trusted_aks` are AK names
    (lowercase hex of nameAlg || digest, as `tlog tpm init` prints them)."""
    try:
        fields = {k: b64decode_std(doc[k], what=k) for k in
                  ("key_public", "ak_public", "certify_info", "certify_signature")}
    except (KeyError, TypeError) as exc:
        raise MalformedError(f"key attestation is missing or has a malformed field: {exc}") from exc
    key = parse_public(fields["key_public"], "the checkpoint key's TPMT_PUBLIC")
    ak = parse_public(fields["ak_public"], "the AK's TPMT_PUBLIC")
    if ak.attributes & AK_ATTRIBUTES != AK_ATTRIBUTES:
        raise PolicyError("the attestation key is not a restricted signing key made and kept in the TPM")
    _trusted_ak(doc, ak, trusted_aks, ak_cas)
    ak_key = serialization.load_der_public_key(ak.spki_der)
    assert isinstance(ak_key, ec.EllipticCurvePublicKey)
    try:
        ak_key.verify(_ecdsa_der(fields["certify_signature"]), fields["certify_info"],
                      ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise SignatureError("the certification's signature by the AK does not verify") from exc
    info = parse_certify(fields["certify_info"])
    if info.extra_data != qualifying_data(origin):
        raise PolicyError("the certification was not made for this log")
    if info.name != key.name:
        raise PolicyError("the certification is of another key than the one presented")
    if key.attributes & KEY_ATTRIBUTES != KEY_ATTRIBUTES:
        raise PolicyError("the checkpoint key may have been made outside the TPM or may leave it "
                          "(fixedTPM, fixedParent, sensitiveDataOrigin)")
    return KeyAttestation(key, ak)
