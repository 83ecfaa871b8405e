"""C2SP tlog-tiles: tile paths, tile coordinates and entry bundles. Pure, no I/O.

A hash tile (L, N) holds, for i in 0..255, the hash of the perfect subtree of height 8·L
over leaves [(N·256 + i)·256^L, (N·256 + i + 1)·256^L). Level-0 tiles hold leaf hashes;
the tiles of level L+1 hold the roots of full tiles of level L. A partial tile (width W <
256) exists only for the rightmost tile of a level, and a partial tile of width W is the
first W hashes of every wider version of the same tile, so one stored value serves them all.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from client.encoding import parse_decimal
from client.errors import MalformedError
from client.merkle import HASH_SIZE, node_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT  # 256 hashes in a full tile
MAX_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF  # entry bundles use a uint16 length prefix
MAX_PATH_LEN = 128

_GROUP_LAST = re.compile(r"[0-9]{3}\Z")
_GROUP_X = re.compile(r"x[0-9]{3}\Z")


def format_index(n: int) -> str:
    """Tile index in 3-digit groups, all but the last prefixed by `x` (1234067 -> x001/x234/067)."""
    if n < 0:
        raise ValueError("tile index must not be negative")
    s = f"{n % 1000:03d}"
    n //= 1000
    while n > 0:
        s = f"x{n % 1000:03d}/{s}"
        n //= 1000
    return s


def parse_index(text: str) -> int:
    """Inverse of `format_index`, accepting only the canonical form."""
    groups = text.split("/")
    if len(groups) > 8 or not _GROUP_LAST.match(groups[-1]):
        raise MalformedError("tile index is not in canonical form")
    if not all(_GROUP_X.match(g) for g in groups[:-1]):
        raise MalformedError("tile index is not in canonical form")
    n = int("".join(g.lstrip("x") for g in groups))
    if format_index(n) != text:
        raise MalformedError("tile index is not in canonical form")
    return n


@dataclass(frozen=True, slots=True)
class TileRef:
    """A tile or entry bundle coordinate. `level` is None for an entry bundle."""

    level: int | None
    index: int
    width: int = TILE_WIDTH

    def path(self) -> str:
        head = "tile/entries/" if self.level is None else f"tile/{self.level}/"
        tail = "" if self.width == TILE_WIDTH else f".p/{self.width}"
        return head + format_index(self.index) + tail


def tile_path(level: int, index: int, width: int = TILE_WIDTH) -> str:
    """Path of hash tile (level, index), with `.p/<W>` when partial."""
    return TileRef(level, index, width).path()


def entries_path(index: int, width: int = TILE_WIDTH) -> str:
    """Path of entry bundle `index`, with `.p/<W>` when partial."""
    return TileRef(None, index, width).path()


@functools.lru_cache(maxsize=16384)
def parse_tile_path(path: str) -> TileRef:
    """Parse `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`, canonical forms only.

    Pure, so memoised: servers parse the same hot paths over and over.
    """
    if len(path) > MAX_PATH_LEN or not path.isascii():
        raise MalformedError("tile path is too long or not ASCII")
    if not path.startswith("tile/"):
        raise MalformedError("tile path must start with tile/")
    rest = path[len("tile/") :]
    head, sep, rest = rest.partition("/")
    if not sep:
        raise MalformedError("tile path has no index")
    level = None if head == "entries" else parse_decimal(head, maximum=MAX_LEVEL, what="tile level")
    width = TILE_WIDTH
    idx_text, sep, w_text = rest.partition(".p/")
    if sep:
        width = parse_decimal(w_text, maximum=TILE_WIDTH - 1, what="tile width")
        if width == 0:
            raise MalformedError("partial tile width must be at least 1")
    index = parse_index(idx_text)
    shift = TILE_HEIGHT * ((level or 0) + 1)
    if shift >= 64 or index >= 1 << (64 - shift):
        raise MalformedError("tile index is out of range")
    return TileRef(level, index, width)


def tile_width_at(level: int, index: int, size: int) -> int:
    """How many hashes tile (level, index) holds in the tree of `size` leaves (0: none yet)."""
    count = size >> (TILE_HEIGHT * level)
    full = count >> TILE_HEIGHT
    if index < full:
        return TILE_WIDTH
    if index == full:
        return count & (TILE_WIDTH - 1)
    return 0


def tiles_for_size(size: int) -> list[TileRef]:
    """Every hash tile that exists for a tree of `size` leaves (full ones and one partial per level)."""
    out: list[TileRef] = []
    level = 0
    while level <= MAX_LEVEL and size >> (TILE_HEIGHT * level):
        count = size >> (TILE_HEIGHT * level)
        out.extend(TileRef(level, n) for n in range(count >> TILE_HEIGHT))
        if count & (TILE_WIDTH - 1):
            out.append(TileRef(level, count >> TILE_HEIGHT, count & (TILE_WIDTH - 1)))
        level += 1
    return out


def locate_node(level: int, index: int) -> tuple[int, int, int, int]:
    """Where node (level, index) lives: (tile level, tile index, level within tile, offset).

    The node is the fold of the tile's level-0 hashes [offset << sub, (offset + 1) << sub),
    where `sub` is the level within the tile (0..7).
    """
    tile_level, sub = divmod(level, TILE_HEIGHT)
    tile_index = index >> (TILE_HEIGHT - sub)
    offset = index & ((TILE_WIDTH >> sub) - 1)
    return tile_level, tile_index, sub, offset


def fold_perfect(hashes: list[bytes]) -> bytes:
    """Root of a perfect subtree given its 2^k bottom hashes."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def split_hashes(tile: bytes) -> list[bytes]:
    """A tile's bytes as its list of 32-byte hashes."""
    if len(tile) % HASH_SIZE:
        raise MalformedError("tile length is not a multiple of 32")
    return [tile[i : i + HASH_SIZE] for i in range(0, len(tile), HASH_SIZE)]


