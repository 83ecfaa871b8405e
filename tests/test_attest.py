"""Unit tests of the attestation core (client/attest.py) and RFC 8785 JCS (client/jcs.py).

Expected leaves and canonical envelopes are rebuilt here independently (json.dumps with sorted
keys, which equals JCS for the ASCII keys tlog's records use) and compared byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, rsa, utils, x25519
from hypothesis import given, settings
from hypothesis import strategies as st

from client import attest, jcs
from client.attest import (
    EntryError,
    EntrySignatureError,
    StatementMismatchError,
    UnsupportedKeyError,
)
from client.jcs import canonicalize
from tests.attestkit import (
    DIGEST_KEY_TYPES,
    INTOTO,
    KEY_TYPES,
    PSS_DIGEST,
    SLSA,
    STATEMENT_V1,
    Signer,
    b64,
    envelope,
    hashedrekord,
    make_signer,
    oversized_statement,
    pae,
    public_pem,
    self_signed_cert_pem,
    sha256_hex,
    statement,
)

SUBJECT_A = sha256_hex(b"artifact a")
SUBJECT_B = sha256_hex(b"artifact b")

# specs.md §8.5: the DSSE protocol.md vector (ECDSA P-256, raw r||s signature).
VECTOR_X = 46950820868899156662930047687818585632848591499744589407958293238635476079160
VECTOR_Y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
VECTOR_TYPE = "http://example.com/HelloWorld"
VECTOR_PAYLOAD_B64 = "aGVsbG8gd29ybGQ="
VECTOR_SIG = "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    """One fresh key of every supported type."""
    return {name: make_signer(name) for name in KEY_TYPES}


def _jcs_ref(value: Any) -> bytes:
    """JCS for ASCII-keyed values: sorted keys, no whitespace, UTF-8 (an independent oracle)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sig_record(s: Signer, sig: bytes) -> dict[str, str]:
    return {"key": b64(s.der), "sig": b64(sig), "signer": s.signer_id}


def _code(exc_info: pytest.ExceptionInfo[Any]) -> str:
    return exc_info.value.code  # type: ignore[no-any-return]


# --- DSSE PAE and the spec vector -----------------------------------------------------------

def test_pae_vector() -> None:
    want = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert attest.pae(VECTOR_TYPE, b"hello world") == want
    assert pae(VECTOR_TYPE, b"hello world") == want
    # Lengths are byte lengths of UTF-8, in decimal without leading zeros.
    assert attest.pae("t\u00e9", b"") == b"DSSEv1 3 t\xc3\xa9 0 "
    assert attest.pae("x", bytes(1000)) == b"DSSEv1 1 x 1000 " + bytes(1000)


def _vector_keypublic_pem() -> str:
    key = ec.EllipticCurvePublicNumbers(VECTOR_X, VECTOR_Y, ec.SECP256R1()).public_key()
    return public_pem(key)


def test_dsse_spec_vector_verifies() -> None:
    pem = _vector_keypublic_pem()
    key = attest.load_public_key(pem)
    assert key.kind == "ecdsa-p256"
    raw = base64.b64decode(VECTOR_SIG)
    assert len(raw) == 64  # raw r || s
    msg = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert attest.verify_message(key, raw, msg)
    # The same signature DER-encoded verifies too; neither form verifies other bytes.
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    assert attest.verify_message(key, der, msg)
    assert not attest.verify_message(key, raw, msg + b"!")
    assert not attest.verify_message(key, raw, b"hello world")  # the payload alone is not signed
    flipped = bytes([raw[0] ^ 1]) + raw[1:]
    assert not attest.verify_message(key, flipped, msg)

    doc = {"payload": VECTOR_PAYLOAD_B64, "payloadType": VECTOR_TYPE,
           "signatures": [{"keyid": "", "sig": VECTOR_SIG}]}
    env = attest.parse_envelope(doc)
    assert env.payload == b"hello world" and env.payload_type == VECTOR_TYPE
    verified = attest.verify_envelope(env, [key])
    assert [(k.der, s) for k, s in verified] == [(key.der, raw)]
    # URL-safe, unpadded encodings of the same values decode to the same envelope.
    url = {"payload": VECTOR_PAYLOAD_B64.rstrip("="), "payloadType": VECTOR_TYPE,
           "signatures": [{"sig": base64.urlsafe_b64encode(raw).decode().rstrip("=")}]}
    assert attest.parse_envelope(url) == env

    sub = attest.check_dsse(doc, [pem])
    assert sub.canonical == _jcs_ref({"payload": VECTOR_PAYLOAD_B64, "payloadType": VECTOR_TYPE,
                                      "signatures": [{"keyid": "", "sig": VECTOR_SIG}]})
    info = attest.parse_leaf(sub.leaf)
    assert info is not None and info.kind == attest.KIND_DSSE
    assert "statement" not in info.record  # not an in-toto payloadType
    assert info.record["payload_sha256"] == sha256_hex(b"hello world")
    assert info.record["attestation"] == sha256_hex(sub.canonical)
    assert attest.check_dsse(url, [pem]) == sub

    bad = {**doc, "signatures": [{"keyid": "", "sig": b64(flipped)}]}
    with pytest.raises(EntrySignatureError) as ei:
        attest.check_dsse(bad, [pem])
    assert _code(ei) == "signature_invalid"


