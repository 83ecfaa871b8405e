"""Per-client rate limits: the token buckets and client keys (pure), then a real `tlog serve`
with small budgets: 429 `rate_limited` with Retry-After per budget and client, the other
budgets untouched, the metric, and tlog-client waiting as told until its entries land."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import pytest

from client.addresses import client_key
from client.logclient import LogClient
from client.note import parse_vkey
from client.policy import TrustPolicy
from tests.conftest import ORIGIN
from tests.serverproc import ServerProc
from tlog.ratelimit import Budget, RateLimiter, request_class, retry_after


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    limiter = RateLimiter({"write": Budget(rate=2.0, burst=3)})
    assert [limiter.check("write", "a", 100.0) for _ in range(3)] == [None, None, None]
    wait = limiter.check("write", "a", 100.0)
    assert wait == pytest.approx(0.5)
    assert limiter.check("write", "b", 100.0) is None  # another client has its own bucket
    assert limiter.check("query", "a", 100.0) is None  # a budget not set is unlimited
    assert limiter.check("write", "a", 100.5) is None  # refilled at 2/s
    assert limiter.check("write", "a", 100.5) is not None
    assert limiter.check("write", "a", 1000.0) is None  # never more than the burst stored
    assert [limiter.check("write", "a", 1000.0) for _ in range(3)][-1] is not None
    assert retry_after(0.01) == "1" and retry_after(1.2) == "2"


def test_forgotten_clients_bound_the_memory() -> None:
    limiter = RateLimiter({"tile": Budget(rate=1.0, burst=1)}, max_clients=100)
    for i in range(10_000):
        limiter.check("tile", f"10.0.{i // 256}.{i % 256}/32", 5.0)
    assert len(limiter._buckets) == 100


@pytest.mark.parametrize(("address", "key"), [
    ("192.0.2.7", "192.0.2.7/32"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # the same /64: one client
    ("::ffff:192.0.2.7", "192.0.2.7/32"),  # IPv4 mapped into IPv6 is the IPv4 client
    ("", ""),
])
def test_clients_are_addresses_under_their_prefix(address: str, key: str) -> None:
    assert client_key(address) == key
    assert client_key("192.0.2.7", ipv4_prefix=24) == "192.0.2.0/24"


@pytest.mark.parametrize(("method", "path", "budget"), [
    ("POST", "/v1/entries", "write"), ("POST", "/api/v2/log/entries", "write"),
    ("GET", "/checkpoint", "tile"), ("GET", "/tile/0/000", "tile"),
    ("GET", "/v1/proof/inclusion", "query"), ("GET", "/v1/search", "query"),
    ("GET", "/v1/entries/3/receipt", "query"), ("GET", "/v1/feed", "query"),
    ("GET", "/healthz", None), ("GET", "/metrics", None), ("GET", "/v1/log", None),
    ("GET", "/explorer/app.js", None), ("POST", "/v1/search", None),
])
def test_each_request_draws_on_one_budget(method: str, path: str, budget: str | None) -> None:
    assert request_class(method, path) == budget


def _raw(i: int) -> dict[str, str]:
    return {"raw": base64.b64encode(b"limited %d" % i).decode()}


def test_a_limited_log_answers_429_per_budget_and_clients_wait(tmp_path: Path) -> None:
    config = tmp_path / "log.toml"
    config.write_text(f'[log]\norigin = "{ORIGIN}"\nallow_raw = true\nrate_write = 2.0\n'
                      "rate_write_burst = 2\nrate_query = 1.0\nrate_query_burst = 3\n")
    srv = ServerProc(tmp_path / "data", args=["--config", str(config)]).start()
    try:
        with httpx.Client(timeout=30) as http:
            codes = [http.post(srv.url + "/v1/entries", json=_raw(i)).status_code for i in range(2)]
            refused = http.post(srv.url + "/v1/entries", json=_raw(2))
            assert codes == [201, 201] and refused.status_code == 429
            assert refused.json()["error"]["code"] == "rate_limited"
            assert refused.headers["retry-after"] == "1" and refused.headers["cache-control"] == "no-store"
            assert http.get(srv.url + "/checkpoint").text.split("\n")[1] == "2"  # nothing of it logged
            # Other budgets are untouched: tiles are unlimited here, queries have their own.
            assert all(http.get(srv.url + "/tile/0/000.p/2").status_code == 200 for _ in range(20))
            queries = [http.get(srv.url + "/v1/proof/inclusion?index=0").status_code for _ in range(4)]
            assert queries == [200, 200, 200, 429]
            assert http.get(srv.url + "/healthz").status_code == 200
            metrics = http.get(srv.url + "/metrics").text
            assert 'tlog_rate_limited_total{budget="write",client="anonymous"' in metrics
            assert 'tlog_rate_limited_total{budget="query",client="anonymous"' in metrics
        # tlog-client is told to wait, waits (with jitter), and every entry lands.
        policy = TrustPolicy(ORIGIN, (parse_vkey(srv.vkey),), url=srv.url, allow_raw_log=True)
        start = time.monotonic()
        with LogClient(srv.url, policy, retries=8) as client:
            indexes = [client.submit(_raw(i))["index"] for i in range(3, 8)]
        assert indexes == [2, 3, 4, 5, 6]
        assert time.monotonic() - start >= 1.0
        with httpx.Client(timeout=30) as http:
            assert http.get(srv.url + "/checkpoint").text.split("\n")[1] == "7"
    finally:
        srv.stop()


def test_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    """With `forwarded_allow_ips` naming the proxy (here 127.0.0.1), each forwarded client has
    its own budget; a malformed setting is refused at start-up."""
    from tlog.config import ConfigError, ServeConfig

    config = tmp_path / "log.toml"
    config.write_text(f'[log]\norigin = "{ORIGIN}"\nrate_tile = 0.001\nrate_tile_burst = 1\n'
                      'forwarded_allow_ips = "127.0.0.1"\n')
    srv = ServerProc(tmp_path / "data", args=["--config", str(config)]).start()
    try:
        with httpx.Client(timeout=10) as http:
            def get(client: str) -> int:
                return http.get(srv.url + "/checkpoint", headers={"X-Forwarded-For": client}).status_code

            assert [get("198.51.100.1"), get("198.51.100.2"), get("198.51.100.1")] == [200, 200, 429]
    finally:
        srv.stop()
    with pytest.raises(ConfigError, match="forwarded_allow_ips"):
        ServeConfig(forwarded_allow_ips="proxy.example; rm -rf")


def test_shared_buckets_are_one_budget_across_processes(tmp_path: Path) -> None:
    """Two mappings of one table (as two workers hold it) draw on the same bucket; a full
    probe window evicts the bucket updated longest ago; a table that is not ours is refused."""
    import os
    import subprocess
    import sys

    from tlog.sharedbuckets import PROBES, SharedBuckets, SharedBucketsError, create

    path = create(tmp_path / "buckets", slots=64)
    assert os.stat(path).st_mode & 0o777 == 0o600
    a, b = SharedBuckets(path), SharedBuckets(path)
    budget = Budget(rate=1.0, burst=3)
    assert [a.take("tile", "198.51.100.0/24", budget, 100.0) for _ in range(2)] == [None, None]
    assert b.take("tile", "198.51.100.0/24", budget, 100.0) is None
    assert b.take("tile", "198.51.100.0/24", budget, 100.0) == pytest.approx(1.0)
    assert a.take("tile", "198.51.100.0/24", budget, 101.0) is None  # refilled by the rate
    assert a.take("write", "198.51.100.0/24", budget, 101.0) is None  # another class, another bucket
    # Another process sees the same bucket (spent: it must wait).
    code = ("import sys; from pathlib import Path; from tlog.sharedbuckets import SharedBuckets; "
            "from tlog.ratelimit import Budget; "
            "w = SharedBuckets(Path(sys.argv[1])).take('tile', '198.51.100.0/24', Budget(1.0, 3), 101.0); "
            "print(w)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         timeout=60, check=True, cwd=Path(__file__).resolve().parent.parent)
    assert float(out.stdout) == pytest.approx(1.0)
    # More clients than slots: each still gets a bucket (the oldest are forgotten).
    for i in range(64 * PROBES):
        assert a.take("tile", f"client-{i}", budget, 200.0 + i) is None
    a.close()
    b.close()
    os.chmod(path, 0o644)
    with pytest.raises(SharedBucketsError, match="open to others"):
        SharedBuckets(path)
    (tmp_path / "junk").write_bytes(b"x" * 100)
    os.chmod(tmp_path / "junk", 0o600)
    with pytest.raises(SharedBucketsError, match="not a bucket table"):
        SharedBuckets(tmp_path / "junk")


def test_two_workers_hold_one_budget_per_client(tmp_path: Path) -> None:
    """`tlog serve --workers 2`: a client opening a new connection per request (so its
    requests land on both workers) gets the burst once, not once per worker."""
    config = tmp_path / "log.toml"
    config.write_text(f'[log]\norigin = "{ORIGIN}"\nrate_tile = 0.001\nrate_tile_burst = 10\n')
    srv = ServerProc(tmp_path / "data", args=["--config", str(config)], workers=2).start()
    try:
        codes = []
        for _ in range(40):
            with httpx.Client(timeout=10) as http:  # a fresh connection each time
                codes.append(http.get(srv.url + "/checkpoint").status_code)
        assert codes.count(200) == 10 and codes.count(429) == 30, codes
    finally:
        srv.stop()
