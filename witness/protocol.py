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
from client.note import NoteSignature, Signer, Verifier, parse_note, sign_note, verify_note

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


@dataclass(frozen=True)
class Accepted:
    """A checkpoint that passed every check, with the log's signatures that verified."""

    checkpoint: Checkpoint
    text: str
    log_signatures: tuple[NoteSignature, ...]


def _parse_body(text: str) -> tuple[Checkpoint | None, int]:
    """The checkpoint, or (None, 0) for a size-0 checkpoint whose root is not the empty root:
    that is a 422, but only after the 400 and 409 checks that come first in the spec."""
    try:
        return parse_checkpoint_text(text), -1
    except MalformedError as exc:
        lines = text.split("\n")
        if len(lines) >= 4 and lines[1] == "0":
            try:
                root = b64decode_hash(lines[2])
            except MalformedError:
                raise Refusal(400, f"checkpoint does not parse: {exc}") from exc
            if root != EMPTY_ROOT:
                return None, 0
        raise Refusal(400, f"checkpoint does not parse: {exc}") from exc


def decide(req: AddCheckpoint, log_keys: list[Verifier], stored: Stored | None) -> Accepted:
    """Every check of the spec, in its order; returns what to cosign or raises Refusal.

    `log_keys` are the trusted keys of `req.origin` (the caller answered 404 if unknown)."""
    try:
        opened = verify_note(parse_note(req.note, max_size=MAX_BODY), log_keys)
    except (UnknownKeyError, SignatureError) as exc:
        raise Refusal(403, f"checkpoint is not signed by a trusted key of the log: {exc}") from exc
    parsed, size = _parse_body(opened.text)
    size = parsed.size if parsed is not None else size
    if req.old_size > size:
        raise Refusal(400, f"old size {req.old_size} is larger than the checkpoint's {size}")
    known = stored.size if stored else 0
    if req.old_size != known:
        raise Refusal(409, f"old size {req.old_size} is not the latest cosigned size {known}",
                      known_size=known)
    if parsed is None:
        raise Refusal(422, "an empty tree must have the empty root")
    cp = parsed
    accepted = Accepted(cp, opened.text, opened.verified)
    if req.old_size == 0 and (stored is None or stored.size == 0):
        if req.proof:
            raise Refusal(422, "a proof from size 0 must be empty")
        if stored is not None and cp.size == 0 and cp.root != stored.root:  # pragma: no cover
            raise Refusal(422, "another empty root")
        return accepted
    assert stored is not None
    if req.old_size == cp.size:
        if cp.root != stored.root:
            raise Refusal(422, f"a checkpoint of size {cp.size} with another root than the one cosigned")
        if req.proof:
            raise Refusal(422, "a proof between equal sizes must be empty")
        return accepted
    try:
        merkle.verify_consistency(req.old_size, cp.size, stored.root, cp.root, list(req.proof))
    except ProofError as exc:
        raise Refusal(422, f"consistency proof {req.old_size} -> {cp.size} does not verify: {exc}") from exc
    return accepted


def cosign(accepted: Accepted, cosigner: Signer) -> tuple[bytes, bytes]:
    """(our cosignature line to answer with, the note to store).

    The stored note holds only the log signatures that verified and our new line: lines the
    request carried unchecked (even some claiming to be ours) are never served back."""
    signed = sign_note(accepted.text, [cosigner], existing=accepted.log_signatures)
    line = parse_note(signed).signatures[-1].line().encode("utf-8")
    return line, signed