# --- round trips with fresh keys of every type ----------------------------------------------

@pytest.mark.parametrize("kind", KEY_TYPES)
def test_dsse_round_trip(signers: dict[str, Signer], kind: str) -> None:
    s = signers[kind]
    payload = statement([SUBJECT_A, {"sha256": SUBJECT_B, "sha512": "ab" * 64}],
                        predicate={"builder": {"id": kind}})
    env = envelope(payload, [s])
    key = attest.load_public_key(s.pem)
    assert key.kind == ("rsa" if kind.startswith("rsa") else kind)
    assert key.der == s.der and key.digest == s.signer_id
    sig = base64.b64decode(env["signatures"][0]["sig"])
    assert attest.verify_message(key, sig, pae(INTOTO, payload))
    assert not attest.verify_message(key, sig, pae(INTOTO, payload + b" "))

    sub = attest.check_dsse(env, [s.pem])
    canonical = _jcs_ref({"payload": b64(payload), "payloadType": INTOTO,
                          "signatures": [{"keyid": kind, "sig": b64(sig)}]})
    assert sub.canonical == canonical
    record = {
        "attestation": sha256_hex(canonical),
        "payload_sha256": sha256_hex(payload),
        "payload_type": INTOTO,
        "signatures": [_sig_record(s, sig)],
        "statement": {"predicate_type": SLSA,
                      "subjects": [{"digest": {"sha256": SUBJECT_A}},
                                   {"digest": {"sha256": SUBJECT_B, "sha512": "ab" * 64}}],
                      "subjects_total": 2},
    }
    assert sub.leaf == b"\x01\x01" + _jcs_ref(record)
    info = attest.parse_leaf(sub.leaf)
    assert info is not None and info.record == record
    assert attest.search_keys(sub.leaf) == sorted([
        ("predicate_type", SLSA), ("signer", s.signer_id), ("subject", f"sha256:{SUBJECT_A}"),
        ("subject", f"sha256:{SUBJECT_B}"), ("subject", f"sha512:{'ab' * 64}")])

    # Another encoding of the same envelope (URL-safe unpadded base64, other field order, an
    # unknown field) gives the same canonical form and the same leaf.
    url = {"payloadType": INTOTO, "payload": base64.urlsafe_b64encode(payload).decode().rstrip("="),
           "signatures": [{"sig": base64.urlsafe_b64encode(sig).decode().rstrip("="),
                           "keyid": kind}], "unknown": "ignored"}
    assert attest.check_dsse(url, [s.pem]) == sub


@pytest.mark.parametrize("kind", DIGEST_KEY_TYPES)
def test_hashedrekord_round_trip(signers: dict[str, Signer], kind: str) -> None:
    s = signers[kind]
    digest = hashlib.sha256(b"the artifact " + kind.encode()).digest()
    doc = hashedrekord(digest, s)
    leaf = attest.check_hashedrekord(doc)
    record = {"digest": {"sha256": digest.hex()},
              "signature": _sig_record(s, base64.b64decode(doc["signature"]))}
    assert leaf == b"\x01\x02" + _jcs_ref(record)
    info = attest.parse_leaf(leaf)
    assert info is not None and info.kind == attest.KIND_HASHEDREKORD and info.record == record
    assert attest.search_keys(leaf) == [("signer", s.signer_id), ("subject", f"sha256:{digest.hex()}")]
    key = attest.load_public_key(s.pem)
    assert attest.verify_digest(key, base64.b64decode(doc["signature"]), digest)
    # Over another digest, or with another key of the same type: signature_invalid.
    other = hashlib.sha256(b"another artifact").digest()
    with pytest.raises(EntrySignatureError) as ei:
        attest.check_hashedrekord({**doc, "digest": {"sha256": other.hex()}})
    assert _code(ei) == "signature_invalid"
    with pytest.raises(EntrySignatureError):
        attest.check_hashedrekord({**doc, "verifier": make_signer("ecdsa-p256").pem})


