"""sigstore-python (pinned, tests/sigstore_adapter.py) verifies our proofs and checkpoints.

A second, independent implementation for what Go's sumdb cannot check: ECDSA (type 0x02)
checkpoint signatures. Inclusion proofs of every index of small trees, and receipts from a
real server, are accepted by both verifiers; tampered ones are refused by both.
"""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from client import merkle
from client.errors import TlogError
from client.note import ECDSASigner, parse_vkey, sign_note
from client.policy import TrustPolicy
from client.verify import parse_receipt, verify_checkpoint, verify_receipt
from tests import sigstore_adapter as sig
from tests.conftest import ORIGIN
from tests.serverproc import ServerProc
from tlog.storage import LogStore

KEY = ec.derive_private_key(0x5EED, ec.SECP256R1())
PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                    serialization.PublicFormat.SubjectPublicKeyInfo)


def _refused(fn: object, *args: object) -> bool:
    """True if `fn` refuses with a verification error (ours, or sigstore's); any other
    exception (a misuse of the adapter, a bug) propagates and fails the test."""
    from sigstore.errors import VerificationError as SigstoreVerificationError

    try:
        fn(*args)  # type: ignore[operator]
    except (SigstoreVerificationError, TlogError):
        return True
    return False


def test_adapter_is_installed() -> None:
    assert sig.available(), f"install {sig.SIGSTORE_PIN} (it is in the [test] extra)"


def test_ecdsa_checkpoints_and_proofs_verify_with_sigstore(tmp_path: Path) -> None:
    signer = ECDSASigner(ORIGIN, KEY)
    policy = TrustPolicy(ORIGIN, (signer.verifier(),))
    store = LogStore(tmp_path / "db", create=True, map_size=1 << 28)
    store.initialize(ORIGIN, lambda t: sign_note(t, [signer]))
    for size in (1, 2, 3, 7, 8, 9, 255, 256, 257, 300):
        store.append([f"entry {i}".encode() for i in range(store.head().size, size)],
                     lambda t: sign_note(t, [signer]))
        note = store.checkpoint()
        vc = verify_checkpoint(note, policy)
        sig.verify_checkpoint(note, ORIGIN, PEM, vc.root, size)
        with store.read_txn() as txn:
            read = store.node_reader(txn)
            for index in sorted({0, size // 2, size - 1}):
                leaf = store.entry_in(txn, index)
                proof = merkle.inclusion_proof(index, size, read)
                sig.verify_inclusion(leaf, index, size, proof, vc.root)
                if proof:
                    bad = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
                    assert _refused(sig.verify_inclusion, leaf, index, size, bad, vc.root)
                    lh = merkle.leaf_hash(leaf)
                    assert _refused(merkle.verify_inclusion, index, size, lh, bad, vc.root)
    # Tampered notes: both implementations refuse.
    text, _, sigs = note.decode().partition("\n\n")
    lines = text.split("\n")
    forged_root = base64.b64encode(bytes(32)).decode()
    tampered = f"{lines[0]}\n{lines[1]}\n{forged_root}\n\n{sigs}".encode()
    assert _refused(sig.verify_checkpoint, tampered, ORIGIN, PEM, bytes(32), 300)
    assert _refused(verify_checkpoint, tampered, policy)
    other = ECDSASigner(ORIGIN, ec.generate_private_key(ec.SECP256R1()))
    foreign = sign_note(text + "\n", [other])
    assert _refused(sig.verify_checkpoint, foreign, ORIGIN, PEM, vc.root, 300)
    with pytest.raises(TlogError):
        verify_checkpoint(foreign, policy)
    store.close()


def test_receipts_from_a_real_server_verify_with_sigstore(tmp_path: Path) -> None:
    """The log's own (Ed25519) receipts: sigstore checks the same proofs and signatures."""
    srv = ServerProc(tmp_path / "data", args=["--allow-raw", "--origin", ORIGIN]).start()
    try:
        verifier = parse_vkey(srv.vkey)
        pem = ed25519.Ed25519PublicKey.from_public_bytes(verifier.public).public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        policy = TrustPolicy(ORIGIN, (verifier,), allow_raw_log=True)
        with httpx.Client(timeout=30) as http:
            for i in range(20):
                doc = http.post(srv.url + "/v1/entries",
                                json={"raw": base64.b64encode(f"r{i}".encode()).decode()}).json()
                r = parse_receipt(doc)
                vr = verify_receipt(r, policy)
                sig.verify_prepared(sig.prepare(r.leaf, r.index, r.tree_size, list(r.hashes),
                                                vr.checkpoint.root, r.checkpoint, ORIGIN, pem))
    finally:
        srv.stop()
