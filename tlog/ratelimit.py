"""Per-client rate limits: a token bucket per client and class of request (pure, no I/O).

Three budgets, so one kind of traffic cannot starve another: `write` (submissions), `query`
(proofs, search, feeds, receipts, entries: work per request) and `tile` (checkpoint and
tiles: cheap and cacheable). A client is its submitter's name, or its address grouped as
`client.addresses.client_key` says (IPv4 /32 and IPv6 /64 by default). Buckets are
kept for the most recently seen clients only (`max_clients`), so an address sweep costs a
bounded amount of memory; a client forgotten that way starts again with a full bucket.

With several workers, `tlog serve` keeps the buckets in a table the workers share
(`tlog.sharedbuckets`), so a limit holds per log, not per worker.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

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


def config_budgets(config: object) -> dict[str, Budget]:
    """The budgets a ServeConfig sets (`rate_<class>`, `rate_<class>_burst`), the unlimited
    ones left out."""
    budgets = {c: Budget(getattr(config, f"rate_{c}"), getattr(config, f"rate_{c}_burst")) for c in CLASSES}
    return {c: b for c, b in budgets.items() if b.rate > 0}


def take_token(tokens: float, then: float, budget: Budget, now: float) -> tuple[float, float | None]:
    """One request against a bucket that held `tokens` at `then`: (tokens left, None) if it
    may go ahead, else (tokens, seconds until it may)."""
    tokens = min(float(budget.burst), tokens + max(0.0, now - then) * budget.rate)
    if tokens >= 1.0:
        return tokens - 1.0, None
    return tokens, (1.0 - tokens) / budget.rate


class BucketStore(Protocol):
    """Buckets kept outside this process (`tlog.sharedbuckets`: shared by the workers)."""

    def take(self, cls: str, client: str, budget: Budget, now: float) -> float | None: ...


class RateLimiter:
    """Token buckets per (class, client): in this process, or in `store`."""

    def __init__(self, budgets: dict[str, Budget], *, max_clients: int = 100_000,
                 store: BucketStore | None = None) -> None:
        self.budgets = {c: b for c, b in budgets.items() if b.rate > 0}
        self.max_clients = max_clients
        self.store = store
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def check(self, cls: str, client: str, now: float) -> float | None:
        """None if the request may go ahead (it takes a token), else the seconds until it may."""
        budget = self.budgets.get(cls)
        if budget is None:
            return None
        if self.store is not None:
            return self.store.take(cls, client, budget, now)
        key = (cls, client)
        tokens, then = self._buckets.pop(key, (float(budget.burst), now))
        tokens, wait = take_token(tokens, then, budget, now)
        self._buckets[key] = (tokens, now)  # most recent last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))
