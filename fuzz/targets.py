"""The fuzz targets: one `(data: bytes) -> None` per parser of untrusted bytes.

Contract: a target feeds the bytes (or the JSON, TOML or text decoded from them, exactly as
the real caller decodes them) to the parser and returns normally when the parser returns or
raises one of its documented typed errors (`client.errors` classes, `witness.protocol.Refusal`,
`tlog.wire.FrameError`). Any other exception escapes and is a crash, that is a bug: a
KeyError, TypeError, UnicodeError or RecursionError from a parser is a request the server
answers with a 500, or a verifier that dies instead of saying "malformed". Where a parser
succeeds the target also checks an invariant (a round trip, a recomputed leaf, a property
only genuine signed inputs can have), and an `AssertionError` is a crash too.

The keys and trust anchors they verify with are `fuzz.fixtures`'. `fuzz.run` imports this
module inside atheris.instrument_imports, so the client/, witness/, tlog/ and tsa/ modules
it imports are instrumented for coverage (the harness itself is not).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from asn1crypto import tsp

from client import attest, evidence, merkle, rekor, rekorleaf, sigstore_bundle, tiles, tpmattest
from client.checkpoint import open_checkpoint, parse_checkpoint_text
from client.encoding import b64decode_any, b64decode_hash, b64decode_std, b64encode, parse_decimal
from client.errors import MalformedError, SignatureError, TlogError, UnknownKeyError, VerificationError
from client.note import parse_note, parse_skey, parse_vkey, verify_note
from client.policy import load_policy, policy_from_dict, policy_toml
from client.sigstore_trust import tsa_chain_of
from client.timestamp import OptionalTokenResp, timestamp_token_time, verify_timestamp
from client.verify import parse_receipt, verify_checkpoint, verify_receipt, verify_receipt_doc
from fuzz import fixtures as fx
from tlog.wire import FrameError, FrameReader, encode
from witness.protocol import Refusal, cosign, decide, parse_request

Target = Callable[[bytes], None]


@dataclass(frozen=True)
class Spec:
    """A registered target: its function, what it covers (the docstring), and libFuzzer hints."""

    name: str
    fn: Target
    max_len: int
    tokens: tuple[str, ...] = field(default=())
    mutator: str | None = None  # a fuzz.mutators structure-aware mutator: "json" or "lines"

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip()


TARGETS: dict[str, Spec] = {}


def target(name: str, *, max_len: int = 4096, tokens: tuple[str, ...] = (),
           mutator: str | None = None) -> Callable[[Target], Target]:
    """Register a target. `max_len` bounds libFuzzer's inputs; `tokens` become its dictionary
    (field names and keywords a byte mutator would take long to spell out); `mutator` names
    the structure-aware mutator of fuzz.mutators that also mutates its inputs."""
    def register(fn: Target) -> Target:
        assert fn.__doc__, f"target {name} needs a docstring saying what it covers"
        TARGETS[name] = Spec(name, fn, max_len, tokens, mutator)
        return fn
    return register


_NO_JSON = object()


def _json(data: bytes) -> Any:
    """orjson, as the log and the client decode every untrusted JSON body; `_NO_JSON` for
    bytes that are not JSON (the decoder's own refusal, not a parser's)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return _NO_JSON


def _texts(data: bytes) -> list[str]:
    """The str forms a text parser may be given: UTF-8 when the bytes are UTF-8 (what a file
    or HTTP body decodes to), and Latin-1, which reaches every code point below 256."""
    out = [data.decode("latin-1")]
    try:
        utf8 = data.decode("utf-8")
    except UnicodeDecodeError:
        return out
    if utf8 != out[0]:
        out.append(utf8)
    return out


# --- encodings ---------------------------------------------------------------------------------