def test_ecdsa_raw_signatures_accepted(signers: dict[str, Signer]) -> None:
    """DSSE allows ECDSA signatures as raw r||s too (the spec vector uses one)."""
    for kind, size in (("ecdsa-p256", 32), ("ecdsa-p384", 48)):
        s = signers[kind]
        payload = statement([SUBJECT_A])
        env = envelope(payload, [s])
        r, ss = utils.decode_dss_signature(base64.b64decode(env["signatures"][0]["sig"]))
        raw = r.to_bytes(size, "big") + ss.to_bytes(size, "big")
        env["signatures"][0]["sig"] = b64(raw)
        sub = attest.check_dsse(env, [s.pem])
        info = attest.parse_leaf(sub.leaf)
        assert info is not None and info.record["signatures"][0]["sig"] == b64(raw)


def test_hashedrekord_ed25519_is_unsupported(signers: dict[str, Signer]) -> None:
    s = signers["ed25519"]
    digest = hashlib.sha256(b"x").digest()
    doc = {"digest": {"sha256": digest.hex()}, "signature": b64(s.private.sign(digest)),
           "verifier": s.pem}
    with pytest.raises(UnsupportedKeyError) as ei:
        attest.check_hashedrekord(doc)
    assert _code(ei) == "unsupported_key"
    with pytest.raises(UnsupportedKeyError):
        attest.verify_digest(attest.load_public_key(s.pem), s.private.sign(digest), digest)


@pytest.mark.parametrize(("field", "value"), [
    ("digest", {"sha256": "AB" * 32}),
    ("digest", {"sha256": "ab" * 31}),
    ("digest", {"sha512": "ab" * 64}),
    ("digest", {"sha256": "ab" * 32, "sha512": "ab" * 64}),
    ("digest", "ab" * 32),
    ("signature", "not base64!"),
    ("signature", "AAAA AAAA"),
    ("signature", ""),
    ("signature", 5),
    ("verifier", None),
    ("extra", "x"),
])
def test_hashedrekord_malformed(signers: dict[str, Signer], field: str, value: Any) -> None:
    doc = hashedrekord(hashlib.sha256(b"m").digest(), signers["ecdsa-p256"])
    doc[field] = value
    with pytest.raises(EntryError) as ei:
        attest.check_hashedrekord(doc)
    assert _code(ei) == "malformed_entry"


# --- keys -----------------------------------------------------------------------------------

UNSUPPORTED_KEYS = {
    "dsa": lambda: public_pem(dsa.generate_private_key(1024).public_key()),
    "rsa1024": lambda: public_pem(rsa.generate_private_key(65537, 1024).public_key()),
    "ec-p521": lambda: public_pem(ec.generate_private_key(ec.SECP521R1()).public_key()),
    "ec-secp256k1": lambda: public_pem(ec.generate_private_key(ec.SECP256K1()).public_key()),
    "ec-p224": lambda: public_pem(ec.generate_private_key(ec.SECP224R1()).public_key()),
    "x25519": lambda: public_pem(x25519.X25519PrivateKey.generate().public_key()),
    "ed448": lambda: public_pem(ed448.Ed448PrivateKey.generate().public_key()),
    "private-key-pem": lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode(),
    "certificate-pem": self_signed_cert_pem,
    "garbage": lambda: "hello, I am a key",
    "garbage-in-armor": lambda: "-----BEGIN PUBLIC KEY-----\nZ2FyYmFnZQ==\n-----END PUBLIC KEY-----\n",
    "empty": lambda: "",
    "two-keys": lambda: (public_pem(ec.generate_private_key(ec.SECP256R1()).public_key())
                         + public_pem(ec.generate_private_key(ec.SECP256R1()).public_key())),
    "non-ascii": lambda: "-----BEGIN PUBLIC KEY-----\n\u00e9\n-----END PUBLIC KEY-----\n",
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED_KEYS))
@pytest.mark.filterwarnings("ignore:DSA is deprecated")  # cryptography >= 51 warns on making one
def test_unsupported_keys(signers: dict[str, Signer], name: str) -> None:
    pem = UNSUPPORTED_KEYS[name]()
    with pytest.raises(UnsupportedKeyError) as ei:
        attest.load_public_key(pem)
    assert _code(ei) == "unsupported_key"
    # Through both submission kinds as well.
    env = envelope(statement([SUBJECT_A]), [signers["ed25519"]])
    with pytest.raises(UnsupportedKeyError):
        attest.check_dsse(env, [signers["ed25519"].pem, pem])
    doc = hashedrekord(hashlib.sha256(b"k").digest(), signers["ecdsa-p256"])
    with pytest.raises(UnsupportedKeyError):
        attest.check_hashedrekord({**doc, "verifier": pem})


