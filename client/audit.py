"""Full audit: replay every entry of a log and recompute every tile and the root.

A consistency proof shows a new checkpoint extends an old one; a full audit shows the
checkpoint is the tree of the entries the log actually serves. It reads every entry bundle,
hashes each entry, and rebuilds the tiles with the same incremental `TileTree` the log uses;
every recomputed hash tile must equal the served one (level 0 per bundle, higher levels as
they complete, the partial edge at the end), and the final root must equal the checkpoint's.
Passing the trusted checkpoint's size, the replayed root must equal that checkpoint's too.

Resumable: the replay's right edge (size + the bottom row of each level's partial tile) is
saved atomically every few thousand entries; a later run continues from it, to whatever
checkpoint is newest then. Fetches run a few bundles ahead on a thread pool.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from client.attest import parse_leaf
from client.encoding import b64decode_std, b64encode
from client.errors import ConsistencyError, MalformedError, VerificationError
from client.files import write_atomically
from client.logclient import LogClient
from client.merkle import HASH_SIZE, leaf_hash
from client.tiles import TILE_HEIGHT, TILE_WIDTH, parse_bundle, tile_width_at
from client.tiletree import TileTree
from client.verify import VerifiedCheckpoint

SAVE_EVERY_BUNDLES = 64
PREFETCH = 16

Progress = Callable[[int, int, float], None]
"""Called with (entries done, target size, entries/s) after each bundle."""


@dataclass
class AuditReport:
    size: int
    root: bytes
    replayed: int  # entries hashed in this run (less than size when resumed)
    seconds: float
    resumed_from: int
    kinds: dict[str, int] = field(default_factory=dict)
    tree: TileTree | None = None

    @property
    def rate(self) -> float:
        return self.replayed / self.seconds if self.seconds > 0 else 0.0


class _Resume:
    """The replay's right edge, saved atomically beside the trust state."""

    def __init__(self, path: Path | None, origin: str) -> None:
        self.path, self.origin = path, origin

    def load(self) -> TileTree:
        if self.path is None or not self.path.exists():
            return TileTree()
        try:
            doc = orjson.loads(self.path.read_bytes())
            if doc["origin"] != self.origin:
                raise MalformedError("resume file is for another origin")
            edges = [[b64decode_std(h, length=HASH_SIZE) for h in row] for row in doc["edges"]]
            return TileTree(int(doc["size"]), edges)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise MalformedError(f"audit resume file {self.path} is damaged: {exc}") from exc

    def save(self, tree: TileTree) -> None:
        if self.path is None:
            return
        edges = [[b64encode(h) for h in e.levels[0]] for e in tree.edges]
        write_atomically(self.path, orjson.dumps(
            {"origin": self.origin, "size": tree.size, "edges": edges}))

    def clear(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def resume_path(state_dir: Path, origin: str) -> Path:
    return state_dir / f"{hashlib.sha256(origin.encode()).hexdigest()}.audit"


OnEntry = Callable[[int, bytes], None]
"""Called with (index, entry) for each entry replayed, in order, once per entry."""


def full_audit(
    client: LogClient,
    target: VerifiedCheckpoint,
    *,
    trusted: VerifiedCheckpoint | None = None,
    resume: Path | None = None,
    progress: Progress | None = None,
    tree: TileTree | None = None,
    on_entry: OnEntry | None = None,
) -> AuditReport:
    """Replay the log up to `target` (a verified checkpoint); raise on any difference.

    With `trusted` (the trust state's checkpoint), the replayed root at its size must match
    too. Interrupted (KeyboardInterrupt), the progress is saved for the next run. A caller
    that keeps its own cursor (the monitor) passes `tree` instead of `resume` and gets the
    grown tree back in the report, to persist once it has acted on the entries."""
    saver = _Resume(resume, target.checkpoint.origin)
    return _Replay(client, target, trusted, saver, progress, tree=tree, on_entry=on_entry).run()


def save_tree(path: Path, origin: str, tree: TileTree) -> None:
    _Resume(path, origin).save(tree)


def load_tree(path: Path, origin: str) -> TileTree:
    return _Resume(path, origin).load()


class _Replay:
    def __init__(self, client: LogClient, target: VerifiedCheckpoint, trusted: VerifiedCheckpoint | None,
                 saver: _Resume, progress: Progress | None, *, tree: TileTree | None = None,
                 on_entry: OnEntry | None = None) -> None:
        self.client, self.target, self.trusted = client, target, trusted
        self.saver, self.progress, self.on_entry = saver, progress, on_entry
        self.size = target.size
        self.tree = tree if tree is not None else saver.load()
        self.start = self.tree.size
        self.kinds: dict[str, int] = {}
        self.check_at = trusted.size if trusted and self.start < trusted.size <= self.size else None
        self.consistent = True  # False while a bundle is appended but its tiles not yet compared

    def fork(self, reason: str) -> ConsistencyError:
        old = self.trusted.note if self.trusted else b""
        return ConsistencyError(reason, old_checkpoint=old, new_checkpoint=self.target.note)

    def run(self) -> AuditReport:
        tree, size = self.tree, self.size
        if tree.size > size:
            raise self.fork(f"an earlier audit replayed {tree.size} entries, the log now says {size}")
        began = time.monotonic()
        try:
            self.bundles(began)
            _compare_upper(self.client, tree, size, final=True)
            root = tree.root()
            if root != self.target.root:
                raise self.fork(f"replaying {size} entries gives root {b64encode(root)}, the "
                                f"checkpoint says {b64encode(self.target.root)}")
        except KeyboardInterrupt:
            if self.consistent:  # everything appended so far was compared with the served tiles
                self.saver.save(tree)
            raise
        except (ConsistencyError, VerificationError):
            if self.start:  # a resumed replay disagrees: start from scratch next time
                self.saver.clear()
            raise
        self.saver.save(tree)
        return AuditReport(size, root, tree.size - self.start, time.monotonic() - began, self.start,
                           self.kinds, tree)

    def fetch(self, n: int) -> tuple[bytes, bytes]:
        width = tile_width_at(0, n, self.size)
        return self.client.bundle_bytes(n, width), self.client.tile_bytes(0, n, width)

    def bundles(self, began: float) -> None:
        """Append every remaining entry, bundle by bundle, fetching a few bundles ahead."""
        tree, size = self.tree, self.size
        first, last = tree.size // TILE_WIDTH, (size + TILE_WIDTH - 1) // TILE_WIDTH
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="audit") as pool:
            pending: dict[int, Future[tuple[bytes, bytes]]] = {}
            try:
                for n in range(first, last):
                    for m in range(n, min(n + PREFETCH, last)):
                        if m not in pending:
                            pending[m] = pool.submit(self.fetch, m)
                    fetched = pending.pop(n).result()
                    self.consistent = False
                    self.bundle(n, *fetched)
                    _compare_upper(self.client, tree, size, final=False)
                    self.consistent = True
                    if self.progress:
                        done = tree.size - self.start
                        self.progress(tree.size, size, done / max(time.monotonic() - began, 1e-9))
                    if (n - first) % SAVE_EVERY_BUNDLES == SAVE_EVERY_BUNDLES - 1:
                        self.saver.save(tree)
            finally:
                for f in pending.values():
                    f.cancel()

    def bundle(self, n: int, bundle: bytes, tile: bytes) -> None:
        width = tile_width_at(0, n, self.size)
        entries = parse_bundle(bundle)
        if len(entries) != width:
            raise VerificationError(f"entry bundle {n} has {len(entries)} entries, want {width}")
        hashes = [leaf_hash(e) for e in entries]
        if b"".join(hashes) != tile:
            raise VerificationError(f"hash tile 0/{n} is not the leaf hashes of entry bundle {n}")
        skip = self.tree.size - n * TILE_WIDTH  # entries of this bundle replayed before a resume
        for e, h in zip(entries[skip:], hashes[skip:], strict=True):
            if self.on_entry is not None:
                self.on_entry(self.tree.size, e)
            self.tree.append(h)
            info = parse_leaf(e)
            k = "raw" if info is None else ("dsse" if info.kind == 1 else "hashedrekord")
            self.kinds[k] = self.kinds.get(k, 0) + 1
            if self.tree.size == self.check_at and self.tree.root() != self.trusted.root:  # type: ignore[union-attr]
                raise self.fork(f"replaying the log gives another root at the trusted size {self.check_at}")


def _compare_upper(client: LogClient, tree: TileTree, size: int, *, final: bool) -> None:
    """Compare recomputed tiles of level >= 1 with the served ones: full tiles as soon as they
    complete; with `final`, each level's partial edge tile too. (Level 0 is compared bundle by
    bundle.)"""
    for (level, index), (tile, _interior) in sorted(tree.take_changes().items()):
        if level and len(tile) == TILE_WIDTH * HASH_SIZE:
            _same(client, level, index, TILE_WIDTH, tile)
    if final:
        for level, edge in enumerate(tree.edges):
            width = edge.width()
            if level and width:
                _same(client, level, size >> (TILE_HEIGHT * (level + 1)), width, edge.tile_bytes())


def _same(client: LogClient, level: int, index: int, width: int, tile: bytes) -> None:
    served = client.tile_bytes(level, index, width)
    if served != tile:
        raise VerificationError(
            f"hash tile {level}/{index} (width {width}) differs from the one recomputed from the entries")