@target("encoding", max_len=256, tokens=("=", "==", "+", "/", "-", "_", "0", "18446744073709551615"))
def encoding(data: bytes) -> None:
    """client.encoding: parse_decimal, b64decode_std, b64decode_hash and b64decode_any, on bytes
    and on str. Each accepted text is the one canonical encoding of its value (re-encoding gives
    it back), and the fast hash decoder agrees with the general one."""
    for text in (data, *_texts(data)):
        try:
            n = parse_decimal(text)
        except MalformedError:
            pass
        else:
            assert str(n) == (text.decode() if isinstance(text, bytes) else text)
        try:
            raw = b64decode_std(text)
        except MalformedError:
            raw = None
        else:
            assert b64encode(raw) == (text.decode() if isinstance(text, bytes) else text)
        try:
            anything = b64decode_any(text)
        except MalformedError:
            assert raw is None
        else:
            assert raw is None or anything == raw
        if isinstance(text, str):
            try:
                h = b64decode_hash(text)
            except MalformedError:
                assert raw is None or len(raw) != 32
            else:
                assert h == raw and len(h) == 32


# --- signed notes, keys, checkpoints, cosignatures ----------------------------------------------

@target("note", max_len=8192, tokens=("\n\n", "\u2014 ", fx.ORIGIN, "witness0.fuzz.example"), mutator="lines")
def note(data: bytes) -> None:
    """client.note parse_note and verify_note with the log's Ed25519 and ECDSA keys and three
    witnesses' cosignature/v1 keys: a parsed note re-serialises to the same bytes, and an
    opened one has verified only signatures it carries."""
    try:
        parsed = parse_note(data)
    except MalformedError:
        return
    assert parsed.to_bytes() == data, "parse_note does not round-trip"
    try:
        opened = verify_note(parsed, fx.NOTE_VERIFIERS)
    except (UnknownKeyError, SignatureError):
        return
    assert opened.text == parsed.text
    assert set(opened.verified) <= set(parsed.signatures)
    assert set(opened.unverified) <= set(parsed.signatures)
    assert verify_note(data, fx.NOTE_VERIFIERS) == opened


@target("keys", max_len=512, tokens=("PRIVATE+KEY+", "+", fx.ORIGIN))
def keys(data: bytes) -> None:
    """client.note parse_vkey (verifier keys: Ed25519, ECDSA SPKI, cosignature/v1) and
    parse_skey (Ed25519 signer keys), from policy files and key files: a parsed key formats
    back to the same text, and a parsed signer's signature verifies with its own verifier."""
    for text in _texts(data):
        try:
            v = parse_vkey(text)
        except MalformedError:
            pass
        else:
            assert v.vkey() == text, "parse_vkey does not round-trip"
        try:
            s = parse_skey(text)
        except MalformedError:
            continue
        assert s.skey() == text.strip("\n"), "parse_skey does not round-trip"
        assert s.verifier().verify(b"msg\n", s.sign(b"msg\n"))


@target("checkpoint", max_len=8192, tokens=("\n\n", "\u2014 ", fx.ORIGIN + "\n"), mutator="lines")
def checkpoint(data: bytes) -> None:
    """client.checkpoint parse_checkpoint_text (on the text, and on the bytes as UTF-8) and
    open_checkpoint with the log's keys: a parsed body formats back to the same text."""
    for text in _texts(data):
        try:
            cp = parse_checkpoint_text(text)
        except MalformedError:
            continue
        assert cp.text() == text, "parse_checkpoint_text does not round-trip"
    try:
        cp, opened = open_checkpoint(data, fx.ORIGIN, fx.LOG_VERIFIERS)
    except (MalformedError, UnknownKeyError, SignatureError):
        return
    assert cp.text() == opened.text and cp.origin == fx.ORIGIN


@target("cosigned", max_len=8192, tokens=("\n\n", "\u2014 ", "witness1.fuzz.example", fx.ORIGIN + "\n"),
        mutator="lines")
