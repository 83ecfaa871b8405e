"""The right edge of a tiled Merkle tree, grown one leaf at a time. Pure, no I/O.

The sequencer, `tlog fsck` and the client's full audit all build tiles with this one piece
of code: append leaf hashes, then take the tiles that changed (full tiles completed since the
last take, plus the current partial tile of each level that moved), each with its interior
levels. Interior nodes are kept incrementally, so appending a leaf costs about one hash and
the root needs no re-hashing of the partial tiles.
"""

from __future__ import annotations

from client.merkle import EMPTY_ROOT, HASH_SIZE, node_hash
from client.tiles import INTERIOR_SIZE, TILE_HEIGHT, TILE_WIDTH, interior_slot


class _EdgeTile:
    """The rightmost tile of one level: its hashes at sub-levels 0..7 of the tile."""

    __slots__ = ("levels",)

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[] for _ in range(TILE_HEIGHT)]

    def push(self, h: bytes) -> bytes | None:
        """Add a bottom hash; returns the tile's root when this completes the tile."""
        levels = self.levels
        sub = 0
        while True:
            row = levels[sub]
            row.append(h)
            if len(row) & 1:
                return None
            h = node_hash(row[-2], h)
            sub += 1
            if sub == TILE_HEIGHT:
                return h

    def width(self) -> int:
        return len(self.levels[0])

    def tile_bytes(self) -> bytes:
        return b"".join(self.levels[0])

    def interior_bytes(self) -> bytes:
        out = bytearray(INTERIOR_SIZE)
        for sub in range(1, TILE_HEIGHT):
            row = self.levels[sub]
            if not row:
                break
            start = interior_slot(sub, 0) * HASH_SIZE
            out[start : start + len(row) * HASH_SIZE] = b"".join(row)
        return bytes(out)


class TileTree:
    """Partial (rightmost) tiles of every level of a tree of `size` leaves.

    `edges[L]` holds the rightmost, not yet full tile of level L. Full tiles are handed out
    by `take_changes` and not kept.
    """

    __slots__ = ("_changed", "edges", "size")

    def __init__(self, size: int = 0, edges: list[list[bytes]] | None = None) -> None:
        """Start from `size` leaves, given the level-0 hashes of each level's partial tile."""
        self.size = size
        self.edges: list[_EdgeTile] = []
        self._changed: dict[tuple[int, int], bytes | None] = {}
        given = edges or []
        level = 0
        while size >> (TILE_HEIGHT * level) or level < len(given):
            width = (size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)
            hashes = given[level] if level < len(given) else []
            if len(hashes) != width:
                raise ValueError(f"edge tile at level {level} has {len(hashes)} hashes, want {width}")
            edge = _EdgeTile()
            for h in hashes:
                edge.push(h)
            self.edges.append(edge)
            level += 1

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash, completing full tiles upwards as needed."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("leaf hash must be 32 bytes")
        h: bytes | None = leaf
        level = 0
        count = self.size
        while h is not None:
            if level == len(self.edges):
                self.edges.append(_EdgeTile())
            edge = self.edges[level]
            key = (level, count >> TILE_HEIGHT)
            root = edge.push(h)
            if root is None:
                self._changed.setdefault(key, None)  # partial: content taken in take_changes
                break
            self._changed[key] = edge.tile_bytes() + edge.interior_bytes()
            self.edges[level] = _EdgeTile()
            h = root
            level += 1
            count >>= TILE_HEIGHT
        self.size += 1

    def take_changes(self) -> dict[tuple[int, int], tuple[bytes, bytes]]:
        """Tiles (level, index) -> (level-0 tile bytes, interior bytes) changed since last call."""
        out: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        for key, full in self._changed.items():
            if full is None:
                edge = self.edges[key[0]]
                out[key] = (edge.tile_bytes(), edge.interior_bytes())
            else:
                tile_len = TILE_WIDTH * HASH_SIZE
                out[key] = (full[:tile_len], full[tile_len:])
        self._changed = {}
        return out

    def root(self) -> bytes:
        """MTH of the whole tree from the perfect subtrees along the right edge."""
        if self.size == 0:
            return EMPTY_ROOT
        subtrees: list[bytes] = []
        for level in range(len(self.edges) - 1, -1, -1):
            edge = self.edges[level]
            width = edge.width()
            pos = 0
            for bit in range(TILE_HEIGHT - 1, -1, -1):
                if width & (1 << bit):
                    subtrees.append(edge.levels[bit][pos >> bit])
                    pos += 1 << bit
        h = subtrees[-1]
        for left in reversed(subtrees[:-1]):
            h = node_hash(left, h)
        return h
