"""RFC 8785 JSON Canonicalization Scheme, for the value types tlog's records use. Pure.

Supported: dict with str keys, list, str, int (|n| <= 2^53 - 1, as JCS requires for exact
interoperability), bool and None. Floats are refused: no tlog record needs one, and their
ECMAScript formatting is where JCS implementations disagree.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

_MAX_SAFE = (1 << 53) - 1
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
            "\t": "\\t"}


_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')


def _escape(m: re.Match[str]) -> str:
    ch = m.group()
    return _ESCAPES.get(ch) or f"\\u{ord(ch):04x}"


def _string(s: str) -> str:
    # Most strings (base64, hex, URIs) need no escaping: skip the per-character work.
    if _NEEDS_ESCAPE.search(s) is None:
        return '"' + s + '"'
    return '"' + _NEEDS_ESCAPE.sub(_escape, s) + '"'



def _encode(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, int):
        if abs(v) > _MAX_SAFE:
            raise ValueError("integer out of the JCS safe range")
        out.append(str(v))
    elif isinstance(v, str):
        out.append(_string(v))
    elif isinstance(v, list | tuple):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    elif isinstance(v, dict):
        out.append("{")
        if not all(isinstance(k, str) for k in v):
            raise TypeError("JSON object keys must be strings")
        # JCS orders keys by their UTF-16 code units.
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        for i, k in enumerate(keys):
            if i:
                out.append(",")
            out.append(_string(k))
            out.append(":")
            _encode(v[k], out)
        out.append("}")
    else:
        raise TypeError(f"cannot canonicalize {type(v).__name__}")


def canonicalize(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 encoding of `value`.

    Fast path: orjson with sorted keys produces exactly the JCS bytes when the output is pure
    ASCII (UTF-8 and UTF-16 key orders then agree; its string escapes are JCS's) and holds no
    float (refused here) or unsafe integer (refused by OPT_STRICT_INTEGER). Anything else
    takes the reference encoder below; tests compare the two.
    """
    if _has_float(value):
        return canonicalize_reference(value)  # which refuses it
    return canonicalize_record(value)


def canonicalize_record(value: Any) -> bytes:
    """JCS of a record the caller built from strings, ints, lists and dicts only (a leaf
    record, an envelope's fields): no float can be in it, so `canonicalize`'s walk looking
    for one is skipped. Output with non-ASCII still takes the reference encoder."""
    try:
        out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER)
    except (TypeError, orjson.JSONEncodeError):
        return canonicalize_reference(value)
    return out if out.isascii() else canonicalize_reference(value)


def _has_float(v: Any) -> bool:
    if isinstance(v, float):
        return True
    if isinstance(v, dict):
        return any(_has_float(x) for x in v.values())
    if isinstance(v, list | tuple):
        return any(_has_float(x) for x in v)
    return False


def canonicalize_reference(value: Any) -> bytes:
    """RFC 8785 written out directly from the spec (the fast path's reference)."""
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8")
