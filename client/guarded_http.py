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

The settings are class attributes, set by `configure` in each server process before it
accepts connections (uvicorn hands worker processes the class by reference).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from client.tls import connection_peer

DEFAULT_HEADER_TIMEOUT = 10.0


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout: ClassVar[float] = DEFAULT_HEADER_TIMEOUT
    per_client: ClassVar[int] = 0
    open_by_client: ClassVar[Counter[str]] = Counter()
    dropped: ClassVar[Counter[str]] = Counter()  # "header_timeout", "per_client": for metrics

    _peer: str | None = None
    _header_timer: asyncio.TimerHandle | None = None
    _counted: str | None = None

    @classmethod
    def configure(cls, *, header_timeout: float, per_client: int) -> None:
        cls.header_timeout, cls.per_client = header_timeout, per_client

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else ""
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

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        self.dropped["header_timeout"] += 1
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # a kept-alive connection's next request: its headers get the same time
        if self.scheme == "https":
            self.scope["extensions"] = {"tls": {"client_cert_name": self._peer}}  # type: ignore[typeddict-unknown-key]

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
