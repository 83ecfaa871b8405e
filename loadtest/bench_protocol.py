#!/usr/bin/env python3
"""Per-request cost of the guarded HTTP protocol (client/guarded_http: header and body timers,
header byte count, per-client count, TLS name) against uvicorn's plain httptools protocol,
in-process, with a null transport and a bare ASGI app, so only the protocol differs.

    python loadtest/bench_protocol.py [--requests N] [--rounds R]

Rounds alternate between the two protocols; it prints the median µs per request of each and
their ratio (a ratio is what to compare across machines: these are shared and noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from client.guarded_http import GuardedHttpToolsProtocol
from loadtest.benchlib import paired_medians, print_pair

# A typical read, as a verifier or a browser sends it: a tile, with a handful of headers.
REQUEST = (b"GET /tile/0/000.p/7 HTTP/1.1\r\nHost: log.example.com\r\nUser-Agent: tlog-client/1\r\n"
           b"Accept: */*\r\nAccept-Encoding: gzip\r\nConnection: keep-alive\r\n\r\n")


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]})
    await send({"type": "http.response.body", "body": b"x" * 224})


class _NullTransport(asyncio.Transport):
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _per_request(cls: type[HttpToolsProtocol], n: int) -> float:
    config = uvicorn.Config(_app, log_level="warning", access_log=False, ws="none", proxy_headers=False,
                            lifespan="off")
    config.load()
    proto = cls(config=config, server_state=ServerState(), app_state={}, _loop=asyncio.get_running_loop())
    proto.connection_made(_NullTransport())
    t0 = time.perf_counter()
    for _ in range(n):
        proto.data_received(REQUEST)
        while proto.tasks:
            await asyncio.sleep(0)
    took = time.perf_counter() - t0
    proto.connection_lost(None)
    return took / n * 1e6


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=50_000)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    medians = paired_medians(args.rounds, {
        "uvicorn httptools": lambda: asyncio.run(_per_request(HttpToolsProtocol, args.requests)),
        "guarded": lambda: asyncio.run(_per_request(GuardedHttpToolsProtocol, args.requests))})
    print_pair(medians, "µs/request", args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
