"""The guarded HTTP protocol on its own, driven read by read (a recording transport in place
of a socket), for the cases real sockets cannot stage exactly: how reads split and pipeline
requests. tests/test_faults.py runs the same guards against a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from client.guarded_http import MAX_HEADER_BYTES, GuardedHttpToolsProtocol


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out, self.closed, self.paused = b"", False, False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: Any) -> None:
        self.out += bytes(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def _protocol(app: Any, header_timeout: float = 10.0) -> tuple[GuardedHttpToolsProtocol, _Transport]:
    GuardedHttpToolsProtocol.configure(header_timeout=header_timeout, per_client=0, body_timeout=1.0)
    config = uvicorn.Config(app, log_level="warning", ws="none", proxy_headers=False, lifespan="off")
    config.load()
    proto = GuardedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={},
                                     _loop=asyncio.get_running_loop())
    transport = _Transport()
    proto.connection_made(transport)
    return proto, transport


@pytest.fixture(autouse=True)
def _restore_defaults() -> Any:
    yield
    GuardedHttpToolsProtocol.configure(header_timeout=10.0, per_client=0)


def _recording(seen: list[str], delay: float = 0.0) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await asyncio.sleep(delay)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    return app


async def _answered(transport: _Transport, n: int) -> None:
    for _ in range(100_000):
        if transport.out.count(b"HTTP/1.1 200 ") >= n or transport.closed:
            break
        await asyncio.sleep(0)
    assert transport.out.count(b"HTTP/1.1 200 ") == n, transport.out[-200:]


def test_pipelined_requests_are_measured_one_by_one() -> None:
    """A read of many small pipelined requests, ending inside the next one, is no oversized
    request; a request whose own headers exceed the limit is, wherever the reads split."""
    async def run() -> None:
        seen: list[str] = []
        proto, transport = _protocol(_recording(seen))
        burst = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" * 3000
        assert len(burst) > MAX_HEADER_BYTES
        proto.data_received(burst + b"GET /b HTTP/1.1\r\nHo")
        await _answered(transport, 3000)
        proto.data_received(b"st: x\r\n\r\n")
        await _answered(transport, 3001)
        assert b" 431 " not in transport.out and not transport.closed and seen[-1] == "/b"
        # 70 KiB of headers arriving in 1 KiB reads that end mid-line: refused.
        proto, transport = _protocol(_recording(seen := []))
        big = b"GET /big HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: %s\r\n" % (b"p" * 900) * 80 + b"\r\n"
        for i in range(0, len(big), 1000):
            if not transport.closed:
                proto.data_received(big[i:i + 1000])
        assert transport.out.startswith(b"HTTP/1.1 431 ") and transport.closed and seen == []
    asyncio.run(run())


def test_the_header_timer_waits_while_an_earlier_request_is_answered() -> None:
    """Pipelined requests behind a slow one (a submission waiting for its batch): uvicorn
    reads nothing more meanwhile, so the timer must not close the connection."""
    async def run() -> None:
        seen: list[str] = []
        proto, transport = _protocol(_recording(seen, delay=0.6), header_timeout=0.2)
        proto.data_received(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n"
                            b"GET /third HTTP/1.1\r\nHo")
        await asyncio.sleep(1.0)  # five header timeouts, while /slow and then /next are answered
        assert not transport.closed and transport.out.count(b"HTTP/1.1 200 ") == 1, transport.out
        # Once nothing is being answered, the unfinished third request's headers time out.
        await asyncio.sleep(0.8)
        assert transport.closed and transport.out.count(b"HTTP/1.1 200 ") == 2
    asyncio.run(run())


def test_an_upgrade_request_is_answered_then_closed() -> None:
    """No WebSocket here: the request is answered as plain HTTP and its connection closed,
    so what follows (meant for another protocol) is never parsed as a request."""
    async def run() -> None:
        seen: list[str] = []
        proto, transport = _protocol(_recording(seen))
        proto.data_received(b"GET /explorer/ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                            b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        for _ in range(50):
            await asyncio.sleep(0)
        assert transport.out.startswith(b"HTTP/1.1 200 ") and transport.closed and seen == ["/explorer/"]
    asyncio.run(run())
