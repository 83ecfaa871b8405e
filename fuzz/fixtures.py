"""Fixed keys, trust anchors and clocks that the fuzz targets verify with. Never real keys.

Everything here is deterministic (fixed seeds and scalars, deterministic ECDSA, certificates
signed with Ed25519 over fixed dates), so a corpus file that verified once verifies on every
run and every machine. That matters: most of the code worth fuzzing sits behind a signature
check, and only inputs derived from validly signed seeds get there.
"""

from __future__ import annotations

import datetime
import hashlib
import struct
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from client import merkle
from client.checkpoint import Checkpoint
from client.note import CosignatureV1Signer, ECDSASigner, Ed25519Signer, sign_note
from client.policy import TrustPolicy
from client.tpmattest import (
    AK_NAME_URI,
    ALG_ECC,
    ALG_ECDSA,
    ALG_NULL,
    ALG_SHA256,
    ECC_NIST_P256,
    FIXED_PARENT,
    FIXED_TPM,
    RESTRICTED,
    SENSITIVE_DATA_ORIGIN,
    SIGN,
    parse_public,
)
from tsa.authority import TimestampAuthority
from witness.protocol import Stored

ORIGIN = "fuzz.example/log"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z: the clock of every freshness check
CLOCK_SKEW = 300
MAX_AGE = 3600
ARTIFACT = b"the fuzzed artifact\n"
TS_SIGNATURE = b"the signature a fuzzed timestamp is over"


def seed(label: str) -> bytes:
    """32 fixed bytes per label: an Ed25519 seed."""
    return hashlib.sha256(b"tlog fuzz fixture " + label.encode()).digest()


def scalar(label: str) -> int:
    """A fixed P-256/P-384 private scalar per label (31 bytes: below both group orders)."""
    return int.from_bytes(seed(label)[:31], "big") + 1


def p256(label: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(scalar(label), ec.SECP256R1())


class DeterministicECDSASigner(ECDSASigner):
    """A type 0x02 checkpoint signer with RFC 6979 signatures, so seeds are reproducible."""

    __slots__ = ()

    def sign(self, msg: bytes) -> bytes:
        return self._key.sign(msg, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))


# --- the log, its witnesses, and the policies a verifier holds --------------------------------

LOG = Ed25519Signer(ORIGIN, seed("log ed25519"))
LOG_ECDSA = DeterministicECDSASigner(ORIGIN, p256("log ecdsa"))
WITNESSES = tuple(CosignatureV1Signer(f"witness{i}.fuzz.example", seed(f"witness {i}"),
                                      clock=lambda: NOW - 60) for i in range(3))
LOG_VERIFIERS = [LOG.verifier(), LOG_ECDSA.verifier()]
WITNESS_VERIFIERS = [w.verifier() for w in WITNESSES]
NOTE_VERIFIERS = [*LOG_VERIFIERS, *WITNESS_VERIFIERS]

POLICY_ANY = TrustPolicy(ORIGIN, tuple(LOG_VERIFIERS), "any")
POLICY_WITNESSED = TrustPolicy(ORIGIN, (LOG.verifier(),), "all", witnesses=tuple(WITNESS_VERIFIERS),
                               witness_quorum=2, max_age_seconds=MAX_AGE)


# --- an in-memory RFC 6962 tree (client.merkle's proofs over a leaf list) ----------------------

