"""Monitors against real logs: split views caught by gossip with evidence, watch rules once.

Everything real: `tlog serve` processes, `tlog-client monitor` processes talking HTTP to the
logs and to each other. The fork is two data dirs with the same key and origin that share
their first entries and then diverge, each watched by its own monitor.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from client import attest
from client.errors import VerificationError
from client.evidence import verify_evidence
from client.monitor import Follower, LogWatch, Reporter, Watch
from client.note import Ed25519Signer, sign_note
from client.policy import TrustPolicy
from tests.attestkit import envelope, make_signer, sha256_hex, statement
from tests.conftest import ORIGIN, SEED
from tests.serverproc import ServerProc
from tests.test_logclient import grow, random_entries
from tlog.storage import LogStore

LOG = Ed25519Signer(ORIGIN, SEED)


class MonitorProc:
    def __init__(self, d: Path, policy: TrustPolicy, url: str, **monitor: object) -> None:
        d.mkdir(parents=True, exist_ok=True)
        (d / "policy.json").write_bytes(orjson.dumps(dict(policy.to_dict(), url=url)))
        watch = monitor.pop("watch", {})
        lines = ["[monitor]", 'state_dir = "state"', 'peers_file = "peers.txt"',
                 'output = "reports.jsonl"', "poll_interval = 0.2", "gossip_interval = 0.3"]
        lines += [f"{k} = {json.dumps(v)}" for k, v in monitor.items()]
        lines += ["", "[[log]]", 'policy = "policy.json"']
        lines += [f"{k} = {json.dumps(v)}" for k, v in watch.items()]
        (d / "monitor.toml").write_text("\n".join(lines) + "\n")
        self.dir = d
        self.start()

    def start(self) -> None:
        log_file = self.dir / "monitor.log"
        before = len(re.findall(r"listening on ", log_file.read_text())) if log_file.exists() else 0
        self.out = log_file.open("a")
        self.proc = subprocess.Popen([sys.executable, "-m", "client.cli", "monitor", "--config",
                                      str(self.dir / "monitor.toml")], stdout=self.out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = re.findall(r'listening on (http://[^\s"]+)', log_file.read_text())
            if len(found) > before:  # this run's line, not an earlier run's
                self.url = found[-1]
                return
            assert self.proc.poll() is None, (self.dir / "monitor.log").read_text()
            time.sleep(0.05)
        raise RuntimeError("monitor did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)
        self.out.close()

    def reports(self) -> list[dict[str, object]]:
        path = self.dir / "reports.jsonl"
        if not path.exists():
            return []
        # Complete lines only: the monitor may be writing the next one as we read.
        return [orjson.loads(x) for x in path.read_bytes().split(b"\n")[:-1]]

    def evidence(self) -> list[Path]:
        return sorted((self.dir / "state" / "evidence").glob("*.json"))


def serve(path: Path, entries: list[bytes], raw: bool = True) -> tuple[LogStore, ServerProc]:
    from client.keyfile import write_key

    store = LogStore(path, create=True, map_size=1 << 30)
    store.initialize(ORIGIN, lambda t: sign_note(t, [LOG]))
    grow(store, LOG, entries)
    write_key(path / "log.key", LOG)
    return store, ServerProc(path, args=["--origin", ORIGIN, *(["--allow-raw"] if raw else [])]).start()


def post_raw(url: str, data: bytes) -> None:
    r = httpx.post(url + "/v1/entries", json={"raw": base64.b64encode(data).decode()}, timeout=30)
    assert r.status_code in (200, 201), r.text


def test_forked_log_is_caught_by_gossiping_monitors(tmp_path: Path) -> None:
    common = random_entries(300, 1)
    store_a, log_a = serve(tmp_path / "a", common + random_entries(40, 2))
    store_b, log_b = serve(tmp_path / "b", common + random_entries(60, 3))
    store_a.close()
    store_b.close()
    policy = TrustPolicy(ORIGIN, (LOG.verifier(),), allow_raw_log=True)
    mon_a = MonitorProc(tmp_path / "ma", policy, log_a.url)
    mon_b = MonitorProc(tmp_path / "mb", policy, log_b.url)
    stop = threading.Event()

    def grow_both() -> None:  # both forks keep growing, as real logs would
        i = 0
        while not stop.wait(0.1):
            post_raw(log_a.url, b"a-%d" % i)
            post_raw(log_b.url, b"b-%d" % i)
            i += 1

    writer = threading.Thread(target=grow_both, daemon=True)
    try:
        (mon_a.dir / "peers.txt").write_text(mon_b.url + "\n")
        (mon_b.dir / "peers.txt").write_text(mon_a.url + "\n")
        writer.start()
        deadline = time.monotonic() + 20  # "within a few polling intervals"
        while time.monotonic() < deadline and not (mon_a.evidence() and mon_b.evidence()):
            time.sleep(0.2)
        assert mon_a.evidence() and mon_b.evidence(), (mon_a.dir / "monitor.log").read_text()[-3000:]
        for m in (mon_a, mon_b):
            alerts = [r for r in m.reports() if r.get("alert") == "split-view"]
            assert len(alerts) == 1 and len(m.evidence()) == 1, m.reports()  # once per forked log
            health = httpx.get(m.url + "/healthz", timeout=10)
            assert health.status_code == 503 and health.json()["status"] == "split-view"
            metrics = httpx.get(m.url + "/metrics", timeout=10).text
            assert int(re.search(r"tlog_monitor_split_views_total (\d+)", metrics).group(1)) >= 1  # type: ignore[union-attr]
            for path in m.evidence():
                doc = json.loads(path.read_text())
                sv = verify_evidence(doc, [LOG.verifier()])  # offline, log key only
                assert sv.origin == ORIGIN and doc["detected_by"]
                cli = subprocess.run([sys.executable, "-m", "client.cli", "verify-evidence", str(path),
                                      "--vkey", LOG.verifier().vkey()], capture_output=True, text=True,
                                     timeout=60, check=False)
                assert cli.returncode == 0 and "PROVEN" in cli.stdout, cli.stdout + cli.stderr
                # Tampered evidence does not prove anything.
                bad = dict(doc, checkpoints=[doc["checkpoints"][1], doc["checkpoints"][1]])
                with pytest.raises(VerificationError):
                    verify_evidence(bad, [LOG.verifier()])
    finally:
        stop.set()
        writer.join(timeout=10)
        mon_a.stop()
        mon_b.stop()
        log_a.stop()
        log_b.stop()


def _dsse_leaves(n: int, watched_every: int) -> tuple[list[bytes], set[int], str]:
    watched, other = make_signer("ed25519"), make_signer("ed25519")
    leaves, hits = [], set()
    for i in range(n):
        s = watched if i % watched_every == 0 else other
        env = envelope(statement([sha256_hex(b"artifact %d" % i)]), [s])
        leaves.append(attest.check_dsse(env, [s.pem]).leaf)
        if s is watched:
            hits.add(i)
    return leaves, hits, watched.signer_id


@pytest.fixture(scope="module")
def watched_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProc, set[int], str]]:
    leaves, hits, signer_id = _dsse_leaves(6000, 7)
    store, srv = serve(tmp_path_factory.mktemp("w") / "data", leaves, raw=False)
    store.close()
    yield srv, hits, signer_id
    srv.stop()


WatchedLog = tuple[ServerProc, set[int], str]


def test_watch_rules_fire_once_across_a_crash_mid_stream(tmp_path: Path, watched_log: WatchedLog) -> None:
    srv, hits, signer_id = watched_log
    policy = TrustPolicy(ORIGIN, (LOG.verifier(),))
    mon = MonitorProc(tmp_path / "m", policy, srv.url, chunk=300, watch={"signers": [signer_id]})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not mon.reports():
            time.sleep(0.01)
        mon.stop(signal.SIGKILL)  # mid-stream: some reports out, the rest not
        first = len(mon.reports())
        mon.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(mon.reports()) < len(hits):
            time.sleep(0.1)
        mon.stop()
        mon.start()  # a clean restart reports nothing again
        time.sleep(1.5)
    finally:
        mon.stop()
    reports = mon.reports()
    indexes = [r["index"] for r in reports]
    assert sorted(indexes) == sorted(hits), (first, len(indexes), len(hits))  # each exactly once
    assert 0 < first < len(hits)  # the crash was mid-stream
    r = reports[0]
    assert r["matched"] == [f"signer={signer_id}"] and r["receipt"]["index"] == r["index"]  # type: ignore[index]


def test_exactly_once_in_the_crash_window(tmp_path: Path, watched_log: WatchedLog) -> None:
    """Reports written but the watermark and cursor not yet saved (a crash right there):
    the next poll replays the chunk and writes none of them again."""
    srv, hits, signer_id = watched_log
    policy = TrustPolicy(ORIGIN, (LOG.verifier(),), url=srv.url)
    out = tmp_path / "reports.jsonl"
    watch = LogWatch(policy, Watch(signers=frozenset({signer_id})))
    reporter = Reporter(str(out), "", tmp_path)
    f = Follower(watch, tmp_path, reporter, alert=lambda doc: None)
    import client.monitor as mod

    real_save, real_write = mod.save_tree, mod.write_atomically
    mod.save_tree = lambda *a: (_ for _ in ()).throw(OSError("crash"))  # type: ignore[assignment]
    mod.write_atomically = lambda *a: (_ for _ in ()).throw(OSError("crash"))  # type: ignore[assignment]
    try:
        with pytest.raises(OSError):
            f.poll()
    finally:
        mod.save_tree, mod.write_atomically = real_save, real_write
        f.close()
    written = len(out.read_bytes().splitlines())
    assert written > 0
    f2 = Follower(watch, tmp_path, Reporter(str(out), "", tmp_path), alert=lambda doc: None)
    try:
        f2.poll()
    finally:
        f2.close()
    indexes = [orjson.loads(x)["index"] for x in out.read_bytes().splitlines()]
    assert sorted(indexes) == sorted(hits) and len(set(indexes)) == len(indexes)
    digest = hashlib.sha256(ORIGIN.encode()).hexdigest()
    assert (tmp_path / f"{digest}.cursor").exists()


def test_webhook_gets_every_report_with_retries(tmp_path: Path, watched_log: WatchedLog) -> None:
    """A webhook that fails at first still receives every report, in order (at least once)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    srv, hits, signer_id = watched_log
    got: list[int] = []
    failures = {"left": 2}

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if failures["left"]:
                failures["left"] -= 1
                self.send_response(503)
            else:
                got.append(orjson.loads(body)["index"])
                self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    policy = TrustPolicy(ORIGIN, (LOG.verifier(),), url=srv.url)
    reporter = Reporter(str(tmp_path / "out.jsonl"), f"http://127.0.0.1:{hook.server_address[1]}", tmp_path)
    f = Follower(LogWatch(policy, Watch(signers=frozenset({signer_id}))), tmp_path, reporter,
                 alert=lambda doc: None)
    stop = threading.Event()
    sender = threading.Thread(target=reporter.deliver_forever, args=(stop,), daemon=True)
    sender.start()
    try:
        f.poll()
        deadline = time.monotonic() + 60
        while len(got) < len(hits) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        sender.join(timeout=30)
        hook.shutdown()
        hook.server_close()
        f.close()
    assert got == sorted(hits) and failures["left"] == 0