def cosigned(data: bytes) -> None:
    """Cosignatures: client.note CosignatureV1Verifier on every signature line, and
    client.verify verify_checkpoint under a policy of 2 of 3 witnesses and a maximum age at a
    fixed clock: a checkpoint that passes has a quorum of fresh, not future-dated cosignatures."""
    try:
        parsed = parse_note(data)
    except MalformedError:
        parsed = None
    if parsed is not None:
        text = parsed.text.encode()
        for sig in parsed.signatures:
            for w in fx.WITNESS_VERIFIERS:
                w.verify(text, sig.sig)  # a bool: never raises
    try:
        vc = verify_checkpoint(data, fx.POLICY_WITNESSED, now=fx.NOW)
    except (MalformedError, VerificationError):
        return
    assert len(vc.witnesses) >= 2 and vc.cosigned_at is not None
    assert fx.NOW - fx.MAX_AGE <= vc.cosigned_at <= fx.NOW + fx.CLOCK_SKEW


# --- the witness -------------------------------------------------------------------------------

@target("witness", max_len=16 * 1024 + 64, tokens=("old ", "old 0\n", "old 8\n", "\n\n", "\u2014 "),
        mutator="lines")
def witness(data: bytes) -> None:
    """witness.protocol parse_request (the add-checkpoint body) and decide with the log's real
    keys, against no stored state and against a stored cosigned size 8; an accepted
    checkpoint is cosigned, and the stored note verifies with the log's and the witness's keys
    and never moves the witness backwards."""
    try:
        req = parse_request(data)
    except Refusal as r:
        assert r.status == 400, r
        return
    assert data.endswith(req.note) and len(req.proof) <= 63
    for stored in (None, fx.STORED):
        try:
            accepted = decide(req, fx.LOG_VERIFIERS, stored)
        except Refusal as r:
            assert r.status in (400, 403, 409, 422), r
            if r.status == 409:
                assert r.known_size == (stored.size if stored else 0)
            continue
        line, signed = cosign(accepted, fx.WITNESSES[0])
        assert signed.endswith(line)
        opened = verify_note(signed, [fx.WITNESS_VERIFIERS[0], *fx.LOG_VERIFIERS])
        assert parse_checkpoint_text(opened.text) == accepted.checkpoint
        assert len(opened.verified) == len(parse_note(signed).signatures)
        if stored is not None:
            assert accepted.checkpoint.size >= stored.size


# --- tiles -------------------------------------------------------------------------------------

@target("tile_path", max_len=160, tokens=("tile/", "entries/", ".p/", "x001/", "/"))
def tile_path(data: bytes) -> None:
    """client.tiles parse_tile_path (the log's tile URLs) and parse_index: a parsed path or
    index formats back to the same text, and the tile's first leaf fits in 64 bits."""
    for text in _texts(data):
        try:
            ref = tiles.parse_tile_path.__wrapped__(text)  # the unmemoised parser
        except MalformedError:
            pass
        else:
            assert ref.path() == text, "parse_tile_path does not round-trip"
            assert 1 <= ref.width <= tiles.TILE_WIDTH
            assert ref.index << (tiles.TILE_HEIGHT * ((ref.level or 0) + 1)) < 1 << 64
        try:
            n = tiles.parse_index(text)
        except MalformedError:
            continue
        assert tiles.format_index(n) == text, "parse_index does not round-trip"


@target("entry_bundle", max_len=1 << 17)
def entry_bundle(data: bytes) -> None:
    """client.tiles parse_bundle (entry bundles a log serves) and split_hashes (hash tiles):
    a parsed bundle re-encodes to the same bytes, and a tile splits into its own bytes."""
    try:
        entries = tiles.parse_bundle(data)
    except MalformedError:
        pass
    else:
        assert tiles.encode_bundle(entries) == data, "parse_bundle does not round-trip"
    try:
        hashes = tiles.split_hashes(data)
    except MalformedError:
        return
    assert b"".join(hashes) == data


# --- attestations --------------------------------------------------------------------------------

