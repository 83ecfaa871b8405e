"""uvicorn's httptools protocol, guarded against clients that hold connections, and with the
client's verified certificate name in each request.

uvicorn arms no timer before a request's headers are complete: a connection that sends
nothing, or trickles its headers a byte at a time (slowloris), is held for ever, and since
`limit_concurrency` counts open connections, a few thousand such sockets lock every other
client out. This protocol gives each request `header_timeout` seconds from the connection
(or from its first byte, on a kept-alive connection) to its last header line, then closes
the connection. `per_client` caps one address's open connections per worker (0: no cap;
behind a reverse proxy every connection has the proxy's address).

uvicorn does not fill the ASGI TLS extension either, so the verified client certificate's
name is read once per connection (the handshake is over by `connection_made`) and put in
each request's scope as `scope["extensions"]["tls"]["client_cert_name"]`, where
`client.tls.peer_of` finds it.

Two more holes of the same kind: the request line and headers together may take at most
`MAX_HEADER_BYTES` (uvicorn's httptools parser has no limit, so one request could grow a
worker by hundreds of megabytes within the header timeout), answered 431 and closed, and a
chunked body's trailers count against the same limit; and a
request body sent after the answer (a 401 or 429 to a POST that the app never reads) would
hold the connection for ever, a byte at a time, since each byte cancels uvicorn's keep-alive
timer. So a body gets `body_timeout` seconds from its first byte to its last, then the
connection is closed. Where the app reads the body it answers 408 first (its own
`body_timeout` is shorter by `BODY_GRACE`).

The timers wait while the app is answering an earlier request on the connection (uvicorn
reads no further then, so a pipelined request cannot be late by its own fault), and a
request that asks to upgrade (there is no WebSocket here) is answered and its connection
closed, so bytes meant for another protocol are never parsed as requests.

Connections are counted per client as `client.addresses.client_key` groups addresses: an
IPv6 host cannot take a fresh share per address of its /64.

The settings are class attributes, set by `configure` in each server process before it
accepts connections (uvicorn hands worker processes the class by reference).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from client.addresses import client_key
from client.tls import connection_peer

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 30.0
BODY_GRACE = 5.0  # the protocol's body limit is the app's body_timeout plus this
MAX_HEADER_BYTES = 64 * 1024  # request line and headers (nginx allows 4 x 8 KiB lines)
_TOO_LARGE_BODY = (b'{"error":{"code":"headers_too_large","message":"the request line and headers '
                   b'exceed %d bytes"}}' % MAX_HEADER_BYTES)


_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
              b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_TOO_LARGE_BODY), _TOO_LARGE_BODY))


class _HeadersTooLarge(Exception):
    """Raised in a parser callback to stop httptools parsing the rest of the read."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout: ClassVar[float] = DEFAULT_HEADER_TIMEOUT
    body_timeout: ClassVar[float] = DEFAULT_BODY_TIMEOUT + BODY_GRACE
    per_client: ClassVar[int] = 0
    prefixes: ClassVar[tuple[int, int]] = (32, 64)  # IPv4, IPv6 prefix lengths of a client
    open_by_client: ClassVar[Counter[str]] = Counter()
    # "header_timeout", "body_timeout", "headers_too_large", "per_client"
    dropped: ClassVar[Counter[str]] = Counter()

    _peer: str | None = None
    _header_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _counted: str | None = None
    _header_bytes: int = 0  # this request's line, headers and trailers so far
    _read_bytes: int = 0  # reads wholly inside this request's headers
    _message: int = 0  # requests begun on this connection
    _in_headers: bool = False
    _refused: bool = False

    @classmethod
    def configure(cls, *, header_timeout: float, per_client: int,
                  body_timeout: float = DEFAULT_BODY_TIMEOUT, prefixes: tuple[int, int] = (32, 64)) -> None:
        """`body_timeout`: the app's own limit on reading a body (the protocol allows it
        BODY_GRACE more, so that the app's 408 comes first)."""
        cls.header_timeout, cls.per_client = header_timeout, per_client
        cls.body_timeout, cls.prefixes = body_timeout + BODY_GRACE, prefixes

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = client_key(self.client[0], ipv4_prefix=self.prefixes[0],
                             ipv6_prefix=self.prefixes[1]) if self.client else ""
        if self.per_client and self.open_by_client[address] >= self.per_client:
            self.dropped["per_client"] += 1
            transport.close()
            return
        self.open_by_client[address] += 1
        self._counted = address
        self._peer = connection_peer(transport.get_extra_info("ssl_object"))
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._disarm_body()
        if self._counted is not None:
            self.open_by_client[self._counted] -= 1
            if self.open_by_client[self._counted] <= 0:
                del self.open_by_client[self._counted]
            self._counted = None
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._header_timer is None and self.header_timeout > 0:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _app_busy(self) -> bool:
        """A request is still being answered (or waits its turn behind one): uvicorn then
        stops reading, so the next request's bytes cannot arrive, and that is our delay."""
        return (self.cycle is not None and not self.cycle.response_complete) or bool(self.pipeline)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._app_busy():
            self._arm()
            return
        self.dropped["header_timeout"] += 1
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes, self._read_bytes, self._in_headers = 0, 0, True
        self._message += 1
        self._arm()  # a kept-alive connection's next request: its headers get the same time
        if self.scheme == "https":
            self.scope["extensions"] = {"tls": {"client_cert_name": self._peer}}  # type: ignore[typeddict-unknown-key]

    def data_received(self, data: bytes) -> None:
        # httptools keeps a header line to itself until it ends, so the callbacks below never
        # see one that never ends: reads that fall wholly inside one request's headers are
        # counted too (and separately, so nothing is counted twice).
        message = self._message if self._in_headers else -1
        super().data_received(data)
        if self._in_headers and self._message == message:
            self._read_bytes += len(data)
            if self._read_bytes > MAX_HEADER_BYTES and not self._refused:
                with contextlib.suppress(_HeadersTooLarge):
                    self._refuse_headers()

    # Header (and chunked trailer) bytes are counted per parser callback, so that each
    # request is measured alone however the reads split or pipeline it.
    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse_headers()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse_headers()
        super().on_header(name, value)

    def _refuse_headers(self) -> None:
        """431 and close (only a close for trailers: a response may be under way), then stop
        the parser: the request never reaches the app, and nothing more is kept."""
        if not self._refused and not self.transport.is_closing():
            self.dropped["headers_too_large"] += 1
            if self._in_headers and not self._app_busy():
                self.transport.write(_TOO_LARGE)
            self.transport.close()
        self._refused = True
        self._disarm()
        raise _HeadersTooLarge

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # after a 431 the parser's error is ours: nothing more to send
            super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm()
        super().on_headers_complete()
        if self.parser.should_upgrade() and self.cycle is not None:
            # Not upgraded (no WebSocket here): answer, then close, so that bytes meant for
            # the other protocol are never parsed as further requests.
            self.cycle.keep_alive = False

    def on_body(self, body: bytes) -> None:
        if self._body_timer is None and self.body_timeout > 0:
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_too_slow)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm_body()
        super().on_message_complete()

    def _disarm_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _body_too_slow(self) -> None:
        self._body_timer = None
        if self.pipeline:  # its turn has not come: uvicorn reads its body once it has
            self._body_timer = self.loop.call_later(self.body_timeout, self._body_too_slow)
            return
        self.dropped["body_timeout"] += 1
        self.transport.close()

    def _unsupported_upgrade_warning(self) -> None:
        pass  # uvicorn warns on every Upgrade request: a client could flood the log with them
