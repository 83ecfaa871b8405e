"""Rekor v2 entries: the CreateEntryRequest checks, the leaf bytes, and what search and the
verifier make of them (pure; the HTTP side is in test_sigstore_clients.py)."""

from __future__ import annotations

import base64
import hashlib

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from client import merkle, rekor
from client.attest import (
    EntryError,
    EntrySignatureError,
    UnsupportedKeyError,
    parse_leaf,
    search_keys,
)
from client.errors import MalformedError
from client.note import Ed25519Verifier
from client.rekorleaf import KIND_REKOR, parse_rekor_leaf
from client.sigstore_bundle import receipt_from_bundle
from tests import sigstorekit as kit

# rekor-tiles CLIENTS.md's sample entry (specs: the body field is named hashedRekordV002 by
# current servers; the sample's stale name aside, these are its values).
SAMPLE_DIGEST = "dyj4ednYHjN4/zsjjBeeLahS9slp97Z67LTAVxjrjXw="
SAMPLE_SIG = ("MEQCIB+YPa9o3SN0sQ4uduGf+mZxwFfOhFZ0Cgy+p7Vt1o2SAiAPFDHqOAJLYmvtCWOsDyNY1H4V3zm4"
              "NEDYs3NyvHh1Pg==")
SAMPLE_KEY = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2slOf8eZcj2moW2t4UFj7vCL6QpDzkDqqSUmm4OJCVvIauKLxm0aGs3V"
              "MPPfauMPaMutn0/s3jg0rroFxoicyg==")
SAMPLE_LEAF_HASH = "m5JVGx4ESzbU2kFUPgYQ9adCA7e7mjnwQRluEmGJbHU="


def _sample_request() -> dict:
    return {"hashedRekordRequestV002": {"digest": SAMPLE_DIGEST, "signature": {
        "content": SAMPLE_SIG,
        "verifier": {"publicKey": {"rawBytes": SAMPLE_KEY}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}}}}


def test_the_upstream_sample_gives_its_leaf_bytes() -> None:
    sub = rekor.check_create_entry(_sample_request())
    # The sample's leaf hash is over the stale field name; ours differs only by that name.
    stale = sub.leaf.replace(b"hashedRekordV002", b"hashedRekordV0_0_2")
    assert base64.b64encode(merkle.leaf_hash(stale)).decode() == SAMPLE_LEAF_HASH
    assert sub.leaf.startswith(b'{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{"hashedRekordV002":')
    assert parse_rekor_leaf(sub.leaf) == sub.entry
    assert parse_rekor_leaf(stale) is None


def test_proto_field_names_are_accepted_and_unknown_fields_refused() -> None:
    snake = {"hashed_rekord_request_v002": {"digest": SAMPLE_DIGEST, "signature": {
        "content": SAMPLE_SIG,
        "verifier": {"public_key": {"raw_bytes": SAMPLE_KEY}, "key_details": "PKIX_ECDSA_P256_SHA_256"}}}}
    assert rekor.check_create_entry(snake).leaf == rekor.check_create_entry(_sample_request()).leaf
    extra = _sample_request()
    extra["hashedRekordRequestV002"]["signature"]["extra"] = 1
    with pytest.raises(EntryError, match="unknown field"):
        rekor.check_create_entry(extra)
    with pytest.raises(EntryError, match="exactly one"):
        rekor.check_create_entry({})


@pytest.mark.parametrize("make", [
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: ec.generate_private_key(ec.SECP384R1()),
    lambda: ec.generate_private_key(ec.SECP521R1()),
    lambda: rsa.generate_private_key(65537, 2048),
])
def test_each_accepted_key_type_round_trips(make) -> None:
    key = make()
    req, sig = kit.hashedrekord_request(key, b"artifact bytes")
    sub = rekor.check_create_entry(req)
    info = parse_leaf(sub.leaf)
    assert info is not None and info.kind == KIND_REKOR and info.rekor == sub.entry
    assert sub.entry.signature == sig and sub.envelope is None
    signer = "sha256:" + hashlib.sha256(kit.spki(key)).hexdigest()
    assert ("signer", signer) in search_keys(sub.leaf)
    assert ("subject", sub.entry.subject) in search_keys(sub.leaf)


def test_refused_keys_say_why() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    req, _ = kit.hashedrekord_request(key, b"x")
    v = req["hashedRekordRequestV002"]["signature"]["verifier"]
    for details, match in [("PKIX_ED25519", "pure Ed25519"), ("PKIX_ED25519_PH", "Ed25519ph"),
                           ("PKIX_RSA_PSS_2048_SHA256", "RSA-PSS"), ("ML_DSA_65", "not accepted"),
                           ("PKIX_ECDSA_P384_SHA_384", "not the secp384r1 key")]:
        v["keyDetails"] = details
        with pytest.raises(UnsupportedKeyError, match=match):
            rekor.check_create_entry(req)
    ed = ed25519.Ed25519PrivateKey.generate()
    v["keyDetails"] = "PKIX_ECDSA_P256_SHA_256"
    v["publicKey"]["rawBytes"] = kit.b64(kit.spki(ed))
    with pytest.raises(UnsupportedKeyError):
        rekor.check_create_entry(req)


