"""The seed corpus: real objects made with the project's own code, one list per target.

`python -m fuzz.seeds` writes them into fuzz/corpus/<target>/, each named by the SHA-1 of its
bytes as libFuzzer names its finds, so rebuilding the seeds adds nothing that is already
there. Everything is deterministic (fixed keys, RFC 6979 ECDSA, RSA primes from a fixed
stream, a fixed TSA clock and serial): the corpus does not churn when the seeds are rebuilt.

Seeds are valid objects (signed notes and cosigned checkpoints, witness requests with real
consistency proofs, DSSE and Rekor submissions, receipts and Sigstore bundles from a real
tree, TPM attestations, split-view evidence, timestamps) plus a few near misses, so the
fuzzer starts past the signature and proof checks and mutates from there.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
from asn1crypto import tsp
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from client import attest, evidence, rekor, tiles
from client.encoding import b64encode
from client.errors import MalformedError
from client.jcs import canonicalize_record
from client.merkle import EMPTY_ROOT
from client.note import CosignatureV1Signer, Ed25519Signer, Signer, parse_note, sign_note
from client.policy import TrustPolicy, policy_toml
from client.rekorleaf import RekorEntry
from client.sigstore_trust import trusted_root, tsa_entry
from client.timestamp import timestamp_request
from client.tpmattest import ST_ATTEST_CERTIFY, TPM_GENERATED, qualifying_data
from client.verify import Receipt, verify_checkpoint
from fuzz import fixtures as fx
from tlog.wire import encode
from tsa.authority import TimestampAuthority

CORPUS = Path(__file__).resolve().parent / "corpus"
INTOTO = attest.INTOTO_PAYLOAD_TYPE
SLSA = "https://slsa.dev/provenance/v1"


def sha1_name(data: bytes) -> str:
    """libFuzzer's corpus file name for `data`."""
    return hashlib.sha1(data).hexdigest()  # noqa: S324 - a name, as libFuzzer's, not a MAC


def _json(doc: Any) -> bytes:
    return orjson.dumps(doc)


# --- deterministic signer keys -----------------------------------------------------------------

def _stream(label: str) -> Iterator[int]:
    """Fixed 64-bit numbers per label (SHA-256 in counter mode)."""
    counter = 0
    while True:
        block = hashlib.sha256(f"tlog fuzz rsa {label} {counter}".encode()).digest()
        yield from (int.from_bytes(block[i : i + 8], "big") for i in range(0, 32, 8))
        counter += 1


_SMALL_PRIMES = [p for p in range(3, 2000, 2) if all(p % q for q in range(3, math.isqrt(p) + 1, 2))]


