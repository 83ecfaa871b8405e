"""The witness's HTTP API (Starlette): C2SP tlog-witness.

- `POST /add-checkpoint`: check and cosign (witness.protocol), persist (witness.store), answer
  with the `cosignature/v1` line; refusals in plain text with the spec's status codes.
- `GET /<lowercase hex SHA-256 of the origin>/checkpoint`: the latest cosigned checkpoint (for
  monitors), 404 if none.
- `GET /healthz`, `GET /metrics` (Prometheus text).

Signature and proof checks run in a thread (they are CPU work); the LMDB commit too (fsync).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from client.note import Signer
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


class TokenBucket:
    """Per-log request budget: `rate` per second, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float) -> bool:
        tokens, last = self.tokens.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self.tokens[key] = (tokens, now)
            return False
        self.tokens[key] = (tokens - 1, now)
        return True


class Witness:
    def __init__(self, config: WitnessConfig, store: WitnessStore, cosigner: Signer) -> None:
        self.config, self.store, self.cosigner = config, store, cosigner
        self.by_hash = {hashlib.sha256(o.encode()).hexdigest(): o for o in config.logs}
        self.limiter = TokenBucket(config.rate_per_log, config.burst)
        self.answers: Counter[tuple[str, int]] = Counter()
        self.started = time.time()
        for origin, log in config.logs.items():
            if log.start is not None:
                size, root = log.start
                store.seed(origin, Stored(size, root, b""))

    def _refuse(self, origin: str, r: Refusal) -> Response:
        self.answers[(origin, r.status)] += 1
        if r.status == 409 and r.known_size is not None:
            # Exactly this type, no charset parameter: clients compare it verbatim.
            return Response(f"{r.known_size}\n", 409, headers={"Content-Type": SIZE_CONTENT_TYPE})
        return PlainTextResponse(r.message + "\n", r.status)

    async def add_checkpoint(self, request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return PlainTextResponse(f"body is larger than {MAX_BODY} bytes\n", 413)
        body = bytearray()
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    return PlainTextResponse(f"body is larger than {MAX_BODY} bytes\n", 413)
        except ClientDisconnect:
            return PlainTextResponse("client disconnected\n", 400)
        try:
            req = parse_request(bytes(body))
        except Refusal as r:
            return self._refuse("", r)
        log = self.config.logs.get(req.origin)
        if log is None:
            return self._refuse("", Refusal(404, f"unknown log origin {req.origin[:100]!r}"))
        if not self.limiter.take(req.origin, time.monotonic()):
            self.answers[(req.origin, 429)] += 1
            return PlainTextResponse("too many requests for this log\n", 429, headers={"Retry-After": "1"})
        try:
            line = await run_in_threadpool(self._add, req, list(log.keys))
        except Refusal as r:
            return self._refuse(req.origin, r)
        self.answers[(req.origin, 200)] += 1
        return Response(line, 200, media_type=TEXT)

    def _add(self, req: AddCheckpoint, keys: list[Any]) -> bytes:
        stored = self.store.get(req.origin)
        cp = decide(req, keys, stored)
        line, note = cosign(req, self.cosigner)
        self.store.advance(req.origin, stored, Stored(cp.size, cp.root, note))
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
        lines = ["# HELP witness_add_checkpoint_total add-checkpoint answers by log and status",
                 "# TYPE witness_add_checkpoint_total counter"]
        for (origin, status), n in sorted(self.answers.items()):
            label = origin.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'witness_add_checkpoint_total{{origin="{label}",code="{status}"}} {n}')
        lines += ["# HELP witness_logs configured logs", "# TYPE witness_logs gauge",
                  f"witness_logs {len(self.config.logs)}"]
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


async def _not_found(_request: Request, _exc: Exception) -> Response:
    return PlainTextResponse("not found\n", 404)


async def _method(_request: Request, _exc: Exception) -> Response:
    return PlainTextResponse("method not allowed\n", 405)


def build_app(witness: Witness) -> Starlette:
    return Starlette(routes=[
        Route("/add-checkpoint", witness.add_checkpoint, methods=["POST"]),
        Route("/healthz", witness.healthz, methods=["GET"]),
        Route("/metrics", witness.metrics, methods=["GET"]),
        Route("/{origin_hash:str}/checkpoint", witness.checkpoint, methods=["GET"]),
    ], exception_handlers={404: _not_found, 405: _method})
