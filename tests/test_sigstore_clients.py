"""Sigstore clients verify tlog's Rekor v2 entries end to end, with their own code.

A real log (`tlog serve`, origin a host name as Rekor v2 logs use) with a real time-stamping
authority (`python -m tsa serve`); entries submitted as Sigstore clients submit them
(`POST /api/v2/log/entries`); bundles fetched from the log (`GET
/v1/entries/<index>/sigstore-bundle`) or assembled from the write answer. sigstore-js
(@sigstore/verify, default thresholds) verifies whole bundles with the log's published
TrustedRoot; sigstore-python verifies what its API allows without a Fulcio certificate
(tests/sigstore_adapter.verify_bundle_parts). Every mutation of a bundle must fail both.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from client import rekor
from client.attest import parse_envelope, parse_leaf
from client.errors import LeafMismatchError
from client.monitor import Follower, LogWatch, Reporter, Watch
from client.note import Ed25519Signer
from client.policy import load_policy
from client.rekorleaf import KIND_REKOR
from client.sigstore_bundle import verify_bundle
from client.sigstore_trust import tsa_chain_of
from client.timestamp import timestamp_request
from client.verify import verify_receipt
from tests import sigstore_adapter, sigstorejs
from tests import sigstorekit as kit
from tests.serverproc import ServerProc, TSAProc, witnessed_log

ORIGIN = "rekor.test.example"
LOG_KEY = Ed25519Signer(ORIGIN, bytes([0x31]) * 32)
WITNESS, WITNESS_SEED = "witness.test/sigstore", bytes([0x32]) * 32
ARTIFACT = b"the artifact a release pipeline signed\n"
SUBJECT = "5e" * 32


@dataclass
class Stack:
    log: ServerProc
    tsa: TSAProc
    root: dict[str, Any]
    key: ec.EllipticCurvePrivateKey
    message: dict[str, Any]  # bundle of a message signature over ARTIFACT
    dsse: dict[str, Any]  # bundle of a DSSE in-toto attestation (dsseRequestV002)
    dsse_index: int
    envelope: dict[str, Any]


def _post(url: str, doc: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + "/api/v2/log/entries", json=doc, timeout=30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The log, a witness (receipts wait for its cosignature, so every checkpoint the
    Sigstore clients see carries a cosignature line beside the log's) and the TSA."""
    tmp = tmp_path_factory.mktemp("sigstore")
    with witnessed_log(tmp, LOG_KEY, WITNESS, WITNESS_SEED) as (log, _witness, tsa):
        key = ec.generate_private_key(ec.SECP256R1())
        for i in range(3):  # a few entries first, so proofs have hashes
            assert _post(log.url, kit.hashedrekord_request(key, b"warm-up %d" % i)[0]).status_code == 201
        resp = _post(log.url, kit.hashedrekord_request(key, ARTIFACT)[0])
        assert resp.status_code == 201, resp.text
        message = httpx.get(f"{log.url}/v1/entries/{resp.json()['logIndex']}/sigstore-bundle", timeout=30)
        assert message.status_code == 200, message.text
        envelope = kit.dsse_envelope(key, kit.statement(SUBJECT))
        resp = _post(log.url, kit.dsse_request(key, envelope))
        assert resp.status_code == 201, resp.text
        index = int(resp.json()["logIndex"])
        dsse = httpx.get(f"{log.url}/v1/entries/{index}/sigstore-bundle", timeout=30)
        root = httpx.get(log.url + "/v1/sigstore/trusted-root.json", timeout=10).json()
        yield Stack(log, tsa, root, key, message.json(), dsse.json(), index, envelope)


def _js(stack: Stack, bundle: dict[str, Any], artifact: bytes | None) -> tuple[bool, str]:
    sigstorejs.require()
    return sigstorejs.verify(stack.root, bundle, kit.pem(stack.key), artifact=artifact)