@pytest.mark.parametrize("verifiers", [None, "pem", [], [5], ["x"] * 9, {"a": 1}])
def test_malformed_verifier_lists(signers: dict[str, Signer], verifiers: Any) -> None:
    env = envelope(statement([SUBJECT_A]), [signers["ed25519"]])
    with pytest.raises(EntryError) as ei:
        attest.check_dsse(env, verifiers)
    assert _code(ei) == "malformed_entry"


def test_supported_rsa_sizes() -> None:
    key = attest.load_public_key(public_pem(rsa.generate_private_key(65537, 2048).public_key()))
    assert key.kind == "rsa"
    # Whitespace around the armor is tolerated; the DER is what identifies the key.
    again = attest.load_public_key("\n  " + public_pem(key.key) + "\n\n")
    assert again.der == key.der and again.digest == "sha256:" + sha256_hex(key.der)


# --- signatures that do not verify ----------------------------------------------------------

def test_signature_over_other_bytes(signers: dict[str, Signer]) -> None:
    for s in signers.values():
        payload = statement([SUBJECT_A])
        env = envelope(payload, [s])
        env["payload"] = b64(statement([SUBJECT_B]))  # signed one Statement, sends another
        with pytest.raises(EntrySignatureError) as ei:
            attest.check_dsse(env, [s.pem])
        assert _code(ei) == "signature_invalid"
        # Signing the payload itself instead of the PAE is a classic mistake: refused.
        raw_signed = {"payload": b64(payload), "payloadType": INTOTO,
                      "signatures": [{"sig": b64(s.sign_message(payload))}]}
        with pytest.raises(EntrySignatureError):
            attest.check_dsse(raw_signed, [s.pem])
        # The payloadType is signed too.
        other_type = envelope(payload, [s], payload_type="application/vnd.in-toto.x+json")
        with pytest.raises(EntrySignatureError):
            attest.check_dsse({**other_type, "payloadType": INTOTO}, [s.pem])


def test_key_that_did_not_sign(signers: dict[str, Signer]) -> None:
    env = envelope(statement([SUBJECT_A]), [signers["ecdsa-p256"]])
    others = [s.pem for k, s in signers.items() if k != "ecdsa-p256"]
    with pytest.raises(EntrySignatureError) as ei:
        attest.check_dsse(env, others)
    assert _code(ei) == "signature_invalid"
    with pytest.raises(EntrySignatureError):
        attest.check_dsse(env, [make_signer("ecdsa-p256").pem])


def test_leaf_holds_only_verified_signatures(signers: dict[str, Signer]) -> None:
    a, b, c = signers["ed25519"], signers["ecdsa-p256"], signers["rsa2048-pkcs1"]
    payload = statement([SUBJECT_A])
    env = envelope(payload, [a, b, c])
    env["signatures"].insert(1, {"keyid": "junk", "sig": b64(b"\x01" * 64)})
    # b signed but its key is not supplied; an extra supplied key signed nothing.
    extra = make_signer("ecdsa-p384")
    sub = attest.check_dsse(env, [c.pem, extra.pem, a.pem])
    info = attest.parse_leaf(sub.leaf)
    assert info is not None
    assert [sg["signer"] for sg in info.record["signatures"]] == [a.signer_id, c.signer_id]
    assert [sg["sig"] for sg in info.record["signatures"]] == [
        env["signatures"][0]["sig"], env["signatures"][3]["sig"]]
    signers_found = [t for f, t in attest.search_keys(sub.leaf) if f == "signer"]
    assert sorted(signers_found) == sorted([a.signer_id, c.signer_id])
    # The canonical envelope keeps every signature, verified or not (the leaf commits to it).
    assert len(orjson.loads(sub.canonical)["signatures"]) == 4
    assert info.record["attestation"] == sha256_hex(sub.canonical)


# --- malformed envelopes --------------------------------------------------------------------

def _good_env() -> dict[str, Any]:
    return {"payload": "aGVsbG8gd29ybGQ=", "payloadType": VECTOR_TYPE,
            "signatures": [{"keyid": "", "sig": VECTOR_SIG}]}


def _without(key: str) -> dict[str, Any]:
    env = _good_env()
    del env[key]
    return env


def _with(**changes: Any) -> dict[str, Any]:
    return {**_good_env(), **changes}


def _sig(**changes: Any) -> dict[str, Any]:
    return _with(signatures=[{"keyid": "", "sig": VECTOR_SIG, **changes}])


