"""Logs, request ids and metrics that need no deployment: JSON lines from a real `tlog serve`
and `witness serve`, the fsck verdict in /metrics, metric rendering edge cases."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from client.metrics import Counter, Gauge, Histogram, Registry
from tests.serverproc import ServerProc


def _json_lines(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(ln) for ln in path.read_text().splitlines() if ln.startswith("{")]


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_json_access_log_carries_the_request_id(tmp_path: Path) -> None:
    cfg = tmp_path / "log.toml"
    cfg.write_text('[log]\nlog_format = "json"\naccess_log = true\nallow_raw = true\n')
    srv = ServerProc(tmp_path / "data", args=["--config", str(cfg)], workers=2).start()
    try:
        with httpx.Client(timeout=10) as c:
            r = c.post(srv.url + "/v1/entries", json={"raw": "aGVsbG8="},
                       headers={"X-Request-Id": "ci-run-42.a"})
            assert r.status_code in (200, 201) and r.headers["x-request-id"] == "ci-run-42.a"
            # A hostile id (too long, odd characters) is replaced, not echoed or logged.
            bad = c.get(srv.url + "/nope", headers={"X-Request-Id": 'x"\\' + "y" * 100})
            assert bad.status_code == 404
            fresh = bad.headers["x-request-id"]
            assert len(fresh) == 16 and fresh.isalnum()
            two = {c.get(srv.url + "/checkpoint").headers["x-request-id"] for _ in range(2)}
            assert len(two) == 2  # a fresh id per request
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = _json_lines(srv.log_path)  # type: ignore[arg-type]
            if {"ci-run-42.a", fresh} <= {ln.get("request_id") for ln in lines}:
                break
            time.sleep(0.1)
        by_id = {ln.get("request_id"): ln for ln in lines}
        post = by_id["ci-run-42.a"]
        assert post["logger"] == "tlog.access" and post["level"] == "info"
        assert post["http"]["method"] == "POST" and post["http"]["route"] == "/v1/entries"  # type: ignore[index]
        assert post["http"]["status"] in (200, 201) and post["http"]["duration_ms"] >= 0  # type: ignore[index]
        assert by_id[fresh]["http"]["status"] == 404  # type: ignore[index]
        assert any(str(ln["message"]).startswith("tlog: listening on") for ln in lines)
        # Every line of the server's output is JSON (no stray text for a log shipper).
        for raw in srv.log_path.read_text().splitlines():  # type: ignore[union-attr]
            assert raw.startswith("{"), raw
    finally:
        srv.stop()


def test_fsck_verdict_is_exported(tmp_path: Path) -> None:
    """`tlog fsck` on the serving data dir leaves its verdict; /metrics reports it."""
    srv = ServerProc(tmp_path / "data", args=["--allow-raw"]).start()
    try:
        for i in range(5):
            httpx.post(srv.url + "/v1/entries", json={"raw": f"ZW50cnk{i}"}, timeout=10)
        before = httpx.get(srv.url + "/metrics", timeout=10).text
        assert _metric(before, "tlog_fsck_ok") is None  # never ran: no sample, no false alarm
        out = subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", "--data-dir", str(srv.data_dir)],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stdout + out.stderr
        after = httpx.get(srv.url + "/metrics", timeout=10).text
        assert _metric(after, "tlog_fsck_ok") == 1
        assert _metric(after, "tlog_fsck_tree_size") == 5
        assert abs(_metric(after, "tlog_fsck_last_run_timestamp_seconds") - time.time()) < 60  # type: ignore[operator]
        age = _metric(after, "tlog_checkpoint_age_seconds")
        assert age is not None and 0 <= age < 60
        assert _metric(after, "tlog_fsync_seconds_count") == _metric(after, "tlog_integrate_seconds_count")
    finally:
        srv.stop()
    # A damaged data dir: fsck fails and says so in the status file.
    status = srv.data_dir / "fsck.json"
    other = "other.example/log+00000000+AXWbYsoSgyhq9ttZSSK5RsuH0Gt4H/fTTH3ZXCyGVCSj"
    out = subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", "--data-dir", str(srv.data_dir),
                          "--vkey", other], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 1
    assert orjson.loads(status.read_bytes())["ok"] is False


def test_metric_rendering() -> None:
    reg = Registry(worker_label=False)
    c = reg.add(Counter("x_total", "help", ("origin",)))
    c.inc(1, 'a"b\\c\nd')
    h = reg.add(Histogram("h_seconds", "help", (0.1, 1), ("w",)))
    h.observe(0.5, "w1")
    h.observe(5, "w1")
    reg.add(Gauge("g", "help", lambda: math.nan))
    reg.add(Gauge("empty", "help", dict))
    reg.add(Counter("plain_total", "help"))
    text = reg.render().decode()
    assert 'x_total{origin="a\\"b\\\\c\\nd"} 1' in text
    assert 'h_seconds_bucket{w="w1",le="0.1"} 0' in text and 'h_seconds_bucket{w="w1",le="1"} 1' in text
    assert 'h_seconds_bucket{w="w1",le="+Inf"} 2' in text and 'h_seconds_count{w="w1"} 2' in text
    assert "g NaN" in text and "\nempty " not in text
    assert "plain_total 0" in text  # an unlabelled counter exists from the start


def test_a_crashing_handler_answers_500_with_the_request_id() -> None:
    """The 500 comes from inside the middleware: it carries X-Request-Id, its log line the same
    id, and no stack trace reaches the client."""
    import io
    import logging

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from client.logs import JSONFormatter
    from client.metrics import HTTPInstrument

    async def boom(_request: object) -> None:
        raise RuntimeError("secret detail")

    reg = Registry(worker_label=False)
    app = Starlette(routes=[Route("/boom", boom)])
    app.add_middleware(HTTPInstrument, registry=reg, prefix="t",
                       on_error=lambda: JSONResponse({"error": {"code": "internal"}}, 500))
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JSONFormatter("test"))
    logging.getLogger("tlog.http").addHandler(handler)
    try:
        async def get() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                return await c.get("/boom", headers={"X-Request-Id": "req-500"})

        r = asyncio.run(get())
    finally:
        logging.getLogger("tlog.http").removeHandler(handler)
    assert r.status_code == 500 and r.headers["x-request-id"] == "req-500"
    assert r.json() == {"error": {"code": "internal"}} and "secret" not in r.text
    line = orjson.loads(out.getvalue().splitlines()[0])
    assert line["request_id"] == "req-500" and "RuntimeError" in line["message"]
    assert 't_http_responses_total{route="/boom",code="500"} 1' in reg.render().decode()


def test_entries_fast_path_answers_as_starlette_routes_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """POST /v1/entries skips Starlette's routing and exception handlers: the storage errors of
    the scaled-out shape and a crash still answer as on a Starlette route (JSON, never cached,
    with the request id), and the metrics still name the route."""
    import tlog.dist.frontend
    from tlog.app import create_app
    from tlog.config import ServeConfig
    from tlog.dist.db import DbError

    class Backend:
        fail: Exception | None = None

        async def submit(self, _data: bytes, _blob: bytes | None) -> None:
            raise self.fail  # type: ignore[misc]

        async def tree_size(self) -> int:
            raise self.fail  # type: ignore[misc]

        def problem(self) -> None:
            return None

    backend = Backend()
    monkeypatch.setattr(tlog.dist.frontend, "DistBackend", lambda _config: backend)
    app = create_app(ServeConfig(storage="s3", s3_endpoint="http://s3.invalid", s3_bucket="b",
                                 postgres_dsn="postgresql://db.invalid", allow_raw=True), "o+1+AQ==")

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return [await c.post("/v1/entries", json={"raw": "aGVsbG8="}, headers={"X-Request-Id": "r1"}),
                    await c.get("/healthz", headers={"X-Request-Id": "r2"})]

    for fail, status, code in ((DbError("down"), 503, "unavailable"), (RuntimeError("x"), 500, "internal")):
        backend.fail = fail
        for r, rid in zip(asyncio.run(both()), ("r1", "r2"), strict=True):
            assert r.status_code == status and r.json()["error"]["code"] == code, r.text
            assert r.headers["cache-control"] == "no-store" and r.headers["x-request-id"] == rid
    metrics = app.state.log.registry.render().decode()
    assert 'tlog_http_responses_total{route="/v1/entries",code="503"' in metrics
    assert 'tlog_http_responses_total{route="/v1/entries",code="500"' in metrics


def test_text_logs_cannot_be_forged() -> None:
    """Control characters in a message (a client's path, a peer's answer) are escaped: one
    event is one line. Tracebacks keep their lines."""
    import io
    import logging

    from client.logs import _TextWithRequest

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(_TextWithRequest("%(levelname)s %(message)s"))
    lg = logging.getLogger("test.forge")
    lg.addHandler(handler)
    lg.propagate = False
    try:
        lg.warning("GET %s", "/x\n2030-01-01 ERROR tlog: FORGED\r\x1b[2J")
        try:
            raise ValueError("v")
        except ValueError:
            lg.exception("with a traceback")
    finally:
        lg.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0] == "WARNING GET /x\\x0a2030-01-01 ERROR tlog: FORGED\\x0d\\x1b[2J"
    assert lines[1] == "ERROR with a traceback" and lines[2].startswith("Traceback")


def test_kubernetes_service_variables_are_not_settings() -> None:
    from tlog.config import ConfigError, load_config

    links = {"TLOG_PORT": "tcp://10.0.0.5:8080", "TLOG_PORT_8080_TCP": "tcp://10.0.0.5:8080",
             "TLOG_PORT_8080_TCP_PROTO": "TCP", "TLOG_PORT_8080_TCP_PORT": "8080",
             "TLOG_PORT_8080_TCP_ADDR": "10.0.0.5", "TLOG_SERVICE_HOST": "10.0.0.5",
             "TLOG_SERVICE_PORT": "8080", "TLOG_SERVICE_PORT_HTTP": "8080",
             "TLOG_MONITOR_SERVICE_HOST": "fd00::6", "TLOG_MONITOR_PORT": "tcp://[fd00::6]:9090"}
    assert load_config(None, {}, {**links, "TLOG_WORKERS": "2"}).workers == 2
    for bad in ({"TLOG_LISTEN_PORT": "x"}, {"TLOG_PORT": "8080; rm"}, {"TLOG_WORKER": "2"}):
        try:
            load_config(None, {}, bad)
        except ConfigError as exc:
            assert next(iter(bad)) in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")


def test_fsck_of_a_dir_without_a_log_records_nothing(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 1 and "holds no log yet" in out.stderr
    assert not (tmp_path / "fsck.json").exists()
