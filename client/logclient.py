"""Online access to a log: checkpoint, tiles and entry bundles over HTTP, proofs computed here.

The client needs only the C2SP read API (`/checkpoint`, `/tile/...`): it computes inclusion
and consistency proofs from hash tiles itself, reading them for a signed tree (a checkpoint
that met the trust policy), so a log (or a CDN in front of it) cannot answer with a proof the
client did not check.

Every tile is verified against that tree before it is used, and only verified tiles are
cached, keyed by what they commit to: a full tile by the subtree hash its parent tile (or, at
the top, the signed root) says it must fold to, the partial tiles of a tree's right edge by
that tree's (size, root). A forged tile served once is refused and forgotten, and the tiles of
two forks of one log never mix: each tree reads only tiles that hash to its own root.
Transient failures (connection errors, timeouts, 429 and 5xx) are retried with backoff.

`transport` is any httpx transport: tests pass an `httpx.MockTransport` to inject faults.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import httpx
import orjson

from client import merkle
from client.attest import search_keys
from client.encoding import b64decode_std
from client.errors import (
    LogAPIError,
    MalformedError,
    NetworkError,
    PolicyError,
    TileError,
    VerificationError,
)
from client.http import read_bounded
from client.merkle import HASH_SIZE, Node
from client.policy import TrustPolicy
from client.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TileLevels,
    encode_bundle,
    entries_path,
    locate_node,
    parse_bundle,
    tile_path,
    tile_width_at,
)
from client.verify import Receipt, VerifiedCheckpoint, verify_checkpoint

MAX_CHECKPOINT_BYTES = 1 << 20
MAX_TILE_BYTES = TILE_WIDTH * HASH_SIZE
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + 65535)
MAX_JSON_BYTES = 16 << 20
MAX_ATTESTATION_BYTES = 256 << 20
MAX_SEARCH_PAGES = 10_000
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "tlog-client/0.1"


EDGE_TREES = 16  # signed trees whose right-edge tiles are kept


class SignedTree(Protocol):
    """A tree the log signed (a `VerifiedCheckpoint`): its tiles are checked against `root`."""

    @property
    def size(self) -> int: ...

    @property
    def root(self) -> bytes: ...


def _edge_refs(size: int) -> list[tuple[int, int, int]]:
    """(level, index, width) of the partial tile at each level of a tree's right edge."""
    out = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        width = (size >> (TILE_HEIGHT * level)) & (TILE_WIDTH - 1)
        if width:
            out.append((level, size >> (TILE_HEIGHT * (level + 1)), width))
        level += 1
    return out