class MemoryTree:
    """A Merkle tree over a list of entries; proofs come from client.merkle, as the log's do."""

    def __init__(self, entries: Sequence[bytes]) -> None:
        self.entries = list(entries)
        self._nodes: dict[tuple[int, int], bytes] = {}

    def _node(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key not in self._nodes:
            self._nodes[key] = (merkle.leaf_hash(self.entries[index]) if level == 0 else
                                merkle.node_hash(self._node(level - 1, 2 * index),
                                                 self._node(level - 1, 2 * index + 1)))
        return self._nodes[key]

    def read(self, nodes: Sequence[tuple[int, int]]) -> list[bytes]:
        return [self._node(level, index) for level, index in nodes]

    def root(self, size: int | None = None) -> bytes:
        return merkle.tree_root(len(self.entries) if size is None else size, self.read)

    def inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        return merkle.inclusion_proof(index, len(self.entries) if size is None else size, self.read)

    def consistency(self, old: int, new: int | None = None) -> list[bytes]:
        return merkle.consistency_proof(old, len(self.entries) if new is None else new, self.read)

    def checkpoint(self, size: int | None = None, origin: str = ORIGIN) -> Checkpoint:
        n = len(self.entries) if size is None else size
        return Checkpoint(origin, n, self.root(n))


# The witness's log: a raw-entry tree, and what the witness last cosigned of it.
WITNESS_TREE = MemoryTree([b"witnessed entry %d" % i for i in range(24)])
STORED_SIZE = 8
_stored_cp = WITNESS_TREE.checkpoint(STORED_SIZE)
STORED = Stored(STORED_SIZE, _stored_cp.root, sign_note(_stored_cp.text(), [LOG]))


# --- certificates -------------------------------------------------------------------------------

VALID_FROM = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
VALID_TO = datetime.datetime(2099, 1, 1, tzinfo=datetime.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlog fuzz"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def ca_certificate(key: ed25519.Ed25519PrivateKey, cn: str, serial: int) -> x509.Certificate:
    """A self-signed Ed25519 CA certificate (Ed25519 signatures are deterministic)."""
    return (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(serial)
            .not_valid_before(VALID_FROM).not_valid_after(VALID_TO)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, None))


def leaf_certificate(ca_key: ed25519.Ed25519PrivateKey, ca: x509.Certificate, public: object, *, cn: str,
                     serial: int, extensions: Sequence[tuple[x509.ExtensionType, bool]] = ()
                     ) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
               .public_key(public).serial_number(serial)  # type: ignore[arg-type]
               .not_valid_before(VALID_FROM).not_valid_after(VALID_TO)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(ca_key, None)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


# --- the RFC 3161 time-stamping authority -------------------------------------------------------

TSA_ROOT_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(seed("tsa root"))
TSA_ROOT = ca_certificate(TSA_ROOT_KEY, "tsa root", 1)
TSA_KEY = p256("tsa signing")
TSA_LEAF = leaf_certificate(
    TSA_ROOT_KEY, TSA_ROOT, TSA_KEY.public_key(), cn="tsa timestamping", serial=2,
    extensions=[(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True)])
TSA_CHAIN = [TSA_LEAF, TSA_ROOT]
TSA_CHAIN_PEM = [pem(c) for c in TSA_CHAIN]
TSA = TimestampAuthority(TSA_KEY, TSA_CHAIN, clock=lambda: NOW)


# --- TPM key attestation --------------------------------------------------------------------------

KEY_ATTRS = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | SIGN | 0x40 | 0x400  # + userWithAuth, noDA
AK_ATTRS = KEY_ATTRS | RESTRICTED


def tpmt_public(public: ec.EllipticCurvePublicKey, attributes: int, *, scheme: bool = True) -> bytes:
    """An ECC P-256 TPMT_PUBLIC (TPM 2.0 Part 2, 12.2.4) in the layout client.tpmattest reads:
    type, nameAlg, objectAttributes, authPolicy, TPMS_ECC_PARMS (symmetric NULL, scheme
    ECDSA/SHA-256 or NULL, curve P-256, kdf NULL), then the point."""
    nums = public.public_numbers()
    scheme_bytes = struct.pack(">HH", ALG_ECDSA, ALG_SHA256) if scheme else struct.pack(">H", ALG_NULL)
    return (struct.pack(">HHI", ALG_ECC, ALG_SHA256, attributes) + struct.pack(">H", 0)
            + struct.pack(">H", ALG_NULL) + scheme_bytes + struct.pack(">HH", ECC_NIST_P256, ALG_NULL)
            + tpm2b(nums.x.to_bytes(32, "big")) + tpm2b(nums.y.to_bytes(32, "big")))


def tpm2b(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


AK_KEY = p256("tpm attestation key")
TPM_KEY = p256("tpm checkpoint key")
AK_PUBLIC = tpmt_public(AK_KEY.public_key(), AK_ATTRS)
KEY_PUBLIC = tpmt_public(TPM_KEY.public_key(), KEY_ATTRS, scheme=False)
AK_NAME = parse_public(AK_PUBLIC).name.hex()
TPM_SIGNER = DeterministicECDSASigner(ORIGIN, TPM_KEY)  # the "TPM" checkpoint key, in software here

AK_CA_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(seed("ak ca"))
AK_CA = ca_certificate(AK_CA_KEY, "ak ca", 3)
AK_CA_PEM = pem(AK_CA).decode()
AK_CERT_PEM = pem(leaf_certificate(AK_CA_KEY, AK_CA, AK_KEY.public_key(), cn="ak", serial=4, extensions=[
    (x509.SubjectAlternativeName([x509.UniformResourceIdentifier(AK_NAME_URI + AK_NAME)]), False)
])).decode()

TPM_POLICY_PINNED = TrustPolicy(ORIGIN, (LOG.verifier(), TPM_SIGNER.verifier()), "all", tpm_aks=(AK_NAME,))
TPM_POLICY_CA = TrustPolicy(ORIGIN, (LOG.verifier(), TPM_SIGNER.verifier()), "all", tpm_ak_cas=(AK_CA_PEM,))

# A CA for hashedrekord verifiers given as X.509 certificates (Rekor v2 `x509Certificate`).
SIGNER_CA_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(seed("signer ca"))
SIGNER_CA = ca_certificate(SIGNER_CA_KEY, "signer ca", 5)
