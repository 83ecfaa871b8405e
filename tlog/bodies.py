"""Request bodies with limits, read from ASGI `receive()`: small ones in memory, large ones
spooled to a temp file.

A body is refused with 413 as soon as it is known to exceed the limit (on Content-Length,
else on the running count), and with 408 if it does not arrive in time. Bodies above the
spool threshold go to an unlinked temporary file and are parsed through mmap, so the worker
holds no second in-memory copy of a large attestation while reading it; a semaphore bounds
how many large bodies are handled at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import mmap
import os
import tempfile
from collections.abc import AsyncIterator
from typing import IO

from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive, Scope

from client.encoding import parse_decimal
from client.errors import MalformedError
from tlog.errors import APIError, bad_request

SPOOL_THRESHOLD = 1 << 20


def _too_large(limit: int) -> APIError:
    return APIError(413, "body_too_large", f"request body exceeds {limit} bytes", {"Connection": "close"})


def _too_slow(timeout: float) -> APIError:
    # Close the connection too: the rest of a slow body would otherwise keep it held.
    return APIError(408, "request_timeout", f"request body not received within {timeout:g} s",
                    {"Connection": "close"})


def declared_length(scope: Scope, limit: int) -> int | None:
    """Content-Length, if given: 400 if malformed, 413 if over `limit`."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                n = parse_decimal(value, what="Content-Length")
            except MalformedError as exc:
                raise bad_request("bad_request", "invalid Content-Length") from exc
            if n > limit:
                raise _too_large(limit)
            return n
    return None


def is_large(declared: int | None) -> bool:
    """Whether the body will be spooled (over the threshold, or of unknown length)."""
    return declared is None or declared > SPOOL_THRESHOLD


def _chunk(message: Message) -> bytes:
    """One message's body bytes; the client leaving mid-body ends the request."""
    if message["type"] != "http.request":
        raise ClientDisconnect
    body: bytes = message.get("body", b"")
    return body


async def small_body(receive: Receive, *, timeout: float) -> bytes:
    """A body whose Content-Length is within the spool threshold, in memory. It usually
    comes in one message: that one is returned as is, not copied."""
    try:
        async with asyncio.timeout(timeout):
            # The HTTP parser never delivers more than Content-Length bytes.
            message = await receive()
            body = _chunk(message)
            if not message.get("more_body", False):
                return body
            chunks = [body]
            while message.get("more_body", False):
                message = await receive()
                chunks.append(_chunk(message))
            return b"".join(chunks)
    except TimeoutError:
        raise _too_slow(timeout) from None


@contextlib.asynccontextmanager
async def spooled_body(receive: Receive, *, limit: int, timeout: float,
                       spool_dir: str | None = None) -> AsyncIterator[bytes | memoryview]:
    """A large body (see `is_large`) as a read-only memoryview over a spooled file.

    The caller bounds how many large bodies are in flight.
    """
    with tempfile.TemporaryFile(dir=spool_dir) as f:
        try:
            async with asyncio.timeout(timeout):
                total = await _spool(receive, f, limit)
        except TimeoutError:
            raise _too_slow(timeout) from None
        if total == 0:
            yield b""
            return
        with mmap.mmap(f.fileno(), total, access=mmap.ACCESS_READ) as m:
            view = memoryview(m)
            try:
                yield view
            finally:
                view.release()


async def _spool(receive: Receive, f: IO[bytes], limit: int) -> int:
    total = 0
    fd = f.fileno()
    more = True
    while more:
        message = await receive()
        chunk = _chunk(message)
        more = message.get("more_body", False)
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        if chunk:
            os.write(fd, chunk)
    return total