_JSON_TOKENS = ('"payload"', '"payloadType"', '"signatures"', '"sig"', '"keyid"', '"verifiers"',
                '"dsse"', '"hashedrekord"', '"digest"', '"sha256"', '"signature"', '"verifier"',
                '"application/vnd.in-toto+json"', '"_type"', '"subject"', '"predicateType"',
                '"https://in-toto.io/Statement/v1"', "-----BEGIN PUBLIC KEY-----\\n")


def _check_leaf(leaf: bytes, envelope: bytes | None = None) -> attest.LeafInfo:
    """A leaf the log would append reads back as an attestation and has search terms."""
    info = attest.parse_leaf(leaf)
    assert info is not None, "a leaf built by the log does not parse back"
    assert attest.search_keys(leaf, envelope), "a leaf built by the log has no search terms"
    return info


@target("entries", max_len=32 * 1024, tokens=_JSON_TOKENS, mutator="json")
def entries(data: bytes) -> None:
    """The POST /v1/entries body as tlog.app dispatches it: client.attest check_dsse
    (parse_envelope, load_verifiers, PAE signatures, parse_statement, the leaf) and
    check_hashedrekord. An accepted entry's leaf parses back with search terms and names the
    canonical envelope's digest, and checking the canonical envelope gives the same leaf."""
    doc = _json(data)
    if not isinstance(doc, dict):
        return
    try:
        if "dsse" in doc:
            sub = attest.check_dsse(doc["dsse"], doc.get("verifiers"))
        elif "hashedrekord" in doc:
            leaf = attest.check_hashedrekord(doc["hashedrekord"])
            assert _check_leaf(leaf).kind == attest.KIND_HASHEDREKORD
            return
        else:
            return
    except (MalformedError, SignatureError):
        return
    info = _check_leaf(sub.leaf)
    assert info.kind == attest.KIND_DSSE
    assert info.record["attestation"] == hashlib.sha256(sub.canonical).hexdigest()
    again = attest.check_dsse(orjson.loads(sub.canonical), doc.get("verifiers"))
    assert again == sub, "the canonical envelope gives another leaf"


@target("envelope", max_len=16 * 1024, tokens=_JSON_TOKENS, mutator="json")
def envelope(data: bytes) -> None:
    """client.attest parse_envelope on its own (also what a Rekor v2 entry's stored envelope
    goes through): its canonical form parses back to the same envelope."""
    doc = _json(data)
    if doc is _NO_JSON:
        return
    try:
        env = attest.parse_envelope(doc)
    except MalformedError:
        return
    assert attest.parse_envelope(orjson.loads(env.canonical())) == env, "canonical form differs"
    assert len(env.digest()) == 64


@target("statement", max_len=16 * 1024, tokens=_JSON_TOKENS, mutator="json")
def statement(data: bytes) -> None:
    """client.attest parse_statement (an in-toto Statement, v1 or v0.1, from a DSSE payload):
    only well-formed digests get through."""
    try:
        st = attest.parse_statement(data)
    except MalformedError:
        return
    assert st.subjects and st.predicate_type
    for _, digests in st.subjects:
        assert digests and all(v and set(v) <= set("0123456789abcdef") for v in digests.values())


@target("leaf", max_len=65536, tokens=('{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{',
                                       "\x01\x01{", "\x01\x02{", '"attestation"', '"statement"',
                                       '"subjects_total"', '"payload_sha256"', '"signer"'))
def leaf(data: bytes) -> None:
    """client.attest parse_leaf and search_keys (search indexes read leaves back; raw entries
    may hold any bytes), and client.rekorleaf parse_rekor_leaf: only byte-for-byte canonical
    leaves are read as attestations, and every term is a (kind, str) pair."""
    info = attest.parse_leaf(data)
    terms = attest.search_keys(data)
    if info is None:
        assert terms == []
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in terms)
    if info.kind == attest.KIND_REKOR:
        assert info.rekor is not None and info.rekor.leaf() == data
    else:
        assert data[2:] == attest.canonicalize_record(info.record)