def _py(stack: Stack, bundle: dict[str, Any], artifact: bytes | None) -> tuple[bool, str]:
    try:
        sigstore_adapter.verify_bundle_parts(bundle, stack.root, kit.pem(stack.key), artifact)
    except Exception as exc:  # sigstore's VerificationError, pydantic's ValueError, ...
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


def test_the_log_publishes_a_trusted_root_and_signing_config(stack: Stack) -> None:
    (tlog,) = stack.root["tlogs"]
    assert tlog["baseUrl"] == f"https://{ORIGIN}" and tlog["publicKey"]["keyDetails"] == "PKIX_ED25519"
    (tsa,) = stack.root["timestampAuthorities"]
    assert len(tsa["certChain"]["certificates"]) == 2
    signing = httpx.get(stack.log.url + "/v1/sigstore/signing-config.json", timeout=10).json()
    assert signing["rekorTlogUrls"][0]["majorApiVersion"] == 2
    assert signing["tsaUrls"][0]["url"] == stack.tsa.url + "/api/v1/timestamp"
    # The files `tlog serve` wrote are what it serves; sigstore-python's models parse both.
    written = json.loads((stack.log.data_dir / "sigstore-trusted-root.json").read_text())
    assert written == stack.root
    from sigstore_models.trustroot.v1 import SigningConfig, TrustedRoot

    TrustedRoot.from_json(json.dumps(stack.root))
    SigningConfig.from_json(json.dumps(signing))


@pytest.mark.parametrize("verify", [_js, _py], ids=["sigstore-js", "sigstore-python"])
def test_message_signature_bundles_verify(stack: Stack, verify: Callable[..., tuple[bool, str]]) -> None:
    ok, why = verify(stack, stack.message, ARTIFACT)
    assert ok, why
    assert verify(stack, stack.message, ARTIFACT + b"x")[0] is False


@pytest.mark.parametrize("verify", [_js, _py], ids=["sigstore-js", "sigstore-python"])
def test_dsse_attestation_bundles_verify(stack: Stack, verify: Callable[..., tuple[bool, str]]) -> None:
    ok, why = verify(stack, stack.dsse, None)
    assert ok, why


@pytest.mark.parametrize("verify", [_js, _py], ids=["sigstore-js", "sigstore-python"])
def test_a_bundle_assembled_from_the_write_answer_verifies(
        stack: Stack, verify: Callable[..., tuple[bool, str]]) -> None:
    """What a Sigstore client does: timestamp its signature at the TSA, submit a hashedrekord
    over the PAE digest (as sigstore-python does for DSSE), put both in its bundle."""
    envelope = kit.dsse_envelope(stack.key, kit.statement("77" * 32))
    resp = _post(stack.log.url, kit.dsse_as_hashedrekord(stack.key, envelope))
    assert resp.status_code == 201, resp.text
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    stamp = httpx.post(stack.tsa.url + "/api/v1/timestamp", content=timestamp_request(sig),
                       headers={"Content-Type": "application/timestamp-query"}, timeout=10)
    entry = parse_leaf(base64.b64decode(resp.json()["canonicalizedBody"]))
    assert entry is not None and entry.rekor is not None
    bundle = rekor.bundle(resp.json(), entry.rekor, parse_envelope(envelope), [stamp.content])
    ok, why = verify(stack, bundle, None)
    assert ok, why


def _flip_b64(value: str, at: int = -5) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _tle(b: dict[str, Any]) -> dict[str, Any]:
    return b["verificationMaterial"]["tlogEntries"][0]


def _checkpoint_edit(b: dict[str, Any], edit: Callable[[str], str]) -> None:
    cp = _tle(b)["inclusionProof"]["checkpoint"]
    cp["envelope"] = edit(cp["envelope"])


def _body_edit(b: dict[str, Any]) -> None:
    body = json.loads(base64.b64decode(_tle(b)["canonicalizedBody"]))
    data = body["spec"]["hashedRekordV002"]["data"]
    data["digest"] = _flip_b64(data["digest"])
    _tle(b)["canonicalizedBody"] = base64.b64encode(
        json.dumps(body, separators=(",", ":"), sort_keys=True).encode()).decode()