def test_honest_log_and_junk_peers_raise_no_alarm(tmp_path: Path) -> None:
    """Two monitors of one honest, growing log gossip with each other and with a peer that
    answers junk: no evidence, health stays ok, and gossip keeps running."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Junk(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"checkpoints": [1, null, "garbage\\n"]}' if "checkpoints" in self.path \
                else b'[{"origin": 5}, {"type": "tlog-split-view/v1", "origin": "%s"}, 7]' % ORIGIN.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    junk = ThreadingHTTPServer(("127.0.0.1", 0), Junk)
    threading.Thread(target=junk.serve_forever, daemon=True).start()
    store, log = serve(tmp_path / "log", random_entries(500, 1))
    store.close()
    policy = TrustPolicy(ORIGIN, (LOG.verifier(),), allow_raw_log=True)
    mons = [MonitorProc(tmp_path / f"m{i}", policy, log.url) for i in range(2)]
    try:
        junk_url = f"http://127.0.0.1:{junk.server_address[1]}"
        (mons[0].dir / "peers.txt").write_text(f"{mons[1].url}\n{junk_url}\n")
        (mons[1].dir / "peers.txt").write_text(f"{mons[0].url}\n{junk_url}\n")
        for i in range(30):
            post_raw(log.url, b"honest %d" % i)
            time.sleep(0.1)
        time.sleep(1.0)
        for m in mons:
            assert not m.evidence()
            health = httpx.get(m.url + "/healthz", timeout=10)
            assert health.status_code == 200 and health.json()["status"] == "ok", health.text
            metrics = httpx.get(m.url + "/metrics", timeout=10).text
            errors = int(re.search(r"tlog_monitor_gossip_errors_total (\d+)", metrics).group(1))  # type: ignore[union-attr]
            assert errors >= 1  # the junk peer is noticed, and gossip went on:
            time.sleep(1.0)
            later = httpx.get(m.url + "/metrics", timeout=10).text
            assert int(re.search(r"tlog_monitor_gossip_errors_total (\d+)", later).group(1)) > errors  # type: ignore[union-attr]
            assert "Traceback" not in (m.dir / "monitor.log").read_text()
    finally:
        for m in mons:
            m.stop()
        log.stop()
        junk.shutdown()
        junk.server_close()


def test_a_witness_read_endpoint_reveals_a_fork(tmp_path: Path) -> None:
    """A witness co-signed fork B; a monitor following fork A polls the witness's read
    endpoint (`/<sha256(origin)>/checkpoint`) and proves the split from A's tiles."""
    from client.keyfile import write_key
    from tests.serverproc import WitnessProc
    from tests.test_witness import body, write_config

    common = random_entries(200, 1)
    store_b = LogStore(tmp_path / "b", create=True, map_size=1 << 28)
    store_b.initialize(ORIGIN, lambda t: sign_note(t, [LOG]))
    grow(store_b, LOG, common + random_entries(20, 2))
    note_b = store_b.checkpoint()
    store_b.close()
    wdir = tmp_path / "w"
    wdir.mkdir()
    write_key(wdir / "witness.key", Ed25519Signer("witness.test/w1", b"\x42" * 32))
    cfg = write_config(wdir, [(ORIGIN, LOG.verifier().vkey())])
    witness = WitnessProc(wdir / "state", args=["--config", str(cfg)]).start()
    store_a, log_a = serve(tmp_path / "a", common + random_entries(90, 3))
    store_a.close()
    mon = None
    try:
        r = httpx.post(witness.url + "/add-checkpoint", content=body(0, [], note_b), timeout=10)
        assert r.status_code == 200, r.text
        policy = TrustPolicy(ORIGIN, (LOG.verifier(),), allow_raw_log=True)
        mon = MonitorProc(tmp_path / "m", policy, log_a.url, witnesses=[witness.url])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not mon.evidence():
            time.sleep(0.2)
        assert mon.evidence(), (mon.dir / "monitor.log").read_text()[-2000:]
        doc = json.loads(mon.evidence()[0].read_text())
        assert "witness" in doc["detected_by"]
        verify_evidence(doc, [LOG.verifier()])
    finally:
        if mon is not None:
            mon.stop()
        witness.stop()
        log_a.stop()


