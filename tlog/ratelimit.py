"""Per-client rate limits: a token bucket per client and class of request (pure, no I/O).

Three budgets, so one kind of traffic cannot starve another: `write` (submissions), `query`
(proofs, search, feeds, receipts, entries: work per request) and `tile` (checkpoint and
tiles: cheap and cacheable). A client is its submitter's name, or its address grouped as
`client.addresses.client_key` says (IPv4 /32 and IPv6 /64 by default). Buckets are
kept for the most recently seen clients only (`max_clients`), so an address sweep costs a
bounded amount of memory; a client forgotten that way starts again with a full bucket.

Limits hold per worker process: with N workers a client may get up to N times the rate.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

CLASSES = ("write", "query", "tile")
_WRITE_PATHS = frozenset({"/v1/entries", "/api/v2/log/entries"})
_QUERY_PREFIXES = ("/v1/proof/", "/v1/search", "/v1/feed", "/v1/entries/", "/v1/attestations/")


def request_class(method: str, path: str) -> str | None:
    """The budget a request draws on, or None for requests that are not limited (health,
    metrics, the explorer's pages, the log's description)."""
    if method == "POST":
        return "write" if path in _WRITE_PATHS else None
    if path == "/checkpoint" or path.startswith("/tile/"):
        return "tile"
    if path.startswith(_QUERY_PREFIXES):
        return "query"
    return None


@dataclass(frozen=True)
class Budget:
    rate: float  # requests per second, refilled continuously
    burst: int  # bucket size: requests a client may make at once


class RateLimiter:
    """Token buckets per (class, client)."""

    def __init__(self, budgets: dict[str, Budget], *, max_clients: int = 100_000) -> None:
        self.budgets = {c: b for c, b in budgets.items() if b.rate > 0}
        self.max_clients = max_clients
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def check(self, cls: str, client: str, now: float) -> float | None:
        """None if the request may go ahead (it takes a token), else the seconds until it may."""
        budget = self.budgets.get(cls)
        if budget is None:
            return None
        key = (cls, client)
        tokens, then = self._buckets.pop(key, (float(budget.burst), now))
        tokens = min(float(budget.burst), tokens + max(0.0, now - then) * budget.rate)
        if tokens >= 1.0:
            tokens -= 1.0
            wait = None
        else:
            wait = (1.0 - tokens) / budget.rate
        self._buckets[key] = (tokens, now)  # most recent last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
