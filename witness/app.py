"""The witness's HTTP API (Starlette): C2SP tlog-witness.

- `POST /add-checkpoint`: check and cosign (witness.protocol), persist (witness.store), answer
  with the `cosignature/v1` line; refusals in plain text with the spec's status codes.
- `GET /<lowercase hex SHA-256 of the origin>/checkpoint`: the latest cosigned checkpoint (for
  monitors), 404 if none.
- `GET /healthz`, `GET /metrics` (Prometheus text).

Signature and proof checks run in a thread (they are CPU work); the LMDB commit too (fsync).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from client.addresses import client_key
from client.metrics import CONTENT_TYPE, Counter, Gauge, Histogram, HTTPInstrument, Registry
from client.note import Signer
from client.tls import peer_of
from client.tokens import TokenFile
from witness.config import WitnessConfig
from witness.protocol import (
    MAX_BODY,
    SIZE_CONTENT_TYPE,
    AddCheckpoint,
    Refusal,
    Stored,
    cosign,
    decide,
    parse_request,
)
from witness.store import WitnessStore

TEXT = "text/plain; charset=utf-8"
BODY_TIMEOUT = 10.0  # seconds to send a (16 KiB at most) body
REFUSALS_PER_CLIENT, REFUSAL_BURST = 50.0, 200


class TokenBucket:
    """Request budgets by key: `rate` per second, bursts up to `burst`. Thread-safe; the table
    is pruned of full buckets when it grows (keys may come from the network)."""

    MAX_KEYS = 65536

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, last = self.tokens.get(key, (self.burst, now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def has(self, key: str, now: float) -> bool:
        with self._lock:
            return self._level(key, now) >= 1

    def take(self, key: str, now: float) -> bool:
        with self._lock:
            tokens = self._level(key, now)
            ok = tokens >= 1
            self.tokens[key] = (tokens - 1 if ok else tokens, now)
            if len(self.tokens) > self.MAX_KEYS:
                self.tokens = {k: v for k, v in self.tokens.items() if self._level(k, now) < self.burst}
            return ok


class Witness:
    def __init__(self, config: WitnessConfig, store: WitnessStore, cosigner: Signer) -> None:
        self.config, self.store, self.cosigner = config, store, cosigner
        self.by_hash = {hashlib.sha256(o.encode()).hexdigest(): o for o in config.logs}
        # Per log: charged only once the log's signature verified, so nobody without the
        # log's key can spend its budget. Per client address: refusals (bad signatures,
        # proofs, bodies), so one sender cannot keep the witness verifying garbage.
        self.limiter = TokenBucket(config.rate_per_log, config.burst)
        tokens = config.add_checkpoint_tokens_file
        self.tokens = TokenFile(Path(tokens)) if tokens else None
        self.closed = self.tokens is not None or bool(config.tls_client_ca_file)
        self.refusals = TokenBucket(REFUSALS_PER_CLIENT, REFUSAL_BURST)
        self.registry = Registry(worker_label=False)
        self.m_answers = self.registry.add(Counter(
            "witness_add_checkpoint_total", "add-checkpoint answers by log and status",
            ("origin", "code")))
        self.m_cosign = self.registry.add(Histogram(
            "witness_cosign_seconds", "Checking, cosigning and durably storing one checkpoint",
            (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1)))
        for origin in config.logs:  # a refused proof is what alerts watch: its series starts at 0
            self.m_answers.inc(0, origin, "422")
        self.last_cosign = 0.0
        self.registry.add(Gauge("witness_logs", "Configured logs", lambda: len(config.logs)))
        self.registry.add(Gauge("witness_last_cosign_timestamp_seconds",
                                "Unix time of the last cosignature (any log)", lambda: self.last_cosign))
        self.registry.add(Gauge("witness_lmdb_used_bytes", "LMDB pages in use, in bytes",
                                lambda: store.stat()["used"]))
        self.registry.add(Gauge("witness_lmdb_map_bytes", "LMDB map size, in bytes",
                                lambda: store.stat()["map_size"]))
        self.started = time.time()
        for origin, log in config.logs.items():
            if log.start is not None:
                size, root = log.start
                current = store.get(origin)
                if current is None:
                    store.seed(origin, Stored(size, root, b""))
                elif current.size < size or (current.size == size and current.root != root):
                    raise ValueError(
                        f"log {origin!r}: the stored state (size {current.size}) is not the configured "
                        f"start (size {size}) or a checkpoint after it; move the state aside or fix "
                        "the configuration")

    def _refuse(self, origin: str, r: Refusal) -> Response:
        self.m_answers.inc(1, origin, str(r.status))
        if r.status == 429:
            return PlainTextResponse(r.message + "\n", 429, headers={"Retry-After": "1"})
        if r.status == 409 and r.known_size is not None:
            # Exactly this type, no charset parameter: clients compare it verbatim.
            return Response(f"{r.known_size}\n", 409, headers={"Content-Type": SIZE_CONTENT_TYPE})
        return PlainTextResponse(r.message + "\n", r.status)

    async def _read_body(self, request: Request) -> bytes | Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return PlainTextResponse(f"body is larger than {MAX_BODY} bytes\n", 413)
        body = bytearray()

        async def read() -> None:
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > MAX_BODY:
                    raise Refusal(413, f"body is larger than {MAX_BODY} bytes")

        try:
            await asyncio.wait_for(read(), BODY_TIMEOUT)
        except Refusal as r:
            return PlainTextResponse(r.message + "\n", r.status)
        except TimeoutError:
            return PlainTextResponse("request body too slow\n", 408)
        except ClientDisconnect:
            return PlainTextResponse("client disconnected\n", 400)
        return bytes(body)

    def _caller(self, request: Request) -> str | None:
        """Who calls add-checkpoint, where only known logs may: the name of its client
        certificate or of its token; None if it proves neither."""
        if self.config.tls_client_ca_file:
            name = peer_of(request.scope)
            if name is not None:
                return name
        if self.tokens is not None:
            return self.tokens.submitter(request.headers.get("authorization"))
        return None

    async def add_checkpoint(self, request: Request) -> Response:
        client = client_key(request.client.host) if request.client else ""  # IPv6 by /64
        if self.closed and self._caller(request) is None:
            self.m_answers.inc(1, "", "401")
            return PlainTextResponse("this witness cosigns only for its logs: send `Authorization: "
                                     "Bearer <token>` or a client certificate\n", 401,
                                     headers={"WWW-Authenticate": 'Bearer realm="witness"'})
        if not self.refusals.has(client, time.monotonic()):
            return PlainTextResponse("too many refused requests from this address\n", 429,
                                     headers={"Retry-After": "1"})
        body = await self._read_body(request)
        if isinstance(body, Response):
            return body
        origin = ""
        try:
            req = parse_request(body)
            origin = req.origin
            log = self.config.logs.get(origin)
            if log is None:
                origin = ""
                raise Refusal(404, f"unknown log origin {req.origin[:100]!r}")
            line = await run_in_threadpool(self._add, req, list(log.keys))
        except Refusal as r:
            if r.status not in (409, 429):
                self.refusals.take(client, time.monotonic())
            return self._refuse(origin, r)
        self.m_answers.inc(1, origin, "200")
        return Response(line, 200, media_type=TEXT)

    def _add(self, req: AddCheckpoint, keys: list[Any]) -> bytes:
        t0 = time.perf_counter()
        stored = self.store.get(req.origin)
        accepted = decide(req, keys, stored)  # log signature checked: now charge the log's budget
        if not self.limiter.take(req.origin, time.monotonic()):
            raise Refusal(429, "too many requests for this log")
        line, note = cosign(accepted, self.cosigner)
        cp = accepted.checkpoint
        self.store.advance(req.origin, stored, Stored(cp.size, cp.root, note))
        self.m_cosign.observe(time.perf_counter() - t0)
        self.last_cosign = time.time()
        return line

    async def checkpoint(self, request: Request) -> Response:
        origin = self.by_hash.get(request.path_params["origin_hash"])
        stored = self.store.get(origin) if origin else None
        if stored is None or not stored.note:
            return PlainTextResponse("no cosigned checkpoint for this log\n", 404)
        return Response(stored.note, media_type=TEXT, headers={"Cache-Control": "no-cache"})

    async def healthz(self, _request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def metrics(self, _request: Request) -> Response:
        return Response(self.registry.render(), headers={"Content-Type": CONTENT_TYPE})


async def _not_found(_request: Request, _exc: Exception) -> Response:
    return PlainTextResponse("not found\n", 404)


async def _method(_request: Request, _exc: Exception) -> Response:
    return PlainTextResponse("method not allowed\n", 405)


def build_app(witness: Witness, access_log: bool = False) -> Starlette:
    app = Starlette(routes=[
        Route("/add-checkpoint", witness.add_checkpoint, methods=["POST"]),
        Route("/healthz", witness.healthz, methods=["GET"]),
        Route("/metrics", witness.metrics, methods=["GET"]),
        Route("/{origin_hash:str}/checkpoint", witness.checkpoint, methods=["GET"]),
    ], exception_handlers={404: _not_found, 405: _method})
    app.add_middleware(HTTPInstrument, registry=witness.registry, prefix="witness", access=access_log,
                       on_error=lambda: PlainTextResponse("internal error\n", 500))
    return app