def test_monitor_environment_overrides_and_print_config(tmp_path: Path) -> None:
    """MONITOR_<KEY> variables override [monitor] (lists comma-separated); unknown or ill-typed
    ones are refused naming the variable; --print-config shows the effective settings."""
    import os
    import subprocess
    import sys
    import tomllib

    from client.monitor import MonitorConfigError, load_monitor_config

    vkey = "tlog.example/log+998165b9+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs"
    (tmp_path / "policy.toml").write_text(f'origin = "tlog.example/log"\nurl = "http://127.0.0.1:1"\n'
                                          f'log_keys = ["{vkey}"]\n')
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('[monitor]\npoll_interval = 2.0\n\n[[log]]\npolicy = "policy.toml"\n')
    env = {"MONITOR_POLL_INTERVAL": "0.5", "MONITOR_WITNESSES": "http://w1:1,http://w2:2",
           "MONITOR_LOG_FORMAT": "json", "MONITOR_STATE_DIR": str(tmp_path / "st")}
    c = load_monitor_config(cfg, env)
    assert (c.poll_interval, c.witnesses, c.log_format) == (0.5, ("http://w1:1", "http://w2:2"), "json")
    assert c.state_dir == tmp_path / "st"
    for bad, msg in [({"MONITOR_COLOUR": "red"}, "MONITOR_COLOUR"), ({"MONITOR_CHUNK": "x"}, "MONITOR_CHUNK"),
                     ({"MONITOR_LOG_FORMAT": "xml"}, "log_format"), ({"MONITOR_PEERS": "ftp://x"}, "http"),
                     ({"MONITOR_POLL_INTERVAL": "nan"}, "poll_interval"),
                     ({"MONITOR_GOSSIP_INTERVAL": "0"}, "gossip_interval"),
                     ({"MONITOR_CHUNK": "0"}, "chunk")]:
        with pytest.raises(MonitorConfigError, match=msg):
            load_monitor_config(cfg, bad)
    out = subprocess.run([sys.executable, "-m", "client.cli", "monitor", "--config", str(cfg),
                          "--print-config"], capture_output=True, text=True, timeout=60, check=False,
                         env=dict(os.environ, MONITOR_GOSSIP_INTERVAL="7",
                                  MONITOR_WEBHOOK="https://hooks.example/T0/B0/s3cret",
                                  MONITOR_PEERS="https://user:pw@peer.example"))
    assert out.returncode == 0, out.stderr
    printed = tomllib.loads(out.stdout)["monitor"]
    assert printed["gossip_interval"] == 7 and printed["poll_interval"] == 2.0
    assert "s3cret" not in out.stdout and "pw@" not in out.stdout  # credentials are not printed
    assert printed["peers"] == ["https://<redacted>@peer.example"]
