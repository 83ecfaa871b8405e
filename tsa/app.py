"""The TSA's HTTP API (Starlette), at the paths Sigstore's timestamp-authority uses:

- `POST /api/v1/timestamp`: body a DER `TimeStampReq` (`application/timestamp-query`, at most
  16 KiB), answer 200 `application/timestamp-reply` with the DER `TimeStampResp`. A request
  the TSA refuses (bad DER, unknown hash, other policy) is still a 200 with a rejection
  status inside: that is how RFC 3161 clients expect to hear why. Only HTTP-level faults get
  HTTP errors, as JSON `{"error": {"code", "message"}}` (as tlog's): 415 wrong content
  type, 413 body too large, 408 body too slow.
- `GET /api/v1/timestamp/certchain`: the chain clients pin, PEM, signing certificate first.
- `GET /healthz`, `GET /metrics` (Prometheus text).

Signing takes about a millisecond (ECDSA P-256 plus asn1crypto), so it runs inline on the
event loop rather than paying a thread hop.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from client.metrics import CONTENT_TYPE, Counter, HTTPInstrument, Registry
from tsa.authority import MAX_REQUEST, TimestampAuthority

QUERY_TYPE, REPLY_TYPE = "application/timestamp-query", "application/timestamp-reply"
CHAIN_TYPE = "application/pem-certificate-chain"
BODY_TIMEOUT = 10.0  # seconds to send a (16 KiB at most) body


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status,
                        headers={"Cache-Control": "no-store"})


class _TooLarge(Exception):
    pass


class TSAService:
    def __init__(self, authority: TimestampAuthority, chain_pem: bytes) -> None:
        self.authority, self.chain_pem = authority, chain_pem
        self.registry = Registry(worker_label=False)
        self.m_answers = self.registry.add(Counter(
            "tsa_timestamp_total", "Time-stamp answers: granted or the rejection's failInfo",
            ("outcome",)))

    async def _read_body(self, request: Request) -> bytes | Response:
        declared = request.headers.get("content-length")
        too_large = _error(413, "payload_too_large", f"body is larger than {MAX_REQUEST} bytes")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_REQUEST):
            return too_large
        body = bytearray()

        async def read() -> None:
            async for chunk in request.stream():
                body.extend(chunk)
                if len(body) > MAX_REQUEST:
                    raise _TooLarge

        try:
            await asyncio.wait_for(read(), BODY_TIMEOUT)
        except _TooLarge:
            return too_large
        except TimeoutError:
            return _error(408, "request_timeout", "request body too slow")
        except ClientDisconnect:
            return _error(400, "client_disconnected", "client disconnected")
        return bytes(body)

    async def timestamp(self, request: Request) -> Response:
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != QUERY_TYPE:
            return _error(415, "unsupported_media_type", f"the body must be {QUERY_TYPE}")
        body = await self._read_body(request)
        if isinstance(body, Response):
            return body
        outcome, reply = self.authority.answer(body)
        self.m_answers.inc(1, outcome)
        return Response(reply, 200, media_type=REPLY_TYPE, headers={"Cache-Control": "no-store"})

    async def certchain(self, _request: Request) -> Response:
        return Response(self.chain_pem, media_type=CHAIN_TYPE)

    async def healthz(self, _request: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def metrics(self, _request: Request) -> Response:
        return Response(self.registry.render(), headers={"Content-Type": CONTENT_TYPE})


async def _not_found(_request: Request, _exc: Exception) -> Response:
    return _error(404, "not_found", "not found")


async def _method(_request: Request, _exc: Exception) -> Response:
    return _error(405, "method_not_allowed", "method not allowed")


def build_app(service: TSAService, access_log: bool = False) -> Starlette:
    app = Starlette(routes=[
        Route("/api/v1/timestamp", service.timestamp, methods=["POST"]),
        Route("/api/v1/timestamp/certchain", service.certchain, methods=["GET"]),
        Route("/healthz", service.healthz, methods=["GET"]),
        Route("/metrics", service.metrics, methods=["GET"]),
    ], exception_handlers={404: _not_found, 405: _method})
    app.add_middleware(HTTPInstrument, registry=service.registry, prefix="tsa", access=access_log,
                       on_error=lambda: _error(500, "internal", "internal error"))
    return app
