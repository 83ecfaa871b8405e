"""uvicorn's httptools protocol with the client's verified certificate name in each request.

uvicorn does not yet fill the ASGI TLS extension, so an app behind it cannot tell which
client certificate a connection showed. This protocol reads it once per connection (the
TLS handshake is over by `connection_made`) and puts it in every request's scope as
`scope["extensions"]["tls"]["client_cert_name"]`, where `client.tls.peer_of` finds it.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from client.tls import connection_peer


class TLSHttpToolsProtocol(HttpToolsProtocol):
    _peer: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._peer = connection_peer(transport.get_extra_info("ssl_object"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.scheme == "https":
            self.scope["extensions"] = {"tls": {"client_cert_name": self._peer}}  # type: ignore[typeddict-unknown-key]
