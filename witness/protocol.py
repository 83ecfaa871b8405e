"""C2SP tlog-witness `add-checkpoint`: request parsing and the witness's decision. Pure, no I/O.

Request body (every line ends in a newline)::

    old <size>
    <base64 consistency proof hash>        (0..63 lines)
    <empty line>
    <signed checkpoint note>

The decision follows the order of the spec text, and each refusal has its status code:
400 malformed (or old size larger than the checkpoint), 404 unknown origin, 403 no valid
signature by a trusted log key, 409 old size is not the size we last cosigned (the body
says which, as `text/x.tlog.size`), 422 a bad or missing proof, or the same size with
another root (a fork). The caller persists the new state with compare-and-swap on the
stored size before it answers (see `witness.store`).
"""

from __future__ import annotations

from dataclasses import dataclass

from client import merkle
from client.checkpoint import Checkpoint, parse_checkpoint_text
from client.encoding import b64decode_hash, parse_decimal
from client.errors import MalformedError, ProofError, SignatureError, UnknownKeyError
from client.merkle import EMPTY_ROOT
from client.note import Signer, Verifier, parse_note, sign_note, verify_note

MAX_BODY = 16 * 1024  # as the reference witness
MAX_PROOF = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"


@dataclass(frozen=True)
class AddCheckpoint:
    old_size: int
    proof: tuple[bytes, ...]
    note: bytes  # the signed checkpoint, verbatim
    origin: str  # first line of the note text (not yet verified)


@dataclass(frozen=True)
class Stored:
    """What a witness keeps per origin: the latest checkpoint it cosigned."""

    size: int
    root: bytes
    note: bytes  # the checkpoint with the log's and our signatures


@dataclass(frozen=True)
class Refusal(Exception):
    """A request the witness refuses: HTTP status, message, and the known size for 409."""

    status: int
    message: str
    known_size: int | None = None

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


def parse_request(body: bytes) -> AddCheckpoint:
    """Split the body strictly; raises Refusal(400)."""
    if len(body) > MAX_BODY:
        raise Refusal(400, f"body is larger than {MAX_BODY} bytes")
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        raise Refusal(400, "body has no empty line between the proof and the checkpoint")
    lines = head.split(b"\n")
    if not lines[0].startswith(b"old "):
        raise Refusal(400, "body must start with 'old <size>'")
    try:
        old = parse_decimal(lines[0][4:], what="old size")
        if len(lines) - 1 > MAX_PROOF:
            raise MalformedError(f"more than {MAX_PROOF} proof lines")
        proof = tuple(b64decode_hash(line.decode("ascii"), what="proof line") for line in lines[1:])
        parsed = parse_note(note, max_size=MAX_BODY)
    except (MalformedError, UnicodeDecodeError) as exc:
        raise Refusal(400, str(exc)) from exc
    origin = parsed.text.split("\n", 1)[0]
    return AddCheckpoint(old, proof, note, origin)


def decide(req: AddCheckpoint, log_keys: list[Verifier], stored: Stored | None) -> Checkpoint:
    """Every check of the spec, in its order; returns the checkpoint to cosign or raises Refusal.

    `log_keys` are the trusted keys of `req.origin` (the caller answered 404 if unknown)."""
    try:
        opened = verify_note(parse_note(req.note, max_size=MAX_BODY), log_keys)
    except (UnknownKeyError, SignatureError) as exc:
        raise Refusal(403, f"checkpoint is not signed by a trusted key of the log: {exc}") from exc
    try:
        cp = parse_checkpoint_text(opened.text)
    except MalformedError as exc:
        if "empty tree" in str(exc):
            raise Refusal(422, str(exc)) from exc
        raise Refusal(400, f"checkpoint does not parse: {exc}") from exc
    if req.old_size > cp.size:
        raise Refusal(400, f"old size {req.old_size} is larger than the checkpoint's {cp.size}")
    known = stored.size if stored else 0
    if req.old_size != known:
        raise Refusal(409, f"old size {req.old_size} is not the latest cosigned size {known}",
                      known_size=known)
    if cp.size == 0 and cp.root != EMPTY_ROOT:  # pragma: no cover - Checkpoint refuses it first
        raise Refusal(422, "an empty tree must have the empty root")
    if req.old_size == 0:
        if req.proof:
            raise Refusal(422, "a proof from size 0 must be empty")
        return cp
    assert stored is not None
    if req.old_size == cp.size:
        if cp.root != stored.root:
            raise Refusal(422, f"a checkpoint of size {cp.size} with another root than the one cosigned")
        if req.proof:
            raise Refusal(422, "a proof between equal sizes must be empty")
        return cp
    try:
        merkle.verify_consistency(req.old_size, cp.size, stored.root, cp.root, list(req.proof))
    except ProofError as exc:
        raise Refusal(422, f"consistency proof {req.old_size} -> {cp.size} does not verify: {exc}") from exc
    return cp


def cosign(req: AddCheckpoint, cosigner: Signer) -> tuple[bytes, bytes]:
    """(the cosignature line(s) to answer with, the note to store: log's and our signatures)."""
    note = parse_note(req.note, max_size=MAX_BODY)
    signed = sign_note(note.text, [cosigner], existing=note.signatures)
    line = parse_note(signed).signatures[-1].line().encode("utf-8")
    return line, signed
