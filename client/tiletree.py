"""The right edge of a tiled Merkle tree, grown one leaf at a time. Pure, no I/O.

The sequencer, `tlog fsck` and the client's full audit all build tiles with this one piece
of code: append leaf hashes, then take the tiles that changed (full tiles completed since the
last take, plus the current partial tile of each level that moved).
"""

from __future__ import annotations

from client.merkle import EMPTY_ROOT, HASH_SIZE, node_hash
from client.tiles import TILE_HEIGHT, TILE_WIDTH, fold_perfect


class TileTree:
    """Partial (rightmost) tiles of every level of a tree of `size` leaves.

    `edges[L]` is the list of hashes in the rightmost, not yet full tile of level L. Full
    tiles are handed out by `take_changes` and not kept.
    """

    __slots__ = ("_changed", "edges", "size")

    def __init__(self, size: int = 0, edges: list[list[bytes]] | None = None) -> None:
        self.size = size
        self.edges: list[list[bytes]] = edges if edges is not None else []
        self._changed: dict[tuple[int, int], bytes] = {}
        expected = 0
        while size >> (TILE_HEIGHT * expected):
            expected += 1
        if len(self.edges) < expected:
            self.edges.extend([] for _ in range(expected - len(self.edges)))
        for level, hashes in enumerate(self.edges):
            width = (size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)
            if len(hashes) != width:
                raise ValueError(f"edge tile at level {level} has {len(hashes)} hashes, want {width}")

    def append(self, leaf: bytes) -> None:
        """Append one leaf hash, completing full tiles upwards as needed."""
        if len(leaf) != HASH_SIZE:
            raise ValueError("leaf hash must be 32 bytes")
        h = leaf
        level = 0
        count = self.size
        while True:
            if level == len(self.edges):
                self.edges.append([])
            edge = self.edges[level]
            edge.append(h)
            index = count >> TILE_HEIGHT  # tile index at this level
            if len(edge) < TILE_WIDTH:
                self._changed[(level, index)] = b""  # partial: content filled in take_changes
                break
            self._changed[(level, index)] = b"".join(edge)
            h = fold_perfect(edge)
            self.edges[level] = []
            level += 1
            count >>= TILE_HEIGHT
        self.size += 1

    def take_changes(self) -> dict[tuple[int, int], bytes]:
        """Tiles (level, index) -> level-0 tile bytes that changed since the last call."""
        out = self._changed
        for key, value in out.items():
            if not value:
                out[key] = b"".join(self.edges[key[0]])
        self._changed = {}
        return out

    def root(self) -> bytes:
        """MTH of the whole tree, folded from the perfect subtrees along the right edge."""
        if self.size == 0:
            return EMPTY_ROOT
        subtrees: list[bytes] = []
        for level in range(len(self.edges) - 1, -1, -1):
            hashes = self.edges[level]
            pos = 0
            for bit in range(TILE_HEIGHT - 1, -1, -1):
                if len(hashes) & (1 << bit):
                    subtrees.append(fold_perfect(hashes[pos : pos + (1 << bit)]))
                    pos += 1 << bit
        h = subtrees[-1]
        for left in reversed(subtrees[:-1]):
            h = node_hash(left, h)
        return h