MALFORMED_ENVELOPES = {
    "not-an-object": ["payload", "payloadType", "signatures"],
    "null": None,
    "string": '{"payload": "aGVsbG8="}',
    "no-payload": _without("payload"),
    "no-payloadType": _without("payloadType"),
    "no-signatures": _without("signatures"),
    "payload-not-string": _with(payload=5),
    "payload-null": _with(payload=None),
    "payloadType-not-string": _with(payloadType=["x"]),
    "payloadType-empty": _with(payloadType=""),
    "payloadType-control-char": _with(payloadType="text/plain\n"),
    "payloadType-too-long": _with(payloadType="x" * 257),
    "signatures-not-list": _with(signatures={"sig": VECTOR_SIG}),
    "signatures-empty": _with(signatures=[]),
    "too-many-signatures": _with(signatures=[{"sig": VECTOR_SIG}] * 17),
    "signature-not-object": _with(signatures=[VECTOR_SIG]),
    "sig-missing": _sig(sig=None),
    "sig-not-string": _sig(sig=1234),
    "sig-empty": _sig(sig=""),
    "sig-too-long": _sig(sig=b64(bytes(1025))),
    "keyid-not-string": _sig(keyid=7),
    "payload-bad-base64-char": _with(payload="aGVsbG8gd29ybGQ!"),
    "payload-whitespace": _with(payload="aGVsbG8g d29ybGQ="),
    "payload-newline": _with(payload="aGVsbG8g\nd29ybGQ="),
    "payload-truncated": _with(payload="aGVsbG8gd29ybGQ=MA"),
    "payload-one-char-over": _with(payload="aGVsbG8gd29ybGQ"[:13]),
    "payload-nonzero-tail-bits": _with(payload="aGVsbG8gd29ybGR="),
    "payload-mixed-alphabets": _with(payload="ab+_"),
    "payload-padding-in-middle": _with(payload="aGVs=bG8gd29ybGQ="),
    "sig-bad-base64": _sig(sig="%%%%"),
    "sig-mixed-alphabets": _sig(sig="A3Jq-QGt/" + VECTOR_SIG[9:]),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_ENVELOPES))
def test_malformed_envelopes(name: str) -> None:
    doc = MALFORMED_ENVELOPES[name]
    with pytest.raises(EntryError) as ei:
        attest.parse_envelope(doc)
    assert _code(ei) == "malformed_envelope"
    with pytest.raises(EntryError) as ei:
        attest.check_dsse(doc, [_vector_keypublic_pem()])
    assert _code(ei) == "malformed_envelope"


def test_sixteen_signatures_is_the_limit(signers: dict[str, Signer]) -> None:
    s = signers["ed25519"]
    ecdsa = signers["ecdsa-p256"]  # ECDSA signatures are randomised: 16 distinct ones
    env = envelope(statement([SUBJECT_A]), [ecdsa] * 16)
    sub = attest.check_dsse(env, [ecdsa.pem])
    info = attest.parse_leaf(sub.leaf)
    assert info is not None and len(info.record["signatures"]) == 16
    # The same (deterministic Ed25519) signature repeated is recorded once.
    same = envelope(statement([SUBJECT_A]), [s] * 16)
    info = attest.parse_leaf(attest.check_dsse(same, [s.pem]).leaf)
    assert info is not None and len(info.record["signatures"]) == 1
    env["signatures"].append(env["signatures"][0])
    with pytest.raises(EntryError) as ei:
        attest.check_dsse(env, [s.pem])
    assert _code(ei) == "malformed_envelope"


# --- in-toto Statements ---------------------------------------------------------------------

def _stmt(**changes: Any) -> bytes:
    doc = {"_type": STATEMENT_V1, "subject": [{"name": "a", "digest": {"sha256": SUBJECT_A}}],
           "predicateType": SLSA, "predicate": {}}
    doc.update(changes)
    return orjson.dumps({k: v for k, v in doc.items() if v is not ...})


