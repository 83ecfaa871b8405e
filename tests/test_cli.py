"""`tlog` command line and process lifecycle: start, stop, refusals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from client.errors import MalformedError
from client.verify import verify_receipt_doc
from tests.conftest import ORIGIN
from tests.serverproc import ServerProc
from tlog.config import ConfigError, ServeConfig, load_config


def _tlog(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlog.cli", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


def _sequencers_on(data_dir: Path) -> list[int]:
    out = subprocess.run(["pgrep", "-f", f"tlog.sequencer.*{data_dir.resolve()}"],
                         capture_output=True, text=True, timeout=10, check=False).stdout
    return [int(p) for p in out.split()]


def _wait_gone(data_dir: Path, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _sequencers_on(data_dir):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_to_main_process_stops_everything(tmp_path: Path, workers: int) -> None:
    data = tmp_path / "data"
    srv = ServerProc(data, args=["--allow-raw", "--origin", ORIGIN], workers=workers).start()
    assert srv.proc is not None
    assert len(_sequencers_on(data)) == 1
    os.kill(srv.proc.pid, signal.SIGTERM)  # as systemd or `docker stop` would
    srv.proc.wait(30)
    assert _wait_gone(data), "sequencer left running after tlog serve stopped"
    srv.stop()
    # And the data dir can be served again at once.
    again = ServerProc(data, args=["--allow-raw", "--origin", ORIGIN]).start()
    try:
        assert httpx.get(again.url + "/healthz").status_code == 200
    finally:
        again.stop()
    assert _wait_gone(data)


def test_group_sigterm_under_load_finishes_in_flight_requests(tmp_path: Path) -> None:
    """SIGTERM to the whole process group: the sequencer keeps committing while workers drain."""
    import asyncio
    import base64

    data = tmp_path / "data"
    srv = ServerProc(data, args=["--allow-raw", "--origin", ORIGIN], workers=2).start()
    statuses: list[int] = []

    async def load() -> None:
        async with httpx.AsyncClient(timeout=15) as c:
            async def one(i: int) -> None:
                try:
                    r = await c.post(srv.url + "/v1/entries",
                                     json={"raw": base64.b64encode(b"g%d" % i).decode()})
                    statuses.append(r.status_code)
                except httpx.HTTPError:
                    statuses.append(0)  # refused after the listener closed: fine
            tasks = [asyncio.create_task(one(i)) for i in range(200)]
            await asyncio.sleep(0.05)
            assert srv.proc is not None
            os.killpg(srv.proc.pid, signal.SIGTERM)
            await asyncio.gather(*tasks)

    asyncio.run(load())
    assert srv.proc is not None
    srv.proc.wait(30)
    srv.stop()
    assert 503 not in statuses, statuses
    assert _wait_gone(data)
    assert "restarting" not in (srv.log_path.read_text() if srv.log_path else "")
    assert _tlog("fsck", "--data-dir", str(data)).returncode == 0


def test_missing_key_for_existing_log_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = ServerProc(data, args=["--origin", ORIGIN]).start()
    srv.stop()
    (data / "log.key").unlink()
    r = _tlog("serve", "--data-dir", str(data), "--listen", "127.0.0.1:0")
    assert r.returncode == 2
    assert "log.key is missing" in r.stderr and "Traceback" not in r.stderr
    assert not (data / "log.key").exists()


def test_origin_must_be_a_valid_key_name(tmp_path: Path) -> None:
    for bad in ["ctl\x01x", "a b", "a+b", ""]:
        r = _tlog("keygen", "--origin", bad, "--out", str(tmp_path / "k"))
        assert r.returncode == 2 and "Traceback" not in r.stderr, (bad, r.stderr)
        if not bad:
            continue  # `serve --origin ""` means "no origin given"
        r = _tlog("serve", "--data-dir", str(tmp_path / f"d{len(bad)}"), "--origin", bad,
                  "--listen", "127.0.0.1:0")
        assert r.returncode == 2 and "Traceback" not in r.stderr, (bad, r.stderr)


def test_keygen_writes_0600_and_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "log.key"
    (tmp_path / ".log.key.stale.tmp").write_text("left by a crash")
    r = _tlog("keygen", "--origin", ORIGIN, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert r.stdout.strip().splitlines()[-1].startswith(ORIGIN + "+")
    before = out.read_text()
    assert _tlog("keygen", "--origin", ORIGIN, "--out", str(out)).returncode == 2
    assert out.read_text() == before


def test_group_readable_key_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ServerProc(data, args=["--origin", ORIGIN]).start().stop()
    os.chmod(data / "log.key", 0o640)
    r = _tlog("serve", "--data-dir", str(data), "--listen", "127.0.0.1:0")
    assert r.returncode == 2 and "chmod 600" in r.stderr


def test_slow_body_gets_408_and_the_connection_is_freed(tmp_path: Path) -> None:
    cfg = tmp_path / "log.toml"
    cfg.write_text("[log]\nbody_timeout = 1.0\n")
    srv = ServerProc(tmp_path / "data", args=["--allow-raw", "--config", str(cfg)]).start()
    try:
        host, port = srv.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(b"POST /v1/entries HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n{")
            t0 = time.monotonic()
            reply = s.recv(65536)
            while b"request_timeout" not in reply and (more := s.recv(65536)):
                reply += more  # headers and body may arrive in separate segments
            assert reply.startswith(b"HTTP/1.1 408"), reply
            assert b"request_timeout" in reply
            assert time.monotonic() - t0 < 5
    finally:
        srv.stop()


def test_config_file_is_strict(tmp_path: Path) -> None:
    cfg = tmp_path / "log.toml"
    cfg.write_text("[log]\nmax_batchs = 5\n")
    with pytest.raises(ConfigError, match=r"log\.max_batchs"):
        load_config(cfg, {})
    cfg.write_text("[log]\nmax_batch = \"5\"\n")
    with pytest.raises(ConfigError, match="max_batch"):
        load_config(cfg, {})
    cfg.write_text("[log]\nmax_batch = 0\n")
    with pytest.raises(ConfigError, match="max_batch"):
        load_config(cfg, {})
    cfg.write_text("[server]\n")
    with pytest.raises(ConfigError, match="server"):
        load_config(cfg, {})
    cfg.write_text("[log]\nmax_batch = 7\nmax_delay_ms = 2\n")
    c = load_config(cfg, {"workers": 3, "origin": None})
    assert (c.max_batch, c.max_delay_ms, c.workers) == (7, 2.0, 3)
    assert ServeConfig(listen="[::1]:8080").host == "::1"
    assert ServeConfig(listen="127.0.0.1:0").port == 0
    with pytest.raises(ConfigError):
        ServeConfig(listen="localhost")


def test_receipt_numbers_must_be_integers(server: ServerProc) -> None:
    doc = httpx.post(server.url + "/v1/entries", json={"raw": "aGk="}).json()
    doc2 = httpx.post(server.url + "/v1/entries", json={"raw": "aG8="}).json()
    verify_receipt_doc(doc2, [server.vkey])
    for field, value in (("index", True), ("index", 1.0), ("index", "1")):
        bad = dict(doc2, **{field: value})
        with pytest.raises(MalformedError):
            verify_receipt_doc(bad, [server.vkey])
    assert doc["index"] == 0


def test_environment_overrides_and_print_config(tmp_path: Path) -> None:
    """TLOG_<KEY> variables sit between the file and the flags; unknown or ill-typed ones are
    refused with the variable's name; --print-config shows the effective values as TOML."""
    import tomllib

    cfg = tmp_path / "log.toml"
    cfg.write_text('[log]\nworkers = 3\nmax_batch = 100\n\n[[witness]]\nurl = "http://127.0.0.1:1"\n'
                   'vkey = "witness.example/w+1093b504+BG56HN0psLeP0Tr0xVmP7/TvKpcWbjym8uT7/M2AUFvx"\n')
    env = {"TLOG_MAX_BATCH": "200", "TLOG_WITNESS_WAIT": "false", "TLOG_SERVE_CONFIG": "{}"}
    c = load_config(cfg, {"workers": 2}, env)
    assert (c.workers, c.max_batch, c.witness_wait, len(c.witnesses)) == (2, 200, False, 1)
    for bad, msg in [({"TLOG_COLOUR": "red"}, "TLOG_COLOUR: no such setting"),
                     ({"TLOG_WORKERS": "many"}, "TLOG_WORKERS: expected a number"),
                     ({"TLOG_ALLOW_RAW": "yes"}, "TLOG_ALLOW_RAW: expected true or false"),
                     ({"TLOG_WORKERS": "0"}, "workers")]:
        with pytest.raises(ConfigError, match=msg):
            load_config(None, {}, bad)
    out = subprocess.run([sys.executable, "-m", "tlog.cli", "serve", "--config", str(cfg), "--print-config"],
                         capture_output=True, text=True, timeout=60, check=False,
                         env=dict(os.environ, TLOG_MAX_BATCH="300"))
    assert out.returncode == 0, out.stderr
    printed = tomllib.loads(out.stdout)
    assert printed["log"]["max_batch"] == 300 and printed["log"]["workers"] == 3
    assert printed["witness"][0]["url"] == "http://127.0.0.1:1"
    again = tmp_path / "printed.toml"
    again.write_text(out.stdout)
    assert load_config(again, {}, {}) == load_config(cfg, {}, {"TLOG_MAX_BATCH": "300"})