def _signature_edit(b: dict[str, Any]) -> None:
    if "messageSignature" in b:
        b["messageSignature"]["signature"] = _flip_b64(b["messageSignature"]["signature"], 10)
    else:
        b["dsseEnvelope"]["signatures"][0]["sig"] = _flip_b64(b["dsseEnvelope"]["signatures"][0]["sig"], 10)


def _content_edit(b: dict[str, Any]) -> None:
    if "messageSignature" in b:
        md = b["messageSignature"]["messageDigest"]
        md["digest"] = _flip_b64(md["digest"])
    else:
        payload = base64.b64decode(b["dsseEnvelope"]["payload"]).replace(SUBJECT.encode(), b"6e" * 32)
        b["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()


def _log_signature_edit(note: str) -> str:
    """Flip a bit of the log's own signature (not the witness's cosignature, which Sigstore
    clients ignore)."""
    lines = note.split("\n")
    i = next(n for n, line in enumerate(lines) if line.startswith(f"\u2014 {ORIGIN} "))
    name, sig = lines[i].rsplit(" ", 1)
    lines[i] = f"{name} {_flip_b64(sig, 10)}"
    return "\n".join(lines)


def _grow_size(note: str) -> str:
    origin, size, rest = note.split("\n", 2)
    return f"{origin}\n{int(size) + 1}\n{rest}"


def _stamps(b: dict[str, Any]) -> list[dict[str, str]]:
    return b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "proof-hash": lambda b: _tle(b)["inclusionProof"]["hashes"].__setitem__(
        0, _flip_b64(_tle(b)["inclusionProof"]["hashes"][0])),
    "proof-dropped-hash": lambda b: _tle(b)["inclusionProof"]["hashes"].pop(),
    "proof-index": lambda b: _tle(b)["inclusionProof"].__setitem__(
        "logIndex", str(int(_tle(b)["inclusionProof"]["logIndex"]) ^ 1)),
    "checkpoint-signature": lambda b: _checkpoint_edit(b, _log_signature_edit),
    "checkpoint-root": lambda b: _checkpoint_edit(
        b, lambda t: t.replace(t.split("\n")[2], _flip_b64(t.split("\n")[2]))),
    "checkpoint-size": lambda b: _checkpoint_edit(b, _grow_size),
    "log-id": lambda b: _tle(b)["logId"].__setitem__("keyId", _flip_b64(_tle(b)["logId"]["keyId"], 0)),
    "body": _body_edit,
    "signature": _signature_edit,
    "content": _content_edit,
    "timestamp-byte": lambda b: _stamps(b).__setitem__(
        0, {"signedTimestamp": _flip_b64(_stamps(b)[0]["signedTimestamp"], -10)}),
    "timestamp-removed": lambda b: b["verificationMaterial"].pop("timestampVerificationData"),
}


@pytest.mark.parametrize("kind", ["message", "dsse"])
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_every_mutation_is_rejected_by_both_clients(stack: Stack, kind: str, mutation: str) -> None:
    bundle = copy.deepcopy(stack.message if kind == "message" else stack.dsse)
    MUTATIONS[mutation](bundle)
    artifact = ARTIFACT if kind == "message" else None
    for verify in (_js, _py):
        ok, why = verify(stack, bundle, artifact)
        assert not ok, f"{verify.__name__} accepted a bundle with a mutated {mutation}"
        assert why


