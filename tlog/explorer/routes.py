"""The explorer's routes on the log: its pages at /explorer/, and the read endpoints they
use besides the rest of the API (activity, entry times, Atom feeds, the client policy).
Every one is in docs/api.md and the OpenAPI document."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from client.errors import MalformedError
from client.policy import load_policy
from tlog import activity, feed
from tlog.app import JSON, NO_CACHE, bounded_param, search_term
from tlog.errors import not_found
from tlog.explorer import CONFIG, STATIC, config_doc, content_security_policy

if TYPE_CHECKING:
    from tlog.app import LogApp

POLICY_FILE = "client-policy.toml"
FEED_LIMIT = 200
log = logging.getLogger("tlog.explorer")


class _Pages(StaticFiles):
    """The static pages, with headers that keep them to this origin."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__(directory=STATIC, html=True)
        self._headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      *((k.lower().encode(), v.encode()) for k, v in self._headers.items())]
            await send(message)
        await super().__call__(scope, receive, with_headers)


class ExplorerRoutes:
    def __init__(self, app: LogApp) -> None:
        self.app = app
        self._policy: bytes | None = None
        self._url = ""  # where clients reach the log, as the client policy says
        self._config = config_doc()
        self._headers = {
            "Content-Security-Policy": content_security_policy(self._config),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": NO_CACHE,
        }

    def start(self, data_dir: Path) -> None:
        """Read the client policy `tlog serve` wrote (absent: `/v1/log/policy` is 404)."""
        path = data_dir / POLICY_FILE
        if path.exists():
            try:
                policy = load_policy(path)
                self._policy, self._url = orjson.dumps(policy.to_dict()), policy.url or ""
            except MalformedError as exc:
                log.error("the client policy in %s does not load: %s", path, exc)

    def routes(self) -> list[Route | Mount]:
        return [
            Route("/", self.to_explorer, methods=["GET"]),
            Route("/explorer", self.to_explorer, methods=["GET"]),
            Route(f"/explorer/{CONFIG}", self.config, methods=["GET"]),
            Mount("/explorer", _Pages(self._headers)),
            Route("/v1/log/policy", self.policy, methods=["GET"]),
            Route("/v1/log/activity", self.activity, methods=["GET"]),
            Route("/v1/entries/{index}/time", self.entry_time, methods=["GET"]),
            Route("/v1/feed", self.feed, methods=["GET"]),
        ]

    async def to_explorer(self, request: Request) -> Response:
        # Relative, so it holds behind any URL prefix: "/" and "/explorer" both reach "/explorer/".
        return RedirectResponse("explorer/", status_code=307)

    async def config(self, _request: Request) -> Response:
        return Response(orjson.dumps(self._config), media_type=JSON, headers=self._headers)

    async def policy(self, _request: Request) -> Response:
        """GET /v1/log/policy: the tlog-client trust policy of this log, as JSON."""
        if self._policy is None:
            raise not_found("this log has no client policy file")
        return Response(self._policy, media_type=JSON, headers={"Cache-Control": NO_CACHE})

    async def activity(self, request: Request) -> Response:
        """GET /v1/log/activity?minutes=M: entries appended per minute, newest minute last."""
        minutes = bounded_param(request, "minutes", 60, activity.MAX_MINUTES)
        now = time.time()
        since = int(now) // 60 * 60 - 60 * (minutes - 1)
        records, size = await self.app.backend.minutes_since(since)
        return Response(orjson.dumps({"now": int(now), "tree_size": size,
                                      "minutes": activity.per_minute(records, size, now, minutes)}),
                        media_type=JSON, headers={"Cache-Control": "no-store"})

    async def entry_time(self, request: Request) -> Response:
        """GET /v1/entries/<index>/time: the minute the entry was appended in."""
        index = self.app.path_index(request)
        if index >= await self.app.backend.tree_size():
            raise not_found(f"no entry at index {index}")
        (minute,) = await self.app.backend.logged_minutes([index])
        cache = "public, max-age=86400" if minute is not None else NO_CACHE
        return Response(orjson.dumps({"index": index, "logged_minute": minute}), media_type=JSON,
                        headers={"Cache-Control": cache})

    async def feed(self, request: Request) -> Response:
        """GET /v1/feed?subject=|signer=|predicate_type=: an Atom feed, newest entries first."""
        field, term = search_term(request)
        limit = bounded_param(request, "limit", 50, FEED_LIMIT)
        hits, _complete = await self.app.backend.find(field, term, None, limit, True)
        minutes = await self.app.backend.logged_minutes([i for i, _ in hits])
        # Never the request's Host header: a cached feed would carry whatever host a client sent.
        base = self.app.config.public_url or self._url or str(request.base_url)
        body = feed.atom_feed(origin=self.app.origin, base=base if base.endswith("/") else base + "/",
                              field=field, term=term, now=time.time(),
                              hits=[(i, leaf, m) for (i, leaf), m in zip(hits, minutes, strict=True)])
        return Response(body, media_type=feed.ATOM_TYPE, headers={"Cache-Control": "public, max-age=30"})
