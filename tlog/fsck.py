"""`tlog fsck`: re-derive every tile, bundle, index entry and the root from the stored entries.

Reads one consistent LMDB snapshot; reports every disagreement rather than stopping at the
first, and passes only if the stored tiles, the leaf index, the tree head and the signed
checkpoint all agree with what the entries imply.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import lmdb

from client.attest import KIND_DSSE, parse_leaf
from client.checkpoint import open_checkpoint
from client.errors import TlogError
from client.merkle import HASH_SIZE, leaf_hash
from client.note import Verifier
from client.tiles import TILE_WIDTH, parse_bundle, tile_interior, tiles_for_size
from client.tiletree import TileTree
from tlog.index import INDEX_DIR, SearchIndex, entry_terms
from tlog.storage import LogStore, tile_key

_U64 = struct.Struct(">Q")
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")


@dataclass
class FsckReport:
    size: int = 0
    entries_checked: int = 0
    tiles_checked: int = 0
    problems: list[str] = field(default_factory=list)
    # The derived index's disagreements: `tlog reindex` mends them, nothing acknowledged is at
    # stake, so they do not fail the check (a failed fsck means: stop and restore).
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < 1000:
            self.problems.append(text)

    def warn(self, text: str) -> None:
        if len(self.warnings) < 1000:
            self.warnings.append(text)


def fsck(store: LogStore, verifiers: list[Verifier], index: SearchIndex | None = None) -> FsckReport:
    """Check the log; and its derived index (`index`, or the one in its data dir, if any)."""
    opened = index is None and (store.path / INDEX_DIR).exists()
    derived, trouble = index, ""
    if opened:
        try:
            derived = SearchIndex(store.path)
        except lmdb.Error as exc:
            trouble = f"the search index cannot be opened ({exc}): run `tlog reindex`"
    try:
        report = _fsck(store, verifiers, derived)
    finally:
        if opened and derived is not None:
            derived.close()
    if trouble:
        report.warn(trouble)
    return report


def _fsck(store: LogStore, verifiers: list[Verifier], derived: SearchIndex | None) -> FsckReport:
    # The index's snapshot is taken before the log's: on a serving log the indexer only
    # follows the log, so everything the index holds is then in the log's snapshot.
    with contextlib.ExitStack() as stack:
        itxn = stack.enter_context(derived.env.begin()) if derived is not None else None
        return _fsck_in(store, verifiers, derived, itxn)


def _fsck_in(store: LogStore, verifiers: list[Verifier], derived: SearchIndex | None,
             itxn: Any) -> FsckReport:
    report = FsckReport()
    origin = store.origin()
    mark = derived.watermark_in(itxn) if derived is not None else 0
    derived_keys = 0
    with store.read_txn() as txn:
        head = store.head_in(txn)
        report.size = head.size
        note = store.checkpoint_in(txn)
        try:
            cp, _ = open_checkpoint(note, origin, verifiers)
            if (cp.size, cp.root) != (head.size, head.root):
                report.problem(f"checkpoint says size {cp.size}, tree head says {head.size} "
                               "(or their roots differ)")
        except TlogError as exc:
            report.problem(f"checkpoint does not verify: {exc}")

        tree = TileTree()
        duplicates = 0

        partial: dict[tuple[int, int], bytes] = {}

        def check_tile(level: int, index: int, tile: bytes) -> None:
            key = tile_key(level, index)
            report.tiles_checked += 1
            if txn.get(key, db=store.tiles) != tile:
                report.problem(f"tile {level}/{index} differs from the one derived from entries")
            hashes = [tile[i : i + HASH_SIZE] for i in range(0, len(tile), HASH_SIZE)]
            if txn.get(key, db=store.interior) != tile_interior(hashes):
                report.problem(f"interior of tile {level}/{index} is wrong")

        def check_tiles() -> None:
            # Full tiles are final; a partial tile is compared once, at its final width.
            for (level, index), (tile, _) in tree.take_changes().items():
                if len(tile) == TILE_WIDTH * HASH_SIZE:
                    partial.pop((level, index), None)
                    check_tile(level, index, tile)
                else:
                    partial[(level, index)] = tile

        for expect_bundle, (bundle_index, raw) in enumerate(store.iter_bundles(txn)):
            if bundle_index != expect_bundle:
                report.problem(f"entry bundle {expect_bundle} is missing (next is {bundle_index})")
                break
            try:
                entries = parse_bundle(raw)
            except TlogError as exc:
                report.problem(f"entry bundle {bundle_index} is malformed: {exc}")
                break
            if len(entries) < TILE_WIDTH and (bundle_index + 1) * TILE_WIDTH <= head.size:
                report.problem(f"entry bundle {bundle_index} is short")
            for data in entries:
                index = tree.size
                if index >= head.size:
                    report.problem(f"entry {index} is beyond the tree size {head.size}")
                    break
                lh = leaf_hash(data)
                raw_idx = txn.get(lh, db=store.leafidx)
                if raw_idx is None:
                    report.problem(f"leaf index has no entry for index {index}")
                else:
                    first = _U64.unpack(raw_idx)[0]
                    if first > index:
                        report.problem(f"leaf index points entry {index} at later index {first}")
                    elif first < index:
                        duplicates += 1
                info = parse_leaf(data)
                if info is not None and info.kind == KIND_DSSE:
                    digest = str(info.record.get("attestation", ""))
                    blob = store.envelope_for(txn, index, bytes.fromhex(digest)) \
                        if _HEX64.match(digest) else None
                    if blob is None:
                        report.problem(f"entry {index}: its envelope {digest} is missing or "
                                       "does not match its digest")
                if index < mark:
                    derived_keys += len(entry_terms(store, txn, index, data)[0])
                tree.append(lh)
                report.entries_checked += 1
            check_tiles()
        for (level, index), tile in partial.items():
            check_tile(level, index, tile)
        if tree.size != head.size:
            report.problem(f"entries give tree size {tree.size}, tree head says {head.size}")
        if tree.root() != head.root:
            report.problem("root derived from entries differs from the stored tree head")
        n_tiles = txn.stat(store.tiles)["entries"]
        # Every tile ever written is either full or the current partial tile of its level.
        expected = len(tiles_for_size(head.size))
        if n_tiles != expected:
            report.problem(f"{n_tiles} hash tiles stored, {expected} expected")
        n_bundles = txn.stat(store.bundles)["entries"]
        if n_bundles != head.size // TILE_WIDTH:
            report.problem(f"{n_bundles} full entry bundles stored, {head.size // TILE_WIDTH} expected")
        n_edge = txn.stat(store.edge)["entries"]
        if n_edge != head.size % TILE_WIDTH:
            report.problem(f"{n_edge} entries of the partial bundle stored, "
                           f"{head.size % TILE_WIDTH} expected")
        n_idx = txn.stat(store.leafidx)["entries"]
        if n_idx != head.size - duplicates:
            report.problem(f"leaf index has {n_idx} entries, expected {head.size - duplicates}")
        minutes = store.minutes_of(txn, 0, 1 << 64)
        if any(b[1] <= a[1] for a, b in itertools.pairwise(minutes)) or \
                (minutes and minutes[-1][0] >= head.size) or any(m % 60 for _, m in minutes):
            report.problem("the minutes entries were appended in do not grow with their indexes")
        if derived is not None:
            _check_index(store, txn, derived, itxn, head.size, derived_keys=derived_keys,
                         report=report)
    return report


def _check_index(store: LogStore, txn: Any, index: SearchIndex, itxn: Any, size: int, *,
                 derived_keys: int, report: FsckReport) -> None:
    """The derived index: no further than the log, as many search keys as the entries below
    its watermark imply, and every envelope digest pointing at an entry that holds it."""
    mark = index.watermark_in(itxn)
    if mark > size:
        report.warn(f"the search index covers {mark} entries, the log has {size}: it is "
                    "another log's (run `tlog reindex`)")
        return
    stored = itxn.stat(index.search)["entries"]
    if stored != derived_keys:
        report.warn(f"the search index holds {stored} keys, the {mark} entries it covers "
                    f"imply {derived_keys} (run `tlog reindex`)")
    for digest, raw in itxn.cursor(db=index.attest):
        at = _U64.unpack(raw)[0]
        if at >= size or store.indexed_envelope(txn, at, bytes(digest)) is None:
            report.warn(f"the envelope index points {bytes(digest).hex()} at entry {at}, "
                        "which does not hold it (run `tlog reindex`)")