def test_rekor_entries_are_searchable_and_have_receipts(stack: Stack) -> None:
    url = stack.log.url
    hits = httpx.get(url + "/v1/search", params={"subject": f"sha256:{SUBJECT}"}, timeout=10).json()["hits"]
    assert [h["index"] for h in hits] == [stack.dsse_index]  # from the stored envelope
    signer = "sha256:" + hashlib.sha256(kit.spki(stack.key)).hexdigest()
    by_signer = httpx.get(url + "/v1/search", params={"signer": signer, "limit": 1000}, timeout=10).json()
    assert stack.dsse_index in [h["index"] for h in by_signer["hits"]]
    receipt = httpx.get(f"{url}/v1/entries/{stack.dsse_index}/receipt", timeout=10).json()
    policy = load_policy(stack.log.data_dir / "client-policy.toml")
    checked = verify_receipt(receipt, policy, envelope=json.dumps(stack.envelope).encode(),
                             signers=[signer])
    assert checked.checked == ("envelope", "signer") and checked.kind == KIND_REKOR
    other = kit.dsse_envelope(stack.key, kit.statement("99" * 32))
    with pytest.raises(LeafMismatchError, match="not the one"):
        verify_receipt(receipt, policy, envelope=json.dumps(other).encode())


def test_duplicates_and_refusals_as_upstream(stack: Stack) -> None:
    req, _ = kit.hashedrekord_request(stack.key, b"submitted twice")
    first = _post(stack.log.url, req)
    assert first.status_code == 201
    again = _post(stack.log.url, req)  # the same bytes (ECDSA signs afresh each time)
    assert again.status_code == 409 and again.json() == first.json() | {
        "inclusionProof": again.json()["inclusionProof"]}
    assert again.headers["x-log-index"] == again.json()["logIndex"]
    ed_req = copy.deepcopy(req)
    ed_req["hashedRekordRequestV002"]["signature"]["verifier"]["keyDetails"] = "PKIX_ED25519"
    refused = _post(stack.log.url, ed_req)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unsupported_key"
    junk = httpx.post(stack.log.url + "/api/v2/log/entries", content=b"{not json", timeout=10)
    assert junk.status_code == 400 and junk.json()["error"]["code"] == "malformed_json"
    not_rekor = httpx.get(stack.log.url + "/v1/entries/999999/sigstore-bundle", timeout=10)
    assert not_rekor.status_code == 404


def test_bundles_carry_cosigned_checkpoints(stack: Stack) -> None:
    """The witness's cosignature is in the checkpoint Sigstore clients verified above; a tlog
    policy that requires it verifies the same bundle (Sigstore clients ignore witnesses)."""
    note = _tle(stack.dsse)["inclusionProof"]["checkpoint"]["envelope"]
    assert f"\u2014 {WITNESS} " in note
    policy = load_policy(stack.log.data_dir / "client-policy.toml")
    assert policy.witness_quorum == 1
    vb = verify_bundle(stack.dsse, policy, tsa_chain=tsa_chain_of(stack.root))
    assert vb.receipt.index == stack.dsse_index and vb.receipt.checked == ("envelope",)
    assert len(vb.timestamps) == 1
    vm = verify_bundle(stack.message, policy, artifact=ARTIFACT, tsa_chain=tsa_chain_of(stack.root))
    assert vm.receipt.checked == ("artifact",)
    with pytest.raises(LeafMismatchError):
        verify_bundle(stack.message, policy, artifact=ARTIFACT + b"!")


