"""C2SP tlog-checkpoint: the signed tree head. Pure, no I/O.

Note text::

    <origin>\\n
    <tree size, canonical decimal>\\n
    <standard base64 of the 32-byte root hash>\\n
    [<extension line>\\n]*

Verification order follows the safe order of the spec: open the note with the log's keys
first, and only then parse the body and compare the origin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from client.encoding import b64decode_std, b64encode, parse_decimal
from client.errors import MalformedError
from client.merkle import EMPTY_ROOT, HASH_SIZE
from client.note import VerifiedNote, Verifier, parse_note, verify_note

MAX_CHECKPOINT_TEXT = 16 * 1024
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")  # C0 controls except the newline


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise MalformedError("checkpoint origin must be one non-empty line")
        if len(self.root) != HASH_SIZE:
            raise MalformedError("checkpoint root must be 32 bytes")
        if self.size == 0 and self.root != EMPTY_ROOT:
            raise MalformedError("an empty tree must have the empty root")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise MalformedError("checkpoint extension lines must be non-empty single lines")

    def text(self) -> str:
        """The note text that gets signed (no timestamps, so it is identical for a given size)."""
        ext = "".join(e + "\n" for e in self.extensions)
        return f"{self.origin}\n{self.size}\n{b64encode(self.root)}\n{ext}"


def parse_checkpoint_text(text: str) -> Checkpoint:
    """Parse checkpoint note text strictly (canonical size, 32-byte standard-base64 root)."""
    if len(text) > MAX_CHECKPOINT_TEXT:
        raise MalformedError("checkpoint is too large")
    if not text.endswith("\n"):
        raise MalformedError("checkpoint text must end in a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise MalformedError("checkpoint needs origin, size and root lines")
    if _CONTROL.search(text):
        raise MalformedError("checkpoint contains control characters")
    origin, size_line, root_line, *ext = lines
    size = parse_decimal(size_line, what="checkpoint size")
    root = b64decode_std(root_line, length=HASH_SIZE, what="checkpoint root")
    return Checkpoint(origin, size, root, tuple(ext))


def open_checkpoint(
    note: bytes, origin: str, verifiers: list[Verifier]
) -> tuple[Checkpoint, VerifiedNote]:
    """Verify a signed checkpoint against the log's keys, then parse it and check its origin."""
    opened = verify_note(parse_note(note), verifiers)
    cp = parse_checkpoint_text(opened.text)
    if cp.origin != origin:
        raise MalformedError(f"checkpoint origin {cp.origin!r} is not {origin!r}")
    return cp, opened