class TileLevels:
    """A hash tile with all of its interior levels, so any node is one lookup."""

    __slots__ = ("levels",)

    def __init__(self, data: bytes) -> None:
        row = [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]
        self.levels = [row]
        for _ in range(1, TILE_HEIGHT):
            row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row) - 1, 2)]
            self.levels.append(row)

    def node(self, sub: int, offset: int) -> bytes | None:
        row = self.levels[sub]
        return row[offset] if offset < len(row) else None

    def root(self) -> bytes:
        """The subtree hash a full tile folds to (its parent tile holds it)."""
        top = self.levels[TILE_HEIGHT - 1]
        return node_hash(top[0], top[1])


# --- interior levels, stored beside each tile so proofs need no re-hashing --------------------

INTERIOR_SIZE = (TILE_WIDTH - 2) * HASH_SIZE  # levels 1..7: 128 + 64 + ... + 2 = 254 hashes


def interior_slot(sub: int, offset: int) -> int:
    """Slot of node (sub, offset), 1 <= sub <= 7, in the fixed interior layout."""
    return TILE_WIDTH - (TILE_WIDTH >> (sub - 1)) + offset


def tile_interior(hashes: list[bytes]) -> bytes:
    """Levels 1..7 of a (possibly partial) tile in a fixed, zero-padded layout.

    Fixed offsets let a reader find a node without knowing the tile's width; slots for
    subtrees that are not complete yet are zero and are never asked for.
    """
    out = bytearray(INTERIOR_SIZE)
    level = hashes
    for sub in range(1, TILE_HEIGHT):
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if not level:
            break
        start = interior_slot(sub, 0) * HASH_SIZE
        out[start : start + len(level) * HASH_SIZE] = b"".join(level)
    return bytes(out)


# --- entry bundles ---------------------------------------------------------------------------


def encode_bundle(entries: list[bytes]) -> bytes:
    """Concatenate `u16be(len) || entry` for each entry."""
    parts = []
    for e in entries:
        if len(e) > MAX_ENTRY_SIZE:
            raise ValueError("entry is larger than 65535 bytes")
        parts.append(len(e).to_bytes(2, "big"))
        parts.append(e)
    return b"".join(parts)


def parse_bundle(data: bytes, *, max_entries: int = TILE_WIDTH) -> list[bytes]:
    """Split an entry bundle into entries; trailing or truncated bytes are an error."""
    out: list[bytes] = []
    pos, end = 0, len(data)
    view = memoryview(data)
    while pos < end:
        if len(out) >= max_entries:
            raise MalformedError("entry bundle has too many entries")
        if pos + 2 > end:
            raise MalformedError("entry bundle is truncated")
        n = (data[pos] << 8) | data[pos + 1]
        pos += 2
        if pos + n > end:
            raise MalformedError("entry bundle is truncated")
        out.append(bytes(view[pos : pos + n]))
        pos += n
    return out
