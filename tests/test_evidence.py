"""Split-view evidence: what proves a split view, and what does not (client/evidence.py)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from client import merkle
from client.errors import MalformedError, ProofError, UnknownKeyError, VerificationError
from client.evidence import split_view, to_document, verify_evidence
from client.note import Ed25519Signer, sign_note
from client.policy import TrustPolicy
from client.verify import verify_checkpoint
from tests.conftest import ORIGIN, SEED
from tests.test_logclient import grow, random_entries
from tlog.storage import LogStore

LOG = Ed25519Signer(ORIGIN, SEED)
POLICY = TrustPolicy(ORIGIN, (LOG.verifier(),))


def _log(path: Path, entries: list[bytes]) -> LogStore:
    store = LogStore(path, create=True, map_size=1 << 28)
    store.initialize(ORIGIN, lambda t: sign_note(t, [LOG]))
    grow(store, LOG, entries)
    return store


def _prover(store: LogStore):
    def prove(m: int, larger: object) -> tuple[bytes, list[bytes]]:
        with store.read_txn() as txn:
            read = store.node_reader(txn)
            return merkle.tree_root(m, read), merkle.consistency_proof(m, larger.size, read)  # type: ignore[attr-defined]
    return prove


@pytest.mark.parametrize("common,a_extra,b_extra", [(100, 28, 50), (60, 4, 40), (1, 3, 200), (50, 10, 10)])
def test_forks_give_evidence_that_verifies_with_the_key_alone(tmp_path: Path, common: int, a_extra: int,
                                                              b_extra: int) -> None:
    shared = random_entries(common, 1)
    a = _log(tmp_path / "a", shared + random_entries(a_extra, 2))
    b = _log(tmp_path / "b", shared + random_entries(b_extra, 3))
    va, vb = verify_checkpoint(a.checkpoint(), POLICY), verify_checkpoint(b.checkpoint(), POLICY)
    larger = b if vb.size >= va.size else a
    sv = split_view(va, vb, _prover(larger))
    assert sv is not None
    doc = to_document(sv, "test", "test")
    back = verify_evidence(doc, [LOG.verifier()])
    assert (back.smaller.size, back.larger.size) == (min(va.size, vb.size), max(va.size, vb.size))
    if va.size == vb.size:
        assert "prefix_root" not in doc and not doc["consistency_proof"]
    # Not evidence: the other key; a forged prefix root; the same tree twice; junk.
    with pytest.raises(UnknownKeyError):
        verify_evidence(doc, [Ed25519Signer(ORIGIN, bytes(32)).verifier()])
    if "prefix_root" in doc:
        forged = dict(doc, prefix_root=base64.b64encode(sv.smaller.root).decode())
        with pytest.raises(VerificationError):
            verify_evidence(forged, [LOG.verifier()])
    with pytest.raises(VerificationError):
        verify_evidence(dict(doc, checkpoints=[doc["checkpoints"][1]] * 2), [LOG.verifier()])
    for junk in [{}, dict(doc, origin=5), dict(doc, checkpoints=["x"]), dict(doc, type="other")]:
        with pytest.raises(MalformedError):
            verify_evidence(junk, [LOG.verifier()])
    a.close()
    b.close()


def test_a_growing_honest_log_is_no_split_view(tmp_path: Path) -> None:
    store = _log(tmp_path / "a", random_entries(300, 1))
    old = verify_checkpoint(store.checkpoint(), POLICY)
    grow(store, LOG, random_entries(77, 2))
    new = verify_checkpoint(store.checkpoint(), POLICY)
    assert split_view(old, new, _prover(store)) is None
    assert split_view(new, new) is None
    # Honest checkpoints with a valid proof are refused as evidence.
    _, proof = _prover(store)(old.size, new)
    doc = {"type": "tlog-split-view/v1", "origin": ORIGIN,
           "checkpoints": [old.note.decode(), new.note.decode()],
           "prefix_root": base64.b64encode(old.root).decode(),
           "consistency_proof": [base64.b64encode(h).decode() for h in proof]}
    with pytest.raises(VerificationError, match="consistent"):
        verify_evidence(doc, [LOG.verifier()])
    store.close()


def test_evidence_from_a_larger_tree_with_wrong_tiles_or_proof_is_refused(tmp_path: Path) -> None:
    """No split-view alarm from bad tiles: a prover whose prefix root or proof does not hold
    for the larger signed tree (tiles of another tree, a flipped hash) makes `split_view`
    raise instead of returning a split view, and a document carrying such a proof is refused
    by `verify_evidence` because of the proof."""
    store = _log(tmp_path / "a", random_entries(300, 1))
    old = verify_checkpoint(store.checkpoint(), POLICY)
    grow(store, LOG, random_entries(77, 2))
    new = verify_checkpoint(store.checkpoint(), POLICY)
    honest_root, honest_proof = _prover(store)(old.size, new)
    other = _log(tmp_path / "b", random_entries(377, 3))  # tiles of another tree of size 377
    other_root, other_proof = _prover(other)(old.size, new)
    flipped = [honest_proof[0][:-1] + bytes([honest_proof[0][-1] ^ 1]), *honest_proof[1:]]
    for bad in [(other_root, other_proof), (bytes(32), honest_proof), (honest_root, flipped)]:
        with pytest.raises(ProofError):
            split_view(old, new, lambda m, larger, bad=bad: bad)
        doc = {"type": "tlog-split-view/v1", "origin": ORIGIN,
               "checkpoints": [old.note.decode(), new.note.decode()],
               "prefix_root": base64.b64encode(bad[0]).decode(),
               "consistency_proof": [base64.b64encode(h).decode() for h in bad[1]]}
        with pytest.raises(VerificationError, match="the proof does not hold for the larger checkpoint"):
            verify_evidence(doc, [LOG.verifier()])
    store.close()
    other.close()