MISMATCHED_STATEMENTS = {
    "not-json": b"this is not JSON",
    "truncated-json": _stmt()[:-5],
    "invalid-utf8": b'{"_type": "\xff"}',
    "json-array": b"[1, 2, 3]",
    "json-string": b'"https://in-toto.io/Statement/v1"',
    "wrong-type": _stmt(_type="https://in-toto.io/Statement/v2"),
    "no-type": _stmt(_type=...),
    "type-not-string": _stmt(_type=1),
    "no-subjects-key": _stmt(subject=...),
    "no-subjects": _stmt(subject=[]),
    "subject-not-list": _stmt(subject={"name": "a", "digest": {"sha256": SUBJECT_A}}),
    "subject-not-object": _stmt(subject=[SUBJECT_A]),
    "subject-no-digest": _stmt(subject=[{"name": "a"}]),
    "subject-empty-digest": _stmt(subject=[{"name": "a", "digest": {}}]),
    "uppercase-hex": _stmt(subject=[{"name": "a", "digest": {"sha256": SUBJECT_A.upper()}}]),
    "non-hex-digest": _stmt(subject=[{"digest": {"sha256": "g" * 64}}]),
    "short-sha256": _stmt(subject=[{"digest": {"sha256": SUBJECT_A[:-2]}}]),
    "digest-not-string": _stmt(subject=[{"digest": {"sha256": 5}}]),
    "bad-algorithm-name": _stmt(subject=[{"digest": {"sha 256": SUBJECT_A}}]),
    "empty-digest-value": _stmt(subject=[{"digest": {"gitCommit": ""}}]),
    "name-not-string": _stmt(subject=[{"name": 5, "digest": {"sha256": SUBJECT_A}}]),
    "second-subject-bad": _stmt(subject=[{"digest": {"sha256": SUBJECT_A}}, {"digest": {}}]),
    "no-predicate-type": _stmt(predicateType=...),
    "empty-predicate-type": _stmt(predicateType=""),
}


@pytest.mark.parametrize("name", sorted(MISMATCHED_STATEMENTS))
def test_statement_mismatch(signers: dict[str, Signer], name: str) -> None:
    payload = MISMATCHED_STATEMENTS[name]
    s = signers["ed25519"]
    for ptype in (INTOTO, "application/vnd.in-toto.provenance+json"):
        env = envelope(payload, [s], payload_type=ptype)
        with pytest.raises(StatementMismatchError) as ei:
            attest.check_dsse(env, [s.pem])
        assert _code(ei) == "statement_mismatch"
    # The same bytes under a non-in-toto payloadType are just an opaque payload.
    sub = attest.check_dsse(envelope(payload, [s], payload_type="application/octet-stream"),
                            [s.pem])
    info = attest.parse_leaf(sub.leaf)
    assert info is not None and "statement" not in info.record


def test_statement_variants_accepted(signers: dict[str, Signer]) -> None:
    s = signers["ed25519"]
    v01 = _stmt(_type="https://in-toto.io/Statement/v0.1", predicate=...)
    sub = attest.check_dsse(envelope(v01, [s]), [s.pem])
    info = attest.parse_leaf(sub.leaf)
    assert info is not None and info.record["statement"]["subjects_total"] == 1
    # Unknown fields are ignored; names are not copied; non-sha256 algorithms are kept.
    odd = _stmt(subject=[{"name": "x", "uri": "u", "digest": {"gitCommit": "abc123"}}], extra=[1])
    sub = attest.check_dsse(envelope(odd, [s], payload_type="application/vnd.in-toto.odd+json"),
                            [s.pem])
    assert ("subject", "gitCommit:abc123") in attest.search_keys(sub.leaf)
    info = attest.parse_leaf(sub.leaf)
    assert info is not None and info.record["statement"]["subjects"] == [
        {"digest": {"gitCommit": "abc123"}}]


# --- leaves ---------------------------------------------------------------------------------

def test_leaf_is_deterministic_and_canonical(signers: dict[str, Signer]) -> None:
    s = signers["ecdsa-p256"]
    env = envelope(statement([SUBJECT_B, SUBJECT_A], predicate={"z": 1, "a": [True, None]}), [s])
    first = attest.check_dsse(env, [s.pem])
    assert attest.check_dsse(json.loads(json.dumps(env)), [s.pem]) == first
    leaf = first.leaf
    assert leaf[:2] == b"\x01\x01"
    info = attest.parse_leaf(leaf)
    assert info is not None
    assert canonicalize(info.record) == leaf[2:]
    assert _jcs_ref(orjson.loads(leaf[2:])) == leaf[2:]
    # The subject order of the Statement is kept (it is what was signed).
    assert [d["digest"]["sha256"] for d in info.record["statement"]["subjects"]] == [SUBJECT_B, SUBJECT_A]

    record = orjson.loads(leaf[2:])
    not_canonical = [
        b"\x01\x01" + json.dumps(record, sort_keys=True).encode(),  # whitespace
        b"\x01\x01" + json.dumps(record, sort_keys=True, indent=1).encode(),
        b"\x01\x01" + leaf[2:] + b" ",
        b"\x01\x01 " + leaf[2:],
        b"\x01\x01" + json.dumps(dict(reversed(record.items())), separators=(",", ":")).encode(),
        b"\x01\x01" + leaf[2:].replace(b"sha256", b"sh\\u0061256", 1),  # escaped ASCII
        b"\x01\x01" + leaf[2:].replace(b'"subjects_total":2', b'"subjects_total":2.0'),
    ]
    for bad in not_canonical:
        assert bad != leaf
        assert attest.parse_leaf(bad) is None, bad[:80]
        assert attest.search_keys(bad) == []
    for other in (b"", b"\x01", b"\x01\x01", b"\x02\x01{}", b"\x01\x03{}", b"\x01\x01[]",
                  b"\x01\x01null", b"\x01\x01{", b"hello", b"\x01\x01" + b'{"a":1e3}'):
        assert attest.parse_leaf(other) is None
        assert attest.search_keys(other) == []


