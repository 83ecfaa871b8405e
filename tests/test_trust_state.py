"""Trust state: a forked or rolled-back log is caught, with evidence; the state never moves back.

Forks are real: two data directories initialised with the same key and origin, holding the
same first entries and then different ones, each served by its own `tlog serve`. A rollback
is a log restored from a copy taken at a smaller size.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import httpx
import orjson
import pytest

from client import cli, merkle
from client.errors import ConsistencyError, PolicyError, ProofError
from client.logclient import LogClient
from client.note import Ed25519Signer, sign_note
from client.policy import TrustPolicy
from client.state import TrustState
from client.verify import verify_checkpoint
from tests.conftest import ORIGIN, SEED
from tests.test_logclient import Faulty, grow, random_entries, serve_log
from tlog.storage import LogStore

SIGNER = Ed25519Signer(ORIGIN, SEED)
POLICY = TrustPolicy(ORIGIN, (SIGNER.verifier(),), allow_raw_log=True)
COMMON = random_entries(1000, 11)


def _latest(url: str, state: TrustState, transport: httpx.BaseTransport | None = None) -> int:
    with LogClient(url, POLICY, transport=transport) as client:
        vc = client.checkpoint()
        state.update(POLICY, vc, client.consistency_proof)
        return vc.size


def _check_evidence(exc: ConsistencyError) -> None:
    """Evidence stands on its own: both notes verify with only the log's key, and they
    cannot both be true (same size and other root, or the proof fails)."""
    old = verify_checkpoint(exc.old_checkpoint, POLICY)
    new = verify_checkpoint(exc.new_checkpoint, POLICY)
    assert old.root != new.root
    if old.size != new.size:
        small, large = sorted((old, new), key=lambda c: c.size)
        with pytest.raises(ProofError):
            merkle.verify_consistency(small.size, large.size, small.root, large.root, list(exc.proof))


def test_fork_with_two_data_dirs_sharing_a_key_is_caught(tmp_path: Path) -> None:
    a = serve_log(tmp_path / "a", COMMON + random_entries(500, 1), SIGNER)
    b = serve_log(tmp_path / "b", COMMON + random_entries(700, 2), SIGNER)
    state = TrustState(tmp_path / "state")
    try:
        assert _latest(a.server.url, state) == 1500
        before = state.read(ORIGIN)
        with pytest.raises(ConsistencyError) as info:
            _latest(b.server.url, state)  # size 1700, not an extension of A's 1500
        assert info.value.old_checkpoint == before and info.value.proof
        _check_evidence(info.value)
        assert state.read(ORIGIN) == before  # unchanged

        # The CLI says so with exit code 1 and prints the evidence.
        policy = tmp_path / "p.json"
        policy.write_bytes(orjson.dumps(POLICY.to_dict()))
        code = cli.main(["audit", "--policy", str(policy), "--log", b.server.url,
                         "--state", str(tmp_path / "state")])
        assert code == 1

        # Same size, other root: B grown to 1500 with different entries from the fork.
        c_store = LogStore(tmp_path / "c", create=True, map_size=1 << 28)
        c_store.initialize(ORIGIN, lambda t: sign_note(t, [SIGNER]))
        grow(c_store, SIGNER, COMMON + random_entries(500, 3))
        note = c_store.checkpoint()
        c_store.close()
        with pytest.raises(ConsistencyError, match="with different roots") as info:
            state.update(POLICY, verify_checkpoint(note, POLICY), None)  # offline is enough
        assert info.value.proof == ()
        _check_evidence(info.value)
    finally:
        a.server.stop()
        b.server.stop()
        a.store.close()
        b.store.close()


def test_rolled_back_log_is_caught(tmp_path: Path) -> None:
    """A log restored from an old copy: first it is smaller and cannot prove the trusted tree;
    then it regrows with other entries and its new checkpoints are not consistent."""
    a = serve_log(tmp_path / "a", COMMON, SIGNER)
    state = TrustState(tmp_path / "state")
    try:
        a.server.stop()
        a.store.close()
        shutil.copytree(tmp_path / "a", tmp_path / "backup")  # backup at size 1000
        store = LogStore(tmp_path / "a", map_size=1 << 30)
        grow(store, SIGNER, random_entries(300, 4))
        store.close()
        a.server.start()
        assert _latest(a.server.url, state) == 1300
        a.server.stop()
        shutil.rmtree(tmp_path / "a")
        shutil.copytree(tmp_path / "backup", tmp_path / "a")  # the operator restores the backup
        a.server.start()
        with pytest.raises(ConsistencyError, match="rolled back"):
            _latest(a.server.url, state)
        a.server.stop()
        store = LogStore(tmp_path / "a", map_size=1 << 30)
        grow(store, SIGNER, random_entries(600, 5))  # regrown past 1300 with other entries
        store.close()
        a.server.start()
        with pytest.raises(ConsistencyError) as info:
            _latest(a.server.url, state)
        _check_evidence(info.value)
        assert verify_checkpoint(state.read(ORIGIN), POLICY).size == 1300  # type: ignore[arg-type]
    finally:
        a.server.stop()


def test_a_stale_but_consistent_checkpoint_is_fine(tmp_path: Path) -> None:
    """A cache serving an older /checkpoint is not a fork: the older tree is proven a prefix
    of the trusted one (from the log's tiles) and the state stays where it is."""
    a = serve_log(tmp_path / "a", COMMON, SIGNER)
    state = TrustState(tmp_path / "state")
    try:
        old_note = a.store.checkpoint()
        grow(a.store, SIGNER, random_entries(50, 6))
        assert _latest(a.server.url, state) == 1050

        def stale(req: httpx.Request) -> httpx.Response | None:
            return httpx.Response(200, content=old_note) if req.url.path == "/checkpoint" else None

        assert _latest(a.server.url, state, Faulty(stale)) == 1000
        assert verify_checkpoint(state.read(ORIGIN), POLICY).size == 1050  # type: ignore[arg-type]
    finally:
        a.server.stop()
        a.store.close()


def test_concurrent_updates_never_move_the_state_backwards(tmp_path: Path) -> None:
    """Many verifiers share one state directory and race with checkpoints of every size."""
    store = LogStore(tmp_path / "db", create=True, map_size=1 << 28)
    store.initialize(ORIGIN, lambda t: sign_note(t, [SIGNER]))
    notes = []
    for i in range(40):
        grow(store, SIGNER, random_entries(7, 100 + i))
        notes.append(store.checkpoint())

    def prove(old: int, new: int, _tree: object) -> list[bytes]:
        with store.read_txn() as txn:
            return merkle.consistency_proof(old, new, store.node_reader(txn))

    state = TrustState(tmp_path / "state")
    errors: list[BaseException] = []
    seen_sizes: list[int] = []

    backwards: list[tuple[int, int]] = []

    def worker(order: list[bytes]) -> None:
        try:
            last = 0
            for note in order:
                state.update(POLICY, verify_checkpoint(note, POLICY), prove)
                now = verify_checkpoint(state.read(ORIGIN), POLICY).size  # type: ignore[arg-type]
                seen_sizes.append(now)
                if now < last:  # each reader must see the state only move forward
                    backwards.append((last, now))
                last = now
        except BaseException as exc:
            errors.append(exc)

    orders = [notes[i::3] for i in range(3)] + [list(reversed(notes)), notes]
    threads = [threading.Thread(target=worker, args=(o,)) for o in orders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    store.close()
    assert not errors, errors
    assert not backwards and len(seen_sizes) == 3 * 40 and max(seen_sizes) == 280
    assert verify_checkpoint(state.read(ORIGIN), POLICY).size == 280  # type: ignore[arg-type]
    assert (tmp_path / "state").stat().st_mode & 0o077 == 0
    assert state.path(ORIGIN).stat().st_mode & 0o777 == 0o600


def test_policy_changes_and_foreign_checkpoints(tmp_path: Path) -> None:
    """A key added to the policy later does not brick the stored state; a checkpoint of
    another origin is never stored; a temp-file name is never shared with the audit's."""
    store = LogStore(tmp_path / "db", create=True, map_size=1 << 28)
    store.initialize(ORIGIN, lambda t: sign_note(t, [SIGNER]))
    grow(store, SIGNER, random_entries(10, 1))
    state = TrustState(tmp_path / "state")
    state.update(POLICY, verify_checkpoint(store.checkpoint(), POLICY), None)
    second = Ed25519Signer(ORIGIN, b"\x09" * 32)
    both = TrustPolicy(ORIGIN, (SIGNER.verifier(), second.verifier()), allow_raw_log=True)
    grow(store, SIGNER, random_entries(5, 2))
    text = store.checkpoint().decode().split("\n\n")[0] + "\n"
    new = verify_checkpoint(sign_note(text, [SIGNER, second]), both)

    def prove(old: int, new_size: int, _tree: object) -> list[bytes]:
        with store.read_txn() as txn:
            return merkle.consistency_proof(old, new_size, store.node_reader(txn))

    assert state.update(both, new, prove).moved  # the old note (log key only) still counts
    other = Ed25519Signer("other.example/log", SEED)
    foreign_policy = TrustPolicy("other.example/log", (other.verifier(),))
    foreign = verify_checkpoint(sign_note("other.example/log\n1\n" + "A" * 43 + "=\n", [other]),
                                foreign_policy)
    with pytest.raises(PolicyError):
        state.update(POLICY, foreign, None)
    store.close()
    assert not list((tmp_path / "state").glob("*.tmp*"))
