"""Proofs and tiles of a scaled-out log, from the bucket and the tree head.

Full tiles never change, so they are read from the bucket once and kept (LRU). The partial
tiles of the current tree are the right edge the tree head row carries, so a proof at the
head's size costs no partial-tile read, and any narrower `.p/<W>` is a prefix of one of the
two. Proof code is synchronous (client.merkle); `prove` runs it once recording which full
tiles it lacks, fetches them concurrently, and runs it again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypeVar

from client.merkle import HASH_SIZE, Node
from client.tiles import TILE_WIDTH, TileLevels, locate_node, tile_path, tile_width_at
from tlog.dist.bucket import ObjectStore, ObjectStoreError
from tlog.dist.db import Head

T = TypeVar("T")
_ZERO = bytes(HASH_SIZE)


class TileMissing(ObjectStoreError):
    """A full tile that the tree head says exists is not in the bucket."""


class BucketTiles:
    def __init__(self, bucket: ObjectStore, cache_tiles: int = 4096) -> None:
        self.bucket = bucket
        self._full: OrderedDict[tuple[int, int], TileLevels] = OrderedDict()
        self._raw: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._max = cache_tiles
        self._edges: dict[tuple[int, bytes], list[TileLevels | None]] = {}

    def edge(self, head: Head) -> list[TileLevels | None]:
        """Each level's partial tile of the head's tree (None where the level has none)."""
        key = (head.size, head.root)
        got = self._edges.get(key)
        if got is None:
            got = [TileLevels(e) if e else None for e in head.edge]
            self._edges = {key: got}  # only the newest head's is wanted
        return got

    async def full_tile_bytes(self, level: int, index: int) -> bytes:
        key = (level, index)
        hit = self._raw.get(key)
        if hit is not None:
            self._raw.move_to_end(key)
            return hit
        data = await self.bucket.get(tile_path(level, index))
        if data is None or len(data) != TILE_WIDTH * HASH_SIZE:
            raise TileMissing(f"{tile_path(level, index)} is missing or short in the bucket")
        self._raw[key] = data
        if len(self._raw) > self._max:
            self._raw.popitem(last=False)
        return data

    async def _load(self, keys: set[tuple[int, int]]) -> None:
        import asyncio

        datas = await asyncio.gather(*(self.full_tile_bytes(lvl, idx) for lvl, idx in keys))
        for key, data in zip(keys, datas, strict=True):
            self._full[key] = TileLevels(data)
            if len(self._full) > self._max:
                self._full.popitem(last=False)

    async def tile(self, head: Head, level: int, index: int, width: int) -> bytes | None:
        """Hash tile (level, index) at `width` as of the head's tree, or None if not there."""
        have = tile_width_at(level, index, head.size)
        if width > have:
            return None
        if have < TILE_WIDTH:
            return head.edge[level][: width * HASH_SIZE]
        return (await self.full_tile_bytes(level, index))[: width * HASH_SIZE]

    async def prove(self, head: Head, compute: Callable[[Callable[[Sequence[Node]], list[bytes]]], T]) -> T:
        """Run `compute(node_reader)` over the head's tree (and its prefixes)."""
        missing: set[tuple[int, int]] = set()
        edge = self.edge(head)

        def read(nodes: Sequence[Node]) -> list[bytes]:
            out = []
            for level, index in nodes:
                tl, ti, sub, off = locate_node(level, index)
                width = tile_width_at(tl, ti, head.size)
                if width == 0:
                    raise ValueError(f"node {level}/{index} is outside the tree of size {head.size}")
                tile = edge[tl] if width < TILE_WIDTH else self._full.get((tl, ti))
                if tile is None:
                    missing.add((tl, ti))
                    out.append(_ZERO)
                    continue
                h = tile.node(sub, off)
                if h is None:
                    raise ValueError(f"node {level}/{index} is outside the tree of size {head.size}")
                out.append(h)
            return out

        result = compute(read)
        if not missing:
            return result
        await self._load(missing)
        missing.clear()
        result = compute(read)
        if missing:  # evicted meanwhile (a tiny cache): fetch once more, then it must be there
            await self._load(missing)
            missing.clear()
            result = compute(read)
            if missing:
                raise TileMissing("tiles were evicted while a proof was built; raise the cache size")
        return result


def edge_bytes(tree_edges: Sequence[object]) -> list[bytes]:
    """The right edge of a `client.tiletree.TileTree` as the tree head row stores it."""
    return [e.tile_bytes() for e in tree_edges]  # type: ignore[attr-defined]


