"""Edge cases found in review: costly keys, unreachable index terms, raw imitations."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from client import attest
from client.jcs import canonicalize
from tests.attestkit import (
    dsse_body,
    envelope,
    make_signer,
    public_pem,
    sha256_hex,
    statement,
)
from tests.conftest import ORIGIN
from tests.serverproc import ServerProc


def test_rsa_public_exponent_is_bounded() -> None:
    n = rsa.generate_private_key(65537, 2048).public_key().public_numbers().n
    huge = rsa.RSAPublicNumbers(e=(1 << 1500) + 1, n=n).public_key()  # odd, < n
    with pytest.raises(attest.UnsupportedKeyError):
        attest.load_public_key(public_pem(huge))
    assert attest.load_public_key(public_pem(rsa.RSAPublicNumbers(e=3, n=n).public_key()))


def test_duplicate_verifiers_are_tried_once() -> None:
    s = make_signer("ed25519")
    assert len(attest.load_verifiers([s.pem] * 8)) == 1


def test_predicate_types_are_uris_everywhere() -> None:
    s = make_signer("ed25519")
    for bad in ("has space", "tab\there", "ctl\x01"):
        env = envelope(statement([sha256_hex(b"x")], predicate_type=bad), [s])
        with pytest.raises(attest.StatementMismatchError):
            attest.check_dsse(env, [s.pem])


def test_raw_imitation_cannot_orphan_an_envelope(tmp_path: Path) -> None:
    """A raw entry with the leaf's bytes first, then the real DSSE submission: the envelope
    must still be stored (an acknowledged attestation always has its envelope)."""
    s = make_signer("ed25519")
    env = envelope(statement([sha256_hex(b"orphan")]), [s])
    sub = attest.check_dsse(env, [s.pem])
    srv = ServerProc(tmp_path / "data", args=["--allow-raw", "--origin", ORIGIN]).start()
    try:
        with httpx.Client(timeout=10) as c:
            raw = c.post(srv.url + "/v1/entries",
                         json={"raw": base64.b64encode(sub.leaf).decode()})
            assert raw.status_code == 201
            again = c.post(srv.url + "/v1/entries", json=dsse_body(env, [s]))
            assert again.status_code == 200 and again.json()["index"] == raw.json()["index"]
            digest = hashlib.sha256(sub.canonical).hexdigest()
            got = c.get(f"{srv.url}/v1/attestations/{digest}")
            assert got.status_code == 200 and got.content == sub.canonical
            # Raw imitations: a malformed record is not an attestation (fsck ignores it); a
            # well-formed one whose envelope was never stored is reported, not crashed on.
            fake = b'\x01\x01{"attestation":"' + b"z" * 64 + b'"}'
            assert c.post(srv.url + "/v1/entries",
                          json={"raw": base64.b64encode(fake).decode()}).status_code == 201
            record = orjson.loads(sub.leaf[2:])
            record["attestation"] = "ab" * 32
            orphan = b"\x01\x01" + canonicalize(record)
            assert c.post(srv.url + "/v1/entries",
                          json={"raw": base64.b64encode(orphan).decode()}).status_code == 201
            r = c.get(srv.url + "/v1/search", params={"subject": "sha256:00", "cursor": str((1 << 64) - 1)})
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_parameter"
    finally:
        srv.stop()
    out = subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", "--data-dir",
                          str(tmp_path / "data")], capture_output=True, text=True, timeout=60,
                         check=False)
    assert "Traceback" not in out.stderr
    assert "envelope" in out.stdout and out.returncode == 1  # reported, not crashed


def test_odd_raw_records_do_not_poison_a_batch(server: ServerProc) -> None:
    """Raw bytes that parse as canonical JSON with the wrong schema are not indexed (they used
    to crash the search indexer and fail their whole batch with 503)."""
    odd = [b"\x01\x01" + canonicalize({"signatures": [{"signer": ["x"]}]}),
           b"\x01\x02" + canonicalize({"digest": {"sha256": {"a": 1}}, "signature": {}}),
           b"\x01\x01" + canonicalize({"statement": {"subjects": [{"digest": {"sha256": [1]}}]}})]
    with httpx.Client(timeout=30) as c:
        for body in [*odd, b"innocent"]:
            r = c.post(server.url + "/v1/entries", json={"raw": base64.b64encode(body).decode()})
            assert r.status_code == 201, r.text
    for leaf in odd:
        assert attest.parse_leaf(leaf) is None and attest.search_keys(leaf) == []
