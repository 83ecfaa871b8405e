"""Hypothesis properties of every parser of untrusted bytes: structure-aware fuzzing in the suite.

The first property takes valid objects (fuzz.seeds: signed notes and cosigned checkpoints,
witness requests, DSSE and Rekor submissions, receipts and bundles from a real tree,
policies, TPM attestations, evidence, timestamps) and mutates them the way an attacker or a
broken peer would: bytes flipped, inserted, deleted or repeated; lines of a note dropped,
repeated, swapped, or their base64 and numbers changed; JSON fields replaced by JSON of any
other type, deleted, wrapped, copied from elsewhere, or their base64 content flipped. Each
mutant goes through the fuzz target (fuzz.targets), which allows only the documented typed
errors, or a result whose invariants hold. The rest are round trips of format/parse pairs on
generated values, and the regression property of the bundle timestamp fix.

(Existing properties elsewhere: RFC 8785 JSON in test_attest.py, query parameters in
test_codecs.py, Merkle proofs in test_merkle.py, mutated Rekor requests in test_rekor.py.)
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import tomllib
from typing import Any

import msgpack
import orjson
import pytest
from asn1crypto import tsp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client import attest, tiles, tpmattest
from client.checkpoint import Checkpoint, parse_checkpoint_text
from client.encoding import b64decode_any, b64decode_std, b64encode, parse_decimal
from client.errors import MalformedError, VerificationError
from client.jcs import canonicalize_record
from client.merkle import EMPTY_ROOT
from client.note import CosignatureV1Signer, Ed25519Signer, parse_note, sign_note, verify_note
from client.policy import TrustPolicy, policy_from_dict, policy_toml
from client.sigstore_bundle import verify_bundle
from client.timestamp import timestamp_request
from client.verify import Receipt, parse_receipt
from fuzz import fixtures as fx
from fuzz import seeds
from fuzz.mutators import flip_b64 as fuzz_flip_b64
from fuzz.mutators import json_paths, value_at
from fuzz.targets import TARGETS
from tlog.wire import FrameReader, encode
from witness.protocol import parse_request

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@functools.cache
def _seeds() -> dict[str, list[bytes]]:
    return seeds.build()


# --- mutations ------------------------------------------------------------------------------------

TOKENS = [b"\n", b"\n\n", b" ", b"=", b"+", b"/", b"-", b"_", b"0", b"\xe2\x80\x94 ", b'"', b"{", b"}",
          b"[", b"]", b",", b":", b"\x00", b"\xff", b"\xc3", b"18446744073709551616", b"old ", b"null"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12)
    | st.sampled_from(["", "AAAA", "0", "-1", "sha256", "\u2014", "\ud7ff"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)


def mutate_bytes(draw: Any, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "repeat", "truncate", "byte"]))
        pos = draw(st.integers(0, len(out)))
        if op == "flip" and out:
            out[min(pos, len(out) - 1)] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            out[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del out[pos : pos + draw(st.integers(1, 16))]
        elif op == "repeat":
            out[pos:pos] = out[pos : pos + draw(st.integers(1, 64))]
        elif op == "truncate":
            del out[pos:]
        elif op == "byte" and out:
            out[min(pos, len(out) - 1)] = draw(st.sampled_from([0x00, 0x0A, 0x20, 0x2B, 0x2F, 0x3D, 0x7F]))
    return bytes(out)


def flip_b64(draw: Any, text: str) -> str | None:
    """`text` with one bit of its base64 content flipped, in the same alphabet (the fuzzer's
    mutation, drawn by Hypothesis); None if not base64."""
    return fuzz_flip_b64(lambda n: draw(st.integers(0, n - 1)), text)


def mutate_lines(draw: Any, data: bytes) -> bytes:
    """Line-level mutations of a note, a checkpoint, a witness request or a key file."""
    lines = data.split(b"\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "repeat", "swap", "b64", "number", "blank", "bytes"]))
        if op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "repeat":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "b64":
            head, _, word = lines[i].rpartition(b" ")
            flipped = flip_b64(draw, word.decode("latin-1"))
            if flipped is not None:
                lines[i] = (head + b" " if head else b"") + flipped.encode()
        elif op == "number":
            lines[i] = draw(st.sampled_from([b"0", b"1", b"7", b"8", b"23", b"24", b"25", b"007", b"+8",
                                             b"18446744073709551615", b"18446744073709551616", b"old 8",
                                             b"old 0", b"old 99"]))
        elif op == "blank":
            lines.insert(i, b"")
        else:
            lines[i] = mutate_bytes(draw, lines[i])
    return b"\n".join(lines)


def mutate_json(draw: Any, doc: Any) -> Any:
    """Field-level mutations of a parsed JSON document (in place, on a copy)."""
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 3))):
        paths = json_paths(doc)
        path = draw(st.sampled_from(paths))
        node = value_at(doc, path)
        op = draw(st.sampled_from(["replace", "delete", "wrap", "extra", "b64", "copy", "edge"]))
        if op == "b64" and isinstance(node, str):
            new: Any = flip_b64(draw, node)
            if new is None:
                continue
        elif op == "replace":
            new = draw(JSON_VALUES)
        elif op == "wrap":
            new = [node]
        elif op == "copy":
            new = json.loads(json.dumps(value_at(doc, draw(st.sampled_from(paths)))))
        elif op == "edge":
            new = copy.deepcopy(draw(st.sampled_from([2**63, 2**64, -1, 1.5, True, "", [], {}, None, "²"])))
        elif op == "extra" and isinstance(node, dict):
            node[draw(st.text(max_size=8))] = draw(JSON_VALUES)
            continue
        elif op == "delete" and path:
            parent = value_at(doc, path[:-1])
            del parent[path[-1]]
            continue
        else:
            continue
        if not path:
            doc = new
        else:
            value_at(doc, path[:-1])[path[-1]] = new
    return doc


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


JSON_TARGETS = {"entries", "envelope", "statement", "rekor", "receipt", "policy", "evidence",
                "tpm_attestation", "sigstore_bundle", "trusted_root"}
LINE_TARGETS = {"note", "checkpoint", "cosigned", "witness", "policy_file", "keys", "tile_path"}


def mutant(draw: Any, name: str, seed: bytes) -> bytes:
    modes = ["bytes"]
    if name in JSON_TARGETS or name in ("leaf", "rekor_leaf"):
        modes += ["json", "json"]
    if name in LINE_TARGETS:
        modes += ["lines", "lines"]
    mode = draw(st.sampled_from(modes))
    if mode == "lines":
        return mutate_lines(draw, seed)
    if mode == "json":
        prefix = seed[:2] if seed[:1] in (b"\x01",) else b""
        try:
            doc = orjson.loads(seed[len(prefix) :])
        except orjson.JSONDecodeError:
            return mutate_bytes(draw, seed)
        mutated = mutate_json(draw, doc)
        if prefix or name == "rekor_leaf":  # leaves are canonical JSON: keep them so, if possible
            try:
                return prefix + canonicalize_record(mutated)
            except (TypeError, ValueError):
                return prefix + _dumps(mutated)
        return _dumps(mutated)
    return mutate_bytes(draw, seed)


@pytest.mark.parametrize("name", sorted(TARGETS))
@SETTINGS
@given(data=st.data())
def test_mutated_valid_objects_raise_only_typed_errors(name: str, data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(_seeds()[name]), label="seed")
    TARGETS[name].fn(mutant(data.draw, name, seed))


# --- round trips of format/parse pairs ----------------------------------------------------------------

@SETTINGS
@given(n=st.integers(0, 2**64 - 1), raw=st.binary(max_size=80))
def test_decimals_and_base64_round_trip(n: int, raw: bytes) -> None:
    assert parse_decimal(str(n)) == n and parse_decimal(str(n).encode()) == n
    text = b64encode(raw)
    assert b64decode_std(text) == raw and b64decode_any(text) == raw
    assert b64decode_any(text.replace("+", "-").replace("/", "_").rstrip("=")) == raw
    with pytest.raises(MalformedError):
        parse_decimal("0" + str(n))


@SETTINGS
@given(n=st.integers(0, 10**24 - 1), level=st.none() | st.integers(0, 6), width=st.integers(1, 256),
       index=st.integers(0, 2**48 - 1))
def test_tile_indexes_and_paths_round_trip(n: int, level: int | None, width: int, index: int) -> None:
    assert tiles.parse_index(tiles.format_index(n)) == n
    index >>= 8 * (level or 0)
    ref = tiles.TileRef(level, index, width)
    assert tiles.parse_tile_path(ref.path()) == ref


@SETTINGS
@given(entries=st.lists(st.binary(max_size=300), max_size=40))
def test_entry_bundles_round_trip(entries: list[bytes]) -> None:
    assert tiles.parse_bundle(tiles.encode_bundle(entries)) == entries


LINE_TEXT = st.text(st.characters(blacklist_characters=[chr(i) for i in range(0x20)],
                                  blacklist_categories=("Cs",)), min_size=1, max_size=40)


@SETTINGS
@given(origin=LINE_TEXT, size=st.integers(0, 2**64 - 1), root=st.binary(min_size=32, max_size=32),
       extensions=st.lists(LINE_TEXT, max_size=3))
def test_checkpoints_round_trip(origin: str, size: int, root: bytes, extensions: list[str]) -> None:
    cp = Checkpoint(origin, size, EMPTY_ROOT if size == 0 else root, tuple(extensions))
    assert parse_checkpoint_text(cp.text()) == cp


KEY_NAME = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn"),
                                 blacklist_characters="+"), min_size=1, max_size=20)


@SETTINGS
@given(lines=st.lists(LINE_TEXT, min_size=1, max_size=4), name=KEY_NAME, which=st.sets(st.integers(0, 4)))
def test_signed_notes_round_trip_and_verify(lines: list[str], name: str, which: set[int]) -> None:
    signers = [fx.LOG, fx.LOG_ECDSA, *fx.WITNESSES, Ed25519Signer(name, fx.seed("any"))]
    chosen = [signers[i] for i in sorted(which)] + [signers[-1]]
    text = "".join(line + "\n" for line in lines)
    note = sign_note(text, chosen)
    parsed = parse_note(note)
    assert parsed.to_bytes() == note and parsed.text == text
    opened = verify_note(note, [s.verifier() for s in chosen])
    assert len(opened.verified) == len({(s.name, s.key_id) for s in chosen})


@SETTINGS
@given(old=st.integers(0, 2**64 - 1), proof=st.lists(st.binary(min_size=32, max_size=32), max_size=63))
def test_witness_requests_round_trip(old: int, proof: list[bytes]) -> None:
    req = parse_request(seeds.witness_request(old, proof, fx.STORED.note))
    assert (req.old_size, list(req.proof), req.note, req.origin) == (old, proof, fx.STORED.note, fx.ORIGIN)


@SETTINGS
@given(origin=st.text(max_size=30), index=st.integers(0, 2**63 - 1), leaf=st.binary(max_size=200),
       size=st.integers(0, 2**63 - 1), hashes=st.lists(st.binary(min_size=32, max_size=32), max_size=64),
       note=st.text(max_size=200))
def test_receipts_round_trip(origin: str, index: int, leaf: bytes, size: int, hashes: list[bytes],
                             note: str) -> None:
    r = Receipt(origin, index, leaf, hashlib.sha256(leaf).digest(), size, tuple(hashes), note.encode())
    assert parse_receipt(orjson.dumps(r.to_dict())) == r
    assert parse_receipt(r.to_dict()) == r


@SETTINGS
@given(name=KEY_NAME, ecdsa=st.booleans(), witnesses=st.integers(0, 3), data=st.data(),
       url=st.none() | st.sampled_from(["https://log.example", "http://127.0.0.1:8080/", "https://a/b//"]))
def test_policies_round_trip_through_dicts_and_toml(name: str, ecdsa: bool, witnesses: int,
                                                    data: st.DataObject, url: str | None) -> None:
    log = [Ed25519Signer(name, fx.seed("policy log"))]
    if ecdsa:
        log.append(fx.DeterministicECDSASigner(name, fx.p256("policy ecdsa")))
    ws = [CosignatureV1Signer(f"w{i}.{name}", fx.seed(f"policy w{i}")) for i in range(witnesses)]
    quorum = data.draw(st.integers(1, witnesses)) if witnesses else 0
    age = data.draw(st.none() | st.integers(1, 10**9)) if witnesses else None
    p = TrustPolicy(name, tuple(s.verifier() for s in log), data.draw(st.sampled_from(["all", "any"])),
                    tuple(w.verifier() for w in ws), quorum, age, url.rstrip("/") if url else None)
    assert policy_from_dict(p.to_dict()) == p
    assert policy_from_dict(orjson.loads(orjson.dumps(p.to_dict()))) == p
    assert policy_from_dict(tomllib.loads(policy_toml(p, "a comment\nof two lines"))) == p


@SETTINGS
@given(scalar=st.integers(1, 2**255), attributes=st.integers(0, 2**32 - 1), scheme=st.booleans(),
       extra=st.binary(max_size=64))
def test_tpm_structures_round_trip(scalar: int, attributes: int, scheme: bool, extra: bytes) -> None:
    key = ec.derive_private_key(scalar, ec.SECP256R1()).public_key()
    area = fx.tpmt_public(key, attributes, scheme=scheme)
    pub = tpmattest.parse_public(area)
    spki = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    name = b"\x00\x0b" + hashlib.sha256(area).digest()
    assert (pub.attributes, pub.spki_der, pub.name) == (attributes, spki, name)
    info = tpmattest.parse_certify(seeds.certify_info(area, extra))
    assert (info.extra_data, info.name) == (extra, pub.name)
    for cut in (1, len(area) // 2, len(area) - 1):
        with pytest.raises(MalformedError):
            tpmattest.parse_public(area[:cut])


MSGPACK = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=10)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10)


@SETTINGS
@given(messages=st.lists(st.lists(MSGPACK, min_size=1, max_size=4), max_size=5),
       cuts=st.lists(st.integers(0, 4096)))
def test_frames_round_trip_however_the_stream_is_cut(messages: list[list[Any]], cuts: list[int]) -> None:
    stream = b"".join(encode(m) for m in messages)
    reader, got, last = FrameReader(), [], 0
    for cut in [*sorted(c % (len(stream) + 1) for c in cuts), len(stream)]:
        got += reader.feed(stream[last:cut])
        last = cut
    assert got == [msgpack.unpackb(msgpack.packb(m, use_bin_type=True), raw=False) for m in messages]


@SETTINGS
@given(payload=st.binary(max_size=200),
       ptype=st.text(st.characters(min_codepoint=0x20, blacklist_categories=("Cs",)),
                     min_size=1, max_size=40),
       sigs=st.lists(st.tuples(st.text(max_size=10), st.binary(min_size=1, max_size=80)),
                     min_size=1, max_size=16),
       urlsafe=st.booleans())
def test_envelopes_round_trip_through_their_canonical_form(
        payload: bytes, ptype: str, sigs: list[tuple[str, bytes]], urlsafe: bool) -> None:
    def enc(b: bytes) -> str:
        text = b64encode(b)
        return text.replace("+", "-").replace("/", "_").rstrip("=") if urlsafe else text

    doc = {"payload": enc(payload), "payloadType": ptype,
           "signatures": [{"keyid": k, "sig": enc(s)} for k, s in sigs]}
    env = attest.parse_envelope(doc)
    assert (env.payload, env.payload_type, env.signatures) == (payload, ptype, tuple(sigs))
    assert attest.parse_envelope(orjson.loads(env.canonical())) == env


@SETTINGS
@given(alg=st.sampled_from(["sha256", "sha384", "sha512", "sha1", "md5", "1.2.3.4"]),
       digest=st.binary(max_size=70),
       nonce=st.none() | st.integers(0, 2**160), cert_req=st.booleans(),
       policy=st.none() | st.sampled_from(["1.3.6.1.4.1.57264.2", "1.2.3"]))
def test_the_tsa_answers_every_request(alg: str, digest: bytes, nonce: int | None, cert_req: bool,
                                       policy: str | None) -> None:
    imprint = {"hash_algorithm": {"algorithm": alg}, "hashed_message": digest}
    req: dict[str, Any] = {"version": "v1", "message_imprint": imprint, "cert_req": cert_req}
    if nonce is not None:
        req["nonce"] = nonce
    if policy is not None:
        req["req_policy"] = policy
    outcome, _ = fx.TSA.answer(tsp.TimeStampReq(req).dump())
    sizes = {"sha256": 32, "sha384": 48, "sha512": 64}
    ok = sizes.get(alg) == len(digest) and policy in (None, "1.3.6.1.4.1.57264.2")
    assert (outcome == "granted") == ok


# --- regression: a bundle's timestamps must be over the signature the entry logs ------------------

@settings(max_examples=10, deadline=None)
@given(other=st.binary(min_size=1, max_size=72))
def test_bundle_timestamps_over_another_signature_are_refused(other: bytes) -> None:
    """A message-signature bundle whose `signature` field (not covered by the entry) is
    replaced, with a genuine timestamp over the replacement, must not verify: before the
    fix, verify_bundle timestamped the bundle's copy of the signature, not the logged one."""
    bundle = orjson.loads(_seeds()["sigstore_bundle"][0])
    assert "messageSignature" in bundle
    verify_bundle(bundle, fx.POLICY_ANY, artifact=fx.ARTIFACT, tsa_chain=fx.TSA_CHAIN_PEM, now=fx.NOW)
    bundle["messageSignature"]["signature"] = b64encode(other)
    stamp = fx.TSA.respond(timestamp_request(other))
    bundle["verificationMaterial"]["timestampVerificationData"] = {
        "rfc3161Timestamps": [{"signedTimestamp": b64encode(stamp)}]}
    with pytest.raises(VerificationError):
        verify_bundle(bundle, fx.POLICY_ANY, artifact=fx.ARTIFACT, tsa_chain=fx.TSA_CHAIN_PEM, now=fx.NOW)
