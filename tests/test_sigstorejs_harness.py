"""Smoke tests of the sigstore-js harness (tests/sigstorejs.py, tests/js/verify_bundle.mjs):
the pinned @sigstore/verify loads, runs, and reports its rejections as (False, "<Class>/<code>:
<message>"); harness failures raise. Skipped without Node.js and the npm packages, unless
REQUIRE_SIGSTORE_JS=1, REQUIRE_ENGINES=1 or CI is set.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests import sigstorejs

ARTIFACT = b"tlog sigstore-js harness smoke test\n"
ROOT = {
    "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
    "tlogs": [], "certificateAuthorities": [], "ctlogs": [], "timestampAuthorities": [],
}


@pytest.fixture(autouse=True)
def _sigstore_js() -> None:
    sigstorejs.require()


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


@pytest.fixture(scope="module")
def signed() -> tuple[bytes, dict]:
    """A P-256 key (PEM) and a well-formed v0.3 message-signature bundle with no tlog entries
    and no timestamps."""
    key = ec.derive_private_key(0x7106, ec.SECP256R1())  # fixed, never a real key
    pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    sig = key.sign(ARTIFACT, ec.ECDSA(hashes.SHA256()))
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": "any"}, "tlogEntries": []},
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256",
                              "digest": b64(hashlib.sha256(ARTIFACT).digest())},
            "signature": b64(sig),
        },
    }
    return pem, bundle


def test_available() -> None:
    assert sigstorejs.available()


def test_no_tlog_entries_rejected(signed: tuple[bytes, dict]) -> None:
    pem, bundle = signed
    ok, err = sigstorejs.verify(ROOT, bundle, pem, ARTIFACT)
    assert not ok
    # The bundle passes sigstore-js's structural validation; the Verifier then checks timestamps
    # before tlogs, and with no tlog entry (and no TSA token) there is no time to verify at.
    assert err.startswith("VerificationError/TIMESTAMP_ERROR:"), err
    assert "expected 1 timestamps, got 0" in err


def test_tlog_entry_without_inclusion_proof_rejected(signed: tuple[bytes, dict]) -> None:
    pem, bundle = signed
    bundle = copy.deepcopy(bundle)
    bundle["verificationMaterial"]["tlogEntries"] = [{
        "logIndex": "0", "logId": {"keyId": b64(bytes(32))},
        "kindVersion": {"kind": "hashedrekord", "version": "0.0.2"},
        "canonicalizedBody": b64(b"{}"),
    }]
    ok, err = sigstorejs.verify(ROOT, bundle, pem, ARTIFACT)
    assert not ok
    assert err.startswith("ValidationError:"), err
    assert "tlogEntries[0].inclusionProof" in err


@pytest.mark.parametrize("bundle", [
    {"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"},
    {"mediaType": 3, "verificationMaterial": "x", "messageSignature": []},
], ids=["no-content", "wrong-types"])
def test_invalid_bundle_rejected(signed: tuple[bytes, dict], bundle: dict) -> None:
    pem, _ = signed
    ok, err = sigstorejs.verify(ROOT, bundle, pem, ARTIFACT)
    assert not ok
    assert err.startswith("ValidationError: invalid bundle"), err
    assert "verificationMaterial" in err


def test_harness_failure_raises(signed: tuple[bytes, dict], monkeypatch: pytest.MonkeyPatch,
                                tmp_path: Path) -> None:
    pem, bundle = signed
    monkeypatch.setattr(sigstorejs, "SCRIPT", tmp_path / "missing.mjs")
    with pytest.raises(RuntimeError, match="harness failed"):
        sigstorejs.verify(ROOT, bundle, pem, ARTIFACT)


def test_bad_arguments_exit_nonzero() -> None:
    proc = subprocess.run(["node", str(sigstorejs.SCRIPT), "--bundle", "/nonexistent.json"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "--trusted-root is required" in proc.stderr
