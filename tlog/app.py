"""The log's HTTP API (Starlette): C2SP tiles and checkpoint, and the /v1 JSON API.

Handlers are thin: parse strictly, call storage or the sequencer, format. Every error leaves
as JSON `{"error": {"code", "message"}}` with a stable code; no stack trace reaches a client.
The hot routes (`POST /v1/entries`, `GET /v1/proof/inclusion`) are plain ASGI endpoints
answered in front of Starlette's routing and middleware (`LogServer`), with the same answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from client import attest
from client.addresses import client_key
from client.encoding import b64decode_std, b64encode, b64encode_each, parse_decimal
from client.errors import MalformedError
from client.logs import setup_logging
from client.metrics import Counter, HTTPInstrument, Registry
from client.note import parse_vkey
from client.tiles import MAX_ENTRY_SIZE, TILE_WIDTH, parse_tile_path
from client.tls import peer_of
from tlog import openapi
from tlog.access import Access
from tlog.backend import Backend, LmdbBackend
from tlog.bodies import declared_length, is_large, small_body, spooled_body
from tlog.config import ServeConfig
from tlog.errors import APIError, bad_request, not_found
from tlog.ratelimit import RateLimiter, config_budgets, request_class, retry_after
from tlog.sharedbuckets import SharedBuckets
from tlog.sigstore_api import REKOR_ENTRIES, SigstoreAPI
from tlog.submit import Pushback, Receipt, SequencerRejected, SequencerUnavailable

if TYPE_CHECKING:
    from tlog.explorer.routes import ExplorerRoutes

JSON = "application/json"
ENTRIES = "/v1/entries"
INCLUSION = "/v1/proof/inclusion"
ENTRY_KINDS = {"raw": {"raw"}, "dsse": {"dsse", "verifiers"}, "hashedrekord": {"hashedrekord"}}
SEARCH_FIELDS = {
    "subject": re.compile(r"[A-Za-z0-9_+-]{1,32}:[0-9a-f]{1,256}\Z"),
    "signer": re.compile(r"sha256:[0-9a-f]{64}\Z"),
    "predicate_type": attest.PREDICATE_TYPE,
}
OCTETS = "application/octet-stream"
IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=60"
NO_CACHE = "no-cache"
DISK_FULL_RETRY = "30"  # seconds: freeing space takes an operator; appends resume by themselves
_JSON_TYPE = (b"content-type", JSON.encode())  # as Starlette's Response(media_type=JSON) sends it


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    h = {"Cache-Control": "no-store", **(headers or {})}
    return _json({"error": {"code": code, "message": message}}, status, h)


def _api_error(exc: APIError) -> Response:
    return _error(exc.status, exc.code, exc.message, exc.headers)


def _internal_error() -> Response:
    return _error(500, "internal", "internal server error")


def _unreachable(exc: Exception) -> Response:
    """A request that needed the database or the bucket while it was out of reach."""
    logging.getLogger("tlog.app").warning("%s: %s", type(exc).__name__, exc)
    return _error(503, "unavailable", "the log's storage is not reachable; try again shortly",
                  {"Retry-After": "1"})


def _cheap_to_check(doc: dict[str, Any]) -> bool:
    """One key and at most two signatures: few enough verifications to run on the loop."""
    env, keys = doc.get("dsse"), doc.get("verifiers")
    return (isinstance(env, dict) and isinstance(keys, list) and len(keys) == 1
            and isinstance(env.get("signatures"), list) and len(env["signatures"]) <= 2)


def _parse_json(body: bytes | memoryview) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request("malformed_json", "request body is not valid JSON") from exc


def _param(request: Request | Mapping[str, str], name: str, *, required: bool = True) -> int | None:
    params = request.query_params if isinstance(request, Request) else request
    raw = params.get(name)
    if raw is None:
        if required:
            raise bad_request("missing_parameter", f"query parameter {name!r} is required")
        return None
    try:
        return parse_decimal(raw, what=name)
    except MalformedError as exc:
        raise bad_request("bad_parameter", f"{name} must be a canonical non-negative decimal") from exc


def bounded_param(request: Request, name: str, default: int, most: int) -> int:
    """An optional count parameter in 1..`most`."""
    value = _param(request, name, required=False)
    if value is None:
        return default
    if not 1 <= value <= most:
        raise bad_request("bad_parameter", f"{name} must be 1..{most}")
    return value


def search_term(request: Request) -> tuple[str, str]:
    """The one (field, term) of a search or feed query, checked."""
    given = [f for f in SEARCH_FIELDS if f in request.query_params]
    if len(given) != 1:
        raise bad_request("missing_parameter", "give exactly one of subject, signer or predicate_type")
    term = request.query_params[given[0]]
    if not SEARCH_FIELDS[given[0]].match(term):
        raise bad_request("bad_parameter", f"{given[0]} is not in the expected form")
    return given[0], term


class LogApp:
    """Holds the running log's parts; its methods are the route handlers."""

    def __init__(self, config: ServeConfig, vkey: str, backend: Backend | None = None) -> None:
        self.config = config
        self.registry = Registry()
        self.backend: Backend = backend if backend is not None else LmdbBackend(config)
        self.origin = ""
        self.vkey = vkey
        self.extra_vkeys: list[str] = []  # the rotation key's and the TPM key's, if any
        self._openapi = orjson.dumps(openapi.spec())
        self.crypto = ThreadPoolExecutor(2, thread_name_prefix="tlog-verify")
        self._large_bodies = asyncio.Semaphore(2)
        self._spool_dir: str | None = None
        self.sigstore = SigstoreAPI(self)
        self.explorer: ExplorerRoutes | None = None  # set by create_app

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        data = Path(self.config.data_dir)
        await self.backend.start(self.registry)
        self.origin = self.backend.origin
        # Workers face the network: they get the public key only, never the signing key.
        name = parse_vkey(self.vkey).name
        if name != self.origin:
            await self.backend.stop()
            raise RuntimeError(f"log key is named {name!r}, origin is {self.origin!r}")
        self._spool_dir = str(data)
        self.sigstore.start(data)
        if self.explorer is not None:
            self.explorer.start(data)
        try:
            yield
        finally:
            await self.sigstore.stop()
            await self.backend.stop()
            self.crypto.shutdown(wait=True)

    # --- C2SP tlog-tiles ----------------------------------------------------------------

    async def checkpoint(self, _request: Request) -> Response:
        note = await self.backend.checkpoint()  # with witnesses: the newest cosigned one
        return Response(note, media_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": NO_CACHE})

    async def tile(self, request: Request) -> Response:
        try:
            ref = parse_tile_path("tile/" + request.path_params["path"])
        except MalformedError as exc:
            raise bad_request("bad_tile_path", str(exc)) from exc
        if ref.level is None:
            body = await self.backend.bundle(ref.index, ref.width)
        else:
            body = await self.backend.tile(ref.level, ref.index, ref.width)
        if body is None:
            raise not_found(f"{ref.path()} does not exist at the current tree size")
        cache = IMMUTABLE if ref.width == TILE_WIDTH else PARTIAL
        return Response(body, media_type=OCTETS, headers={"Cache-Control": cache})

    # --- /v1 JSON API -------------------------------------------------------------------

    async def log_info(self, _request: Request) -> Response:
        return _json({
            "origin": self.origin,
            "verifier_keys": [self.vkey, *self.extra_vkeys],
            "tree_size": await self.backend.tree_size(),
            "raw_entries_allowed": self.config.allow_raw,
            "max_entry_size": MAX_ENTRY_SIZE,
            "frozen": self.config.frozen,
            **({"successor": self.config.successor} if self.config.successor else {}),
        })

    async def key_attestation(self, _request: Request) -> Response:
        """GET /v1/log/key-attestation: the TPM2_Certify of the ECDSA checkpoint key by a
        restricted attestation key (client.tpmattest says what a client checks)."""
        doc = await self.backend.key_attestation()
        if doc is None:
            raise not_found("this log's checkpoint key is not anchored in a TPM")
        return Response(doc, media_type=JSON, headers={"Cache-Control": NO_CACHE})

    async def add_entry(self, scope: Scope, receive: Receive) -> tuple[int, bytes]:
        """POST /v1/entries: check the submission, then wait until it is durable and signed.
        Returns the status and the receipt JSON; refusals raise APIError."""
        return await self.receive_entry(scope, receive, self._add)

    async def receive_entry(self, scope: Scope, receive: Receive,
                            add: Callable[..., Awaitable[tuple[Any, ...]]]) -> tuple[Any, ...]:
        """Read a submission's JSON body within the limits and hand it to `add(doc, small=)`
        (this API's or the Rekor v2 one's), which checks it and waits for its receipt."""
        if self.config.frozen:
            where = f"; submit to {self.config.successor}" if self.config.successor else ""
            raise APIError(403, "log_frozen", f"this log is frozen and takes no new entries{where}")
        limit = self.config.max_body_bytes
        if not is_large(declared_length(scope, limit)):
            body = await small_body(receive, timeout=self.config.body_timeout)
            return await add(_parse_json(body), small=True)
        # A large body holds one of a few slots from reading until its entry is answered,
        # so the slots bound the memory held by large submissions, not just their reading.
        try:
            async with asyncio.timeout(self.config.body_timeout):
                await self._large_bodies.acquire()
        except TimeoutError:
            raise APIError(503, "overloaded", "too many large submissions in progress",
                           {"Retry-After": "5"}) from None
        try:
            return await add(await self._parse_spooled(receive), small=False)
        finally:
            self._large_bodies.release()

    async def _parse_spooled(self, receive: Receive) -> Any:
        """A large JSON body, spooled to the data dir, whose disk may be full: that is the
        documented 507 `disk_full`, not a 500."""
        try:
            async with spooled_body(receive, limit=self.config.max_body_bytes,
                                    timeout=self.config.body_timeout,
                                    spool_dir=self._spool_dir) as body:
                return _parse_json(body)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise APIError(507, "disk_full", "the data dir's filesystem is full: no room to "
                           "receive this body", {"Retry-After": DISK_FULL_RETRY}) from None

    async def _add(self, doc: Any, *, small: bool) -> tuple[int, bytes]:
        if not isinstance(doc, dict):
            raise bad_request("malformed_json", "request body must be a JSON object")
        kinds = [k for k in ENTRY_KINDS if k in doc]
        if len(kinds) != 1:
            raise bad_request("unknown_entry_kind",
                              "give exactly one entry kind: raw, dsse or hashedrekord")
        kind = kinds[0]
        extra = set(doc) - ENTRY_KINDS[kind]
        if extra:
            raise bad_request("unknown_field", f"unknown field {sorted(extra)[0]!r}")
        blob: bytes | None = None
        try:
            if kind == "raw":
                data = self._raw_entry(doc["raw"])
            elif kind == "dsse":
                # Small envelopes are checked right here: handing ~100 µs of work to a
                # thread costs more in GIL and cross-CPU wake-ups than it saves. Large ones
                # go to the pool, so one big envelope never stalls the event loop.
                if small and _cheap_to_check(doc):
                    sub = attest.check_dsse(doc["dsse"], doc.get("verifiers"))
                else:
                    sub = await asyncio.get_running_loop().run_in_executor(
                        self.crypto, attest.check_dsse, doc["dsse"], doc.get("verifiers"))
                del doc
                data, blob = sub.leaf, sub.canonical
            else:
                data = attest.check_hashedrekord(doc["hashedrekord"])
        except attest.EntryError as exc:
            raise APIError(413 if exc.code == "entry_too_large" else 400, exc.code,
                           str(exc)) from exc
        except attest.EntrySignatureError as exc:
            raise APIError(400, exc.code, str(exc)) from exc
        receipt = await self.submit(data, blob)
        return 201 if receipt.created else 200, orjson.dumps(self._receipt_json(receipt, data))

    def _raw_entry(self, raw: Any) -> bytes:
        if not self.config.allow_raw:
            raise APIError(403, "raw_entries_disabled",
                           "this log does not accept raw entries (start it with --allow-raw)")
        if not isinstance(raw, str):
            raise bad_request("bad_base64", "raw must be a base64 string")
        if len(raw) > (MAX_ENTRY_SIZE + 2) // 3 * 4:
            raise APIError(413, "entry_too_large", f"entries are limited to {MAX_ENTRY_SIZE} bytes")
        try:
            data = b64decode_std(raw, what="raw")
        except MalformedError as exc:
            raise bad_request("bad_base64", str(exc)) from exc
        if len(data) > MAX_ENTRY_SIZE:
            raise APIError(413, "entry_too_large", f"entries are limited to {MAX_ENTRY_SIZE} bytes")
        return data

    async def submit(self, data: bytes, blob: bytes | None = None) -> Receipt:
        try:
            return await self.backend.submit(data, blob)
        except Pushback as exc:
            raise APIError(503, "overloaded", str(exc), {"Retry-After": "1"}) from exc
        except SequencerUnavailable as exc:
            raise APIError(503, "unavailable", str(exc), {"Retry-After": "5"}) from exc
        except SequencerRejected as exc:
            if exc.code == "log_frozen":
                raise APIError(403, exc.code, str(exc)) from exc
            if exc.code == "disk_full":
                raise APIError(507, exc.code, str(exc), {"Retry-After": DISK_FULL_RETRY}) from exc
            raise APIError(503, exc.code, str(exc), {"Retry-After": "5"}) from exc

    def _receipt_json(self, r: Receipt, leaf: bytes) -> dict[str, Any]:
        """A self-contained receipt (docs/receipts.md): enough to verify offline with only
        the log's public key."""
        return {
            "origin": self.origin,
            "index": r.index,
            "leaf": b64encode(leaf),
            "leaf_hash": b64encode(r.leaf_hash),
            "inclusion_proof": {"tree_size": r.tree_size,
                                "hashes": b64encode_each(r.proof)},
            "checkpoint": r.checkpoint.decode(),
        } | ({} if r.witnessed is None else {"witnessed": r.witnessed})

    async def entry_receipt(self, request: Request) -> Response:
        """GET /v1/entries/<index>/receipt: a receipt against the latest checkpoint."""
        index = self.path_index(request)
        found = await self.backend.receipt(index)
        if found is None:
            raise not_found(f"no entry at index {index}")
        return _json(self._receipt_json(*found))

    async def attestation(self, request: Request) -> Response:
        """GET /v1/attestations/<sha256 hex>: the canonical envelope, content-addressed."""
        digest = request.path_params["digest"]
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise bad_request("bad_parameter", "expected 64 lowercase hex digits")
        data = await self.backend.attestation(bytes.fromhex(digest))
        if data is None:
            raise not_found("no attestation with this digest")
        return Response(data, media_type=JSON, headers={"Cache-Control": IMMUTABLE})

    async def search(self, request: Request) -> Response:
        """GET /v1/search?subject=|signer=|predicate_type=, paginated by index, oldest or
        newest first."""
        field, term = search_term(request)
        limit = bounded_param(request, "limit", 100, 1000)
        after = _param(request, "cursor", required=False)
        if after is not None and after >= 1 << 63:
            raise bad_request("bad_parameter", "cursor is out of range")
        order = request.query_params.get("order", "asc")
        if order not in ("asc", "desc"):
            raise bad_request("bad_parameter", "order must be asc or desc")
        hits, complete = await self.backend.find(field, term, after, limit + 1, order == "desc")
        more = len(hits) > limit
        hits = hits[:limit]
        minutes = await self.backend.logged_minutes([i for i, _ in hits])
        return _json({
            "hits": [{"index": i, "leaf": b64encode(leaf), "logged_minute": m}
                     for (i, leaf), m in zip(hits, minutes, strict=True)],
            "next_cursor": hits[-1][0] if more else None,
            "indexed_size": complete,
        })

    @staticmethod
    def path_index(request: Request) -> int:
        try:
            return parse_decimal(request.path_params["index"], what="index")
        except MalformedError as exc:
            raise bad_request("bad_parameter",
                              "index must be a canonical non-negative decimal") from exc

    async def entry_envelope(self, request: Request) -> Response:
        """GET /v1/entries/<index>/envelope: the DSSE envelope stored with the entry (what a
        Rekor v2 leaf, which does not name it, is matched against by monitors)."""
        index = self.path_index(request)
        leaf = await self.backend.entry(index)
        if leaf is None:
            raise not_found(f"no entry at index {index}")
        info = attest.parse_leaf(leaf)
        blob = None
        if info is not None and info.kind == attest.KIND_DSSE:
            blob = await self.backend.attestation(bytes.fromhex(info.record["attestation"]))
        elif info is not None and info.rekor is not None:
            blob = await self.backend.envelope(index, leaf)
        if blob is None:
            raise not_found(f"entry {index} has no stored envelope")
        return Response(blob, media_type=JSON, headers={"Cache-Control": IMMUTABLE})

    async def get_entry(self, request: Request) -> Response:
        index = self.path_index(request)
        data = await self.backend.entry(index)
        if data is None:
            raise not_found(f"no entry at index {index}")
        return Response(data, media_type=OCTETS, headers={"Cache-Control": IMMUTABLE})

    async def inclusion(self, scope: Scope, _receive: Receive) -> tuple[int, bytes]:
        """GET /v1/proof/inclusion, a plain ASGI endpoint like POST /v1/entries: monitors and
        verifiers ask for proofs in bulk."""
        params = query_params(scope)
        size = _param(params, "size", required=False)
        index = _param(params, "index", required=False)
        leaf_b64 = params.get("leaf_hash")
        if (index is None) == (leaf_b64 is None):
            raise bad_request("missing_parameter", "give exactly one of index or leaf_hash")
        leaf = None
        if leaf_b64 is not None:
            try:
                leaf = b64decode_std(leaf_b64, length=32, what="leaf_hash")
            except MalformedError as exc:
                raise bad_request("bad_base64", str(exc)) from exc
        index, size, hashes = await self.backend.inclusion(index, leaf, size)
        return 200, orjson.dumps({"index": index, "tree_size": size, "hashes": b64encode_each(hashes)})

    async def consistency(self, request: Request) -> Response:
        old = _param(request, "old")
        assert old is not None
        old, new, hashes = await self.backend.consistency(old, _param(request, "new", required=False))
        return _json({"old_size": old, "new_size": new, "hashes": b64encode_each(hashes)})

    async def openapi(self, _request: Request) -> Response:
        return Response(self._openapi, media_type=JSON)

    async def healthz(self, _request: Request) -> Response:
        """200 `ok` when the log takes entries (or is frozen); otherwise 503 with a status a
        probe can act on: `unavailable` (no sequencer), or `read_only` (reads are served,
        appends are not: the disk is full, or the TPM cannot sign). docs/api.md."""
        problem = self.backend.problem()
        size = await self.backend.tree_size()
        if problem is None:
            return _json({"status": "ok", "tree_size": size, "accepting_writes": not self.config.frozen})
        status, code, message = problem
        return _json({"status": status, "tree_size": size, "accepting_writes": False,
                      "error": {"code": code, "message": message}}, 503, {"Cache-Control": "no-store"})

    async def metrics(self, _request: Request) -> Response:
        """This worker's metrics, then the backend's (LMDB: the sequencer's batches and appends)."""
        body = self.registry.render() + await self.backend.extra_metrics()
        return Response(body, media_type="text/plain; version=0.0.4")

    # --- errors and instrumentation -----------------------------------------------------

    async def on_api_error(self, _request: Request, exc: Exception) -> Response:
        assert isinstance(exc, APIError)
        return _api_error(exc)

    async def on_http_exception(self, _request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    async def on_unreachable(self, _request: Request, exc: Exception) -> Response:
        return _unreachable(exc)

    async def on_internal_error(self, _request: Request, _exc: Exception) -> Response:
        """Starlette's last resort (ServerErrorMiddleware, which re-raises for the
        instrumentation to log): the same JSON 500 as the instrumentation's own."""
        return _internal_error()


class PlainEndpoint:
    """A hot route as a plain ASGI app (POST /v1/entries, GET /v1/proof/inclusion): answered
    without Starlette's Request, Response and middleware, which cost more CPU than checking a
    signed submission or computing a proof; refusals are answered exactly as Starlette's
    exception handlers answer them. `handler(scope, receive)` returns (status, JSON bytes),
    or (status, JSON bytes, extra headers)."""

    def __init__(self, handler: Callable[[Scope, Receive], Awaitable[tuple[Any, ...]]],
                 storage_errors: tuple[type[Exception], ...]) -> None:
        self.handler = handler
        self.storage_errors = storage_errors  # the s3 shape's: 503 `unavailable`

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            status, body, *extra = await self.handler(scope, receive)
        except APIError as exc:
            await _api_error(exc)(scope, receive, send)
            return
        except self.storage_errors as exc:
            await _unreachable(exc)(scope, receive, send)
            return
        headers = [(b"content-length", b"%d" % len(body)), _JSON_TYPE]
        if extra:
            headers.extend(extra[0])
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class LogServer(Starlette):
    """A worker's ASGI app: the request instrumentation (request ids, metrics, the JSON 500)
    around everything; inside it, the hot routes (`plain`: method and path to their Route,
    whose endpoint is a PlainEndpoint) go straight to their endpoint, and every other request
    through Starlette (routing, error handlers, Request and Response)."""

    def __init__(self, log: LogApp, plain: dict[tuple[str, str], Route], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.state.log = log
        self._plain = plain
        origin = log.config.cors_allow_origin
        self._cors = (b"access-control-allow-origin", origin.encode()) if origin else None
        self._limits = rate_limiter(log.config)
        self._limited = log.registry.add(Counter(
            "tlog_rate_limited_total", "Requests refused with 429 rate_limited, by budget and "
            "client (a submitter's token name, or anonymous: by address)", ("budget", "client")))
        self._access = Access.from_config(log.config)
        self._submitted = log.registry.add(Counter(
            "tlog_submissions_by_submitter_total", "Submissions by a named submitter: the name "
            "of its token (submit_tokens_file) or client certificate (tls_client_ca_file)",
            ("submitter",)))
        self._front = HTTPInstrument(self._dispatch, registry=log.registry, prefix="tlog",
                                     access=log.config.access_log, on_error=_internal_error)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._front(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # none is served, and none may skip the access check
            await send({"type": "websocket.close", "code": 1008})
            return
        if self._cors is not None and scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            send = _readable_from(self._cors, send)
        if scope["type"] == "http" and (self._limits is not None or self._access.active):
            refusal = self._admit(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        route = self._plain.get((scope.get("method", ""), scope["path"])) \
            if scope["type"] == "http" else None
        if route is not None:
            scope["route"] = route  # the metrics' route label, as Starlette's routing sets it
            await route.app(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    def _admit(self, scope: Scope) -> Response | None:
        """The refusal of a request whose client may not make it (401 without a submitter's
        token or certificate where they are required, or a reader's on a private log; 429
        over its budget), or None to go ahead."""
        method, path = scope["method"], scope["path"]
        caller = None
        if self._access.active:
            caller, refusal = self._access.admit(method, path, _header(scope, b"authorization"),
                                                 peer_of(scope))
            if refusal is not None:
                return _error(401, "unauthorized", refusal.message,
                              {"WWW-Authenticate": 'Bearer realm="tlog"'})
            if caller is not None:
                scope["tlog.submitter"] = caller.name
                if caller.via != "reader" and method == "POST":
                    self._submitted.inc(1.0, caller.name)
        budget = request_class(method, path)
        if self._limits is None or budget is None:
            return None
        submitter = caller.name if caller is not None else None
        if caller is not None:
            client = caller.key
        else:
            cfg = self.state.log.config
            peer = scope.get("client")
            client = client_key(peer[0] if peer else "", ipv4_prefix=cfg.rate_ipv4_prefix,
                                ipv6_prefix=cfg.rate_ipv6_prefix)
        wait = self._limits.check(budget, client, time.monotonic())
        if wait is None:
            return None
        self._limited.inc(1.0, budget, submitter or "anonymous")
        return _error(429, "rate_limited", "too many requests from this client; slow down",
                      {"Retry-After": retry_after(wait)})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")  # type: ignore[no-any-return]
    return None


def rate_limiter(config: ServeConfig) -> RateLimiter | None:
    """The per-client budgets the configuration sets (None if it sets none), kept in the
    table the workers share when `tlog serve` made one (TLOG_RATE_BUCKETS), else here."""
    budgets = config_budgets(config)
    if not budgets:
        return None
    shared = os.environ.get("TLOG_RATE_BUCKETS")
    return RateLimiter(budgets, store=SharedBuckets(Path(shared)) if shared else None)


def _readable_from(header: tuple[bytes, bytes], send: Send) -> Send:
    """Reads that web pages on other origins may make (CORS, never with credentials), so the
    explorer works from a bucket or CDN (`cors_allow_origin`, docs/explorer.md)."""
    async def sender(message: Any) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), header]
        await send(message)
    return sender


def query_params(scope: Scope) -> dict[str, str]:
    """The query string as Starlette's `request.query_params` reads it (the last of repeated
    names wins, blank values kept)."""
    qs = scope.get("query_string", b"")
    if not qs:
        return {}
    text = qs.decode("latin-1")
    if "%" in text or "+" in text or ";" in text:  # escapes: the general parser
        return dict(urllib.parse.parse_qsl(text, keep_blank_values=True))
    out: dict[str, str] = {}
    for pair in text.split("&"):  # the common `index=7&size=300`, as parse_qsl splits it
        if pair:
            name, _, value = pair.partition("=")
            out[name] = value
    return out


def create_app(config: ServeConfig, vkey: str) -> LogServer:
    """The app for one worker; `vkey` is the log's verifier key (the public half only)."""
    backend: Backend | None = None
    storage_errors: tuple[type[Exception], ...] = ()
    if config.storage == "s3":
        from tlog.dist.bucket import ObjectStoreError
        from tlog.dist.db import DbError
        from tlog.dist.frontend import DistBackend

        backend = DistBackend(config)
        storage_errors = (DbError, ObjectStoreError)
    from tlog.explorer.routes import ExplorerRoutes

    h = LogApp(config, vkey, backend)
    h.explorer = explorer = ExplorerRoutes(h)
    entries = Route(ENTRIES, PlainEndpoint(h.add_entry, storage_errors), methods=["POST"])
    proofs = Route(INCLUSION, PlainEndpoint(h.inclusion, storage_errors), methods=["GET"])
    sig = h.sigstore
    rekor_entries = Route(REKOR_ENTRIES, PlainEndpoint(sig.create_entry, storage_errors),
                          methods=["POST"])
    routes = [
        Route("/checkpoint", h.checkpoint, methods=["GET"]),
        Route("/tile/{path:path}", h.tile, methods=["GET"]),
        Route("/v1/log", h.log_info, methods=["GET"]),
        Route("/v1/log/key-attestation", h.key_attestation, methods=["GET"]),
        entries,
        Route("/v1/entries/{index}", h.get_entry, methods=["GET"]),
        Route("/v1/entries/{index}/receipt", h.entry_receipt, methods=["GET"]),
        Route("/v1/entries/{index}/envelope", h.entry_envelope, methods=["GET"]),
        Route("/v1/entries/{index}/sigstore-bundle", sig.bundle, methods=["GET"]),
        rekor_entries,
        Route("/v1/sigstore/trusted-root.json", sig.trusted_root, methods=["GET"]),
        Route("/v1/sigstore/signing-config.json", sig.signing_config, methods=["GET"]),
        Route("/v1/attestations/{digest}", h.attestation, methods=["GET"]),
        Route("/v1/search", h.search, methods=["GET"]),
        proofs,
        Route("/v1/proof/consistency", h.consistency, methods=["GET"]),
        Route("/v1/openapi.json", h.openapi, methods=["GET"]),
        Route("/healthz", h.healthz, methods=["GET"]),
        Route("/metrics", h.metrics, methods=["GET"]),
        *explorer.routes(),
    ]
    return LogServer(
        h, {("POST", ENTRIES): entries, ("GET", INCLUSION): proofs},
        routes=routes,
        lifespan=h.lifespan,
        exception_handlers={
            APIError: h.on_api_error,
            HTTPException: h.on_http_exception,
            Exception: h.on_internal_error,
            **dict.fromkeys(storage_errors, h.on_unreachable),
        },
    )


def app_from_env() -> LogServer:
    """uvicorn factory for worker processes: the config travels in TLOG_SERVE_CONFIG (JSON)."""
    config = ServeConfig(**orjson.loads(os.environ["TLOG_SERVE_CONFIG"]))
    setup_logging(config.log_format, "tlog-worker")
    from client.guarded_http import GuardedHttpToolsProtocol  # before any connection is accepted

    GuardedHttpToolsProtocol.configure(header_timeout=config.header_timeout,
                                       per_client=config.max_connections_per_client,
                                       body_timeout=config.body_timeout,
                                       prefixes=(config.rate_ipv4_prefix, config.rate_ipv6_prefix))
    app = create_app(config, os.environ["TLOG_VKEY"])
    app.state.log.extra_vkeys = [k for k in os.environ.get("TLOG_EXTRA_VKEYS", "").split(",") if k]
    return app