@target("rekor_leaf", max_len=16 * 1024, tokens=('{"apiVersion":"0.0.2","kind":"hashedrekord","spec":{',
                                                 '"hashedRekordV002"', '"keyDetails"', '"rawBytes"',
                                                 '"PKIX_ECDSA_P256_SHA_256"', '"SHA2_256"'))
def rekor_leaf(data: bytes) -> None:
    """client.rekorleaf parse_rekor_leaf: a parsed Rekor v2 leaf rebuilds to the same bytes."""
    entry = rekorleaf.parse_rekor_leaf(data)
    if entry is None:
        return
    assert entry.leaf() == data, "parse_rekor_leaf does not round-trip"
    assert entry.signer.startswith("sha256:") and ":" in entry.subject


@target("rekor", max_len=32 * 1024, tokens=(
    '"hashedRekordRequestV002"', '"dsseRequestV002"', '"digest"', '"signature"', '"content"',
    '"verifier"', '"verifiers"', '"publicKey"', '"x509Certificate"', '"rawBytes"', '"keyDetails"',
    '"PKIX_ECDSA_P256_SHA_256"', '"PKIX_ECDSA_P384_SHA_384"', '"PKIX_RSA_PKCS1V15_2048_SHA256"',
    '"envelope"', '"payload"', '"payloadType"', '"signatures"', '"sig"', '"keyid"'), mutator="json")
def rekor_request(data: bytes) -> None:
    """client.rekor check_create_entry (the Rekor v2 POST /api/v2/log/entries body:
    check_hashedrekord_request and check_dsse_request): an accepted entry's leaf parses back to
    the same entry, its stored envelope is the one it logs, and search finds its signer."""
    doc = _json(data)
    if doc is _NO_JSON:
        return
    try:
        sub = rekor.check_create_entry(doc)
    except (MalformedError, SignatureError):
        return
    assert rekorleaf.parse_rekor_leaf(sub.leaf) == sub.entry
    if sub.envelope is not None:
        assert rekor.is_envelope_of(sub.leaf, sub.envelope)
    _check_leaf(sub.leaf, sub.envelope)
    assert ("signer", sub.entry.signer) in attest.search_keys(sub.leaf, sub.envelope)


# --- receipts, policies, evidence ---------------------------------------------------------------

@target("receipt", max_len=32 * 1024, tokens=('"origin"', '"index"', '"leaf"', '"leaf_hash"',
                                              '"inclusion_proof"', '"tree_size"', '"hashes"',
                                              '"checkpoint"', '"receipt"', '"envelope"', '"artifact"',
                                              '"signers"'), mutator="json")
def receipt(data: bytes) -> None:
    """client.verify parse_receipt, verify_receipt (under a policy of the log's keys) and
    verify_receipt_doc (key-only). A document {"receipt", "envelope", "artifact" (base64),
    "signers"} is checked with what a verifier holds, as `tlog-client verify receipt` does.
    A parsed receipt round-trips through to_dict, and a verified one is included in its tree."""
    doc = _json(data)
    extra: dict[str, Any] = {}
    if isinstance(doc, dict) and "receipt" in doc:
        extra = doc
        doc = doc["receipt"]
        raw: Any = doc
    else:
        raw = data
    try:
        r = parse_receipt(raw)
    except MalformedError:
        return
    assert parse_receipt(orjson.loads(orjson.dumps(r.to_dict()))) == r, "receipt does not round-trip"
    artifact = extra.get("artifact")
    signers = extra.get("signers")
    try:
        art = b64decode_std(artifact) if isinstance(artifact, str) else None
        vr = verify_receipt(r, fx.POLICY_ANY, envelope=extra.get("envelope"), artifact=art,
                            signers=set(signers) if isinstance(signers, list) and
                            all(isinstance(s, str) for s in signers) else None, now=fx.NOW)
    except (MalformedError, VerificationError):
        return
    assert vr.index < vr.checkpoint.size and merkle.leaf_hash(vr.leaf) == r.leaf_hash
    if not extra:
        vkeys = [v.vkey() for v in fx.LOG_VERIFIERS]
        assert verify_receipt_doc(data, vkeys, r.leaf) == (r.index, r.tree_size)


