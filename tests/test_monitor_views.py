"""A monitor whose log changes view under it: one URL (a proxy) serves one real log, then
another. Forks are real: a `tlog backup` of a serving log, served and grown on its own.

- switched to a larger fork: the new tree's tiles prove the split (evidence, one alert,
  webhook, health), and no tile of the old view is mixed into the proof;
- switched to a rolled-back copy (nothing to prove it with): one `inconsistent` alert for
  that pair of trees, not one per poll, and repeats counted;
- a cache serving a forged tile pair for a while: the monitor refuses them, keeps none, and
  recovers by itself once honest tiles come back.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest

from client import merkle
from client.evidence import verify_evidence
from client.logclient import LogClient
from client.note import parse_vkey
from client.policy import TrustPolicy
from tests.conftest import ORIGIN
from tests.proxy import SwitchProxy
from tests.serverproc import ServerProc
from tests.test_monitor import MonitorProc

RAW = ["--allow-raw", "--origin", ORIGIN]


def _post(url: str, entries: list[bytes]) -> None:
    """Submit over HTTP, several at a time (so they share batches), on one client: building
    an httpx client per request costs more than the append."""
    with httpx.Client(base_url=url, timeout=30) as http:
        def one(data: bytes) -> None:
            r = http.post("/v1/entries", json={"raw": base64.b64encode(data).decode()})
            assert r.status_code == 201, r.text

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, entries))


def _size(url: str) -> int:
    return int(httpx.get(url + "/v1/log", timeout=10).json()["tree_size"])


def _fork(tmp: Path, common: int, b_extra: int) -> tuple[ServerProc, ServerProc]:
    """A serving log A; a backup of it taken at `common` entries served as B and grown with
    its own entries (or not at all: a rolled-back copy). A grows later, under the monitor."""
    a = ServerProc(tmp / "a", args=RAW).start()
    _post(a.url, [b"common %d" % i for i in range(common)])
    out = subprocess.run([sys.executable, "-m", "tlog.cli", "backup", "--data-dir", str(a.data_dir),
                          "--out", str(tmp / "b")], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    b = ServerProc(tmp / "b", args=RAW).start()
    _post(b.url, [b"view B %d" % i for i in range(b_extra)])
    assert _size(b.url) == common + b_extra
    return a, b


def _follow_growing(mon: MonitorProc, a: ServerProc, common: int, a_extra: int) -> None:
    """The monitor follows A while it grows: its consistency proofs read (and its client
    caches) the tiles of A's trees, the partial and full tiles a stale cache would mix in."""
    _wait("the monitor follows view A", lambda: _processed(mon) == common, mon)
    for lo in range(0, a_extra, max(1, a_extra // 3)):
        _post(a.url, [b"view A %d" % i for i in range(lo, min(a_extra, lo + max(1, a_extra // 3)))])
        size = common + min(a_extra, lo + max(1, a_extra // 3))
        _wait(f"the monitor follows view A to {size}", lambda s=size: _processed(mon) == s, mon)  # type: ignore[misc]


class Hook:
    """A webhook receiver that keeps every alert it is sent."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, object]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                doc = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if "alert" in doc:
                    hook.alerts.append(doc)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _wait(what: str, ok: Callable[[], bool], mon: MonitorProc, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        assert time.monotonic() < deadline, f"{what}:\n" + (mon.dir / "monitor.log").read_text()[-3000:]
        time.sleep(0.1)


def _processed(mon: MonitorProc) -> int:
    m = re.search(r"tlog_monitor_processed_entries\{[^}]*\} (\d+)", httpx.get(mon.url + "/metrics").text)
    return int(m.group(1)) if m else -1


def _metric(mon: MonitorProc, name: str) -> int:
    m = re.search(rf"^{name} (\d+)", httpx.get(mon.url + "/metrics", timeout=10).text, re.M)
    assert m, name
    return int(m.group(1))


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


@pytest.mark.parametrize("common,a_extra,b_extra", [(7, 3, 6), (200, 100, 220), (7, 3, 1)])
def test_a_switch_to_a_fork_is_proven(tmp_path: Path, hook: Hook, common: int, a_extra: int,
                                      b_extra: int) -> None:
    """Sizes 10 -> 13 (the old view's partial tile 0/000.p/10 must not be read as part of the
    new tree), 300 -> 420 (full tile 0/000 differs between the views), and 10 -> 8 (a smaller
    fork, proven from the tiles of the trusted tree the monitor verified before the switch,
    which the log no longer serves)."""
    a, b = _fork(tmp_path, common, b_extra)
    proxy = SwitchProxy(a.url)
    policy = TrustPolicy(ORIGIN, (parse_vkey(a.vkey),), allow_raw_log=True)
    mon = MonitorProc(tmp_path / "m", policy, proxy.url, webhook=hook.url)
    try:
        _follow_growing(mon, a, common, a_extra)
        proxy.target = b.url  # the same URL now serves the other tree
        _wait("evidence of the split", lambda: bool(mon.evidence()), mon)
        time.sleep(1.5)  # several more polls: still one alert
        alerts = [r for r in mon.reports() if r.get("alert")]
        assert [r["alert"] for r in alerts] == ["split-view"], alerts
        _wait("the webhook gets the alert", lambda: len(hook.alerts) == 1, mon)
        assert hook.alerts[0]["alert"] == "split-view"
        health = httpx.get(mon.url + "/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "split-view"
        assert _metric(mon, "tlog_monitor_split_views_total") == 1
        assert _metric(mon, "tlog_monitor_inconsistencies_total") == 0
        [path] = mon.evidence()
        doc = json.loads(path.read_text())
        sv = verify_evidence(doc, [parse_vkey(a.vkey)])
        assert (sv.smaller.size, sv.larger.size) == tuple(sorted((common + a_extra, common + b_extra)))
        larger = b if b_extra > a_extra else a
        with LogClient(larger.url, policy) as client:  # the larger tree, from its own tiles
            vb = client.checkpoint()
            assert vb.note == sv.larger.note
            assert sv.prefix_root == client.prefix_root(sv.smaller.size, vb) != sv.smaller.root
        cli = subprocess.run([sys.executable, "-m", "client.cli", "verify-evidence", str(path),
                              "--vkey", a.vkey], capture_output=True, text=True, timeout=60, check=False)
        assert cli.returncode == 0 and "PROVEN" in cli.stdout, cli.stdout + cli.stderr
    finally:
        mon.stop()
        proxy.close()
        a.stop()
        b.stop()


def test_a_stale_copy_is_no_alarm_and_an_unprovable_fork_is_alerted_once(tmp_path: Path, hook: Hook) -> None:
    """The URL switches to a copy of the log at an older size: a prefix of the trusted tree,
    so no alarm. Then (monitor restarted, so it holds no verified tiles of the trusted tree)
    to a rolled-back copy that took another entry: smaller, and without the trusted tree's
    tiles, no evidence can be built, so an `inconsistent` alert, once for that pair of trees,
    while every later poll only counts a repeat; a restart does not alert again."""
    a, b = _fork(tmp_path, 7, 0)
    proxy = SwitchProxy(a.url)
    policy = TrustPolicy(ORIGIN, (parse_vkey(a.vkey),), allow_raw_log=True)
    mon = MonitorProc(tmp_path / "m", policy, proxy.url, webhook=hook.url)
    try:
        _follow_growing(mon, a, 7, 3)
        proxy.target = b.url  # size 7, a prefix of the trusted 10
        _wait("a poll of the stale copy", lambda: _metric_labeled(mon, "tlog_monitor_tree_size") == 7, mon)
        time.sleep(0.6)
        assert not [r for r in mon.reports() if r.get("alert")]
        assert httpx.get(mon.url + "/healthz", timeout=10).json()["status"] == "ok"
        mon.stop()
        _post(b.url, [b"view B 0"])  # now a fork: 8 entries that are not a prefix of A's 10
        mon.start()
        _wait("the alert", lambda: any(r.get("alert") for r in mon.reports()), mon)
        repeats = _metric(mon, "tlog_monitor_inconsistency_repeats_total")
        _wait("repeats counted", lambda: _metric(mon, "tlog_monitor_inconsistency_repeats_total")
              >= repeats + 3, mon)
        alerts = [r for r in mon.reports() if r.get("alert")]
        assert len(alerts) == 1 and alerts[0]["alert"] == "inconsistent", alerts
        assert "rolled back" in str(alerts[0]["reason"]) and len(alerts[0]["checkpoints"]) == 2  # type: ignore[arg-type]
        assert _metric(mon, "tlog_monitor_inconsistencies_total") == 1
        health = httpx.get(mon.url + "/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "inconsistent"
        _wait("the webhook gets it once", lambda: len(hook.alerts) == 1, mon)
        mon.stop()
        mon.start()  # the alert was recorded: a restart neither forgets nor repeats it
        time.sleep(1.5)
        assert len([r for r in mon.reports() if r.get("alert")]) == 1
        assert httpx.get(mon.url + "/healthz", timeout=10).json()["status"] == "inconsistent"
        assert not mon.evidence()
        assert len(hook.alerts) == 1
    finally:
        mon.stop()
        proxy.close()
        a.stop()
        b.stop()


def _fold(tile: bytes) -> bytes:
    hashes = [tile[i : i + 32] for i in range(0, len(tile), 32)]
    while len(hashes) > 1:
        hashes = [merkle.node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def test_a_monitor_recovers_from_a_forged_tile_pair(tmp_path: Path) -> None:
    """A cache serves, for a while, a forged level-0 tile and a level-1 tile (at every width)
    that vouches for it, to a monitor that replays in chunks smaller than the log. Polls
    fail meanwhile (nothing forged is kept, no inconsistency is claimed), and the running
    monitor catches up by itself once the cache is honest."""
    srv = ServerProc(tmp_path / "log", args=RAW).start()
    _post(srv.url, [b"entry %d" % i for i in range(3000)])
    proxy = SwitchProxy(srv.url)
    fake0 = bytes(range(256)) * 32

    def forge(path: str, honest: bytes) -> bytes | None:
        if path == "/tile/0/000":
            return fake0
        if path.startswith("/tile/1/000"):
            return _fold(fake0) + honest[32:]
        return None

    proxy.forge = forge
    policy = TrustPolicy(ORIGIN, (parse_vkey(srv.vkey),), allow_raw_log=True)
    mon = MonitorProc(tmp_path / "m", policy, proxy.url, chunk=256)
    try:
        _wait("polls fail on the forged tiles", lambda: _metric_labeled(mon, "tlog_monitor_poll_errors_total")
              >= 3, mon)
        assert proxy.forged and _processed(mon) < 3000
        proxy.forge = None  # honest again
        _wait("caught up", lambda: _processed(mon) == 3000, mon)
        _post(srv.url, [b"later %d" % i for i in range(10)])
        _wait("follows on", lambda: _processed(mon) == 3010, mon)
        health = httpx.get(mon.url + "/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok", health.text
        assert not mon.evidence() and not [r for r in mon.reports() if r.get("alert")]
    finally:
        mon.stop()
        proxy.close()
        srv.stop()


def _metric_labeled(mon: MonitorProc, name: str) -> int:
    m = re.search(rf"^{name}\{{[^}}]*\}} (\d+)", httpx.get(mon.url + "/metrics", timeout=10).text, re.M)
    return int(m.group(1)) if m else 0