def test_bad_signatures_digests_and_encodings_are_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    req, _ = kit.hashedrekord_request(key, b"x")
    body = req["hashedRekordRequestV002"]
    other = kit.hashedrekord_request(key, b"y")[0]["hashedRekordRequestV002"]
    with pytest.raises(EntrySignatureError):
        rekor.check_create_entry({"hashedRekordRequestV002": {**body, "digest": other["digest"]}})
    with pytest.raises(EntryError, match="32 bytes"):
        rekor.check_create_entry({"hashedRekordRequestV002": {**body, "digest": kit.b64(b"\0" * 48)}})
    for bad in ("not base64!", "", 7, "AAA"):
        with pytest.raises(EntryError):
            rekor.check_create_entry({"hashedRekordRequestV002": {**body, "digest": bad}})


def test_a_dsse_envelope_is_logged_as_a_hashedrekord_over_its_pae() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = "ab" * 32
    env = kit.dsse_envelope(key, kit.statement(subject))
    sub = rekor.check_create_entry(kit.dsse_request(key, env))
    # Exactly the leaf sigstore-python's own hashedrekord-over-PAE request gives.
    assert sub.leaf == rekor.check_create_entry(kit.dsse_as_hashedrekord(key, env)).leaf
    assert sub.envelope is not None
    terms = search_keys(sub.leaf, sub.envelope)
    assert ("subject", f"sha256:{subject}") in terms
    assert ("predicate_type", "https://slsa.dev/provenance/v1") in terms
    assert ("subject", f"sha256:{subject}") not in search_keys(sub.leaf)  # only from the envelope
    # Another envelope stored beside the leaf gives no terms: it is not the one logged.
    other = rekor.check_create_entry(kit.dsse_request(key, kit.dsse_envelope(key, kit.statement("cd" * 32))))
    assert ("subject", "sha256:" + "cd" * 32) not in search_keys(sub.leaf, other.envelope)


def test_dsse_requests_need_one_signature_and_a_valid_statement() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    env = kit.dsse_envelope(key, kit.statement("ab" * 32))
    two = {**env, "signatures": env["signatures"] * 2}
    with pytest.raises(EntryError, match="exactly one signature"):
        rekor.check_create_entry(kit.dsse_request(key, two))
    bad = kit.dsse_envelope(key, b'{"_type": "nope"}')
    with pytest.raises(EntryError):
        rekor.check_create_entry(kit.dsse_request(key, bad))
    stranger = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(EntrySignatureError):
        rekor.check_create_entry(kit.dsse_request(stranger, env))


def test_leaf_parsing_is_strict() -> None:
    sub = rekor.check_create_entry(_sample_request())
    doc = orjson.loads(sub.leaf)
    assert parse_rekor_leaf(orjson.dumps(doc, option=orjson.OPT_INDENT_2)) is None  # not canonical
    doc["spec"]["hashedRekordV002"]["data"]["algorithm"] = "SHA2_384"
    assert parse_rekor_leaf(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)) is None
    assert parse_leaf(b"{}") is None and parse_leaf(b'{"apiVersion":"0.0.2"}') is None


def test_log_ids_follow_rekor_v2() -> None:
    seed = bytes(range(32))
    pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    v = Ed25519Verifier("log.example", pub)
    lid = rekor.log_id(v)
    assert lid == hashlib.sha256(b"log.example\n\x01" + pub).digest()
    assert int.from_bytes(lid[:4], "big") == v.key_id  # the checkpoint signature's key hint


# --- hostile input: only the typed errors, never a crash ----------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)
_FIELDS = ["hashedRekordRequestV002", "dsseRequestV002", "digest", "signature", "content", "verifier",
           "publicKey", "rawBytes", "keyDetails", "x509Certificate", "envelope", "verifiers", "payload",
           "payloadType", "signatures", "sig", "keyid"]


def _replace_somewhere(doc: object, path: list[int], value: object) -> object:
    """`doc` with one nested value (chosen by `path`) replaced by `value`."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return value
    if isinstance(doc, dict):
        key = sorted(doc)[path[0] % len(doc)]
        return {**doc, key: _replace_somewhere(doc[key], path[1:], value)}
    i = path[0] % len(doc)
    return [*doc[:i], _replace_somewhere(doc[i], path[1:], value), *doc[i + 1:]]


@settings(max_examples=300, deadline=None)
@given(path=st.lists(st.integers(0, 7), max_size=6), value=_JSON | st.sampled_from(_FIELDS))
def test_mutated_requests_get_typed_errors(path: list[int], value: object) -> None:
    for doc in (_sample_request(), kit.dsse_request(_KEY, _ENVELOPE)):
        mutated = _replace_somewhere(doc, path, value)
        try:
            sub = rekor.check_create_entry(mutated)
        except (EntryError, EntrySignatureError):
            continue
        assert parse_rekor_leaf(sub.leaf) == sub.entry  # accepted: a canonical leaf


@settings(max_examples=300, deadline=None)
@given(doc=_JSON)
def test_arbitrary_json_gets_typed_errors(doc: object) -> None:
    with pytest.raises((EntryError, EntrySignatureError)):
        rekor.check_create_entry(doc)
    with pytest.raises(MalformedError):
        receipt_from_bundle(doc)


@settings(max_examples=500, deadline=None)
@given(at=st.integers(0, 10_000), byte=st.integers(0, 255))
def test_a_changed_leaf_byte_is_never_another_entry(at: int, byte: int) -> None:
    leaf = bytearray(rekor.check_create_entry(_sample_request()).leaf)
    at %= len(leaf)
    if leaf[at] == byte:
        return
    leaf[at] = byte
    entry = parse_rekor_leaf(bytes(leaf))
    assert entry is None or entry.leaf() == bytes(leaf)


_KEY = ec.generate_private_key(ec.SECP256R1())
_ENVELOPE = kit.dsse_envelope(_KEY, kit.statement("ab" * 32))