def _policy_round_trips(p: Any) -> None:
    """A loaded policy reloads from its own file forms, and one requiring TPM anchoring can
    check a key attestation (its tpm_aks and tpm_ak_cas are used there, not at load time)."""
    assert policy_from_dict(p.to_dict()) == p, "policy does not round-trip through to_dict"
    assert policy_from_dict(tomllib.loads(policy_toml(p))) == p, "policy does not round-trip through TOML"
    if p.requires_tpm:
        with contextlib.suppress(MalformedError, VerificationError):
            tpmattest.check_anchoring(_attestation(), p)


@functools.cache
def _attestation() -> dict[str, Any]:
    from fuzz.seeds import key_attestation

    return key_attestation()


@target("policy", max_len=8192, tokens=('"origin"', '"log_keys"', '"log_signatures"', '"witnesses"',
                                        '"witness_quorum"', '"max_age_seconds"', '"url"', '"allow_raw_log"',
                                        '"tpm_aks"', '"tpm_ak_cas"', '"all"', '"any"', '"https://'),
        mutator="json")
def policy(data: bytes) -> None:
    """client.policy policy_from_dict on a JSON policy (json.loads, as load_policy reads a
    .json file, and orjson): a loaded policy round-trips through to_dict and policy_toml."""
    docs: list[Any] = []
    with contextlib.suppress(ValueError, RecursionError):  # decoding is policy_file's business
        docs.append(json.loads(data))
    doc = _json(data)
    if doc is not _NO_JSON:
        docs.append(doc)
    for d in docs:
        try:
            p = policy_from_dict(d)
        except MalformedError:
            continue
        _policy_round_trips(p)


@target("policy_file", max_len=8192, tokens=(
    "origin = ", "log_keys = [", "witnesses = [", "witness_quorum = ", "max_age_seconds = ", "url = ",
    "tpm_aks = [", "tpm_ak_cas = [", '"""', "[", "]", "{", "}", "\n"), mutator="lines")
def policy_file(data: bytes) -> None:
    """client.policy load_policy on a policy file, both as TOML and as .json (reading,
    decoding and every check): a loaded policy round-trips through to_dict and policy_toml."""
    for suffix in (".toml", ".json"):
        with tempfile.NamedTemporaryFile(prefix="tlog-fuzz-policy-", suffix=suffix) as f:
            f.write(data)
            f.flush()
            try:
                p = load_policy(f.name)
            except MalformedError:
                continue
        _policy_round_trips(p)


@target("evidence", max_len=32 * 1024, tokens=('"type"', '"tlog-split-view/v1"', '"origin"', '"checkpoints"',
                                               '"prefix_root"', '"consistency_proof"', '"reason"'),
        mutator="json")
def split_view_evidence(data: bytes) -> None:
    """client.evidence verify_evidence (split-view evidence files and gossip) with the log's
    keys: evidence that verifies really shows two different trees at one size, or a prefix
    the larger tree proves that is not the smaller checkpoint's root."""
    doc = _json(data)
    if doc is _NO_JSON:
        return
    try:
        sv = evidence.verify_evidence(doc, fx.LOG_VERIFIERS)
    except (MalformedError, VerificationError):
        return
    assert sv.smaller.size <= sv.larger.size
    if sv.smaller.size == sv.larger.size:
        assert sv.smaller.root != sv.larger.root
    else:
        assert sv.prefix_root is not None and sv.prefix_root != sv.smaller.root


# --- TPM anchoring --------------------------------------------------------------------------------

