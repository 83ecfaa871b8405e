"""Request bodies with limits: small ones in memory, large ones spooled to a temp file.

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

from starlette.requests import Request

from client.encoding import parse_decimal
from client.errors import MalformedError
from tlog.errors import APIError, bad_request

SPOOL_THRESHOLD = 1 << 20


def _too_large(limit: int) -> APIError:
    return APIError(413, "body_too_large", f"request body exceeds {limit} bytes")


def declared_length(request: Request, limit: int) -> int | None:
    """Content-Length, if given: 400 if malformed, 413 if over `limit`."""
    declared = request.headers.get("content-length")
    if declared is None:
        return None
    try:
        n = parse_decimal(declared, what="Content-Length")
    except MalformedError as exc:
        raise bad_request("bad_request", "invalid Content-Length") from exc
    if n > limit:
        raise _too_large(limit)
    return n


def is_large(request: Request, limit: int) -> bool:
    """Whether the body will be spooled (over the threshold, or of unknown length)."""
    n = declared_length(request, limit)
    return n is None or n > SPOOL_THRESHOLD


@contextlib.asynccontextmanager
async def request_body(request: Request, *, limit: int, timeout: float,
                       spool_dir: str | None = None) -> AsyncIterator[bytes | memoryview]:
    """The body as bytes (small) or a read-only memoryview over a spooled file (large).

    The caller bounds how many large bodies are in flight (see `is_large`).
    """
    size_hint = declared_length(request, limit)
    if size_hint is not None and size_hint <= SPOOL_THRESHOLD:
        try:
            async with asyncio.timeout(timeout):
                # The HTTP parser never delivers more than Content-Length bytes.
                body = await request.body()
        except TimeoutError:
            raise APIError(408, "request_timeout",
                           f"request body not received within {timeout:g} s") from None
        yield body
        return
    with tempfile.TemporaryFile(dir=spool_dir) as f:
        try:
            async with asyncio.timeout(timeout):
                total = await _spool(request, f, limit)
        except TimeoutError:
            raise APIError(408, "request_timeout",
                           f"request body not received within {timeout:g} s") from None
        if total == 0:
            yield b""
            return
        with mmap.mmap(f.fileno(), total, access=mmap.ACCESS_READ) as m:
            view = memoryview(m)
            try:
                yield view
            finally:
                view.release()


async def _spool(request: Request, f: object, limit: int) -> int:
    total = 0
    fd = f.fileno()  # type: ignore[attr-defined]
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        os.write(fd, chunk)
    return total
