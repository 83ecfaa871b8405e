"""Offline verification of receipts from a real log: every tampering fails with the right error.

Receipts come from a real `tlog serve` (attestation mode, no raw entries). Witness
cosignatures are added to the log's signed checkpoint with test witness keys, so the k-of-n
and freshness rules are exercised before the witness servers exist.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from client import cli
from client.errors import (
    LeafMismatchError,
    MalformedError,
    PolicyError,
    ProofError,
    SignatureError,
    StaleCheckpointError,
    UnknownKeyError,
    VerificationError,
)
from client.note import CosignatureV1Signer, Ed25519Signer, parse_note, parse_vkey, sign_note
from client.policy import TrustPolicy, load_policy, policy_from_dict
from client.verify import parse_receipt, verify_checkpoint, verify_receipt
from tests.attestkit import dsse_body, envelope, hashedrekord, make_signer, statement
from tests.conftest import ORIGIN
from tests.serverproc import ServerProc

ARTIFACT = b"release-1.2.3.tar.gz contents"
OTHER = b"something else"


class Logged:
    """Receipts of one DSSE and one hashedrekord entry, with what the signer holds."""

    def __init__(self, server: ServerProc) -> None:
        self.server = server
        self.vkey = server.vkey
        self.signer = make_signer("ecdsa-p256")
        digest = hashlib.sha256(ARTIFACT).hexdigest()
        self.envelope = envelope(statement([digest]), [self.signer])
        with httpx.Client(timeout=30) as http:
            r = http.post(server.url + "/v1/entries", json=dsse_body(self.envelope, [self.signer]))
            assert r.status_code == 201, r.text
            self.dsse: dict[str, Any] = r.json()
            body = {"hashedrekord": hashedrekord(hashlib.sha256(ARTIFACT).digest(), self.signer)}
            r = http.post(server.url + "/v1/entries", json=body)
            assert r.status_code == 201, r.text
            self.rekord: dict[str, Any] = r.json()
            for i in range(4):  # later entries, so that receipts fetched now carry real proofs
                filler = envelope(statement([hashlib.sha256(b"%d" % i).hexdigest()]), [self.signer])
                assert http.post(server.url + "/v1/entries",
                                 json=dsse_body(filler, [self.signer])).status_code == 201

    def policy(self, **kw: Any) -> TrustPolicy:
        return TrustPolicy(origin=ORIGIN, log_keys=(parse_vkey(self.vkey),), **kw)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    srv = ServerProc(tmp_path_factory.mktemp("log") / "data", args=["--origin", ORIGIN]).start()
    try:
        yield Logged(srv)
    finally:
        srv.stop()


def _flip(b64: str, byte: int = 0, bit: int = 0) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[byte] ^= 1 << bit
    return base64.b64encode(bytes(raw)).decode()


def _with(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = orjson.loads(orjson.dumps(doc))
    out.update(changes)
    return out


def _cosign(note: bytes, witnesses: list[CosignatureV1Signer]) -> bytes:
    parsed = parse_note(note)
    return sign_note(parsed.text, list(witnesses), existing=parsed.signatures)


WITNESSES = [CosignatureV1Signer(f"witness.example/w{i}", bytes([i]) * 32) for i in range(3)]
SAME_KEY_OTHER_NAME = CosignatureV1Signer("witness.example/w5", bytes([0]) * 32).verifier().vkey()


# --- what verifies --------------------------------------------------------------------------


def test_receipts_from_a_real_server_verify_with_envelope_and_artifact(logged: Logged) -> None:
    policy = logged.policy()
    vr = verify_receipt(logged.dsse, policy, envelope=logged.envelope, artifact=ARTIFACT,
                        signers={logged.signer.signer_id})
    assert vr.index == 0 and vr.checked == ("envelope", "artifact", "signer")
    assert vr.signers == (logged.signer.signer_id,)
    vr = verify_receipt(logged.rekord, policy, artifact=ARTIFACT)
    assert vr.index == 1 and vr.kind == 2 and vr.checked == ("artifact",)
    # The envelope serialised differently (URL-safe base64, extra field) is the same envelope.
    env = dict(logged.envelope, payload=logged.envelope["payload"].replace("+", "-").replace("/", "_"),
               extra="ignored")
    verify_receipt(orjson.dumps(logged.dsse), policy, envelope=orjson.dumps(env))


# --- tampering: each fails with its own error type ------------------------------------------


def test_flipped_bits_fail_with_the_right_error(logged: Logged) -> None:
    policy = logged.policy()
    doc = httpx.get(f"{logged.server.url}/v1/entries/0/receipt", timeout=10).json()
    assert len(doc["inclusion_proof"]["hashes"]) >= 2, "the proof cases need a proof"
    # Leaf bit flipped: no longer hashes to leaf_hash.
    with pytest.raises(LeafMismatchError):
        verify_receipt(_with(doc, leaf=_flip(doc["leaf"], 40)), policy)
    # Leaf and leaf hash flipped consistently: the proof no longer leads to the root.
    leaf = _flip(doc["leaf"], 40)
    rehashed = base64.b64encode(hashlib.sha256(b"\0" + base64.b64decode(leaf)).digest()).decode()
    with pytest.raises(ProofError):
        verify_receipt(_with(doc, leaf=leaf, leaf_hash=rehashed), policy)
    verify_receipt(doc, policy)
    hashes = doc["inclusion_proof"]["hashes"]
    for i in range(len(hashes)):  # each proof hash, one bit
        bad = [_flip(h, 31, 7) if j == i else h for j, h in enumerate(hashes)]
        with pytest.raises(ProofError):
            verify_receipt(_with(doc, inclusion_proof=dict(doc["inclusion_proof"], hashes=bad)), policy)
    with pytest.raises(ProofError):  # a hash missing
        verify_receipt(_with(doc, inclusion_proof=dict(doc["inclusion_proof"], hashes=hashes[:-1])), policy)
    # Root flipped inside the signed text: the log's signature no longer verifies.
    text, _, sigs = doc["checkpoint"].partition("\n\n")
    origin, size, root = text.split("\n")
    bad_root = f"{origin}\n{size}\n{_flip(root, 0)}\n\n{sigs}"
    with pytest.raises(SignatureError):
        verify_receipt(_with(doc, checkpoint=bad_root), policy)
    # Signature bit flipped.
    name, b64 = sigs.rstrip("\n").removeprefix("\u2014 ").split(" ")
    bad_sig = f"{text}\n\n\u2014 {name} {_flip(b64, 10)}\n"
    with pytest.raises(SignatureError):
        verify_receipt(_with(doc, checkpoint=bad_sig), policy)
    # Proof for another size than the checkpoint.
    with pytest.raises(VerificationError):
        verify_receipt(_with(doc, inclusion_proof=dict(doc["inclusion_proof"], tree_size=99)), policy)
    # Another index (still inside the tree) with the same proof.
    with pytest.raises(ProofError):
        verify_receipt(_with(doc, index=1), policy)


def test_wrong_origin_and_unknown_key(logged: Logged) -> None:
    other = Ed25519Signer("other.example/log", bytes(32))
    with pytest.raises(PolicyError):  # receipt claims another log than the policy trusts
        verify_receipt(_with(logged.dsse, origin="other.example/log"), logged.policy())
    with pytest.raises(UnknownKeyError):  # the policy's key for this origin is another one
        verify_receipt(logged.dsse, TrustPolicy(ORIGIN, (Ed25519Signer(ORIGIN, bytes(32)).verifier(),)))
    # A checkpoint for another origin, signed by a key named after the trusted origin.
    text = "other.example/log\n1\n" + base64.b64encode(bytes(32)).decode() + "\n"
    note = sign_note(text, [Ed25519Signer(ORIGIN, bytes(range(32)))])
    policy = TrustPolicy(ORIGIN, (Ed25519Signer(ORIGIN, bytes(range(32))).verifier(),))
    with pytest.raises(PolicyError):
        verify_checkpoint(note, policy)
    assert other.name != ORIGIN


def test_envelope_artifact_and_signer_mismatches(logged: Logged) -> None:
    policy = logged.policy()
    wrong = envelope(statement([hashlib.sha256(OTHER).hexdigest()]), [logged.signer])
    with pytest.raises(LeafMismatchError):
        verify_receipt(logged.dsse, policy, envelope=wrong)
    resigned = envelope(base64.b64decode(logged.envelope["payload"]), [make_signer("ecdsa-p256")])
    with pytest.raises(SignatureError):  # same payload, signed by someone else
        verify_receipt(logged.dsse, policy, envelope=resigned)
    bad_sig = _flip(logged.envelope["signatures"][0]["sig"], 20)
    forged = dict(logged.envelope, signatures=[{"keyid": "", "sig": bad_sig}])
    with pytest.raises(SignatureError):
        verify_receipt(logged.dsse, policy, envelope=forged)
    with pytest.raises(LeafMismatchError):
        verify_receipt(logged.dsse, policy, envelope=logged.envelope, artifact=OTHER)
    with pytest.raises(MalformedError):  # a DSSE entry's artifact needs the envelope
        verify_receipt(logged.dsse, policy, artifact=ARTIFACT)
    with pytest.raises(LeafMismatchError):
        verify_receipt(logged.rekord, policy, artifact=OTHER)
    with pytest.raises(LeafMismatchError):
        verify_receipt(logged.rekord, policy, envelope=logged.envelope)
    with pytest.raises(PolicyError):
        verify_receipt(logged.rekord, policy, artifact=ARTIFACT, signers={"sha256:" + "0" * 64})
    # A signer claim is only checked against a signature re-verified here.
    with pytest.raises(MalformedError, match="re-verify"):
        verify_receipt(logged.rekord, policy, signers={logged.signer.signer_id})
    # An artifact is a subject only of an in-toto Statement, parsed strictly.
    subject = {"subject": [{"digest": {"sha256": hashlib.sha256(ARTIFACT).hexdigest()}}]}
    plain = envelope(orjson.dumps(subject), [logged.signer], payload_type="application/json")
    with httpx.Client(timeout=30) as http:
        doc = http.post(logged.server.url + "/v1/entries", json=dsse_body(plain, [logged.signer])).json()
    verify_receipt(doc, policy, envelope=plain)
    with pytest.raises(LeafMismatchError, match="not an in-toto"):
        verify_receipt(doc, policy, envelope=plain, artifact=ARTIFACT)


def test_malformed_receipts(logged: Logged) -> None:
    policy = logged.policy()
    for bad in [b"not json", b"[]", orjson.dumps(_with(logged.dsse, index=True)),
                orjson.dumps(_with(logged.dsse, index=-1)),
                orjson.dumps(_with(logged.dsse, leaf_hash="AAAA")),
                orjson.dumps(_with(logged.dsse, leaf=logged.dsse["leaf"].rstrip("=") + "_")),
                orjson.dumps({k: v for k, v in logged.dsse.items() if k != "checkpoint"}),
                orjson.dumps(_with(logged.dsse, checkpoint="no signatures\n"))]:
        with pytest.raises(MalformedError):
            verify_receipt(bad, policy)


# --- witnesses: k of n and freshness ---------------------------------------------------------


def test_witness_quorum_and_freshness(logged: Logged) -> None:
    w = WITNESSES
    policy = logged.policy(witnesses=tuple(x.verifier() for x in w), witness_quorum=2,
                           max_age_seconds=3600)
    two = _with(logged.dsse, checkpoint=_cosign(logged.dsse["checkpoint"].encode(), w[:2]).decode())
    vr = verify_receipt(two, policy)
    assert vr.checkpoint.witnesses == ("witness.example/w0", "witness.example/w1")
    one = _with(logged.dsse, checkpoint=_cosign(logged.dsse["checkpoint"].encode(), w[:1]).decode())
    with pytest.raises(PolicyError, match="1 trusted witness"):
        verify_receipt(one, policy)
    # A cosignature by a key the policy does not list does not count.
    stranger = CosignatureV1Signer("witness.example/w9", b"\x09" * 32)
    odd_note = _cosign(logged.dsse["checkpoint"].encode(), [w[0], stranger]).decode()
    odd = _with(logged.dsse, checkpoint=odd_note)
    with pytest.raises(PolicyError):
        verify_receipt(odd, policy)
    # Old cosignatures: stale.
    old = [CosignatureV1Signer(x.name, bytes([i]) * 32, clock=lambda: time.time() - 7200)
           for i, x in enumerate(w)]
    stale = _with(logged.dsse, checkpoint=_cosign(logged.dsse["checkpoint"].encode(), old).decode())
    with pytest.raises(StaleCheckpointError):
        verify_receipt(stale, policy)
    verify_receipt(stale, policy, now=time.time() - 7000)  # fresh enough then
    # A witness dated in the future does not count, and does not block the others.
    ahead = CosignatureV1Signer(w[2].name, bytes([2]) * 32, clock=lambda: time.time() + 3600)
    skewed = _cosign(logged.dsse["checkpoint"].encode(), [w[0], w[1], ahead]).decode()
    assert verify_receipt(_with(logged.dsse, checkpoint=skewed), policy).checkpoint.witnesses == (
        "witness.example/w0", "witness.example/w1")
    # Age is the quorum's: one fresh cosignature cannot vouch for a stale second one.
    older = CosignatureV1Signer(w[1].name, bytes([1]) * 32, clock=lambda: time.time() - 7200)
    mixed = _cosign(logged.dsse["checkpoint"].encode(), [w[0], older]).decode()
    with pytest.raises(StaleCheckpointError):
        verify_receipt(_with(logged.dsse, checkpoint=mixed), policy)
    # A forged cosignature by a listed witness is a bad signature, not a missing one.
    note = _cosign(logged.dsse["checkpoint"].encode(), w[:2]).decode()
    lines = note.rstrip("\n").split("\n")
    name, b64 = lines[-1].removeprefix("\u2014 ").split(" ")
    lines[-1] = f"\u2014 {name} {_flip(b64, 20)}"
    with pytest.raises(SignatureError):
        verify_receipt(_with(logged.dsse, checkpoint="\n".join(lines) + "\n"), policy)


def test_log_signature_modes(logged: Logged) -> None:
    second = Ed25519Signer(ORIGIN, b"\x07" * 32)
    both = logged.policy(log_signatures="all")
    both = TrustPolicy(ORIGIN, (*both.log_keys, second.verifier()), "all")
    with pytest.raises(PolicyError, match="required log key"):
        verify_receipt(logged.dsse, both)
    verify_receipt(logged.dsse, TrustPolicy(ORIGIN, both.log_keys, "any"))
    parsed = parse_note(logged.dsse["checkpoint"].encode())
    signed_twice = sign_note(parsed.text, [second], existing=parsed.signatures).decode()
    verify_receipt(_with(logged.dsse, checkpoint=signed_twice), both)


# --- policy files ------------------------------------------------------------------------------


def test_policy_files_are_strict(tmp_path: Path, logged: Logged) -> None:
    wk = [x.verifier().vkey() for x in WITNESSES]
    toml = tmp_path / "p.toml"
    toml.write_text(f'origin = "{ORIGIN}"\nlog_keys = ["{logged.vkey}"]\n'
                    f'witnesses = {orjson.dumps(wk).decode()}\nwitness_quorum = 2\n'
                    'max_age_seconds = 60\nurl = "http://127.0.0.1:1/"\n')
    p = load_policy(toml)
    assert p.witness_quorum == 2 and p.url == "http://127.0.0.1:1" and len(p.witnesses) == 3
    js = tmp_path / "p.json"
    js.write_bytes(orjson.dumps(p.to_dict()))
    assert load_policy(js) == p
    base = {"origin": ORIGIN, "log_keys": [logged.vkey]}
    bad: list[tuple[dict[str, Any], str]] = [
        ({**base, "colour": "red"}, "unknown key 'colour'"),
        ({**base, "witness_quorum": True, "witnesses": wk}, "witness_quorum must be"),
        ({**base, "max_age_seconds": 60}, "needs witnesses"),
        ({**base, "witnesses": wk, "witness_quorum": 4}, "not within 0..3"),
        ({**base, "witnesses": [logged.vkey]}, "not a cosignature/v1"),
        ({**base, "witnesses": wk}, "say how many must cosign"),  # no silent 1 of n
        ({**base, "log_keys": [wk[0]]}, "not named after the origin"),
        ({**base, "log_keys": ["garbage"]}, "log_keys[0]"),
        ({**base, "log_signatures": "most"}, "log_signatures"),
        ({"log_keys": [logged.vkey]}, "required"),
        ({**base, "url": "ftp://x"}, "url"),
        # One key under two names would count twice toward k (cosignatures do not sign names).
        ({**base, "witnesses": [wk[0], SAME_KEY_OTHER_NAME], "witness_quorum": 2}, "listed twice"),
    ]
    for doc, msg in bad:
        with pytest.raises(MalformedError, match=msg.replace("[", r"\[").replace(".", r"\.")):
            policy_from_dict(doc)
    (tmp_path / "broken.toml").write_text("origin = \n")
    with pytest.raises(MalformedError, match="does not parse"):
        load_policy(tmp_path / "broken.toml")


# --- the CLI: exit codes ------------------------------------------------------------------------


def test_cli_verify_exit_codes(tmp_path: Path, logged: Logged, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(f'origin = "{ORIGIN}"\nlog_keys = ["{logged.vkey}"]\n')
    good, env, art = tmp_path / "r.json", tmp_path / "env.json", tmp_path / "art"
    good.write_bytes(orjson.dumps(logged.dsse))
    env.write_bytes(orjson.dumps(logged.envelope))
    art.write_bytes(ARTIFACT)
    state = ["--state", str(tmp_path / "state")]
    assert cli.main(["verify", str(good), "--policy", str(policy), "--envelope", str(env), *state]) == 0
    assert "ok: entry 0" in capsys.readouterr().out
    assert cli.main(["verify", str(good), "--policy", str(policy), "--artifact", str(art), *state]) == 2
    text, _, sigs = logged.dsse["checkpoint"].partition("\n\n")
    name, b64 = sigs.rstrip("\n").removeprefix("\u2014 ").split(" ")
    cases = {
        "signature": _with(logged.dsse, checkpoint=f"{text}\n\n\u2014 {name} {_flip(b64, 9)}\n"),
        "leaf": _with(logged.dsse, leaf=_flip(logged.dsse["leaf"], 3)),
        "proof": _with(logged.dsse, index=1),
        "origin": _with(logged.dsse, origin="elsewhere.example/log"),
    }
    for name, doc in cases.items():
        f = tmp_path / f"{name}.json"
        f.write_bytes(orjson.dumps(doc))
        assert cli.main(["verify", str(f), "--policy", str(policy), *state]) == 1, name
    (tmp_path / "junk.json").write_bytes(b"{")
    assert cli.main(["verify", str(tmp_path / "junk.json"), "--policy", str(policy)]) == 2
    assert cli.main(["verify", str(tmp_path / "missing.json"), "--policy", str(policy)]) == 2
    assert cli.main(["verify", str(good)]) == 2  # no policy
    wrong_key = tmp_path / "wrong.toml"
    other_vkey = Ed25519Signer(ORIGIN, bytes(32)).verifier().vkey()
    wrong_key.write_text(f'origin = "{ORIGIN}"\nlog_keys = ["{other_vkey}"]\n')
    assert cli.main(["verify", str(good), "--policy", str(wrong_key), "--no-state"]) == 1
    assert cli.main(["verify-receipt", str(good), "--vkey", logged.vkey]) == 0
    # A policy with witnesses and a maximum age: old cosignatures are stale (exit 1).
    old = [CosignatureV1Signer(x.name, bytes([i]) * 32, clock=lambda: time.time() - 7200)
           for i, x in enumerate(WITNESSES)]
    stale = tmp_path / "stale.json"
    stale.write_bytes(orjson.dumps(_with(logged.dsse, checkpoint=_cosign(
        logged.dsse["checkpoint"].encode(), old).decode())))
    witnessed = tmp_path / "witnessed.json"
    witnessed.write_bytes(orjson.dumps(logged.policy(
        witnesses=tuple(x.verifier() for x in WITNESSES), witness_quorum=2, max_age_seconds=3600).to_dict()))
    assert cli.main(["verify", str(stale), "--policy", str(witnessed), "--no-state"]) == 1
    assert "StaleCheckpointError" in capsys.readouterr().err
    assert parse_receipt(good.read_bytes()).index == 0
