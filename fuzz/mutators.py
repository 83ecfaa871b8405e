"""Structure-aware mutators for libFuzzer (atheris custom_mutator), for JSON and line formats.

libFuzzer's byte mutations mostly turn a JSON document into something that is not JSON, or
a signed note into one whose first broken byte is all the parser looks at. These mutators
work on the structure instead: a JSON field replaced by a value of another type, deleted,
wrapped, copied from elsewhere, or its base64 content flipped; a note's line dropped,
repeated, swapped, its base64 or number changed. Half of the time (and whenever the input
does not parse) they defer to libFuzzer's own mutator, so byte-level bugs are still found.
Randomness comes from libFuzzer's seed, so runs reproduce.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import random
from collections.abc import Callable
from typing import Any

EDGE_VALUES: list[Any] = [None, True, False, 0, -1, 1.5, 2**63, 2**64, "", "²", "0" * 30, [], {},
                          "AAAA", "sha256", "PKIX_ECDSA_P256_SHA_256", "\u2014 "]
EDGE_LINES = [b"", b"0", b"1", b"8", b"24", b"007", b"+8", b"18446744073709551616", b"old 0", b"old 8",
              b"\xe2\x80\x94 "]


def _libfuzzer(data: bytes, max_size: int) -> bytes:
    import atheris

    return atheris.Mutate(data, max_size)  # type: ignore[no-any-return]


def flip_b64(pick: random.Random | Callable[[int], int], text: str) -> str | None:
    """`text` with one bit of its base64 content flipped, same alphabet; None if not base64.
    `pick(n)` chooses in range(n): a Random's `randrange`, or a Hypothesis draw."""
    choose = pick.randrange if isinstance(pick, random.Random) else pick
    url = "-" in text or "_" in text
    std = text.replace("-", "+").replace("_", "/") if url else text
    try:
        raw = bytearray(base64.b64decode(std + "=" * (-len(std) % 4), validate=True))
    except (binascii.Error, ValueError):
        return None
    if not raw:
        return None
    raw[choose(len(raw))] ^= 1 << choose(8)
    out = base64.b64encode(bytes(raw)).decode()
    return out.replace("+", "-").replace("/", "_").rstrip("=") if url else out


def json_paths(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON document (the root first): where a mutation may land."""
    out = [path]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += json_paths(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += json_paths(v, (*path, i))
    return out


def value_at(doc: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(7 if depth < 2 else 5)
    if kind == 0:
        return copy.deepcopy(rng.choice(EDGE_VALUES))  # never share the list's [] and {}
    if kind == 1:
        return rng.randrange(-(2**64), 2**64)
    if kind == 2:
        return "".join(chr(rng.randrange(0x20, 0x250)) for _ in range(rng.randrange(8)))
    if kind == 3:
        return rng.random()
    if kind == 4:
        return rng.choice([None, True, False])
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {str(rng.randrange(100)): _random_value(rng, depth + 1) for _ in range(rng.randrange(3))}


def mutate_json(doc: Any, rng: random.Random) -> Any:
    """One field-level mutation of a parsed JSON document (which it may change in place)."""
    paths = json_paths(doc)
    path = rng.choice(paths)
    node = value_at(doc, path)
    op = rng.randrange(7)
    new: Any
    if op == 0 and isinstance(node, str) and (flipped := flip_b64(rng, node)) is not None:
        new = flipped
    elif op == 1 and path:
        del value_at(doc, path[:-1])[path[-1]]
        return doc
    elif op == 2:
        new = [node]
    elif op == 3:
        new = json.loads(json.dumps(value_at(doc, rng.choice(paths))))
    elif op == 4 and isinstance(node, dict):
        node[rng.choice(["x", "keyid", "sig", "hashes", "extra"])] = _random_value(rng)
        return doc
    elif op == 5 and isinstance(node, int | str) and not isinstance(node, bool):
        new = copy.deepcopy(rng.choice(EDGE_VALUES))
    else:
        new = _random_value(rng)
    if not path:
        return new
    value_at(doc, path[:-1])[path[-1]] = new
    return doc


def json_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer custom mutator for targets that read JSON."""
    rng = random.Random(seed)  # noqa: S311 - reproducible fuzzing, not cryptography
    if rng.random() < 0.5:
        return _libfuzzer(data, max_size)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return _libfuzzer(data, max_size)
    try:
        for _ in range(rng.randrange(1, 4)):
            doc = mutate_json(doc, rng)
        text = json.dumps(doc, separators=(",", ":"), ensure_ascii=rng.random() < 0.5)
        out = text.encode("utf-8", "replace")
    except (ValueError, TypeError, RecursionError):  # a document this mutator cannot handle
        return _libfuzzer(data, max_size)
    return out if len(out) <= max_size else _libfuzzer(data, max_size)


def lines_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer custom mutator for line formats: signed notes, checkpoints, witness requests."""
    rng = random.Random(seed)  # noqa: S311 - reproducible fuzzing, not cryptography
    if rng.random() < 0.5 or b"\n" not in data:
        return _libfuzzer(data, max_size)
    lines = data.split(b"\n")
    for _ in range(rng.randrange(1, 3)):
        i = rng.randrange(len(lines))
        op = rng.randrange(6)
        if op == 0 and len(lines) > 1:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == 3:
            head, sep, word = lines[i].rpartition(b" ")
            flipped = flip_b64(rng, word.decode("latin-1"))
            if flipped is not None:
                lines[i] = head + sep + flipped.encode()
        elif op == 4:
            lines[i] = rng.choice(EDGE_LINES)
        else:
            lines.insert(i, b"")
    out = b"\n".join(lines)
    return out if len(out) <= max_size else _libfuzzer(data, max_size)


MUTATORS: dict[str, Callable[[bytes, int, int], bytes]] = {"json": json_mutator, "lines": lines_mutator}
