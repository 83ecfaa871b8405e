"""The explorer's in-browser verifier (tlog/explorer/static/verify.js) against the Python code.

Vectors are made here with the real code: a LogStore grown through sizes 1 .. 70000 whose
checkpoints are signed by an Ed25519 and an ECDSA log key and cosigned by cosignature/v1
witnesses; the tiles and entry bundles it serves; proofs from client.merkle; mutations of all
of them, each with the outcome Python gives; hostile notes, checkpoints and verifier keys
with Python's verdict; real DSSE, hashedrekord and Rekor v2 leaves with their envelopes.
tests/js/explorer_verify_test.mjs then checks verify.js against every one of them under Node.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import random
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
from cryptography.x509.oid import NameOID

from client import merkle
from client.attest import (
    check_dsse,
    check_hashedrekord,
    load_public_key,
    pae,
    parse_leaf,
    rekor_envelope,
    search_keys,
    verify_message,
)
from client.checkpoint import parse_checkpoint_text
from client.encoding import b64encode
from client.errors import MalformedError, ProofError
from client.jcs import canonicalize
from client.note import (
    CosignatureV1Signer,
    ECDSASigner,
    ECDSAVerifier,
    Ed25519Signer,
    ecdsa_key_id,
    format_vkey,
    key_id,
    parse_note,
    parse_vkey,
    sign_note,
)
from client.policy import policy_from_dict
from client.rekor import check_create_entry
from client.tiles import entries_path, tile_path, tile_width_at, tiles_for_size
from client.verify import verify_checkpoint
from tests import attestkit, sigstorekit
from tests.conftest import ORIGIN, SEED
from tlog.storage import LogStore

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "js" / "explorer_verify_test.mjs"
SIZES = (1, 2, 3, 255, 256, 257, 1000, 70000)
NOW = 1_800_000_000
MAX_SAFE = (1 << 53) - 1

LOG = Ed25519Signer(ORIGIN, SEED)
LOG_ECDSA = ECDSASigner(ORIGIN, ec.derive_private_key(0x7106, ec.SECP256R1()))
W1 = CosignatureV1Signer("witness.example/w1", bytes([1]) * 32, clock=lambda: NOW - 100)
W2 = CosignatureV1Signer("witness.example/w2", bytes([2]) * 32, clock=lambda: NOW - 50)
W2_AHEAD = CosignatureV1Signer("witness.example/w2", bytes([2]) * 32, clock=lambda: NOW + 1000)
STRANGER = CosignatureV1Signer("witness.example/w9", bytes([9]) * 32, clock=lambda: NOW)


def b64(data: bytes) -> str:
    return b64encode(data)


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def noncanonical(text: str) -> str:
    """The same bytes in base64 with an unused low bit of the last character set."""
    body = text.rstrip("=")
    assert body != text, "needs padding (unused bits)"
    return body[:-1] + _ALPHABET[_ALPHABET.index(body[-1]) | 1] + text[len(body):]


def flip(data: bytes, pos: int = 0) -> bytes:
    out = bytearray(data)
    out[pos % len(out)] ^= 0x01
    return bytes(out)


def sign_log(text: str) -> bytes:
    return sign_note(text, [LOG, LOG_ECDSA])


def cosign(note: bytes, signers: list[Any]) -> bytes:
    n = parse_note(note)
    return sign_note(n.text, signers, existing=n.signatures)


POLICIES: dict[str, dict[str, Any]] = {
    "full": {"origin": ORIGIN, "log_keys": [LOG.verifier().vkey(), LOG_ECDSA.verifier().vkey()],
             "log_signatures": "all", "witnesses": [W1.verifier().vkey(), W2.verifier().vkey()],
             "witness_quorum": 2, "max_age_seconds": 3600},
    "ed_any": {"origin": ORIGIN, "log_keys": [LOG.verifier().vkey()], "log_signatures": "any"},
    "ecdsa_any": {"origin": ORIGIN, "log_keys": [LOG_ECDSA.verifier().vkey()], "log_signatures": "any"},
    "quorum1": {"origin": ORIGIN, "log_keys": [LOG.verifier().vkey()], "log_signatures": "any",
                "witnesses": [W1.verifier().vkey(), W2.verifier().vkey()], "witness_quorum": 1},
}


# --- attestation leaves ---------------------------------------------------------------------

def _cert(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A self-signed DER certificate for `key`."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "explorer-test")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def _padded_der(der: bytes) -> bytes:
    """The same ECDSA signature in DER whose r has a superfluous leading zero (not DER)."""
    r, s = utils.decode_dss_signature(der)

    def integer(n: int, pad: bytes = b"") -> bytes:
        body = pad + n.to_bytes(n.bit_length() // 8 + 1, "big")
        return bytes([0x02, len(body)]) + body

    body = integer(r, b"\x00") + integer(s)
    assert len(body) < 128
    return bytes([0x30, len(body)]) + body


def _small_r_signature(text: bytes) -> bytes:
    """A log ECDSA signature of `text` whose r is below 2^255, so that its padded form minus one
    zero byte is still 32 bytes: only a check for superfluous zeros can refuse it."""
    while True:
        sig = LOG_ECDSA.sign(text)
        if utils.decode_dss_signature(sig)[0] >> 255 == 0:
            return sig


def _raw_ecdsa(der: bytes, size: int) -> bytes:
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _signature_cases(record: dict[str, Any], msg: bytes) -> list[dict[str, Any]]:
    """verifySignature cases for each signature a DSSE record holds, with Python's verdict."""
    out = []
    for s in record["signatures"]:
        key = load_public_key(_pem(s["key"]))
        sig = base64.b64decode(s["sig"])
        variants = [sig, flip(sig, len(sig) // 2)]
        if key.kind.startswith("ecdsa"):
            variants += [_raw_ecdsa(sig, 32 if key.kind == "ecdsa-p256" else 48), _padded_der(sig)]
        for v in variants:
            out.append({"key": s["key"], "sig": b64(v), "msg": b64(msg), "kind": key.kind,
                        "python": verify_message(key, v, msg)})
    return out


def _pem(der_b64: str) -> str:
    lines = [der_b64[i : i + 64] for i in range(0, len(der_b64), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


def _leaf_case(name: str, leaf: bytes, envelope: bytes | None = None,
               bad_envelopes: Sequence[tuple[str, bytes, str]] = ()) -> dict[str, Any]:
    """A leaf with Python's reading of it (kind, search terms) and envelopes to check."""
    info = parse_leaf(leaf)
    kind = None if info is None else {1: "dsse", 2: "hashedrekord", 0x7B: "rekor"}[info.kind]
    case = {"name": name, "leaf": b64(leaf), "kind": kind or "raw",
            "terms": [list(t) for t in search_keys(leaf)]}
    if envelope is not None:
        if kind == "dsse":
            assert hashlib.sha256(envelope).hexdigest() == info.record["attestation"]
        elif kind == "rekor":
            assert rekor_envelope(info.rekor, envelope) is not None
        env = orjson.loads(envelope)
        payload = base64.b64decode(env["payload"])
        case["envelope"] = {"bytes": b64(envelope), "payload_type": env["payloadType"],
                            "payload": b64(payload),
                            "predicate_type": orjson.loads(payload).get("predicateType")
                            if "in-toto" in env["payloadType"] else None}
    case["bad_envelopes"] = []
    for why, blob, code in bad_envelopes:
        if kind == "rekor":  # Python refuses it too
            assert rekor_envelope(info.rekor, blob) is None, why
        elif kind == "dsse":
            assert hashlib.sha256(blob).hexdigest() != info.record["attestation"], why
        case["bad_envelopes"].append({"why": why, "bytes": b64(blob), "code": code})
    return case


def build_leaves() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(leaf cases, verifySignature cases)."""
    rng = random.Random(5)
    cases: list[dict[str, Any]] = []
    sig_cases: list[dict[str, Any]] = []

    def dsse(name: str, payload: bytes, types: list[str], payload_type: str = attestkit.INTOTO) -> bytes:
        signers = [attestkit.make_signer(t) for t in types]
        env = attestkit.envelope(payload, signers, payload_type)
        sub = check_dsse(env, [s.pem for s in signers])
        canonical = orjson.loads(sub.canonical)
        tampered = dict(canonical, payload=b64(b"{}"))
        extra_sig = dict(canonical, signatures=canonical["signatures"] * 2)
        cases.append(_leaf_case(name, sub.leaf, sub.canonical, [
            ("payload replaced", canonicalize(tampered), "envelope_mismatch"),
            ("signature repeated", canonicalize(extra_sig), "envelope_mismatch"),
            ("whitespace", sub.canonical.replace(b",", b", ", 1), "envelope_mismatch"),
        ]))
        record = orjson.loads(sub.leaf[2:])
        sig_cases.extend(_signature_cases(record, pae(payload_type, payload)))
        return sub.leaf

    digests = [rng.randbytes(32).hex() for _ in range(3)]
    leaf_a = dsse("dsse ed25519+p256+p384", attestkit.statement(digests[:1]),
                  ["ed25519", "ecdsa-p256", "ecdsa-p384"])
    dsse("dsse rsa pkcs1+pss+pss-max", attestkit.statement(digests[1:2], "https://example.com/p/v1"),
         ["rsa2048-pkcs1", "rsa3072-pss", "rsa3072-pss-max"])
    dsse("dsse many subjects and digests", attestkit.statement(
        [{"sha256": digests[0], "sha512": rng.randbytes(64).hex(), "gitCommit": "ab" * 20}, digests[2]],
        "https://in-toto.io/attestation/test-result/v0.1"), ["ed25519"])
    dsse("dsse not in-toto", b"hello world", ["ed25519"], "text/plain")

    p256 = attestkit.make_signer("ecdsa-p256")
    hr = check_hashedrekord(attestkit.hashedrekord(rng.randbytes(32), p256))
    cases.append(_leaf_case("hashedrekord", hr, None, [("any envelope", b"{}", "envelope_mismatch")]))

    # Rekor v2: a DSSE envelope logged as a hashedrekord over its PAE, a message signature,
    # a certificate verifier, a P-384 key.
    key = ec.derive_private_key(0x5157, ec.SECP256R1())
    env = sigstorekit.dsse_envelope(key, sigstorekit.statement(digests[1]))
    sub = check_create_entry(sigstorekit.dsse_request(key, env))
    stored = orjson.loads(sub.envelope)
    two_sigs = dict(stored, signatures=stored["signatures"] * 2)
    other_sig = dict(stored, signatures=[{"keyid": "", "sig": b64(flip(
        base64.b64decode(stored["signatures"][0]["sig"]), 10))}])
    other_payload = dict(stored, payload=b64(sigstorekit.statement(digests[0])))
    cases.append(_leaf_case("rekor dsse", sub.leaf, sub.envelope, [
        ("two signatures", canonicalize(two_sigs), "envelope_mismatch"),
        ("other signature", canonicalize(other_sig), "envelope_mismatch"),
        ("other payload", canonicalize(other_payload), "envelope_mismatch"),
        ("not json", b"{not json", "malformed_envelope"),
        ("no signatures", canonicalize(dict(stored, signatures=[])), "malformed_envelope"),
    ]))
    leaf_rekor = sub.leaf
    sig = base64.b64decode(stored["signatures"][0]["sig"])
    msg = pae(stored["payloadType"], base64.b64decode(stored["payload"]))
    der_key = b64(sigstorekit.spki(key))
    for s in (sig, flip(sig, 20)):
        sig_cases.append({"key": der_key, "sig": b64(s), "msg": b64(msg), "kind": "ecdsa-p256",
                          "python": verify_message(load_public_key(_pem(der_key)), s, msg)})

    req, _ = sigstorekit.hashedrekord_request(key, b"artifact bytes")
    cases.append(_leaf_case("rekor message signature", check_create_entry(req).leaf, None,
                            [("an envelope", sub.envelope, "envelope_mismatch")]))
    key384 = ec.derive_private_key(0x384, ec.SECP384R1())
    req, _ = sigstorekit.hashedrekord_request(key384, b"artifact bytes")
    cases.append(_leaf_case("rekor p384", check_create_entry(req).leaf))
    req, _ = sigstorekit.hashedrekord_request(key, b"certified artifact")
    req["hashedRekordRequestV002"]["signature"]["verifier"] = {
        "x509Certificate": {"rawBytes": b64(_cert(key))}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}
    cert_leaf = check_create_entry(req).leaf
    cases.append(_leaf_case("rekor certificate", cert_leaf))

    # Bytes that are not canonical leaves are raw, for both.
    rec = orjson.loads(leaf_a[2:])
    doc = orjson.loads(leaf_rekor)
    odd = noncanonical(doc["spec"]["hashedRekordV002"]["data"]["digest"])
    bad_rekor = orjson.loads(leaf_rekor)
    bad_rekor["spec"]["hashedRekordV002"]["data"]["digest"] = odd
    details = orjson.loads(leaf_rekor)
    details["spec"]["hashedRekordV002"]["signature"]["verifier"]["keyDetails"] = "PKIX_ECDSA_P384_SHA_384"
    st_float = leaf_a.replace(b'"subjects_total":1', b'"subjects_total":1.0')
    assert st_float != leaf_a
    for name, leaf in [
        ("dsse with a space", leaf_a[:3] + b" " + leaf_a[3:]),
        ("dsse pretty-printed", b"\x01\x01" + orjson.dumps(rec, option=orjson.OPT_INDENT_2)),
        ("dsse kind 0x03", b"\x01\x03" + leaf_a[2:]),
        ("dsse version 0x02", b"\x02\x01" + leaf_a[2:]),
        ("dsse extra field", b"\x01\x01" + canonicalize(dict(rec, extra="x"))),
        ("dsse statement null", b"\x01\x01" + canonicalize(dict(rec, statement=None))),
        ("dsse float", st_float),
        ("dsse bad signer", b"\x01\x01" + canonicalize(dict(rec, signatures=[
            dict(rec["signatures"][0], signer="sha256:XYZ")]))),
        ("rekor whitespace", leaf_rekor.replace(b",", b", ", 1)),
        ("rekor non-canonical base64", canonicalize(bad_rekor)),
        ("rekor wrong key details", canonicalize(details)),
        ("empty", b""),
        ("one byte", b"\x01"),
        ("raw text", b"hello"),
        ("invalid utf-8", b"\x01\x01{\"attestation\":\"\xff\"}"),
    ]:
        cases.append(_leaf_case(name, leaf))
    return cases, sig_cases


# --- the log --------------------------------------------------------------------------------

def inclusion_outcome(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> str:
    try:
        got = merkle.root_from_inclusion_proof(index, size, leaf, proof)
    except ProofError:
        return "bad_proof"
    return "ok" if got == root else "inclusion_mismatch"


def consistency_outcome(old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> str:
    try:
        merkle.verify_consistency(old, new, old_root, new_root, proof)
    except ProofError as exc:
        msg = str(exc)
        if "does not match" in msg or "different roots" in msg or "must have the empty root" in msg:
            return "consistency_mismatch"
        return "bad_proof"
    return "ok"


def build_log(tmp_path: Path, attestation_leaves: list[bytes]) -> dict[str, Any]:
    rng = random.Random(7)
    entries = list(attestation_leaves)
    entries += [rng.randbytes(rng.randrange(0, 40)) + i.to_bytes(4, "big")
                for i in range(len(entries), SIZES[-1])]
    store = LogStore(tmp_path / "db", create=True, map_size=1 << 30)
    try:
        store.initialize(ORIGIN, sign_log)
        notes: dict[int, bytes] = {}
        pos = 0
        for size in SIZES:
            while pos < size:
                n = min(size - pos, 8192)
                store.append(entries[pos : pos + n], sign_log)
                pos += n
            notes[size] = cosign(store.checkpoint(), [W1, W2])
        return _vectors_from(store, entries, notes, rng)
    finally:
        store.close()


def _vectors_from(store: LogStore, entries: list[bytes], notes: dict[int, bytes],
                  rng: random.Random) -> dict[str, Any]:
    tiles: dict[str, str] = {}
    tile_sets: dict[int, list[str]] = {}
    with store.read_txn() as txn:
        read = store.node_reader(txn)
        node = store.node_getter(txn)
        roots: dict[int, bytes] = {}

        def tree(size: int) -> None:
            """Record the tiles of tree `size` (any width up to the current one is served)."""
            if size in tile_sets:
                return
            roots[size] = merkle.tree_root(size, read)
            paths = []
            for t in tiles_for_size(size):
                path = t.path()
                paths.append(path)
                if path not in tiles:
                    data = store.tile(t.level, t.index, t.width)
                    assert data is not None
                    tiles[path] = b64(data)
            for b in range((size + 255) // 256):
                paths.append(entries_path(b, tile_width_at(0, b, size)))
            tile_sets[size] = paths

        def bundle_for(index: int, size: int) -> None:
            b = index // 256
            w = tile_width_at(0, b, size)
            path = entries_path(b, w)
            if path not in tiles:
                tiles[path] = b64(store.bundle(b, w))

        sizes = sorted({*SIZES, *(rng.randrange(1, SIZES[-1]) for _ in range(6)), 511, 512, 513,
                        65535, 65536, 65537})
        inclusion = []
        for size in sizes:
            tree(size)
            idx = {0, size - 1, size // 2, *(rng.randrange(size) for _ in range(4))}
            for i in sorted(idx):
                proof = merkle.inclusion_proof(i, size, read)
                inclusion.append({"index": i, "size": size, "entry": b64(entries[i]),
                                  "leaf_hash": b64(merkle.leaf_hash(entries[i])),
                                  "proof": [b64(h) for h in proof], "root": b64(roots[size])})
                bundle_for(i, size)

        inclusion_mut = []
        for case in inclusion[::3]:
            i, n = case["index"], case["size"]
            proof = [base64.b64decode(h) for h in case["proof"]]
            leaf, root = merkle.leaf_hash(entries[i]), roots[n]
            muts = [("root flipped", i, n, leaf, proof, flip(root, 5)),
                    ("leaf flipped", i, n, flip(leaf, 3), proof, root),
                    ("index + 1", i + 1, n, leaf, proof, root),
                    ("index - 1", i - 1, n, leaf, proof, root),
                    ("size + 1", i, n + 1, leaf, proof, root),
                    ("size - 1", i, n - 1, leaf, proof, root),
                    ("proof extended", i, n, leaf, [*proof, root], root)]
            if proof:
                k = rng.randrange(len(proof))
                muts += [("proof hash flipped", i, n, leaf,
                          [flip(h, 7) if j == k else h for j, h in enumerate(proof)], root),
                         ("proof truncated", i, n, leaf, proof[:-1], root)]
            if len(proof) > 1:
                muts.append(("proof swapped", i, n, leaf, [proof[1], proof[0], *proof[2:]], root))
            for why, mi, mn, ml, mp, mr in muts:
                if mi < 0 or mn < 0:
                    continue
                inclusion_mut.append({"why": why, "index": mi, "size": mn, "leaf_hash": b64(ml),
                                      "proof": [b64(h) for h in mp], "root": b64(mr),
                                      "expect": inclusion_outcome(mi, mn, ml, mp, mr)})

        consistency = []
        pairs = {(m, n) for n in sizes for m in (1, 2, 3, n // 3, n - 1, n, rng.randrange(1, n + 1))
                 if 0 < m <= n}
        pairs |= {(0, 1), (0, 1000)}
        for m, n in sorted(pairs):
            proof = merkle.consistency_proof(m, n, read)
            old_root = roots.get(m) or merkle.tree_root(m, read)
            consistency.append({"old": m, "new": n, "proof": [b64(h) for h in proof],
                                "old_root": b64(old_root), "new_root": b64(roots[n])})

        consistency_mut = []
        for case in consistency[::4]:
            m, n = case["old"], case["new"]
            proof = [base64.b64decode(h) for h in case["proof"]]
            o = base64.b64decode(case["old_root"])
            r = roots[n]
            muts = [("old root flipped", m, n, flip(o, 1), r, proof),
                    ("new root flipped", m, n, o, flip(r, 2), proof),
                    ("old + 1", m + 1, n, o, r, proof), ("old - 1", m - 1, n, o, r, proof),
                    ("new + 1", m, n + 1, o, r, proof), ("new - 1", m, n - 1, o, r, proof),
                    ("proof extended", m, n, o, r, [*proof, r])]
            if proof:
                k = rng.randrange(len(proof))
                muts += [("proof hash flipped", m, n, o, r,
                          [flip(h, 9) if j == k else h for j, h in enumerate(proof)]),
                         ("proof truncated", m, n, o, r, proof[:-1])]
            for why, mm, mn, mo, mr, mp in muts:
                if mm < 0 or mn < 0:
                    continue
                consistency_mut.append({"why": why, "old": mm, "new": mn, "old_root": b64(mo),
                                        "new_root": b64(mr), "proof": [b64(h) for h in mp],
                                        "expect": consistency_outcome(mm, mn, mo, mr, mp)})

        nodes = []
        for level in range(0, 17):
            for _ in range(3):
                count = SIZES[-1] >> level
                i = rng.randrange(count)
                nodes.append({"level": level, "index": i, "size": SIZES[-1], "hash": b64(node(level, i))})

        entry_cases = []
        for size in SIZES:
            for i in sorted({0, size - 1, rng.randrange(size)}):
                bundle_for(i, size)
                entry_cases.append({"index": i, "size": size, "entry": b64(entries[i])})

    return {"tiles": tiles, "tile_sets": {str(k): v for k, v in tile_sets.items()},
            "roots": {str(k): b64(v) for k, v in roots.items()},
            "notes": {str(k): v.decode() for k, v in notes.items()},
            "inclusion": inclusion, "inclusion_mutations": inclusion_mut,
            "consistency": consistency, "consistency_mutations": consistency_mut,
            "nodes": nodes, "entries": entry_cases}


# --- checkpoints under policies -------------------------------------------------------------

def _python_verdict(note: bytes, policy: dict[str, Any], now: float) -> dict[str, Any]:
    try:
        vc = verify_checkpoint(note, policy_from_dict(policy), now=now)
    except Exception as exc:  # the verdict is the exception's class
        return {"error": type(exc).__name__}
    return {"log_keys": list(vc.log_signers), "witnesses": list(vc.witnesses),
            "cosigned_at": vc.cosigned_at}


def _replace_sig(note: bytes, name: str, kid: int, change: Any) -> bytes:
    n = parse_note(note)
    sigs = []
    for s in n.signatures:
        sigs.append(type(s)(s.name, s.key_id, change(s.sig)) if (s.name, s.key_id) == (name, kid) else s)
    return type(n)(n.text, tuple(sigs)).to_bytes()


def _drop_sig(note: bytes, name: str, kid: int) -> bytes:
    n = parse_note(note)
    return type(n)(n.text, tuple(s for s in n.signatures if (s.name, s.key_id) != (name, kid))).to_bytes()


def build_checkpoint_cases(notes: dict[str, str]) -> list[dict[str, Any]]:
    good = notes["1000"].encode()
    log_only = sign_log(parse_note(good).text)
    cases: list[tuple[str, bytes, str, float, dict[str, Any], str | None]] = [
        # (why, note, policy, now, what verify.js must give, the Python exception or None)
        ("good", good, "full", NOW,
         {"quorumMet": True, "fresh": True, "verified": ["witness.example/w1", "witness.example/w2"]}, None),
        ("good, ed25519 only", good, "ed_any", NOW, {"quorumMet": True}, None),
        ("good, ecdsa only", good, "ecdsa_any", NOW, {"quorumMet": True}, None),
        ("good, quorum 1", cosign(log_only, [W1]), "quorum1", NOW, {"quorumMet": True}, None),
        ("stale", good, "full", NOW + 100_000, {"quorumMet": True, "fresh": False}, "StaleCheckpointError"),
        ("ed25519 log signature flipped", _replace_sig(good, ORIGIN, LOG.key_id, lambda s: flip(s, 9)),
         "full", NOW, {"code": "log_signature_invalid"}, "SignatureError"),
        ("ecdsa log signature flipped", _replace_sig(good, ORIGIN, LOG_ECDSA.key_id, lambda s: flip(s, 40)),
         "full", NOW, {"code": "log_signature_invalid"}, "SignatureError"),
        ("ecdsa signature not DER", _replace_sig(good, ORIGIN, LOG_ECDSA.key_id, lambda s: s + b"\x00"),
         "ecdsa_any", NOW, {"code": "log_signature_invalid"}, "SignatureError"),
        ("ecdsa signature with a padded integer", _replace_sig(
            good, ORIGIN, LOG_ECDSA.key_id,
            lambda s: _padded_der(_small_r_signature(parse_note(good).text.encode()))),
         "ecdsa_any", NOW, {"code": "log_signature_invalid"}, "SignatureError"),
        # A failing cosignature is reported, not thrown (Python refuses the whole note).
        ("cosignature flipped", _replace_sig(good, W1.name, W1.key_id, lambda s: flip(s, 30)),
         "full", NOW, {"quorumMet": False, "failed": ["witness.example/w1"]}, "SignatureError"),
        ("cosignature time changed", _replace_sig(good, W2.name, W2.key_id, lambda s: flip(s, 7)),
         "full", NOW, {"quorumMet": False, "failed": ["witness.example/w2"]}, "SignatureError"),
        ("cosignature flipped, quorum 1", _replace_sig(good, W1.name, W1.key_id, lambda s: flip(s, 30)),
         "quorum1", NOW, {"quorumMet": True, "failed": ["witness.example/w1"]}, "SignatureError"),
        ("cosignature dated ahead", cosign(log_only, [W1, W2_AHEAD]), "full", NOW,
         {"quorumMet": False, "future": ["witness.example/w2"]}, "PolicyError"),
        ("one cosignature", cosign(log_only, [W1]), "full", NOW, {"quorumMet": False}, "PolicyError"),
        ("stranger cosignature", cosign(good, [STRANGER]), "full", NOW,
         {"quorumMet": True, "unknown": ["witness.example/w9"]}, None),
        ("log signature repeated", parse_note(good).text.encode() + b"\n"
         + "".join(s.line() for s in parse_note(good).signatures * 2).encode(), "full", NOW,
         {"quorumMet": True}, None),
        ("ed25519 signature missing", _drop_sig(good, ORIGIN, LOG.key_id), "full", NOW,
         {"code": "log_signature_missing"}, "PolicyError"),
        ("no log signature", _drop_sig(_drop_sig(good, ORIGIN, LOG.key_id), ORIGIN, LOG_ECDSA.key_id),
         "full", NOW, {"code": "log_signature_missing"}, "UnknownKeyError"),
        ("other origin", sign_log("other.example/log\n1\n" + b64(hashlib.sha256(b"x").digest()) + "\n"),
         "ed_any", NOW, {"code": "origin_mismatch"}, "PolicyError"),
        ("signed malformed body", sign_log(f"{ORIGIN}\n007\n{b64(hashlib.sha256(b'x').digest())}\n"),
         "ed_any", NOW, {"code": "malformed_checkpoint"}, "MalformedError"),
        ("signed empty tree with a root", sign_log(f"{ORIGIN}\n0\n{b64(hashlib.sha256(b'x').digest())}\n"),
         "ed_any", NOW, {"code": "malformed_checkpoint"}, "MalformedError"),
        ("no final newline", good[:-1], "full", NOW, {"code": "malformed_note"}, "MalformedError"),
        ("CR line ends", good.replace(b"\n", b"\r\n"), "full", NOW, {"code": "malformed_note"},
         "MalformedError"),
    ]
    out = []
    for why, note, policy, now, expect, py_error in cases:
        verdict = _python_verdict(note, POLICIES[policy], now)
        assert verdict.get("error") == py_error, (why, verdict)
        out.append({"why": why, "note": b64(note), "policy": policy, "now": now, "expect": expect,
                    "python": verdict})
    bad_policy = dict(POLICIES["full"], witness_quorum=0)
    try:
        policy_from_dict(bad_policy)
        raise AssertionError("Python took a policy with witnesses and quorum 0")
    except MalformedError:
        pass
    out.append({"why": "witnesses with quorum 0", "note": b64(good), "policy_doc": bad_policy,
                "now": NOW, "expect": {"code": "bad_policy"}, "python": {"error": "MalformedError"}})
    return out


# --- hostile inputs with Python's verdict ---------------------------------------------------

def _sig_line(name: str, raw: bytes = b"\x00\x01\x02\x03sig") -> bytes:
    return f"\u2014 {name} {b64(raw)}\n".encode()


def build_hostile_notes(good: bytes) -> list[dict[str, Any]]:
    line = _sig_line("example.com/k")
    sig_b64 = b64(b"\x00\x01\x02\x03sig")
    odd_last = noncanonical(sig_b64)
    cases = {
        "good": good,
        "no final newline": good[:-1],
        "no blank line": good.replace(b"\n\n", b"\n"),
        "crlf": good.replace(b"\n", b"\r\n"),
        "cr in text": b"a\r\nb\n\n" + line,
        "tab in text": b"a\tb\n\n" + line,
        "del in text": b"a\x7fb\n\n" + line,
        "nul in text": b"a\x00b\n\n" + line,
        "empty": b"",
        "only text": b"hello\n",
        "empty signature block": b"hello\n\n",
        "blank lines in text": b"a\n\nb\n\n" + line,
        "empty text": b"\n\n" + line,
        "trailing blank line": good + b"\n",
        "no em dash": b"a\n\n- example.com/k " + sig_b64.encode() + b"\n",
        "em dash without space": b"a\n\n\xe2\x80\x94example.com/k " + sig_b64.encode() + b"\n",
        "no signature after name": b"a\n\n\xe2\x80\x94 example.com/k\n",
        "name then two spaces": b"a\n\n\xe2\x80\x94 example.com/k  " + sig_b64.encode() + b"\n",
        "base64 without padding": b"a\n\n\xe2\x80\x94 k " + sig_b64.rstrip("=").encode() + b"\n",
        "base64 not canonical": b"a\n\n\xe2\x80\x94 k " + odd_last.encode() + b"\n",
        "base64 url-safe": b"a\n\n" + _sig_line("k", b"\xfb\xff\xff\xfe\xfa").translate(
            bytes.maketrans(b"+/", b"-_")),
        "base64 standard +/": b"a\n\n" + _sig_line("k", b"\xfb\xff\xff\xfe\xfa"),
        "signature of 4 bytes": b"a\n\n" + _sig_line("k", b"\x00\x01\x02\x03"),
        "signature of 5 bytes": b"a\n\n" + _sig_line("k", b"\x00\x01\x02\x03\x04"),
        "100 signatures": b"a\n\n" + line * 100,
        "101 signatures": b"a\n\n" + line * 101,
        "invalid utf-8": b"\xff\n\n" + line,
        "overlong utf-8": b"\xc0\xaf\n\n" + line,
        "utf-8 surrogate": b"\xed\xa0\x80\n\n" + line,
        "bom": b"\xef\xbb\xbf" + good,
        "name with plus": b"a\n\n" + _sig_line("a+b"),
        "name with nbsp": b"a\n\n" + _sig_line("a\u00a0b"),
        "name with zero-width space": b"a\n\n" + _sig_line("a\u200bb"),
        "name with ideographic space": b"a\n\n" + _sig_line("a\u3000b"),
        "name with soft hyphen": b"a\n\n" + _sig_line("a\u00adb"),
        "name non-ascii": b"a\n\n" + _sig_line("w\u00eftness.example/\u00e9"),
        "name 255 bytes": b"a\n\n" + _sig_line("n" * 255),
        "name 256 bytes": b"a\n\n" + _sig_line("n" * 256),
        "name 254 bytes + 2-byte char": b"a\n\n" + _sig_line("n" * 254 + "\u00e9"),
        "em dash lines in text": b"a\n\xe2\x80\x94 x y\n\n" + line,
        "line separator in text": "a\u2028b\n\n".encode() + line,
        "stray line after signatures": b"a\n\n" + line + b"junk\n",
    }
    out = []
    for why, data in cases.items():
        try:
            n = parse_note(data)
            verdict: dict[str, Any] = {"ok": True, "body": n.text, "signatures": [
                {"name": s.name, "key_id": f"{s.key_id:08x}", "sig": b64(s.sig)} for s in n.signatures]}
        except MalformedError:
            verdict = {"ok": False}
        out.append({"why": why, "bytes": b64(data), "python": verdict})
    return out


def build_hostile_checkpoints() -> list[dict[str, Any]]:
    root = b64(hashlib.sha256(b"x").digest())
    empty = b64(hashlib.sha256(b"").digest())
    o = ORIGIN
    odd_root = noncanonical(root)
    cases = {
        "good": f"{o}\n5\n{root}\n",
        "extensions": f"{o}\n5\n{root}\next one\nLog frozen \u2014 1700000000\n",
        "leading zero": f"{o}\n05\n{root}\n",
        "plus sign": f"{o}\n+5\n{root}\n",
        "leading space": f"{o}\n 5\n{root}\n",
        "trailing space": f"{o}\n5 \n{root}\n",
        "empty size": f"{o}\n\n{root}\n",
        "underscore": f"{o}\n5_0\n{root}\n",
        "arabic digit": f"{o}\n\u0665\n{root}\n",
        "negative": f"{o}\n-1\n{root}\n",
        "hex size": f"{o}\n0x5\n{root}\n",
        "size 0, empty root": f"{o}\n0\n{empty}\n",
        "size 0, other root": f"{o}\n0\n{root}\n",
        "size 2^53-1": f"{o}\n{MAX_SAFE}\n{root}\n",
        "size 2^53": f"{o}\n{MAX_SAFE + 1}\n{root}\n",
        "size 2^64-1": f"{o}\n{(1 << 64) - 1}\n{root}\n",
        "size 2^64": f"{o}\n{1 << 64}\n{root}\n",
        "size of 21 digits": f"{o}\n{'1' * 21}\n{root}\n",
        "root of 31 bytes": f"{o}\n5\n{b64(bytes(31))}\n",
        "root of 33 bytes": f"{o}\n5\n{b64(bytes(33))}\n",
        "root without padding": f"{o}\n5\n{root.rstrip('=')}\n",
        "root not canonical": f"{o}\n5\n{odd_root}\n",
        "root url-safe": f"{o}\n5\n{b64(bytes([0xfb] * 32)).replace('+', '-')}\n",
        "root with space": f"{o}\n5\n {root}\n",
        "no final newline": f"{o}\n5\n{root}",
        "two lines": f"{o}\n5\n",
        "empty origin": f"\n5\n{root}\n",
        "empty extension": f"{o}\n5\n{root}\n\n",
        "empty extension in the middle": f"{o}\n5\n{root}\na\n\nb\n",
        "cr": f"{o}\r\n5\n{root}\n",
        "tab in origin": f"a\tb\n5\n{root}\n",
        "nul in extension": f"{o}\n5\n{root}\na\x00\n",
        "del in origin": f"a\x7fb\n5\n{root}\n",
        "origin with spaces and plus": f"a b+c\n5\n{root}\n",
        "origin non-ascii": f"\u00e9xample.com/\U0001f600\n5\n{root}\n",
        "16384 characters": f"{o}\n5\n{root}\n" + "e" * (16384 - len(f"{o}\n5\n{root}\n") - 1) + "\n",
        "16385 characters": f"{o}\n5\n{root}\n" + "e" * (16384 - len(f"{o}\n5\n{root}\n")) + "\n",
        "16384 code points, more UTF-16 units": f"{o}\n5\n{root}\n"
        + "\U0001f600" * (16384 - len(f"{o}\n5\n{root}\n") - 1) + "\n",
    }
    out = []
    for why, text in cases.items():
        try:
            cp = parse_checkpoint_text(text)
            verdict: dict[str, Any] = {"ok": True, "origin": cp.origin, "size": str(cp.size),
                                       "root": b64(cp.root), "extensions": list(cp.extensions)}
        except MalformedError:
            verdict = {"ok": False}
        # verify.js keeps sizes in JS Numbers: it refuses what Python takes above 2^53-1.
        js_ok = verdict["ok"] and int(verdict["size"]) <= MAX_SAFE
        out.append({"why": why, "text": text, "python": verdict, "js_ok": js_ok})
    return out


def build_hostile_vkeys() -> list[dict[str, Any]]:
    pub = LOG.public
    name = ORIGIN
    ed = LOG.verifier().vkey()
    k1 = ec.generate_private_key(ec.SECP256K1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    edspki = ed25519.Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    p384 = ec.derive_private_key(3, ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    p521 = ec.derive_private_key(5, ec.SECP521R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ecdsa_spki = LOG_ECDSA.spki_der
    hex_id = ed.split("+")[1]
    cases = {
        "ed25519": ed,
        "cosignature/v1": W1.verifier().vkey(),
        "ecdsa p256": LOG_ECDSA.verifier().vkey(),
        "ecdsa p384": ECDSAVerifier(name, p384).vkey(),
        "ecdsa p521": ECDSAVerifier(name, p521).vkey(),
        "c2sp example": "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        "wrong key id": ed.replace(hex_id, f"{int(hex_id, 16) ^ 1:08x}"),
        "uppercase key id": ed.replace(hex_id, hex_id.upper()),
        "7 hex digits": ed.replace(hex_id, hex_id[:7]),
        "9 hex digits": ed.replace(hex_id, hex_id + "0"),
        "base64 without padding": ed.rstrip("="),
        "unknown type 0x03": format_vkey(name, key_id(name, 3, pub), b"\x03" + pub),
        "ed25519 of 31 bytes": format_vkey(name, key_id(name, 1, pub[:31]), b"\x01" + pub[:31]),
        "empty key": f"{name}+00000000+",
        "no plus": "abc",
        "one plus": "a+12345678",
        "name with space": format_vkey("a b", key_id("a b", 1, pub), b"\x01" + pub),
        "empty name": format_vkey("", key_id("", 1, pub), b"\x01" + pub),
        "ecdsa with ed25519 spki": format_vkey(name, ecdsa_key_id(edspki), b"\x02" + edspki),
        "ecdsa secp256k1": format_vkey(name, ecdsa_key_id(k1), b"\x02" + k1),
        "ecdsa with the standard key id": format_vkey(name, key_id(name, 2, ecdsa_spki),
                                                      b"\x02" + ecdsa_spki),
        "ecdsa spki with trailing byte": format_vkey(name, ecdsa_key_id(ecdsa_spki + b"\x00"),
                                                     b"\x02" + ecdsa_spki + b"\x00"),
    }
    out = []
    for why, vkey in cases.items():
        try:
            v = parse_vkey(vkey)
            key = getattr(v, "public", None) or v.spki_der  # type: ignore[union-attr]
            verdict: dict[str, Any] = {"ok": True, "name": v.name, "key_id": f"{v.key_id:08x}",
                                       "type": v.alg, "key": b64(key)}
        except MalformedError:
            verdict = {"ok": False}
        out.append({"why": why, "vkey": vkey, "python": verdict})
    return out


def build_tile_paths() -> list[dict[str, Any]]:
    out = []
    for level, index, width in [(0, 0, 256), (0, 5, 8), (1, 1000, 256), (2, 1234067, 17),
                                (0, 123456789, 255), (63, 0, 1), (5, 999, 256), (3, 1000000, 1)]:
        out.append({"level": level, "index": index, "width": width, "path": tile_path(level, index, width)})
        out.append({"level": "entries", "index": index, "width": width, "path": entries_path(index, width)})
    return out


def build_uniform() -> dict[str, Any]:
    """Proofs in trees of up to 2^53-1 equal leaves: every node of a level has one hash, so
    the tiles of any size are made up by the Node script from `levels`."""
    levels = [merkle.leaf_hash(b"uniform")]
    for _ in range(53):
        levels.append(merkle.node_hash(levels[-1], levels[-1]))

    def read(nodes: Any) -> list[bytes]:
        return [levels[level] for level, _ in nodes]

    rng = random.Random(13)
    sizes = [(1 << 32) - 1, 1 << 32, (1 << 32) + 1, (1 << 40) + 12345, MAX_SAFE, MAX_SAFE - 1,
             rng.randrange(1 << 33, MAX_SAFE)]
    inclusion, consistency = [], []
    for size in sizes:
        root = merkle.tree_root(size, read)
        for i in sorted({0, size - 1, size // 2, (1 << 31) + 1, 1 << 32, rng.randrange(size)}):
            if i < size:
                proof = merkle.inclusion_proof(i, size, read)
                merkle.verify_inclusion(i, size, levels[0], proof, root)
                inclusion.append({"index": i, "size": size, "proof": [b64(h) for h in proof],
                                  "root": b64(root)})
        for m in sorted({1, 3, (1 << 31) + 5, 1 << 32, size - 1, rng.randrange(1, size)}):
            if m < size:
                proof = merkle.consistency_proof(m, size, read)
                old = merkle.tree_root(m, read)
                merkle.verify_consistency(m, size, old, root, proof)
                consistency.append({"old": m, "new": size, "proof": [b64(h) for h in proof],
                                    "old_root": b64(old), "new_root": b64(root)})
    return {"levels": [b64(h) for h in levels], "inclusion": inclusion, "consistency": consistency}


def build_vectors(tmp_path: Path) -> dict[str, Any]:
    leaves, sig_cases = build_leaves()
    attestation = [base64.b64decode(c["leaf"]) for c in leaves if c["kind"] != "raw"]
    log = build_log(tmp_path, attestation)
    return {
        "origin": ORIGIN, "now": NOW, "policies": POLICIES, "sizes": list(SIZES),
        **log,
        "attestation_indexes": list(range(len(attestation))),
        "checkpoints": build_checkpoint_cases(log["notes"]),
        "hostile_notes": build_hostile_notes(log["notes"]["3"].encode()),
        "hostile_checkpoints": build_hostile_checkpoints(),
        "hostile_vkeys": build_hostile_vkeys(),
        "tile_paths": build_tile_paths(),
        "leaves": leaves,
        "signatures": sig_cases,
        "uniform": build_uniform(),
    }


def test_verify_js_matches_python(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is required (scripts/setup.sh --test installs it)"
    vectors = tmp_path / "vectors.json"
    vectors.write_bytes(orjson.dumps(build_vectors(tmp_path)))
    proc = subprocess.run([node, str(SCRIPT), str(vectors)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, check=False)
    assert proc.returncode == 0, (proc.stdout[-8000:] + "\n" + proc.stderr[-8000:])
    assert "all checks passed" in proc.stdout, proc.stdout