def test_leaf_caps_subjects_and_digests(signers: dict[str, Signer]) -> None:
    s = signers["ed25519"]
    subjects = [{"sha256": sha256_hex(b"%d" % i), "sha1": "ab" * 20, "md5": "cd" * 16,
                 "gitCommit": "ef" * 20, "sha512": "12" * 64} for i in range(100)]
    sub = attest.check_dsse(envelope(statement(subjects), [s]), [s.pem])
    info = attest.parse_leaf(sub.leaf)
    assert info is not None
    st = info.record["statement"]
    assert st["subjects_total"] == 100 and len(st["subjects"]) == attest.MAX_LEAF_SUBJECTS == 64
    # At most 4 digests per subject, the first 4 by algorithm name.
    assert [sorted(x["digest"]) for x in st["subjects"]] == [["gitCommit", "md5", "sha1", "sha256"]] * 64
    subjects_found = {t for f, t in attest.search_keys(sub.leaf) if f == "subject"}
    assert f"sha256:{sha256_hex(b'63')}" in subjects_found
    assert f"sha256:{sha256_hex(b'64')}" not in subjects_found  # beyond the cap: not indexed
    assert len([t for t in subjects_found if t.startswith("sha256:")]) == 64


def test_leaf_stays_under_the_tile_entry_limit() -> None:
    """16 RSA-4096 signatures and 1000 subjects: the leaf still fits a tile entry."""
    keys = [rsa.generate_private_key(65537, 4096) for _ in range(2)]
    payload = statement([sha256_hex(b"s%d" % i) for i in range(1000)],
                        predicate_type="https://example.com/" + "p" * 1000)
    msg = pae(INTOTO, payload)
    sigs = [{"keyid": "", "sig": b64(k.sign(msg, PSS_DIGEST, hashes.SHA256()))}
            for k in keys for _ in range(8)]
    env = {"payload": b64(payload), "payloadType": INTOTO, "signatures": sigs}
    sub = attest.check_dsse(env, [public_pem(k.public_key()) for k in keys])
    assert len(sub.leaf) < 65536
    info = attest.parse_leaf(sub.leaf)
    assert info is not None
    assert len(info.record["signatures"]) == 16
    assert len({sg["sig"] for sg in info.record["signatures"]}) == 16  # PSS is randomized
    st = info.record["statement"]
    assert len(st["subjects"]) == 64 and st["subjects_total"] == 1000


def test_leaf_always_fits_a_tile_entry(signers: dict[str, Signer]) -> None:
    """64 subjects with 4 long digests each would overflow a tile entry: the leaf copies
    subjects only while they fit its budget, and says how many the Statement had."""
    s = signers["ed25519"]
    leaf = attest.check_dsse(envelope(oversized_statement(), [s]), [s.pem]).leaf
    assert len(leaf) <= 0xFFFF
    info = attest.parse_leaf(leaf)
    assert info is not None
    st = info.record["statement"]
    assert 0 < len(st["subjects"]) < st["subjects_total"] == 64


def test_search_keys() -> None:
    s = make_signer("ecdsa-p256")
    t = make_signer("ed25519")
    payload = statement([SUBJECT_A, {"sha256": SUBJECT_A}, {"sha512": "ab" * 64}],
                        predicate_type="https://example.com/test/v1")
    sub = attest.check_dsse(envelope(payload, [s, t]), [s.pem, t.pem])
    assert attest.search_keys(sub.leaf) == [  # sorted, duplicates once
        ("predicate_type", "https://example.com/test/v1"),
        *sorted([("signer", s.signer_id), ("signer", t.signer_id)]),
        ("subject", f"sha256:{SUBJECT_A}"),
        ("subject", f"sha512:{'ab' * 64}"),
    ]
    opaque = attest.check_dsse(envelope(b"\x00bin", [t], payload_type="application/x-bin"), [t.pem])
    assert attest.search_keys(opaque.leaf) == [("signer", t.signer_id)]
    digest = hashlib.sha256(b"artifact").digest()
    leaf = attest.check_hashedrekord(hashedrekord(digest, s))
    assert attest.search_keys(leaf) == [("signer", s.signer_id), ("subject", f"sha256:{digest.hex()}")]
    # Canonical leaves of the right kind but without the expected fields index nothing.
    for rec in ({}, {"signatures": "x"}, {"statement": {"subjects": 1}}):
        assert attest.search_keys(b"\x01\x01" + canonicalize(rec)) == []
    assert attest.search_keys(b"\x01\x02" + canonicalize({"digest": {}})) == []