def _probable_prime(n: int, witnesses: Iterator[int]) -> bool:
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return False
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(40):
        x = pow(next(witnesses) % (n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, stream: Iterator[int]) -> int:
    while True:
        n = 0
        for _ in range(bits // 64):
            n = (n << 64) | next(stream)
        n |= (3 << (bits - 2)) | 1  # top two bits set: p*q has exactly 2*bits bits
        if math.gcd(n - 1, 65537) == 1 and _probable_prime(n, stream):
            return n


def rsa_key(label: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """A fixed RSA key per label (cryptography cannot generate one from a seed)."""
    stream = _stream(label)
    p, q = _prime(bits // 2, stream), _prime(bits // 2, stream)
    e = 65537
    d = pow(e, -1, (p - 1) * (q - 1))
    return rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                 rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, p * q)).private_key()


def pem_public(key: Any) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def der_public(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


class Keys:
    """One signer key of each supported kind, fixed."""

    def __init__(self) -> None:
        self.ed25519 = ed25519.Ed25519PrivateKey.from_private_bytes(fx.seed("dsse ed25519"))
        self.p256 = fx.p256("dsse p256")
        self.p384 = ec.derive_private_key(fx.scalar("dsse p384"), ec.SECP384R1())
        self.rsa = rsa_key("signer")

    def sign_message(self, kind: str, msg: bytes) -> bytes:
        if kind == "ed25519":
            return self.ed25519.sign(msg)
        if kind == "p256":
            return self.p256.sign(msg, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        if kind == "p384":
            return self.p384.sign(msg, ec.ECDSA(hashes.SHA384(), deterministic_signing=True))
        if kind == "rsa-pss":  # PSS is randomised: a fixed salt of zeros is still a valid PSS
            return _pss_fixed(self.rsa, msg)
        return self.rsa.sign(msg, padding.PKCS1v15(), hashes.SHA256())

    def sign_digest(self, kind: str, digest: bytes) -> bytes:
        alg = {32: hashes.SHA256(), 48: hashes.SHA384(), 64: hashes.SHA512()}[len(digest)]
        if kind == "rsa":
            return self.rsa.sign(digest, padding.PKCS1v15(), utils.Prehashed(alg))
        key = self.p256 if kind == "p256" else self.p384
        return key.sign(digest, ec.ECDSA(utils.Prehashed(alg), deterministic_signing=True))

    def key(self, kind: str) -> Any:
        return {"ed25519": self.ed25519, "p256": self.p256, "p384": self.p384}.get(kind, self.rsa)


def _pss_fixed(key: rsa.RSAPrivateKey, msg: bytes) -> bytes:
    """RSASSA-PSS (MGF1-SHA-256, 32-byte salt) with an all-zero salt, computed by hand."""
    n = key.public_key().public_numbers().n
    d = key.private_numbers().d
    em_bits = n.bit_length() - 1
    em_len = (em_bits + 7) // 8
    m_hash = hashlib.sha256(msg).digest()
    salt = bytes(32)
    h = hashlib.sha256(bytes(8) + m_hash + salt).digest()
    db = bytes(em_len - len(salt) - 32 - 2) + b"\x01" + salt
    mask = b"".join(hashlib.sha256(h + i.to_bytes(4, "big")).digest()
                    for i in range((len(db) + 31) // 32))[: len(db)]
    masked = bytearray(x ^ y for x, y in zip(db, mask, strict=True))
    masked[0] &= 0xFF >> (8 * em_len - em_bits)
    em = int.from_bytes(bytes(masked) + h + b"\xbc", "big")
    return pow(em, d, n).to_bytes((n.bit_length() + 7) // 8, "big")


# --- notes, checkpoints, witness requests --------------------------------------------------------

EXAMPLE_NOTE = (b"This is an example message.\n\n\xe2\x80\x94 example.com/foo "
                b"Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZX"
                b"sYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")
EXAMPLE_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"


def cosign(note: bytes, witnesses: list[Signer]) -> bytes:
    """The note with cosignature lines by `witnesses` appended (as a witness answers)."""
    parsed = parse_note(note)
    return sign_note(parsed.text, witnesses, existing=parsed.signatures)


def signed_checkpoint(tree: fx.MemoryTree, size: int | None = None, *, ecdsa: bool = False,
                      origin: str = fx.ORIGIN) -> bytes:
    signers: list[Signer] = [fx.LOG, fx.LOG_ECDSA] if ecdsa else [fx.LOG]
    return sign_note(tree.checkpoint(size, origin).text(), signers)


def witness_request(old: int, proof: list[bytes], note: bytes) -> bytes:
    """A C2SP tlog-witness add-checkpoint body."""
    return b"old %d\n" % old + b"".join(b64encode(h).encode() + b"\n" for h in proof) + b"\n" + note


def _witness_seeds() -> list[bytes]:
    tree = fx.WITNESS_TREE
    full = signed_checkpoint(tree)
    same = fx.STORED.note
    empty = sign_note(f"{fx.ORIGIN}\n0\n{b64encode(EMPTY_ROOT)}\n", [fx.LOG])
    bad_empty = sign_note(f"{fx.ORIGIN}\n0\n{b64encode(bytes(32))}\n", [fx.LOG])
    proof = tree.consistency(fx.STORED_SIZE)
    return [
        witness_request(0, [], full),
        witness_request(fx.STORED_SIZE, proof, full),
        witness_request(fx.STORED_SIZE, proof, signed_checkpoint(tree, ecdsa=True)),
        witness_request(fx.STORED_SIZE, [], same),
        witness_request(0, [], empty),
        witness_request(0, [], bad_empty),
        witness_request(5, tree.consistency(5), full),  # 409
        witness_request(fx.STORED_SIZE, proof[:-1], full),  # 422: short proof
        witness_request(fx.STORED_SIZE, proof, cosign(full, [fx.WITNESSES[0]])),
        witness_request(0, [], sign_note(f"{fx.ORIGIN}\n3\n{b64encode(tree.root(3))}\next\n", [fx.LOG])),
    ]


def _cosigned_seeds() -> list[bytes]:
    tree = fx.WITNESS_TREE
    note = signed_checkpoint(tree)
    w = list(fx.WITNESSES)
    stale = CosignatureV1Signer(w[2].name, fx.seed("witness 2"), clock=lambda: fx.NOW - 2 * fx.MAX_AGE)
    future = CosignatureV1Signer(w[1].name, fx.seed("witness 1"), clock=lambda: fx.NOW + 3600)
    return [cosign(note, w[:2]), cosign(note, w), cosign(note, [w[0], stale]), cosign(note, [w[0], future]),
            cosign(note, [w[0]]), cosign(signed_checkpoint(tree, ecdsa=True), w)]


# --- attestations ----------------------------------------------------------------------------------

def statement(subjects: list[str], st_type: str = "https://in-toto.io/Statement/v1") -> bytes:
    return _json({"_type": st_type, "predicateType": SLSA, "predicate": {"builder": {"id": "fuzz"}},
                  "subject": [{"name": f"artifact-{i}", "digest": {"sha256": s, "sha512": "ab" * 64}}
                              for i, s in enumerate(subjects)]})


ARTIFACT_SHA256 = hashlib.sha256(fx.ARTIFACT).hexdigest()


def dsse_envelope(keys: Keys, payload: bytes, kinds: list[str], payload_type: str = INTOTO,
                  *, urlsafe: bool = False, raw_ecdsa: bool = False) -> dict[str, Any]:
    msg = attest.pae(payload_type, payload)
    sigs = []
    for kind in kinds:
        sig = keys.sign_message(kind, msg)
        if raw_ecdsa and kind == "p256":
            r, s = utils.decode_dss_signature(sig)
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        sigs.append({"keyid": kind, "sig": b64encode(sig)})
    doc = {"payload": b64encode(payload), "payloadType": payload_type, "signatures": sigs}
    if urlsafe:
        doc["payload"] = doc["payload"].replace("+", "-").replace("/", "_").rstrip("=")
    return doc


def _entries_seeds(keys: Keys) -> tuple[list[bytes], list[dict[str, Any]], list[bytes]]:
    """(request bodies, envelopes, statements)."""
    st = statement([ARTIFACT_SHA256, hashlib.sha256(b"other").hexdigest()])
    st01 = statement([ARTIFACT_SHA256], "https://in-toto.io/Statement/v0.1")
    envs = [
        dsse_envelope(keys, st, ["ed25519"]),
        dsse_envelope(keys, st, ["p256", "ed25519"]),
        dsse_envelope(keys, st01, ["p384"], urlsafe=True),
        dsse_envelope(keys, st, ["p256"], raw_ecdsa=True),
        dsse_envelope(keys, st, ["rsa"]),
        dsse_envelope(keys, st, ["rsa-pss"]),
        dsse_envelope(keys, b"not a statement", ["ed25519"], "text/plain"),
    ]
    bodies = []
    for env in envs:
        kinds = [s["keyid"] for s in env["signatures"]]
        pems = list(dict.fromkeys(pem_public(keys.key(k.replace("-pss", ""))) for k in kinds))
        bodies.append(_json({"dsse": env, "verifiers": pems}))
    digest = hashlib.sha256(fx.ARTIFACT).digest()
    for kind in ("p256", "p384", "rsa"):
        bodies.append(_json({"hashedrekord": {
            "digest": {"sha256": digest.hex()}, "signature": b64encode(keys.sign_digest(kind, digest)),
            "verifier": pem_public(keys.key(kind))}}))
    bodies.append(_json({"hashedrekord": {"digest": {"sha256": digest.hex()}, "signature": "AAAA",
                                          "verifier": pem_public(keys.ed25519)}}))  # unsupported key
    return bodies, envs, [st, st01]


def _verifier(kind: str, keys: Keys, cert: bytes | None = None, *, snake: bool = False) -> dict[str, Any]:
    details = {"p256": "PKIX_ECDSA_P256_SHA_256", "p384": "PKIX_ECDSA_P384_SHA_384",
               "rsa": "PKIX_RSA_PKCS1V15_2048_SHA256"}[kind]
    raw = {"rawBytes": b64encode(cert if cert is not None else der_public(keys.key(kind)))}
    which = "x509Certificate" if cert is not None else "publicKey"
    if snake:
        return {"x509_certificate" if cert is not None else "public_key": {"raw_bytes": raw["rawBytes"]},
                "key_details": details}
    return {which: raw, "keyDetails": details}


def rekor_requests(keys: Keys) -> list[dict[str, Any]]:
    """Rekor v2 CreateEntryRequests: hashedrekord with each key kind and a certificate, DSSE."""
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = fx.leaf_certificate(fx.SIGNER_CA_KEY, fx.SIGNER_CA, keys.p256.public_key(), cn="signer",
                               serial=6).public_bytes(Encoding.DER)
    out = []
    for kind, verifier in (("p256", None), ("p384", None), ("rsa", None), ("p256", cert)):
        h = hashlib.sha384 if kind == "p384" else hashlib.sha256
        digest = h(fx.ARTIFACT).digest()
        sig = b64encode(keys.sign_digest(kind, digest))
        out.append({"hashedRekordRequestV002": {"digest": b64encode(digest), "signature": {
            "content": sig, "verifier": _verifier(kind, keys, verifier)}}})
    digest = hashlib.sha256(fx.ARTIFACT).digest()
    sig = b64encode(keys.sign_digest("p256", digest))
    out.append({"hashed_rekord_request_v002": {"digest": b64encode(digest), "signature": {
        "content": sig, "verifier": _verifier("p256", keys, snake=True)}}})
    env = dsse_envelope(keys, statement([ARTIFACT_SHA256]), ["p256"])
    out.append({"dsseRequestV002": {"envelope": env, "verifiers": [_verifier("p256", keys)]}})
    return out


# --- a real tree of attestations: receipts, bundles --------------------------------------------------

def imitations(keys: Keys) -> list[bytes]:
    """Raw entries (a log started with --allow-raw takes any bytes) that imitate attestation
    leaves whose signatures were never checked: a Rekor v2 leaf whose "key" is no key, one
    with an Ed25519 key no keyDetails names, and a v1 hashedrekord leaf with a junk key.
    Verifiers must refuse them when they re-check the signature, not crash."""
    digest = hashlib.sha256(fx.ARTIFACT).digest()
    junk = RekorEntry("SHA2_256", digest, b"not a signature", b"not a key", "PKIX_ECDSA_P256_SHA_256")
    ed = RekorEntry("SHA2_256", digest, keys.ed25519.sign(digest), der_public(keys.ed25519),
                    "PKIX_ECDSA_P256_SHA_256")
    record = {"digest": {"sha256": digest.hex()},
              "signature": {"key": b64encode(b"junk key"), "sig": b64encode(b"junk signature"),
                            "signer": "sha256:" + hashlib.sha256(b"junk key").hexdigest()}}
    return [junk.leaf(), ed.leaf(), bytes([attest.LEAF_VERSION, attest.KIND_HASHEDREKORD])
            + canonicalize_record(record)]


class LogOfAttestations:
    """A tree with raw entries, v1 DSSE and hashedrekord leaves and Rekor v2 leaves, its
    signed checkpoint, and the submissions behind each leaf."""

    def __init__(self, keys: Keys) -> None:
        bodies, _, _ = _entries_seeds(keys)
        dsse_body = orjson.loads(bodies[1])
        dsse = attest.check_dsse(dsse_body["dsse"], dsse_body["verifiers"])
        hashedrekord = attest.check_hashedrekord(orjson.loads(bodies[7])["hashedrekord"])
        self.rekor = [rekor.check_create_entry(r) for r in rekor_requests(keys)]
        self.envelope = dsse_body["dsse"]
        self.signer = "sha256:" + hashlib.sha256(der_public(keys.p256)).hexdigest()
        entries = [b"raw entry 0", dsse.leaf, hashedrekord, self.rekor[0].leaf, self.rekor[5].leaf,
                   self.rekor[3].leaf, *imitations(keys), b"raw entry 9", b"raw entry 10"]
        self.tree = fx.MemoryTree(entries)
        self.note = cosign(signed_checkpoint(self.tree, ecdsa=True), [fx.WITNESSES[0]])

    def receipt(self, index: int) -> dict[str, Any]:
        t = self.tree
        leaf = t.entries[index]
        from client.merkle import leaf_hash

        return Receipt(fx.ORIGIN, index, leaf, leaf_hash(leaf), len(t.entries), tuple(t.inclusion(index)),
                       self.note).to_dict()

    def bundle(self, index: int, sub: rekor.RekorSubmission, tsa: TimestampAuthority) -> dict[str, Any]:
        t = self.tree
        tle = rekor.transparency_log_entry(
            index, t.entries[index], log_key_id=rekor.log_id(fx.LOG.verifier()), tree_size=len(t.entries),
            root=t.root(), proof=t.inclusion(index), checkpoint=self.note)
        env = attest.parse_envelope(orjson.loads(sub.envelope)) if sub.envelope else None
        stamp = tsa.respond(timestamp_request(sub.entry.signature))
        return rekor.bundle(tle, sub.entry, env, [stamp])


class _DeterministicKey:
    """The TSA key signing with RFC 6979 nonces (TimestampAuthority uses only these two)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def sign(self, data: bytes, alg: ec.ECDSA) -> bytes:
        return self._key.sign(data, ec.ECDSA(alg.algorithm, deterministic_signing=True))


@contextmanager
def fixed_tsa() -> Iterator[TimestampAuthority]:
    """The fixture TSA with deterministic signatures and token serial numbers."""
    with mock.patch("tsa.authority.secrets.randbits", lambda bits: 0x1234567 & ((1 << bits) - 1)):
        yield TimestampAuthority(_DeterministicKey(fx.TSA_KEY), fx.TSA_CHAIN,  # type: ignore[arg-type]
                                 clock=lambda: fx.NOW)


# --- TPM ---------------------------------------------------------------------------------------------

def certify_info(key_public: bytes, extra: bytes) -> bytes:
    """A TPMS_ATTEST of type CERTIFY (TPM 2.0 Part 2, 10.12.12) of `key_public`'s name."""
    import struct

    name = b"\x00\x0b" + hashlib.sha256(key_public).digest()
    ak_name = b"\x00\x0b" + hashlib.sha256(fx.AK_PUBLIC).digest()
    return (struct.pack(">IH", TPM_GENERATED, ST_ATTEST_CERTIFY) + fx.tpm2b(ak_name) + fx.tpm2b(extra)
            + struct.pack(">QIIBQ", 123456789, 3, 1, 1, 0x2023_0001) + fx.tpm2b(name) + fx.tpm2b(name))


def tpmt_signature(data: bytes) -> bytes:
    """The AK's TPMT_SIGNATURE (ECDSA, SHA-256) over `data`."""
    import struct

    der = fx.AK_KEY.sign(data, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = utils.decode_dss_signature(der)
    return struct.pack(">HH", 0x0018, 0x000B) + b"".join(fx.tpm2b(n.to_bytes(32, "big")) for n in (r, s))


def key_attestation(origin: str = fx.ORIGIN, key_public: bytes = fx.KEY_PUBLIC, *,
                    ak_certificate: bool = True) -> dict[str, Any]:
    """The document GET /v1/log/key-attestation serves, built from the TPM byte layout."""
    info = certify_info(key_public, qualifying_data(origin))
    doc: dict[str, Any] = {"key_public": b64encode(key_public), "ak_public": b64encode(fx.AK_PUBLIC),
                           "certify_info": b64encode(info),
                           "certify_signature": b64encode(tpmt_signature(info)), "ek_certificates": []}
    if ak_certificate:
        doc["ak_certificate"] = fx.AK_CERT_PEM
    return doc


# --- everything --------------------------------------------------------------------------------------

def _evidence_seeds() -> list[bytes]:
    base = [b"shared entry %d" % i for i in range(10)]
    a = fx.MemoryTree([*base, b"fork a"])
    b = fx.MemoryTree([*base, b"fork b"])
    c = fx.MemoryTree([*base, b"fork c", *(b"more %d" % i for i in range(5))])
    key_policy = TrustPolicy(fx.ORIGIN, tuple(fx.LOG_VERIFIERS), "any")

    def verified(t: fx.MemoryTree) -> Any:
        return verify_checkpoint(signed_checkpoint(t, ecdsa=t is b), key_policy)

    out = []
    for x, y in ((a, b), (a, c)):
        larger = y if len(y.entries) >= len(x.entries) else x

        def prove(m: int, _large: Any, t: fx.MemoryTree = larger) -> tuple[bytes, list[bytes]]:
            return t.root(m), t.consistency(m)

        sv = evidence.split_view(verified(x), verified(y), prove)
        assert sv is not None
        doc = evidence.to_document(sv, "fuzz seed", "fuzz.seeds")
        doc["detected_at"] = fx.NOW
        out.append(_json(doc))
    # Not evidence: one tree's prefix (consistent).
    small, large = verified(fx.MemoryTree(c.entries[:8])), verified(c)
    doc = {"type": evidence.EVIDENCE_TYPE, "origin": fx.ORIGIN,
           "checkpoints": [small.note.decode(), large.note.decode()],
           "prefix_root": b64encode(c.root(8)), "consistency_proof": [b64encode(h) for h in c.consistency(8)]}
    out.append(_json(doc))
    return out


def _policy_docs() -> list[dict[str, Any]]:
    docs = [p.to_dict() for p in (fx.POLICY_ANY, fx.POLICY_WITNESSED, fx.TPM_POLICY_PINNED, fx.TPM_POLICY_CA)]
    docs[0]["url"] = "https://log.fuzz.example/"
    return docs


def build() -> dict[str, list[bytes]]:
    """Every target's seeds."""
    keys = Keys()
    bodies, envs, statements = _entries_seeds(keys)
    log = LogOfAttestations(keys)
    tree = fx.WITNESS_TREE
    note = signed_checkpoint(tree, ecdsa=True)
    rekor_reqs = rekor_requests(keys)
    rekor_subs = log.rekor
    with fixed_tsa() as tsa:
        stamps = [tsa.respond(timestamp_request(fx.TS_SIGNATURE)),
                  tsa.respond(timestamp_request(fx.TS_SIGNATURE, nonce=2**64 + 5, cert_req=False))]
        bundles = [log.bundle(3, rekor_subs[0], tsa), log.bundle(4, rekor_subs[5], tsa),
                   log.bundle(5, rekor_subs[3], tsa)]
    ts_requests = [timestamp_request(fx.TS_SIGNATURE), timestamp_request(b"x", nonce=7, cert_req=False),
                   timestamp_request(b"x", policy="1.3.6.1.4.1.57264.2"),
                   tsp.TimeStampReq({"version": "v1", "message_imprint": {
                       "hash_algorithm": {"algorithm": "sha384"},
                       "hashed_message": hashlib.sha384(b"x").digest()}}).dump(),
                   timestamp_request(b"x", policy="1.2.3")]
    policies = _policy_docs()
    receipts = [_json(log.receipt(i)) for i in range(len(log.tree.entries))]
    receipts += [
        _json({"receipt": log.receipt(1), "envelope": log.envelope, "artifact": b64encode(fx.ARTIFACT),
               "signers": [log.signer]}),
        _json({"receipt": log.receipt(2), "artifact": b64encode(fx.ARTIFACT)}),
        _json({"receipt": log.receipt(3), "artifact": b64encode(fx.ARTIFACT), "signers": [log.signer]}),
        _json({"receipt": log.receipt(4), "envelope": orjson.loads(rekor_subs[5].envelope or b"null"),
               "artifact": b64encode(fx.ARTIFACT)}),
        *(_json({"receipt": log.receipt(i), "artifact": b64encode(fx.ARTIFACT)}) for i in (6, 7, 8)),
    ]
    other = key_attestation("other.example/log")
    tpm_docs = [key_attestation(), key_attestation(ak_certificate=False), other,
                key_attestation(key_public=fx.tpmt_public(fx.p256("log ecdsa").public_key(), fx.KEY_ATTRS))]
    frames = [encode(["a", 1, b"entry bytes", None]), encode(["a", 2, b"\x01\x01{}", b'{"payload":""}']),
              encode(["s", 3]), encode(["b", 12, b"checkpoint\n", [[1, 11, True], [2, 4, False]]]),
              encode(["e", 4, "entry_too_large", "too large"]), encode(["s", 5, "# metrics\n"])]
    entries = [b"", b"x", bytes(300), *(b"e%d" % i for i in range(5))]
    return {
        "encoding": [b"0", b"18446744073709551615", b"18446744073709551616", b"007",
                     b64encode(bytes(range(32))).encode(), b"AA==", b"AB==", b"-_8", b"+/8="],
        "note": [EXAMPLE_NOTE, note, cosign(note, list(fx.WITNESSES)), fx.STORED.note,
                 sign_note("a note\nwith two lines\n", [Ed25519Signer("unknown.example", fx.seed("x"))])],
        "keys": [EXAMPLE_VKEY.encode(), *(v.vkey().encode() for v in fx.NOTE_VERIFIERS),
                 fx.LOG.skey().encode(), (fx.LOG.skey() + "\n").encode()],
        "checkpoint": [note, signed_checkpoint(tree, 3), fx.STORED.note,
                       sign_note(f"{fx.ORIGIN}\n0\n{b64encode(EMPTY_ROOT)}\n", [fx.LOG]),
                       tree.checkpoint().text().encode(), b"origin\n18446744073709551615\n" +
                       b64encode(bytes(32)).encode() + b"\next 1\next 2\n"],
        "cosigned": _cosigned_seeds(),
        "witness": _witness_seeds(),
        "tile_path": [s.encode() for s in (
            "tile/0/000", "tile/0/x001/234.p/7", "tile/entries/x123/x456/789", "tile/63/000.p/255",
            "tile/3/x001/000", "tile/entries/000.p/1", "x001/234", "000", "tile/7/x072/057/594/037/927/935")],
        "entry_bundle": [tiles.encode_bundle(entries), tiles.encode_bundle([b"a" * 256] * 256),
                         b"".join(log.tree.read([(0, i) for i in range(8)]))],
        "entries": bodies,
        "envelope": [_json(e) for e in envs] + [r for s in rekor_subs if (r := s.envelope)],
        "statement": statements,
        "leaf": list(log.tree.entries),
        "rekor_leaf": [s.leaf for s in rekor_subs],
        "rekor": [_json(r) for r in rekor_reqs],
        "receipt": receipts,
        "policy": [_json(p) for p in policies],
        "policy_file": [policy_toml(p).encode() for p in (fx.POLICY_ANY, fx.POLICY_WITNESSED,
                                                          fx.TPM_POLICY_PINNED, fx.TPM_POLICY_CA)]
                       + [_json(policies[0])],
        "evidence": _evidence_seeds(),
        "tpm_structures": [fx.AK_PUBLIC, fx.KEY_PUBLIC, tpmt_signature(b"x"),
                           certify_info(fx.KEY_PUBLIC, qualifying_data(fx.ORIGIN))],
        "tpm_attestation": [_json(d) for d in tpm_docs],
        "sigstore_bundle": [_json(b) for b in bundles],
        "trusted_root": [_json(trusted_root([], [tsa_entry(fx.TSA_CHAIN, "https://tsa.fuzz.example")])),
                         _json(trusted_root([], []))],
        "timestamp": [*stamps, fx.TSA.respond(b"not a request")],
        "tsa_request": ts_requests,
        "wire": [b"\x00" + b"".join(frames), b"\x05" + frames[0], b"\x1e" + frames[3] + frames[4]],
    }


def write(seeds: dict[str, list[bytes]], root: Path = CORPUS) -> dict[str, int]:
    """Write the seeds as corpus files; returns how many were new per target."""
    added: dict[str, int] = {}
    for name, items in seeds.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        added[name] = 0
        for data in items:
            path = d / sha1_name(data)
            if not path.exists():
                path.write_bytes(data)
                added[name] += 1
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.seeds", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=CORPUS, help="corpus root (default: fuzz/corpus)")
    args = parser.parse_args(argv)
    seeds = build()
    from fuzz.targets import TARGETS

    missing = set(TARGETS) - set(seeds)
    if missing:
        print(f"no seeds for {sorted(missing)}", file=sys.stderr)
        return 1
    for name, n in write(seeds, args.out).items():
        print(f"{name:16} {n} new of {len(seeds[name])} seeds")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MalformedError as exc:  # a seed the project's own code refuses: the seeds are wrong
        sys.exit(f"fuzz.seeds: {exc}")
