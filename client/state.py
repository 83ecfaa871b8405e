"""Persistent trust state: the newest verified checkpoint per origin, which only moves forward.

One file per origin (`<hex SHA-256 of the origin>.checkpoint`, the signed note verbatim) in a
state directory. A later checkpoint replaces it only once it is proven consistent with it; a
checkpoint of the same size with another root, or a proof that fails, raises
`ConsistencyError` with both signed notes and the proof — evidence that the log showed two
views. Writes are atomic (temp file, fsync, rename, fsync of the directory) and
compare-and-swap: the proof is checked against the state as read, and the swap happens only
if nobody else changed the file meanwhile (else the whole step is redone against the new one),
so concurrent verifiers sharing a directory never move it backwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from client import merkle
from client.errors import ConsistencyError, LogAPIError, MalformedError, PolicyError, ProofError
from client.files import write_atomically
from client.policy import TrustPolicy
from client.verify import VerifiedCheckpoint, verify_checkpoint

Prover = Callable[[int, int, VerifiedCheckpoint], list[bytes]]
"""`prove(old, new, tree)`: a consistency proof from size `old` to size `new` read from the
tiles of the signed tree `tree` of `new` leaves (LogClient.consistency_proof)."""

LOCK_TIMEOUT = 10.0
MAX_CAS_ROUNDS = 8


@dataclass(frozen=True)
class Advance:
    """What `TrustState.update` did."""

    previous: VerifiedCheckpoint | None
    current: VerifiedCheckpoint  # what the state holds now
    moved: bool  # True if the stored checkpoint was replaced
    proof: tuple[bytes, ...] = ()


class TrustState:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)

    def path(self, origin: str) -> Path:
        return self.dir / f"{hashlib.sha256(origin.encode()).hexdigest()}.checkpoint"

    def read(self, origin: str) -> bytes | None:
        try:
            return self.path(origin).read_bytes()
        except FileNotFoundError:
            return None

    def trusted(self, policy: TrustPolicy) -> VerifiedCheckpoint | None:
        """The stored checkpoint, re-verified under the current policy (keys may have changed).

        No age limit: the stored checkpoint is a floor for consistency, not a fresh answer."""
        note = self.read(policy.origin)
        if note is None:
            return None
        return verify_checkpoint(note, _ageless(policy))

    def update(self, policy: TrustPolicy, new: VerifiedCheckpoint, prove: Prover | None) -> Advance:
        """Make `new` the trusted checkpoint if it is consistent with the stored one.

        Without a prover (offline) only equal sizes can be compared; a different size leaves
        the state as it is (`moved` False). A smaller checkpoint never replaces a larger one,
        but must still be proven a prefix of it: a log that cannot do so was rolled back.
        """
        if new.checkpoint.origin != policy.origin:
            raise PolicyError(f"checkpoint is for {new.checkpoint.origin!r}, not {policy.origin!r}")
        for _ in range(MAX_CAS_ROUNDS):
            old_note = self.read(policy.origin)
            old = verify_checkpoint(old_note, _ageless(policy)) if old_note is not None else None
            proof: list[bytes] = []
            if old is not None:
                proof = _check(old, new, prove)
                if new.size <= old.size or prove is None:
                    return Advance(old, old, False, tuple(proof))
            if self._swap(policy.origin, old_note, new.note):
                return Advance(old, new, True, tuple(proof))
        raise TimeoutError(f"trust state for {policy.origin!r} kept changing under us")

    def _swap(self, origin: str, expected: bytes | None, note: bytes) -> bool:
        """Replace the stored note with `note` if it still is `expected`; atomic and durable."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.path(origin)
        with self._locked():
            if self.read(origin) != expected:
                return False
            write_atomically(target, note)
        return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"trust state {self.dir} is locked") from None
                    time.sleep(0.01)
            yield
        finally:
            os.close(fd)


def _check(old: VerifiedCheckpoint, new: VerifiedCheckpoint, prove: Prover | None) -> list[bytes]:
    """Prove old and new consistent (whichever is smaller is a prefix of the other)."""
    def fork(reason: str, proof: Sequence[bytes] = ()) -> ConsistencyError:
        return ConsistencyError(reason, old_checkpoint=old.note, new_checkpoint=new.note,
                                proof=tuple(proof))

    if old.size == new.size:
        if old.root != new.root:
            raise fork(f"two checkpoints of size {old.size} with different roots")
        return []
    if prove is None:
        return []
    small, large = (old, new) if old.size < new.size else (new, old)
    try:
        proof = prove(small.size, large.size, large)
    except (LogAPIError, MalformedError, ProofError) as exc:
        # Proving a smaller checkpoint needs the trusted tree's tiles: a log that cannot give
        # them (gone, or not hashing to the root it signed) no longer holds that tree. For a
        # larger one, bad tiles of the new tree prove nothing yet (a cache may have served
        # them): the caller retries, and the state stays where it is.
        if new.size < old.size and not (isinstance(exc, LogAPIError) and exc.status != 404):
            raise fork(f"the log serves size {new.size} and cannot prove it is a prefix of the "
                       f"trusted size {old.size} (rolled back?): {exc}") from exc
        raise
    try:
        merkle.verify_consistency(small.size, large.size, small.root, large.root, proof)
    except ProofError as exc:
        raise fork(f"checkpoints of sizes {small.size} and {large.size} are not consistent: {exc}",
                   proof) from exc
    return proof


def _ageless(policy: TrustPolicy) -> TrustPolicy:
    """The policy a stored checkpoint is re-read under: any one of the log's keys. It met the
    full policy when stored; its age, the witnesses and a key added since (say a TPM key)
    do not matter for a floor."""
    return replace(policy, witnesses=(), witness_quorum=0, max_age_seconds=None, log_signatures="any")