# --- RFC 8785 JCS ---------------------------------------------------------------------------

def test_jcs_key_order_is_utf16() -> None:
    """RFC 8785 §3.2.3: keys sort by UTF-16 code units, so U+1F600 (a surrogate pair) comes
    before U+FB33 although its code point is larger."""
    value = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
             "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control",
             "\u00f6": "Latin Small Letter O With Diaeresis"}
    out = canonicalize(value).decode()
    keys = list(json.loads(out))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    assert out == ('{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
                   '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
                   '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}')
    assert canonicalize({"b": 1, "a": 2, "aa": 3, "B": 4}) == b'{"B":4,"a":2,"aa":3,"b":1}'


def test_jcs_string_escapes() -> None:
    # RFC 8785 §3.2.2.2: "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/"
    s = "\u20ac$\u000f\nA'B\"\\\\\"/"
    assert canonicalize(s) == '"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'.encode()
    assert canonicalize("\b\f\n\r\t") == b'"\\b\\f\\n\\r\\t"'
    assert canonicalize("\x00\x1f\x7f") == b'"\\u0000\\u001f\x7f"'  # DEL is not escaped
    assert canonicalize("\u2028\ud7ff\U0010ffff") == "\"\u2028\ud7ff\U0010ffff\"".encode()
    assert canonicalize("") == b'""'
    long = "x" * 100_000 + "\n"
    assert canonicalize(long) == b'"' + b"x" * 100_000 + b'\\n"'
    for v in ("plain", "a\"b", "\\", "\x01", "é€😀", "\u0000"):
        assert orjson.loads(canonicalize(v)) == v


def test_jcs_literals_and_structure() -> None:
    assert canonicalize(None) == b"null"
    assert canonicalize(True) == b"true"
    assert canonicalize(False) == b"false"
    assert canonicalize([]) == b"[]"
    assert canonicalize({}) == b"{}"
    assert canonicalize([1, [2, {"b": None, "a": True}], "x"]) == b'[1,[2,{"a":true,"b":null}],"x"]'
    assert canonicalize((1, 2)) == b"[1,2]"
    assert canonicalize({"t": True, "one": 1}) == b'{"one":1,"t":true}'  # True is not 1


def test_jcs_integers() -> None:
    for n in (0, 1, -1, 42, 10**15, (1 << 53) - 1, -((1 << 53) - 1)):
        assert canonicalize(n) == str(n).encode()
    for n in (1 << 53, -(1 << 53), 10**30):
        with pytest.raises(ValueError):
            canonicalize(n)
        with pytest.raises(ValueError):
            canonicalize({"a": [n]})


def test_jcs_refuses_floats_and_other_types() -> None:
    for v in (1.0, 0.5, float("nan"), float("inf"), -0.0, {"a": 1.5}, [2.0], b"bytes", {1, 2}, object()):
        with pytest.raises(TypeError):
            canonicalize(v)
    for v in ({1: "a"}, {None: 1}, {("t",): 1}, {"a": 1, 2: "b"}):
        with pytest.raises(TypeError):
            canonicalize(v)


def test_jcs_matches_sorted_json_for_ascii_keys() -> None:
    value = {"signatures": [{"sig": "AA==", "key": "BB=="}], "n": -5, "ok": False, "nested": {"z": [],
             "y": {}, "x": "\u00e9\u0001"}, "payload_type": "application/vnd.in-toto+json"}
    assert canonicalize(value) == _jcs_ref(value)
    assert canonicalize(orjson.loads(canonicalize(value))) == canonicalize(value)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(_json_values)
def test_jcs_fast_path_equals_reference(value: object) -> None:
    """orjson's fast path must give the reference JCS bytes, including non-ASCII keys
    (which sort by UTF-16 code units) and control characters; so must the float-free path
    the leaf records and canonical envelopes take."""
    want = jcs.canonicalize_reference(value)
    assert jcs.canonicalize(value) == want
    assert jcs.canonicalize_record(value) == want
