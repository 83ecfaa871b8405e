"""The TPM-held checkpoint key against a real swtpm: persistence, signatures, failures.

Signatures are checked by our signed-note verifier (type 0x02) and by sigstore-python.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from client.note import Ed25519Signer, parse_note, sign_note, verify_note
from client.policy import TrustPolicy
from client.verify import verify_checkpoint
from tests import sigstore_adapter
from tests.conftest import ORIGIN, SEED
from tests.swtpm import Swtpm, require_tpm_tools


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[Swtpm]:
    require_tpm_tools()
    tpm = Swtpm(tmp_path / "tpm").start()
    yield tpm
    if tpm.proc is not None and tpm.proc.poll() is None:
        tpm.resume()  # in case a test left it paused
    tpm.stop()


def test_key_is_created_persisted_and_survives_restarts(swtpm: Swtpm) -> None:
    from tlog.tpm import REQUIRED_ATTRIBUTES, TpmError, open_signer

    with pytest.raises(TpmError, match="tlog tpm init"):
        open_signer(ORIGIN, swtpm.tcti)
    signer = open_signer(ORIGIN, swtpm.tcti, create=True)
    spki = signer.spki_der
    _, attrs = signer.key.public()
    assert set(attrs) == set(REQUIRED_ATTRIBUTES)
    signer.key.close()
    for _ in range(2):  # restart the TPM (unclean too): the same key, no lockout (noDA)
        swtpm.stop()
        swtpm.start()
        again = open_signer(ORIGIN, swtpm.tcti, expected_spki=spki)
        assert again.spki_der == spki
        note = sign_note(f"{ORIGIN}\n1\n{base64.b64encode(bytes(32)).decode()}\n", [again])
        verify_note(note, [again.verifier()])
        again.key.close()
    other = Swtpm(swtpm.state.parent / "other").start()
    try:
        with pytest.raises(TpmError, match="not the log's TPM key"):
            open_signer(ORIGIN, other.tcti, create=True, expected_spki=spki)
    finally:
        other.stop()


def test_checkpoints_signed_in_the_tpm_verify_with_two_implementations(swtpm: Swtpm) -> None:
    from tlog.tpm import open_signer

    tpm_signer = open_signer(ORIGIN, swtpm.tcti, create=True)
    ed = Ed25519Signer(ORIGIN, SEED)
    root = bytes(range(32))
    note = sign_note(f"{ORIGIN}\n42\n{base64.b64encode(root).decode()}\n", [ed, tpm_signer])
    both = TrustPolicy(ORIGIN, (ed.verifier(), tpm_signer.verifier()), "all")
    vc = verify_checkpoint(note, both)
    assert len(vc.log_signers) == 2 and len(parse_note(note).signatures) == 2
    pem = serialization.load_der_public_key(tpm_signer.spki_der).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    sigstore_adapter.verify_checkpoint(note, ORIGIN, pem, root, 42)  # an independent 0x02 verifier
    tpm_signer.key.close()


def test_unreachable_and_hung_tpms_fail_fast_and_recover(swtpm: Swtpm, tmp_path: Path) -> None:
    from tlog.tpm import TpmError, open_signer

    t0 = time.monotonic()
    with pytest.raises(TpmError, match="nowhere"):
        open_signer(ORIGIN, f"swtpm:path={tmp_path}/nowhere", create=True)
    assert time.monotonic() - t0 < 5
    signer = open_signer(ORIGIN, swtpm.tcti, create=True)
    signer.key.timeout = 1.0
    swtpm.pause()  # a hung TPM: calls must time out, not block the log
    t0 = time.monotonic()
    with pytest.raises(TpmError, match="did not answer"):
        signer.sign(b"x")
    assert time.monotonic() - t0 < 3
    swtpm.resume()
    time.sleep(0.2)
    deadline = time.monotonic() + 10
    while True:  # back: a fresh context answers again
        try:
            sig = signer.sign(b"back")
            break
        except TpmError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert sig
    swtpm.stop()  # gone: a clear error naming the TCTI
    with pytest.raises(TpmError, match="swtpm:path="):
        signer.sign(b"gone")
    signer.key.close()


def test_tpm_init_command(swtpm: Swtpm, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from client.note import parse_vkey

    def init(tcti: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tlog.cli", "tpm", "init", "--data-dir",
                               str(tmp_path / "data"), "--tcti", tcti], capture_output=True, text=True,
                              timeout=60, check=False)

    first = init(swtpm.tcti)
    assert first.returncode == 0, first.stderr
    record = json.loads((tmp_path / "data" / "tpm.json").read_text())
    v = parse_vkey(record["vkey"])
    assert v.alg == 0x02 and f"ECDSA verifier key {record['vkey']}" in first.stdout
    assert init(swtpm.tcti).stdout == first.stdout  # idempotent: the same key
    bad = init(f"swtpm:path={tmp_path}/none")
    assert bad.returncode == 3 and "cannot reach the TPM" in bad.stderr and "Traceback" not in bad.stderr
