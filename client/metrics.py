"""A small Prometheus text-format registry (counters, gauges, histograms) and the ASGI
middleware every tlog process puts in front of its app.

Kept in-process and dependency-free; with several workers each process exposes its own
series (labelled by `worker`), while tree-wide figures are read from LMDB at scrape time.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import os
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from client.logs import request_id

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    items = [f'{k}="{_escape(v)}"' for k, v in pairs]
    return "{" + ",".join(items) + "}" if items else ""


def _num(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))  # shortest exact form: never rounds a timestamp or a byte count


def _head(name: str, help_text: str, kind: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


class Counter:
    def __init__(self, name: str, help_text: str, labelnames: Labels = ()) -> None:
        self.name, self.help, self.labelnames = name, help_text, labelnames
        self._values: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, *labels: str) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self, extra: tuple[tuple[str, str], ...]) -> list[str]:
        out = _head(self.name, self.help, "counter")
        with self._lock:
            items = sorted(self._values.items())
        if not items and not self.labelnames:
            items = [((), 0.0)]  # an unlabelled counter exists from the start
        for labels, value in items:
            pairs = (*zip(self.labelnames, labels, strict=True), *extra)
            out.append(f"{self.name}{_labels(pairs)} {_num(value)}")
        return out


class Gauge:
    """A value read at scrape time; `read` returns a number, or {label values: number}.
    `kind="counter"` exposes a count kept elsewhere (it must only grow)."""

    def __init__(self, name: str, help_text: str, read: Callable[[], float | dict[Labels, float]],
                 labelnames: Labels = (), kind: str = "gauge") -> None:
        self.name, self.help, self.read, self.labelnames = name, help_text, read, labelnames
        self.kind = kind

    def render(self, extra: tuple[tuple[str, str], ...]) -> list[str]:
        out = _head(self.name, self.help, self.kind)
        value = self.read()
        items = sorted(value.items()) if isinstance(value, dict) else [((), value)]
        for labels, v in items:
            pairs = (*zip(self.labelnames, labels, strict=True), *extra)
            out.append(f"{self.name}{_labels(pairs)} {_num(v)}")
        return out


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...],
                 labelnames: Labels = ()) -> None:
        self.name, self.help, self.buckets, self.labelnames = name, help_text, buckets, labelnames
        self._series: dict[Labels, tuple[list[int], list[float]]] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            counts, total = self._series.setdefault(labels, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[bisect.bisect_left(self.buckets, value)] += 1
            total[0] += value

    def count(self, *labels: str) -> int:
        series = self._series.get(labels)
        return sum(series[0]) if series else 0

    def render(self, extra: tuple[tuple[str, str], ...]) -> list[str]:
        out = _head(self.name, self.help, "histogram")
        with self._lock:
            items = sorted((k, (list(c), s[0])) for k, (c, s) in self._series.items())
        if not items and not self.labelnames:
            items = [((), ([0] * (len(self.buckets) + 1), 0.0))]
        for labels, (counts, total_sum) in items:
            base = (*zip(self.labelnames, labels, strict=True), *extra)
            total = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                total += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                out.append(f"{self.name}_bucket{_labels((*base, ('le', le)))} {total}")
            out.append(f"{self.name}_sum{_labels(base)} {_num(total_sum)}")
            out.append(f"{self.name}_count{_labels(base)} {total}")
        return out


M = TypeVar("M", "Counter", "Gauge", "Histogram")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Registry:
    def __init__(self, worker_label: bool = True) -> None:
        self.metrics: list[Counter | Gauge | Histogram] = []
        self.worker_label = worker_label

    def add(self, metric: M) -> M:
        self.metrics.append(metric)
        return metric

    def render(self) -> bytes:
        extra = (("worker", str(os.getpid())),) if self.worker_label else ()
        lines: list[str] = []
        for m in self.metrics:
            lines.extend(m.render(extra))
        return ("\n".join(lines) + "\n").encode()


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")
access_log = logging.getLogger("tlog.access")
error_log = logging.getLogger("tlog.http")
# Fresh request ids: a random per-process prefix and a counter (unique without a syscall).
_ID_PREFIX = secrets.token_hex(4)
_ids = itertools.count(secrets.randbelow(1 << 32))


class HTTPInstrument:
    """ASGI middleware for every tlog HTTP server: a request id (the client's valid
    `X-Request-Id`, else a fresh one) in the answer and in every log line written while
    handling the request, responses counted by route template and status, latency by route,
    and an access log line (when enabled). A handler that raises is logged here, with the
    request id, and answered with `on_error()` (an ASGI response): inside this middleware, so
    that answer carries the id too; no stack trace reaches the client."""

    def __init__(self, app: Any, registry: Registry, prefix: str, access: bool = False,
                 on_error: Callable[[], Any] | None = None) -> None:
        self.app, self.access, self.on_error = app, access, on_error
        self.responses = registry.add(Counter(
            f"{prefix}_http_responses_total", "HTTP responses by route and status", ("route", "code")))
        self.latency = registry.add(Histogram(
            f"{prefix}_http_request_seconds", "HTTP request latency by route", LATENCY_BUCKETS,
            ("route",)))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [500]
        started = [False]
        rid = ""
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                rid = value.decode("latin-1")
                break
        if not _REQUEST_ID.match(rid):
            rid = f"{_ID_PREFIX}{next(_ids) & 0xFFFFFFFF:08x}"
        header = (b"x-request-id", rid.encode())

        async def send_wrapper(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0], started[0] = message["status"], True
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = request_id.set(rid)
        try:
            try:
                await self.app(scope, receive, send_wrapper)
            except Exception as exc:
                error_log.error("internal error: %s", type(exc).__name__, exc_info=exc)
                if started[0] or self.on_error is None:
                    return  # the answer had started: the server closes the connection
                await self.on_error()(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "other")
            elapsed = time.perf_counter() - t0
            self.responses.inc(1, route, str(status[0]))
            self.latency.observe(elapsed, route)
            if self.access:
                method = scope.get("method", "")
                path = urllib.parse.quote(scope.get("path", ""), safe="/:@!$&'()*+,;=-._~")
                client = (scope.get("client") or ("", 0))[0]
                fields = {"method": method, "path": path, "route": route, "status": status[0],
                          "duration_ms": round(elapsed * 1000, 3), "client": client}
                if "tlog.submitter" in scope:  # the name of the token the request proved
                    fields["submitter"] = scope["tlog.submitter"]
                access_log.info("%s %s %d", method, path, status[0], extra={"http": fields})
            request_id.reset(token)
