"""A reverse proxy for tests: one URL in front of a real log that can be switched to another
(a split view served over time from one address), and that can forge answers by path (a
poisoned cache or CDN). Fault injection beside the real servers, never instead of them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

Forge = Callable[[str, bytes], bytes | None]
"""(path, honest body) -> a body to serve instead, or None to pass the honest one."""


class SwitchProxy:
    def __init__(self, target: str) -> None:
        self.target = target
        self.forge: Forge | None = None
        self.forged = 0  # answers replaced so far
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _relay(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "accept")}
                try:
                    r = httpx.request(method, proxy.target + self.path, content=body or None,
                                      headers=headers, timeout=30)
                    status, data, ctype = r.status_code, r.content, r.headers.get("content-type", "")
                except httpx.HTTPError:
                    status, data, ctype = 502, b'{"error": {"code": "bad_gateway"}}', "application/json"
                forge = proxy.forge
                if forge is not None and status == 200:
                    fake = forge(self.path, data)
                    if fake is not None:
                        data = fake
                        proxy.forged += 1
                self.send_response(status)
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._relay("GET")

            def do_POST(self) -> None:
                self._relay("POST")

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