class LogClient:
    """A log reached over HTTP. Verifying methods need a `TrustPolicy`."""

    def __init__(
        self,
        url: str,
        policy: TrustPolicy | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        cache_tiles: int = 8192,
        sleep: Callable[[float], None] = time.sleep,
        token: str | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise MalformedError(f"log URL must start with http:// or https://: {url!r}")
        self.url = url.rstrip("/")
        self.policy = policy
        self.retries = retries
        self.backoff = backoff
        self.deadline = max(timeout * 6, 30.0)
        self._sleep = sleep
        # A private log's submitter token: sent with submissions only, never with reads.
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        # Verified tiles only (see the module docstring): full tiles by (level, index, the
        # subtree hash they fold to); each signed tree's right edge by (size, root).
        self._full: OrderedDict[tuple[int, int, bytes], TileLevels] = OrderedDict()
        self._edges: OrderedDict[tuple[int, bytes], dict[int, TileLevels]] = OrderedDict()
        self._cache_max = cache_tiles
        self.fetches = 0  # HTTP requests made, for tests and progress reports
        self.published_size = 0  # the largest checkpoint size seen: tiles of that size exist
        self._attestation: Any = None
        self._http = httpx.Client(transport=transport, timeout=timeout,
                                  headers={"User-Agent": USER_AGENT}, follow_redirects=False)

    def __enter__(self) -> LogClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- HTTP with retries ------------------------------------------------------------------

    def _request(self, method: str, path: str, *, limit: int, accept: tuple[int, ...] = (),
                 **kw: Any) -> bytes:
        """One request, retried on transient failures; returns the body (at most `limit` bytes).
        `path` may be a whole URL (another service of the log's, such as its TSA); error
        statuses in `accept` are answers, not errors."""
        url = path if path.startswith(("http://", "https://")) else \
            self.url + (path if path.startswith("/") else "/" + path)
        attempt = 0
        while True:
            attempt += 1
            self.fetches += 1
            try:
                with self._http.stream(method, url, **kw) as resp:
                    body = read_bounded(resp, limit, self.deadline, f"{path}: the answer")
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                raise MalformedError(f"bad log URL {url}: {exc}") from exc
            except httpx.TransportError as exc:
                if attempt > self.retries:
                    raise NetworkError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
                self._sleep(self._delay(attempt, None))
                continue
            except httpx.HTTPError as exc:  # e.g. an undecodable Content-Encoding
                raise NetworkError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
            if resp.status_code in RETRY_STATUSES and attempt <= self.retries:
                self._sleep(self._delay(attempt, resp.headers.get("Retry-After")))
                continue
            if resp.status_code >= 400 and resp.status_code not in accept:
                raise self._api_error(method, url, resp.status_code, bytes(body))
            return bytes(body)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds before the next attempt: at least what the log's Retry-After asks (at most
        30), plus up to a quarter more, so clients told the same thing do not return at once;
        without it, exponential back-off with jitter."""
        if retry_after and retry_after.isdigit() and len(retry_after) <= 6:
            return min(float(retry_after), 30.0) * (1.0 + 0.25 * random.random())  # noqa: S311 - jitter
        return self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random())  # noqa: S311 - jitter

    @staticmethod
    def _api_error(method: str, url: str, status: int, body: bytes) -> LogAPIError:
        code, message = "", body[:200].decode("utf-8", "replace")
        try:
            doc = orjson.loads(body)
            err = doc.get("error", doc) if isinstance(doc, dict) else {}
            code, message = str(err.get("code", "")), str(err.get("message", message))
        except (orjson.JSONDecodeError, AttributeError):
            pass
        return LogAPIError(f"{method} {url}: HTTP {status} {code}: {message}".rstrip(),
                           status=status, code=code, method=method)

    def get(self, path: str, *, limit: int = MAX_JSON_BYTES) -> bytes:
        return self._request("GET", path, limit=limit)

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        body = self._request("GET", path, limit=MAX_JSON_BYTES, params=params)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise MalformedError(f"{path}: answer is not JSON") from exc

    # --- checkpoint -------------------------------------------------------------------------

    def _need_policy(self) -> TrustPolicy:
        if self.policy is None:
            raise ValueError("this operation verifies and needs a TrustPolicy")
        return self.policy

    def checkpoint_note(self) -> bytes:
        return self.get("/checkpoint", limit=MAX_CHECKPOINT_BYTES)

    def key_attestation(self) -> Any:
        """The log's TPM key attestation, checked against the policy's trusted AKs (once)."""
        if self._attestation is None:
            from client.tpmattest import check_anchoring

            doc = self.get_json("/v1/log/key-attestation")
            check_anchoring(doc, self._need_policy())
            self._attestation = doc
        return self._attestation

    def checkpoint(self, *, now: float | None = None) -> VerifiedCheckpoint:
        """The log's latest checkpoint, verified against the policy (and, if the policy says
        so, with the ECDSA key proven to be in a trusted TPM)."""
        if self._need_policy().requires_tpm:
            self.key_attestation()
        vc = verify_checkpoint(self.checkpoint_note(), self._need_policy(), now=now)
        self.published_size = max(self.published_size, vc.size)
        return vc

    def log_info(self) -> dict[str, Any]:
        doc = self.get_json("/v1/log")
        if not isinstance(doc, dict):
            raise MalformedError("/v1/log is not an object")
        return doc

    def check_log_kind(self) -> None:
        """Refuse a log that takes raw entries unless the policy allows it (raw bytes can
        imitate an attestation leaf whose signature the log never checked)."""
        if self._need_policy().allow_raw_log:
            return
        if self.log_info().get("raw_entries_allowed", True) is not False:
            raise PolicyError("the log accepts raw entries; set allow_raw_log to trust it anyway")

    # --- tiles and nodes --------------------------------------------------------------------

    def _fetch_levels(self, level: int, index: int, width: int) -> TileLevels:
        data = self.tile_bytes(level, index, width)
        if len(data) != width * HASH_SIZE:
            raise MalformedError(f"tile {level}/{index} has {len(data)} bytes, want {width * HASH_SIZE}")
        return TileLevels(data)

    def _edge(self, tree: SignedTree) -> dict[int, TileLevels]:
        """The partial tiles of the tree's right edge, checked together: the perfect subtrees
        they hold fold to the tree's root, which commits to every hash in them."""
        key = (tree.size, tree.root)
        hit = self._edges.get(key)
        if hit is not None:
            self._edges.move_to_end(key)
            return hit
        edge = {level: self._fetch_levels(level, index, width)
                for level, index, width in _edge_refs(tree.size)}

        def read(nodes: Sequence[Node]) -> list[bytes]:
            out = []
            for lvl, idx in nodes:
                tl, _ti, sub, off = locate_node(lvl, idx)
                h = edge[tl].node(sub, off)
                assert h is not None  # the right edge's subtrees are in its partial tiles
                out.append(h)
            return out

        if merkle.tree_root(tree.size, read) != tree.root:
            paths = ", ".join(tile_path(lvl, i, w) for lvl, i, w in _edge_refs(tree.size))
            raise TileError(f"the partial tiles {paths} do not hash to the signed root of size "
                            f"{tree.size}", path=paths)
        self._edges[key] = edge
        if len(self._edges) > EDGE_TREES:
            self._edges.popitem(last=False)
        return edge

    def _verified_tile(self, level: int, index: int, tree: SignedTree) -> TileLevels:
        """Tile (level, index) of `tree`, verified against its root: a partial one with the
        tree's right edge, a full one against the hash its (verified) parent tile holds."""
        if tile_width_at(level, index, tree.size) < TILE_WIDTH:
            return self._edge(tree)[level]
        parent = self._verified_tile(level + 1, index >> TILE_HEIGHT, tree)
        want = parent.node(0, index & (TILE_WIDTH - 1))
        assert want is not None  # a full tile's root is in its parent tile
        key = (level, index, want)
        hit = self._full.get(key)
        if hit is not None:
            self._full.move_to_end(key)
            return hit
        tile = self._fetch_levels(level, index, TILE_WIDTH)
        if tile.root() != want:
            path = tile_path(level, index)
            raise TileError(f"tile {path} does not hash to the subtree the signed tree of size "
                            f"{tree.size} holds there", path=path)
        self._full[key] = tile
        if len(self._full) > self._cache_max:
            self._full.popitem(last=False)
        return tile

    def _prefix_of_wider(self, path_of: Callable[[int, int], str], level: int, index: int, width: int,
                         limit: int) -> bytes:
        """A tile (or bundle) at `width`, or, when the log does not serve that width (C2SP
        lets it serve only full tiles and the partial tile of its published size), the
        wider one it does serve, for the caller to cut to `width`."""
        try:
            return self.get(path_of(index, width), limit=limit)
        except LogAPIError as exc:
            if exc.status != 404 or width == TILE_WIDTH:
                raise
            wider = [TILE_WIDTH]
            published = tile_width_at(max(level, 0), index, self.published_size)  # bundles: level 0
            if width < published < TILE_WIDTH:
                wider.append(published)
            for w in wider:
                try:
                    return self.get(path_of(index, w), limit=limit)
                except LogAPIError as again:
                    if again.status != 404:
                        raise
            raise

    def tile_bytes(self, level: int, index: int, width: int) -> bytes:
        """Hash tile (level, index) with exactly `width` hashes."""
        data = self._prefix_of_wider(lambda i, w: tile_path(level, i, w), level, index, width,
                                     MAX_TILE_BYTES)
        return data[: width * HASH_SIZE]

    def bundle_bytes(self, index: int, width: int) -> bytes:
        """Entry bundle `index` with exactly its first `width` entries (encoded)."""
        data = self._prefix_of_wider(entries_path, -1, index, width, MAX_BUNDLE_BYTES)
        entries = parse_bundle(data)
        if len(entries) < width:
            raise MalformedError(f"entry bundle {index} has {len(entries)} entries, want {width}")
        return data if len(entries) == width else encode_bundle(entries[:width])

    def node_reader(self, tree: SignedTree) -> merkle.NodeReader:
        """A `merkle.NodeReader` over the tiles of a signed tree (and so of any of its
        prefixes), each tile verified against the tree's root before any node is read."""
        tiles: dict[tuple[int, int], TileLevels] = {}

        def read(nodes: Sequence[Node]) -> list[bytes]:
            out = []
            for level, index in nodes:
                tl, ti, sub, off = locate_node(level, index)
                tile = tiles.get((tl, ti))
                if tile is None and tile_width_at(tl, ti, tree.size):
                    tile = tiles[(tl, ti)] = self._verified_tile(tl, ti, tree)
                h = tile.node(sub, off) if tile is not None else None
                if h is None:
                    raise MalformedError(f"node {level}/{index} is outside the tree of size {tree.size}")
                out.append(h)
            return out

        return read

    def inclusion_proof(self, index: int, size: int, tree: SignedTree) -> list[bytes]:
        """Audit path of entry `index` in the tree of `size` leaves, a prefix of `tree`."""
        if not 0 <= index < size <= tree.size:
            raise ValueError(f"need index {index} < size {size} <= {tree.size}")
        return merkle.inclusion_proof(index, size, self.node_reader(tree))

    def consistency_proof(self, old: int, new: int, tree: SignedTree) -> list[bytes]:
        """Proof that the tree of `old` leaves is a prefix of the tree of `new` leaves, both
        prefixes of `tree` (usually new == tree.size), from the tiles of `tree`."""
        if new > tree.size:
            raise ValueError(f"size {new} is beyond the signed tree of size {tree.size}")
        return merkle.consistency_proof(old, new, self.node_reader(tree))

    def prefix_root(self, size: int, tree: SignedTree) -> bytes:
        """The root of the first `size` leaves of `tree`. Every node it folds comes from a
        tile verified against the signed root, so this is the root the log signed into it."""
        if size > tree.size:
            raise ValueError(f"size {size} is beyond the signed tree of size {tree.size}")
        return merkle.tree_root(size, self.node_reader(tree))

    # --- entries ----------------------------------------------------------------------------

    def bundle(self, index: int, width: int = TILE_WIDTH) -> list[bytes]:
        entries = parse_bundle(self.bundle_bytes(index, width))
        if len(entries) != width:
            raise MalformedError(f"entry bundle {index} has {len(entries)} entries, want {width}")
        return entries

    def entry(self, index: int, size: int) -> bytes:
        """Entry `index` of the tree of `size` leaves, from its entry bundle."""
        if not 0 <= index < size:
            raise ValueError(f"index {index} is not in a tree of size {size}")
        n, pos = divmod(index, TILE_WIDTH)
        return self.bundle(n, tile_width_at(0, n, size))[pos]

    def prove_entry(self, index: int, vc: VerifiedCheckpoint) -> Receipt:
        """A receipt for entry `index` built from tiles and bundles, verified against `vc`."""
        leaf = self.entry(index, vc.size)
        lh = merkle.leaf_hash(leaf)
        proof = self.inclusion_proof(index, vc.size, vc)
        merkle.verify_inclusion(index, vc.size, lh, proof, vc.root)
        return Receipt(vc.checkpoint.origin, index, leaf, lh, vc.size, tuple(proof), vc.note)

    def prove_hit(self, field: str, term: str, index: int, leaf: bytes, vc: VerifiedCheckpoint) -> Receipt:
        """A search hit, proven: entry `index` is in `vc`, is the leaf the index returned, and
        really matches field=term (the search index is derived data, never trusted)."""
        receipt = self.prove_entry(index, vc)
        if receipt.leaf != leaf or (field, term) not in search_keys(leaf):
            raise VerificationError(f"search hit {index} is not an entry matching {field}={term}")
        return receipt

    def attestation(self, digest_hex: str) -> bytes:
        """The stored envelope with this content address, checked against the address."""
        data = self.get(f"/v1/attestations/{digest_hex}", limit=MAX_ATTESTATION_BYTES)
        if hashlib.sha256(data).hexdigest() != digest_hex:
            raise MalformedError(f"attestation {digest_hex} does not hash to its address")
        return data

    # --- write and search -------------------------------------------------------------------

    def _post_json(self, path: str, body: dict[str, Any], what: str,
                   accept: tuple[int, ...] = ()) -> dict[str, Any]:
        answer = self._request("POST", path, limit=MAX_JSON_BYTES, accept=accept,
                               content=orjson.dumps(body),
                               headers={"Content-Type": "application/json", **self._auth})
        try:
            doc = orjson.loads(answer)
        except orjson.JSONDecodeError as exc:
            raise MalformedError(f"the log's {what} is not JSON") from exc
        if not isinstance(doc, dict):
            raise MalformedError(f"the log's {what} is not an object")
        return doc

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v1/entries; returns the receipt document (not yet verified)."""
        return self._post_json("/v1/entries", body, "receipt")

    def entry_envelope(self, index: int) -> bytes | None:
        """The envelope the log stores with entry `index`, or None if it has none. Not
        verified: callers check it against the leaf (search_keys does)."""
        try:
            return self.get(f"/v1/entries/{index}/envelope", limit=MAX_ATTESTATION_BYTES)
        except LogAPIError as exc:
            if exc.status == 404:
                return None
            raise

    def rekor_submit(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /api/v2/log/entries (a protojson CreateEntryRequest); the TransparencyLogEntry,
        also for an entry already logged (409, as Rekor v2 answers it; tlog's 409 carries the
        entry). Not yet verified."""
        doc = self._post_json("/api/v2/log/entries", request, "answer", accept=(409,))
        if "canonicalizedBody" not in doc:
            raise MalformedError("the log's answer is not a TransparencyLogEntry")
        return doc

    def timestamp(self, data: bytes) -> bytes:
        """An RFC 3161 TimeStampResp over `data` from the TSA the log's SigningConfig names
        (checked by the caller against the TSA chain it trusts)."""
        from client.timestamp import timestamp_request

        config = self.get_json("/v1/sigstore/signing-config.json")
        try:
            url = config["tsaUrls"][0]["url"]
        except (KeyError, IndexError, TypeError):
            raise MalformedError("the log's SigningConfig names no time-stamping authority") from None
        if not isinstance(url, str):
            raise MalformedError("the SigningConfig's TSA URL is not a string")
        return self._request("POST", url, limit=64 << 10, content=timestamp_request(data),
                             headers={"Content-Type": "application/timestamp-query"})

    def search(self, field: str, term: str, *, limit: int = 100) -> Iterator[tuple[int, bytes]]:
        """(index, leaf) hits of the log's search index, every page. Not verified: the index
        is derived data; callers prove each hit (see `tlog-client search`)."""
        cursor: int | None = None
        for _page in range(MAX_SEARCH_PAGES):
            params: dict[str, Any] = {field: term, "limit": limit}
            if cursor is not None:
                params["cursor"] = cursor
            doc = self.get_json("/v1/search", params)
            try:
                for hit in doc["hits"]:
                    index = hit["index"]
                    if type(index) is not int or index < 0 or (cursor is not None and index <= cursor):
                        raise MalformedError(f"search hit index {index!r} is not after the cursor")
                    yield index, b64decode_std(hit["leaf"], what="search leaf")
                following = doc["next_cursor"]
            except (KeyError, TypeError) as exc:
                raise MalformedError(f"search answer is malformed: {exc}") from exc
            if following is None:
                return
            if type(following) is not int or (cursor is not None and following <= cursor):
                raise MalformedError(f"search cursor {following!r} does not advance")
            cursor = following
        raise MalformedError(f"search gave more than {MAX_SEARCH_PAGES} pages")

