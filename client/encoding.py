"""Strict, canonical decoders shared by every codec.

Python's built-ins are lenient in ways that matter for signed formats: `int()` accepts
`+5`, ` 5`, `5_0`, `007` and non-ASCII digits; `base64.b64decode` silently drops characters
outside the alphabet. Two encodings of one value would let a signed text be re-encoded
without invalidating anything downstream, so every parser goes through these helpers.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable

from client.errors import MalformedError

MAX_UINT64 = (1 << 64) - 1

_DECIMAL = re.compile(rb"(?:0|[1-9][0-9]{0,19})\Z")
_URL_TO_STD = bytes.maketrans(b"-_", b"+/")


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
    try:
        # strict_mode: alphabet only, correct padding, nothing after it, no leading '='.
        out = binascii.a2b_base64(raw, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedError(f"{what} is not standard base64") from exc
    # Canonical iff re-encoding gives the same text (padding present, unused bits zero).
    if binascii.b2a_base64(out, newline=False) != raw:
        raise MalformedError(f"{what} is not canonical base64")
    if length is not None and len(out) != length:
        raise MalformedError(f"{what} must be {length} bytes, got {len(out)}")
    return out


# A canonical standard-base64 32-byte value: 43 characters whose last one leaves its 2 unused
# bits zero, then one '='. Proofs carry dozens of these; matching beats the general decoder.
_HASH_B64 = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")


def b64decode_hash(text: str, *, what: str = "hash") -> bytes:
    """Decode one 32-byte hash in canonical standard base64 (the form of every JSON hash)."""
    if type(text) is str and _HASH_B64.fullmatch(text):
        return binascii.a2b_base64(text)
    return b64decode_std(text, length=32, what=what)


def b64decode_any(text: str | bytes, *, what: str = "value") -> bytes:
    """Decode standard or URL-safe base64, padded or not, each strictly (DSSE accepts all)."""
    raw = text.encode("ascii", "replace") if isinstance(text, str) else text
    url = b"-" in raw or b"_" in raw
    if url:
        if b"+" in raw or b"/" in raw:
            raise MalformedError(f"{what} mixes base64 alphabets")
        raw = raw.translate(_URL_TO_STD)
    if len(raw) % 4 == 1:
        raise MalformedError(f"{what} is not base64")
    if len(raw) % 4:
        raw += b"=" * (-len(raw) % 4)
    return b64decode_std(raw, what=what)


def b64encode(data: bytes) -> str:
    """Standard base64 with padding, as text."""
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def b64encode_each(items: Iterable[bytes]) -> list[str]:
    """`b64encode` of each item, without a Python call per item (proofs hold dozens)."""
    b2a = binascii.b2a_base64
    return [b2a(x, newline=False).decode("ascii") for x in items]