def test_tlog_client_writes_bundles_sigstore_verifies(stack: Stack, tmp_path: Path) -> None:
    key_file = tmp_path / "signer.pem"
    key_file.write_bytes(stack.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    policy = stack.log.data_dir / "client-policy.toml"
    statement = tmp_path / "statement.json"
    statement.write_bytes(kit.statement("42" * 32))
    artifact = tmp_path / "app.tar.gz"
    artifact.write_bytes(b"release bytes")
    for kind, path in (("dsse", statement), ("hashedrekord", artifact)):
        out = tmp_path / f"{kind}.sigstore.json"
        run = subprocess.run(
            [sys.executable, "-m", "client.cli", "submit", str(path), "--key", str(key_file), "--kind", kind,
             "--policy", str(policy), "--sigstore-bundle", str(out)],
            capture_output=True, text=True, timeout=60, check=False)
        assert run.returncode == 0, run.stderr
        assert "bundle verified" in run.stderr + run.stdout
        bundle = json.loads(out.read_text())
        given = None if kind == "dsse" else b"release bytes"
        for verify in (_js, _py):
            ok, why = verify(stack, bundle, given)
            assert ok, f"{verify.__name__}: {why}"
        check = subprocess.run(
            [sys.executable, "-m", "client.cli", "verify-bundle", str(out), "--policy", str(policy),
             *(["--artifact", str(path)] if kind == "hashedrekord" else []),
             "--trusted-root", str(stack.log.data_dir / "sigstore-trusted-root.json")],
            capture_output=True, text=True, timeout=60, check=False)
        assert check.returncode == 0, check.stderr
        assert check.stdout.startswith("ok: entry ") and "timestamped" in check.stdout
    fetched = tmp_path / "fetched.json"
    run = subprocess.run([sys.executable, "-m", "client.cli", "bundle", str(stack.dsse_index),
                          "--out", str(fetched), "--policy", str(policy)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    assert json.loads(fetched.read_text())["dsseEnvelope"] == stack.dsse["dsseEnvelope"]


def test_monitors_match_rekor_entries_by_signer_and_statement(stack: Stack, tmp_path: Path) -> None:
    """A monitor following the log matches a Rekor v2 DSSE entry on its Statement's subject,
    which the leaf does not hold: it fetches the envelope the log stores with it and checks
    it against the leaf."""
    policy = load_policy(stack.log.data_dir / "client-policy.toml")
    signer = "sha256:" + hashlib.sha256(kit.spki(stack.key)).hexdigest()
    out = tmp_path / "reports.jsonl"
    watch = LogWatch(policy, Watch(subjects=frozenset({f"sha256:{SUBJECT}"}), signers=frozenset({signer})))
    f = Follower(watch, tmp_path, Reporter(str(out), "", tmp_path), alert=lambda doc: None)
    try:
        f.poll()
    finally:
        f.close()
    reports = {json.loads(x)["index"]: json.loads(x) for x in out.read_text().splitlines()}
    assert f"subject=sha256:{SUBJECT}" in reports[stack.dsse_index]["matched"]
    assert all(f"signer={signer}" in r["matched"] for r in reports.values())  # every entry is this key's
    assert len(reports) >= 5  # the fixture's entries at least


def test_audit_and_fsck_pass_over_rekor_entries(stack: Stack) -> None:
    policy = stack.log.data_dir / "client-policy.toml"
    audit = subprocess.run([sys.executable, "-m", "client.cli", "audit", "--full", "--no-state",
                            "--policy", str(policy)],
                           capture_output=True, text=True, timeout=120, check=False)
    assert audit.returncode == 0, audit.stderr
    fsck = subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", "--data-dir", str(stack.log.data_dir)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert "warning" not in (fsck.stdout + fsck.stderr).lower()


def test_no_bundle_without_a_usable_timestamp(stack: Stack, tmp_path: Path) -> None:
    """A TSA that is down (or answers anything but a timestamp that verifies with its chain)
    gets the bundle refused with 503 `tsa_unavailable`, not a bundle every client rejects."""
    config = tmp_path / "log.toml"
    config.write_text(f'[log]\norigin = "{ORIGIN}"\ntsa_url = "{stack.log.url}"\n'
                      f'tsa_chain_file = "{stack.tsa.data_dir / "tsa-chain.pem"}"\n')
    log = ServerProc(tmp_path / "log", args=["--config", str(config)]).start()
    try:
        resp = _post(log.url, kit.hashedrekord_request(stack.key, b"no timestamp for this")[0])
        assert resp.status_code == 201
        bundle = httpx.get(f"{log.url}/v1/entries/{resp.json()['logIndex']}/sigstore-bundle", timeout=30)
        assert bundle.status_code == 503 and bundle.json()["error"]["code"] == "tsa_unavailable"
        assert bundle.headers["retry-after"] == "5"
    finally:
        log.stop()
