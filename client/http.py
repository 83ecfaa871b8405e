"""Reading HTTP answers within bounds: a size cap and a total deadline.

httpx's timeout bounds each read, not the whole answer: a peer that trickles one byte per
read, or sends a flood, could otherwise hold a caller (a client, the sequencer's witness
round, a monitor's gossip, the log's start-up check) for days or fill its memory. Every
answer read from another party goes through `read_bounded`.
"""

from __future__ import annotations

import time

import httpx

from client.errors import MalformedError


def read_bounded(resp: httpx.Response, limit: int, deadline: float | None = None,
                 what: str = "the answer") -> bytes:
    """The body of a streamed response: MalformedError past `limit` bytes, httpx.ReadTimeout
    past `deadline` seconds from now."""
    end = None if deadline is None else time.monotonic() + deadline
    body = bytearray()
    for chunk in resp.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise MalformedError(f"{what} is larger than {limit} bytes")
        if end is not None and time.monotonic() > end:
            raise httpx.ReadTimeout(f"{what} took over {deadline:g} s")
    return bytes(body)