@target("tpm_structures", max_len=tpmattest.MAX_STRUCT + 16)
def tpm_structures(data: bytes) -> None:
    """client.tpmattest parse_public (TPMT_PUBLIC) and parse_certify (TPMS_ATTEST), the TPM
    2.0 structures of a key attestation, parsed by hand: a parsed public area is named by its
    own hash and carries a valid P-256 key."""
    try:
        pub = tpmattest.parse_public(data)
    except MalformedError:
        pass
    else:
        assert pub.name == b"\x00\x0b" + hashlib.sha256(data).digest()
        assert attest.load_public_key(_pem_of(pub.spki_der)).kind == "ecdsa-p256"
    with contextlib.suppress(MalformedError):
        tpmattest.parse_certify(data)


def _pem_of(der: bytes) -> str:
    body = b64encode(der)
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(
        body[i : i + 64] for i in range(0, len(body), 64)) + "\n-----END PUBLIC KEY-----\n"


@target("tpm_attestation", max_len=16 * 1024, tokens=('"key_public"', '"ak_public"', '"certify_info"',
                                                      '"certify_signature"', '"ek_certificates"',
                                                      '"ak_certificate"', "-----BEGIN CERTIFICATE-----\\n"),
        mutator="json")
def tpm_attestation(data: bytes) -> None:
    """client.tpmattest verify_key_attestation (GET /v1/log/key-attestation) with a pinned AK
    and with a trusted AK CA, and check_anchoring under a policy requiring TPM anchoring:
    what passes is the key named in the AK-signed certification, made for this log."""
    doc = _json(data)
    if doc is _NO_JSON:
        return
    for pins, cas in (((fx.AK_NAME,), ()), ((), (fx.AK_CA_PEM,))):
        try:
            att = tpmattest.verify_key_attestation(doc, fx.ORIGIN, pins, cas)
        except (MalformedError, VerificationError):
            continue
        info = tpmattest.parse_certify(b64decode_std(doc["certify_info"]))
        assert info.name == att.key.name and info.extra_data == tpmattest.qualifying_data(fx.ORIGIN)
        assert att.ak.name.hex() == fx.AK_NAME or cas
    for p in (fx.TPM_POLICY_PINNED, fx.TPM_POLICY_CA):
        with contextlib.suppress(MalformedError, VerificationError):
            tpmattest.check_anchoring(doc, p)


# --- Sigstore bundles and RFC 3161 timestamps ----------------------------------------------------

_TS_EPOCH = datetime.fromtimestamp(fx.NOW, UTC)


@target("sigstore_bundle", max_len=48 * 1024, tokens=(
    '"mediaType"', '"application/vnd.dev.sigstore.bundle.v0.3+json"', '"verificationMaterial"',
    '"tlogEntries"', '"inclusionProof"', '"checkpoint"', '"envelope"', '"logIndex"', '"treeSize"',
    '"hashes"', '"canonicalizedBody"', '"dsseEnvelope"', '"messageSignature"', '"signature"',
    '"timestampVerificationData"', '"rfc3161Timestamps"', '"signedTimestamp"'), mutator="json")
def sigstore_bundle_(data: bytes) -> None:
    """client.sigstore_bundle receipt_from_bundle and verify_bundle (a v0.3 bundle of a Rekor v2
    entry, DSSE or message signature) under the log's keys, with the artifact, with and
    without the trusted TSA chain: a bundle's receipt parses, and verified timestamps are over
    the signature the entry logs (not a copy of it in the bundle, which nothing ties to it)."""
    doc = _json(data)
    if doc is _NO_JSON:
        return
    try:
        r = sigstore_bundle.receipt_from_bundle(doc)
    except MalformedError:
        return
    with contextlib.suppress(MalformedError):
        parse_receipt(r)
    for chain in (None, fx.TSA_CHAIN_PEM):
        try:
            vb = sigstore_bundle.verify_bundle(doc, fx.POLICY_ANY, artifact=fx.ARTIFACT,
                                               tsa_chain=chain, now=fx.NOW)
        except (MalformedError, VerificationError):
            continue
        assert vb.receipt.index < vb.receipt.checkpoint.size
        if chain is not None:
            assert vb.timestamps and all(t == _TS_EPOCH for t in vb.timestamps)
            entry = rekorleaf.parse_rekor_leaf(vb.receipt.leaf)
            assert entry is not None, "timestamps verified, but over no signature the entry logs"
            for stamp in doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]:
                der = base64.b64decode(stamp["signedTimestamp"])
                assert verify_timestamp(der, entry.signature, chain) == _TS_EPOCH, \
                    "a bundle's timestamp is over another signature than the one logged"


