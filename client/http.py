"""HTTP plumbing shared by the processes: answers read within bounds, listening sockets.

Reading answers within bounds: a size cap and a total deadline.

httpx's timeout bounds each read, not the whole answer: a peer that trickles one byte per
read, or sends a flood, could otherwise hold a caller (a client, the sequencer's witness
round, a monitor's gossip, the log's start-up check) for days or fill its memory. Every
answer read from another party goes through `read_bounded`.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx

from client.errors import MalformedError
from client.tls import ContextFactory, ServerTLS, reload_on_sighup


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


def listen(host: str, port: int, backlog: int) -> tuple[socket.socket, str]:
    """A bound, listening TCP socket for a server process (port 0: any free port) and its
    base URL; raises OSError if the address cannot be bound."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    url = f"http://[{bound_host}]:{bound_port}" if ":" in bound_host else f"http://{bound_host}:{bound_port}"
    return sock, url


def serve(app: Any, sock: socket.socket, tls: ServerTLS | None = None) -> None:
    """Run an ASGI app with uvicorn on a bound socket until it is stopped (SIGTERM/SIGINT):
    the settings the witness and the TSA share (no access log of uvicorn's own, bounded
    connections, keep-alive), over TLS if `tls` names the files."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", log_config=None,
                                           access_log=False, timeout_keep_alive=30,
                                           limit_concurrency=4096, loop="uvloop", **uvicorn_settings(tls)))
    if tls is None:
        reload_on_sighup(None)  # with TLS, the context factory installs the reload
    server.run(sockets=[sock])


def uvicorn_settings(tls: ServerTLS | None, forwarded_allow_ips: str = "") -> dict[str, Any]:
    """uvicorn.Config settings our servers share: the guarded protocol (header and body
    timeouts, header size, per-client cap), over plain HTTP or HTTPS from `tls`'s files
    (reloaded on SIGHUP), the client's certificate name then in each request's scope.

    No WebSocket upgrades (nothing here speaks WebSocket, and an upgraded connection leaves
    the guarded protocol). X-Forwarded-For is believed only from `forwarded_allow_ips`:
    uvicorn's default trusts it from 127.0.0.1, so anything on the host (a TCP-mode TLS
    terminator, an SSH tunnel) could name any client address and dodge per-client limits."""
    from client.guarded_http import GuardedHttpToolsProtocol

    settings: dict[str, Any] = {"http": GuardedHttpToolsProtocol, "ws": "none",
                                "proxy_headers": bool(forwarded_allow_ips),
                                "forwarded_allow_ips": forwarded_allow_ips or None}
    if tls is not None:
        settings["ssl_context_factory"] = ContextFactory(tls)
    return settings


def raise_fd_limit() -> int:
    """Lift this process's soft limit on open files to its hard limit (children inherit it):
    a server held at a soft limit of 1024 closes every connection past it, well before its
    `max_connections`. Returns the soft limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (ValueError, OSError):
            pass
    return soft


def redact_url(url: str) -> str:
    """The URL without credentials (`https://user:token@host/` -> `https://<redacted>@host/`),
    for printing configurations and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    return f"{scheme}://<redacted>@{rest.split('@', 1)[1]}"
