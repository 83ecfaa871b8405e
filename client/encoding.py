"""Strict, canonical decoders shared by every codec.

Python's built-ins are lenient in ways that matter for signed formats: `int()` accepts
`+5`, ` 5`, `5_0`, `007` and non-ASCII digits; `base64.b64decode` silently drops characters
outside the alphabet. Two encodings of one value would let a signed text be re-encoded
without invalidating anything downstream, so every parser goes through these helpers.
"""

from __future__ import annotations

import base64
import binascii
import re

from client.errors import MalformedError

MAX_UINT64 = (1 << 64) - 1

_DECIMAL = re.compile(rb"(?:0|[1-9][0-9]{0,19})\Z")
_B64_STD = re.compile(rb"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\Z")
_B64_URL = re.compile(rb"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}(?:==)?|[A-Za-z0-9_-]{3}=?)?\Z")


def parse_decimal(text: str | bytes, *, maximum: int = MAX_UINT64, what: str = "number") -> int:
    """Parse an unsigned ASCII decimal with no sign, no leading zeros and no separators."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    if not _DECIMAL.match(raw):
        raise MalformedError(f"{what} is not a canonical decimal")
    value = int(raw)
    if value > maximum:
        raise MalformedError(f"{what} is out of range")
    return value


def b64decode_std(text: str | bytes, *, length: int | None = None, what: str = "value") -> bytes:
    """Decode standard base64 (RFC 4648 §4) with padding, rejecting anything non-canonical.

    Canonical also means the unused low bits of the last character are zero, so exactly one
    text encodes each byte string.
    """
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    if not _B64_STD.match(raw):
        raise MalformedError(f"{what} is not standard base64")
    try:
        out = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - regex already checked
        raise MalformedError(f"{what} is not standard base64") from exc
    if base64.b64encode(out) != raw:
        raise MalformedError(f"{what} is not canonical base64")
    if length is not None and len(out) != length:
        raise MalformedError(f"{what} must be {length} bytes, got {len(out)}")
    return out


def b64decode_any(text: str | bytes, *, what: str = "value") -> bytes:
    """Decode standard or URL-safe base64, each strictly (DSSE accepts both alphabets)."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    if _B64_STD.match(raw):
        return b64decode_std(raw, what=what)
    if not _B64_URL.match(raw):
        raise MalformedError(f"{what} is not base64")
    padded = raw + b"=" * (-len(raw) % 4)
    try:
        out = base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError) as exc:  # pragma: no cover
        raise MalformedError(f"{what} is not base64") from exc
    if base64.urlsafe_b64encode(out).rstrip(b"=") != raw.rstrip(b"="):
        raise MalformedError(f"{what} is not canonical base64")
    return out


def b64encode(data: bytes) -> str:
    """Standard base64 with padding, as text."""
    return base64.b64encode(data).decode("ascii")
