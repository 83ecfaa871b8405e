#!/usr/bin/env python3
"""Per-request cost of the HTTP middleware every tlog process runs (client/metrics.HTTPInstrument:
request id, status/latency metrics, optional access log), in-process, without sockets.

    python loadtest/bench_middleware.py [--requests N]

Prints µs per request for a bare ASGI app and for the same app behind the middleware (access
log off, then on into a null handler with JSON formatting): the difference is what the
middleware adds to every request of `tlog serve`, `witness serve`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from client.logs import JSONFormatter
from client.metrics import HTTPInstrument, Registry


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _send(_message: Any) -> None:
    return None


async def _receive() -> Any:
    return {}


async def _per_request(app: Any, n: int) -> float:
    scope = {"type": "http", "method": "GET", "path": "/healthz", "client": ("127.0.0.1", 1),
             "headers": [(b"host", b"log"), (b"user-agent", b"wrk")]}
    t0 = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), _receive, _send)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=200_000)
    args = p.parse_args()
    handler = logging.StreamHandler(open("/dev/null", "w"))  # noqa: SIM115 - process lifetime
    handler.setFormatter(JSONFormatter("bench"))
    logging.getLogger("tlog.access").addHandler(handler)
    logging.getLogger("tlog.access").setLevel(logging.INFO)
    logging.getLogger("tlog.access").propagate = False
    rows = [("bare ASGI app", _app),
            ("HTTPInstrument", HTTPInstrument(_app, Registry(), "bench")),
            ("HTTPInstrument + JSON access log", HTTPInstrument(_app, Registry(), "bench2", access=True))]
    base = None
    for name, app in rows:
        asyncio.run(_per_request(app, 10_000))  # warm up
        us = min(asyncio.run(_per_request(app, args.requests)) for _ in range(3))
        base = us if base is None else base
        print(f"{name:34s} {us:7.2f} µs/request  (+{us - base:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