@target("trusted_root", max_len=8192, tokens=('"timestampAuthorities"', '"certChain"', '"certificates"',
                                              '"rawBytes"'), mutator="json")
def trusted_root(data: bytes) -> None:
    """client.sigstore_trust tsa_chain_of (the TSA chain of a Sigstore TrustedRoot file)."""
    doc = _json(data)
    if doc is _NO_JSON:
        return
    try:
        chain = tsa_chain_of(doc)
    except MalformedError:
        return
    assert all(isinstance(c, bytes) for c in chain)


@target("timestamp", max_len=16 * 1024)
def timestamp(data: bytes) -> None:
    """client.timestamp verify_timestamp (a DER TimeStampResp, over the fixture signature,
    against the fixture TSA chain) and timestamp_token_time (the unverified genTime): only the
    fixture TSA's tokens verify, and they carry its fixed clock."""
    try:
        at = verify_timestamp(data, fx.TS_SIGNATURE, fx.TSA_CHAIN_PEM)
    except TlogError:
        at = None
    else:
        assert at == _TS_EPOCH
    try:
        claimed = timestamp_token_time(data)
    except TlogError:
        assert at is None, "a verified timestamp has no readable genTime"
        return
    assert at is None or claimed == at


@target("tsa_request", max_len=4096)
def tsa_request(data: bytes) -> None:
    """tsa.authority TimestampAuthority.answer (POST /api/v1/timestamp: a DER TimeStampReq from
    anyone): every request gets a TimeStampResp, never an exception; a granted one carries
    the TSA's time and verifies over the data hashed in the request when that is the fixture."""
    outcome, der = fx.TSA.answer(data)
    resp = OptionalTokenResp.load(der)
    if outcome != "granted":
        assert resp["status"]["status"].native == "rejection"
        return
    assert timestamp_token_time(der) == _TS_EPOCH
    req = tsp.TimeStampReq.load(data)
    if req["message_imprint"]["hashed_message"].native == hashlib.sha256(fx.TS_SIGNATURE).digest() and \
            req["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256":
        assert verify_timestamp(der, fx.TS_SIGNATURE, fx.TSA_CHAIN_PEM) == _TS_EPOCH


# --- the sequencer's framing -----------------------------------------------------------------------

@target("wire", max_len=8192)
def wire(data: bytes) -> None:
    """tlog.wire FrameReader (u32be length || msgpack, between HTTP workers and the sequencer
    process): only FrameError on bad frames; feeding the bytes in chunks (sizes from the first
    byte) yields what feeding them at once does; every frame re-encodes to a frame that
    decodes to the same message."""
    try:
        whole: list[Any] | None = FrameReader().feed(data[1:])
    except FrameError:
        whole = None
    step = (data[0] % 31) + 1 if data else 1
    reader = FrameReader()
    pieces: list[Any] = []
    try:
        for i in range(1, len(data), step):
            pieces.extend(reader.feed(data[i : i + step]))
    except FrameError:
        chunked_failed = True
    else:
        chunked_failed = False
    assert chunked_failed == (whole is None), "chunked and whole feeds disagree on a bad frame"
    if whole is None:
        return
    assert [encode(m) for m in pieces] == [encode(m) for m in whole]
    for msg in whole:
        framed = encode(msg)
        assert [encode(m) for m in FrameReader().feed(framed)] == [framed]


def run_one(name: str, data: bytes) -> None:
    """Feed one input to a target (what the corpus replay test and the fuzzer's worker do)."""
    TARGETS[name].fn(data)