def test_every_setting_is_documented() -> None:
    from dataclasses import fields

    text = (Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    for f in fields(ServeConfig):
        if f.name == "witness_tokens":  # from [[witness]] tables, documented beside them
            assert "| `witness_tokens` | (in `[[witness]]`) |" in text
        elif f.name != "witnesses":
            assert f"| `{f.name}` | `TLOG_{f.name.upper()}` |" in text, f.name
    from witness.config import _LOG_KEYS, _WITNESS_KEYS

    for key in [*_WITNESS_KEYS, *_LOG_KEYS]:
        assert f"`{key}`" in text, key


def test_keygen_if_missing_publishes_the_vkey(tmp_path: Path) -> None:
    """What deploy/compose/log-init.sh relies on: a second run keeps the key, and the verifier
    key file (0644) matches it; a key of another name is not silently kept."""
    key, pub = tmp_path / "data" / "log.key", tmp_path / "pub" / "log.vkey"
    key.parent.mkdir()
    first = _tlog("keygen", "--if-missing", "--origin", ORIGIN, "--out", str(key), "--vkey-out", str(pub))
    assert first.returncode == 0, first.stderr
    before = key.read_text()
    second = _tlog("keygen", "--if-missing", "--origin", ORIGIN, "--out", str(key), "--vkey-out", str(pub))
    assert second.returncode == 0 and key.read_text() == before and "kept" in second.stdout
    printed = {first.stdout.strip().splitlines()[-1], second.stdout.strip().splitlines()[-1]}
    assert printed == {pub.read_text().strip()}
    assert pub.stat().st_mode & 0o777 == 0o644
    other = _tlog("keygen", "--if-missing", "--origin", "other.example/log", "--out", str(key))
    assert other.returncode == 2 and "not 'other.example/log'" in other.stderr


def test_witness_vkey_files(tmp_path: Path) -> None:
    """[[witness]] vkey_file (relative to the config file) instead of an inline vkey; a missing
    or wrong file is an error naming the table."""
    vkey = "witness.example/w+1093b504+BG56HN0psLeP0Tr0xVmP7/TvKpcWbjym8uT7/M2AUFvx"
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "w.vkey").write_text(vkey + "\n")
    cfg = tmp_path / "log.toml"
    cfg.write_text('[[witness]]\nurl = "http://127.0.0.1:1"\nvkey_file = "keys/w.vkey"\n')
    assert load_config(cfg, {}, {}).witnesses == (("http://127.0.0.1:1", vkey),)
    for body, msg in [('vkey_file = "keys/none.vkey"', r"witness\[0\].vkey_file"),
                      (f'vkey_file = "keys/w.vkey"\nvkey = "{vkey}"', "one of vkey, vkey_file")]:
        cfg.write_text(f'[[witness]]\nurl = "http://127.0.0.1:1"\n{body}\n')
        with pytest.raises(ConfigError, match=msg):
            load_config(cfg, {}, {})
    (tmp_path / "keys" / "w.vkey").write_text(ORIGIN + "+00000000+AAAA\n")
    cfg.write_text('[[witness]]\nurl = "http://127.0.0.1:1"\nvkey_file = "keys/w.vkey"\n')
    with pytest.raises(ConfigError, match="vkey"):
        load_config(cfg, {}, {})


def test_client_policy_command(tmp_path: Path) -> None:
    """`tlog-client policy` builds a trust policy from published key files; it loads back, and
    bad keys are refused (exit 2)."""
    from client.policy import load_policy

    log_vkey = "tlog.example/log+998165b9+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs"
    wkey = "witness.example/w+1093b504+BG56HN0psLeP0Tr0xVmP7/TvKpcWbjym8uT7/M2AUFvx"
    (tmp_path / "log.vkey").write_text(f"# the log\n{log_vkey}\n")
    out = tmp_path / "policy.toml"
    r = subprocess.run([sys.executable, "-m", "client.cli", "policy",
                        "--log-key", f"@{tmp_path / 'log.vkey'}", "--witness-key", wkey,
                        "--url", "http://log:8080/", "--max-age", "600", "--out", str(out)],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    p = load_policy(out)
    assert (p.origin, p.url, p.witness_quorum, p.max_age_seconds) == (
        "tlog.example/log", "http://log:8080", 1, 600)
    bad = subprocess.run([sys.executable, "-m", "client.cli", "policy", "--log-key", wkey],
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "policy" in bad.stderr
