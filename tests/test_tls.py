"""TLS and access control with real processes: a log serving HTTPS with mutual TLS for its
submitters, certificates re-read on SIGHUP (a broken renewal keeps the old one), a private
log whose reads need a token, a witness that takes add-checkpoint only from its log (token
or client certificate) over HTTPS, and the monitor's gossip over HTTPS."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from client.keyfile import write_key
from client.note import CosignatureV1Signer, Ed25519Signer, parse_note
from client.tls import ReloadingContext, ServerTLS, TLSConfigError
from client.tokens import add_token, revoke_token
from tests.serverproc import ServerProc, WitnessProc
from tests.tlskit import CA, client_ssl, make_ca, served_fingerprint

ORIGIN = "tls.example/log"
RAW = {"raw": base64.b64encode(b"over tls").decode()}
PKI = tuple[CA, tuple[Path, Path]]


LOG_KEY = Ed25519Signer(ORIGIN, b"\x07" * 32)


def _witness_config(tmp: Path, name: str, seed: bytes, lines: str = "",
                    token_name: str | None = None) -> tuple[Path, str]:
    """A witness directory for LOG_KEY's log: its key named `name`, `lines` in [witness], and
    with `token_name` a tokens file holding one token for the log. (config path, token)."""
    wdir = tmp / "witness"
    wdir.mkdir()
    write_key(wdir / "witness.key", Ed25519Signer(name, seed))
    token = ""
    if token_name:
        token = add_token(wdir / "logs.tokens", token_name)
        lines += 'add_checkpoint_tokens_file = "logs.tokens"\n'
    (wdir / "witness.toml").write_text(
        f'[witness]\nkey_file = "witness.key"\n{lines}\n'
        f'[[log]]\norigin = "{ORIGIN}"\nkeys = ["{LOG_KEY.verifier().vkey()}"]\n')
    return wdir / "witness.toml", token


@pytest.fixture
def pki(tmp_path: Path) -> tuple[CA, tuple[Path, Path]]:
    ca = make_ca(tmp_path / "pki")
    return ca, ca.issue(tmp_path / "pki", "server", server=True)


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    return host, int(port)


def _log(tmp: Path, lines: str, ca: CA, workers: int = 1) -> ServerProc:
    cfg = tmp / "log.toml"
    cfg.write_text(f'[log]\norigin = "{ORIGIN}"\nallow_raw = true\n{lines}')
    return ServerProc(tmp / "data", args=["--config", str(cfg)], workers=workers,
                      verify=client_ssl(ca)).start()


def test_mutual_tls_names_submitters_and_keeps_reads_public(tmp_path: Path, pki: PKI) -> None:
    ca, (cert, key) = pki
    alice = ca.issue(tmp_path / "pki", "alice", server=False)
    stranger_ca = make_ca(tmp_path / "other", "someone else")
    mallory = stranger_ca.issue(tmp_path / "other", "mallory", server=False)
    log = _log(tmp_path, f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\n'
                         f'tls_client_ca_file = "{ca.cert_file}"\n'
                         'access_log = true\nlog_format = "json"\n', ca)
    try:
        assert log.url.startswith("https://127.0.0.1:")
        with httpx.Client(verify=client_ssl(ca), timeout=10) as anon:
            assert anon.get(log.url + "/checkpoint").status_code == 200
            r = anon.post(log.url + "/v1/entries", json=RAW)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
            assert parse_note(anon.get(log.url + "/checkpoint").content).text.split("\n")[1] == "0"
        with httpx.Client(verify=client_ssl(ca, alice), timeout=10) as c:
            r = c.post(log.url + "/v1/entries", json=RAW)
            assert r.status_code == 201, r.text
            metrics = c.get(log.url + "/metrics").text
            assert 'tlog_submissions_by_submitter_total{submitter="alice"' in metrics
        # A certificate from another CA does not get through the handshake at all.
        with httpx.Client(verify=client_ssl(ca, mallory), timeout=10) as c, \
                pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            c.post(log.url + "/v1/entries", json=RAW).raise_for_status()
        # Plain HTTP to the TLS port gets nothing it could mistake for an answer.
        with pytest.raises(httpx.HTTPError):
            httpx.get(log.url.replace("https://", "http://") + "/checkpoint", timeout=5).raise_for_status()
    finally:
        log.stop()
    access = log.log_path.read_text()
    assert '"submitter": "alice"' in access or '"submitter":"alice"' in access


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_the_certificate_and_a_bad_one_keeps_the_old(
        tmp_path: Path, pki: PKI, workers: int) -> None:
    ca, (cert, key) = pki
    served_cert, served_key = tmp_path / "served.crt", tmp_path / "served.key"
    shutil.copy(cert, served_cert)
    shutil.copy(key, served_key)
    log = _log(tmp_path, f'tls_cert_file = "{served_cert}"\ntls_key_file = "{served_key}"\n', ca, workers)
    try:
        host, port = _host_port(log.url)
        first = served_fingerprint(host, port, ca)
        renewed = ca.issue(tmp_path / "pki", "server2", server=True)
        shutil.copy(renewed[0], served_cert)
        shutil.copy(renewed[1], served_key)
        assert log.proc is not None
        os.kill(log.proc.pid, signal.SIGHUP)
        # With several workers each is replaced in turn: wait until every handshake (each on
        # whichever worker accepts it) shows the renewed certificate.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and \
                any(served_fingerprint(host, port, ca) == first for _ in range(12)):
            time.sleep(0.2)
        second = served_fingerprint(host, port, ca)
        assert second != first
        assert all(served_fingerprint(host, port, ca) == second for _ in range(12))
        assert log.proc.poll() is None
        # A botched renewal (a key that does not match the certificate) is refused; the
        # server keeps its certificate and keeps answering.
        shutil.copy(key, served_key)
        os.kill(log.proc.pid, signal.SIGHUP)
        time.sleep(2)
        assert log.proc.poll() is None
        with httpx.Client(verify=client_ssl(ca), timeout=10) as c:
            assert c.post(log.url + "/v1/entries", json=RAW).status_code == 201
        assert all(served_fingerprint(host, port, ca) == second for _ in range(12))
    finally:
        log.stop()


def test_sighup_without_tls_is_a_reload_not_a_stop(tmp_path: Path) -> None:
    """`systemctl reload` (or a SIGHUP to the whole group) of a plain single-worker log and
    of a witness: they log it and keep serving; the log's sequencer keeps committing."""
    cfg = tmp_path / "log.toml"
    cfg.write_text(f'[log]\norigin = "{ORIGIN}"\nallow_raw = true\n')
    log = ServerProc(tmp_path / "data", args=["--config", str(cfg)]).start()
    wcfg, _ = _witness_config(tmp_path, "witness.hup.example", b"\x09" * 32)
    witness = WitnessProc(wcfg.parent / "state", args=["--config", str(wcfg)]).start()
    try:
        for proc in (log, witness):
            assert proc.proc is not None
            os.killpg(proc.proc.pid, signal.SIGHUP)
        time.sleep(1)
        assert log.proc is not None and log.proc.poll() is None
        assert witness.proc is not None and witness.proc.poll() is None
        with httpx.Client(timeout=10) as c:
            for i in range(3):
                r = c.post(log.url + "/v1/entries", json={"raw": base64.b64encode(b"hup%d" % i).decode()})
                assert r.status_code == 201, r.text
            assert c.get(witness.url + "/healthz").status_code == 200
    finally:
        log.stop()
        witness.stop()
    assert "SIGHUP: no TLS files to re-read" in (log.log_path or Path()).read_text()


def test_a_private_log_needs_a_token_to_read(tmp_path: Path, pki: PKI) -> None:
    ca, (cert, key) = pki
    readers, submitters = tmp_path / "readers.tokens", tmp_path / "submitters.tokens"
    reader = add_token(readers, "auditor")
    writer = add_token(submitters, "ci")
    log = _log(tmp_path, f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\n'
                         f'read_tokens_file = "{readers}"\nsubmit_tokens_file = "{submitters}"\n', ca)
    try:
        with httpx.Client(verify=client_ssl(ca), timeout=10) as c:
            assert c.get(log.url + "/healthz").status_code == 200
            for path in ("/checkpoint", "/tile/0/000", "/v1/log", "/v1/entries/0", "/explorer/"):
                r = c.get(log.url + path)
                assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", path
            wrong = {"Authorization": "Bearer wrong"}
            assert c.get(log.url + "/checkpoint", headers=wrong).status_code == 401
            # A reader's token reads but does not submit; a submitter's does both.
            as_reader = {"Authorization": f"Bearer {reader}"}
            assert c.get(log.url + "/checkpoint", headers=as_reader).status_code == 200
            assert c.post(log.url + "/v1/entries", json=RAW, headers=as_reader).status_code == 401
            as_writer = {"Authorization": f"Bearer {writer}"}
            assert c.post(log.url + "/v1/entries", json=RAW, headers=as_writer).status_code == 201
            assert c.get(log.url + "/v1/entries/0", headers=as_writer).status_code == 200
    finally:
        log.stop()


def test_a_witness_cosigns_only_for_its_log(tmp_path: Path, pki: PKI) -> None:
    """The witness serves HTTPS and takes add-checkpoint with a token or a client certificate;
    the log sends its token (or shows its certificate) and trusts the witness's CA."""
    ca, (cert, key) = pki
    log_key = LOG_KEY
    wseed = b"\x08" * 32
    wcfg, log_token = _witness_config(
        tmp_path, "witness.tls.example", wseed, f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\n'
        f'tls_client_ca_file = "{ca.cert_file}"\n', token_name="our-log")
    wdir = wcfg.parent
    witness = WitnessProc(wdir / "state", args=["--config", str(wcfg)], verify=client_ssl(ca)).start()
    wvkey = CosignatureV1Signer("witness.tls.example", wseed).verifier().vkey()
    try:
        assert witness.url.startswith("https://")
        # Without a token or a certificate: 401, before the body is even read.
        r = httpx.post(witness.url + "/add-checkpoint", content=b"old 0\n\n", verify=client_ssl(ca),
                       timeout=10)
        assert r.status_code == 401
        logcert = ca.issue(tmp_path / "pki", "our-log-cert", server=False)
        for i, how in enumerate((
                f'token_file = "{tmp_path / "witness.token"}"',
                None)):
            (tmp_path / "witness.token").write_text(log_token + "\n")
            os.chmod(tmp_path / "witness.token", 0o600)
            data = tmp_path / f"log{i}"
            data.mkdir(mode=0o700)
            write_key(data / "log.key", log_key)
            client_cert = "" if how else (f'witness_client_cert_file = "{logcert[0]}"\n'
                                          f'witness_client_key_file = "{logcert[1]}"\n')
            cfg = tmp_path / f"log{i}.toml"
            cfg.write_text(f'[log]\norigin = "{ORIGIN}"\nallow_raw = true\nwitness_interval = 0.05\n'
                           f'witness_ca_file = "{ca.cert_file}"\n{client_cert}'
                           f'witness_startup_check = false\n\n'
                           f'[[witness]]\nurl = "{witness.url}"\nvkey = "{wvkey}"\n{how or ""}\n')
            log = ServerProc(data, args=["--config", str(cfg)]).start()
            try:
                with httpx.Client(timeout=20) as c:
                    r = c.post(log.url + "/v1/entries", json={"raw": base64.b64encode(b"e%d" % i).decode()})
                    assert r.status_code == 201, r.text
                    names = {s.name for s in parse_note(r.json()["checkpoint"].encode()).signatures}
                    assert "witness.tls.example" in names
            finally:
                log.stop()
            shutil.rmtree(data)  # the next log starts from an empty tree: a fresh origin state
            witness.stop()
            shutil.rmtree(wdir / "state")
            witness.start()
    finally:
        witness.stop()


def test_the_log_rereads_a_rotated_witness_token(tmp_path: Path) -> None:
    """A witness operator revokes the log's token and issues a new one; once the log's
    `token_file` is replaced (by a rename), the running log sends the new token and is
    cosigned again, without a restart."""
    log_key = LOG_KEY
    wseed = b"\x0a" * 32
    wcfg, old_token = _witness_config(tmp_path, "witness.rotate.example", wseed, token_name="log-2026")
    wdir = wcfg.parent
    witness = WitnessProc(wdir / "state", args=["--config", str(wcfg)]).start()
    token_file = tmp_path / "witness.token"
    token_file.write_text(old_token + "\n")
    os.chmod(token_file, 0o600)
    (tmp_path / "data").mkdir(mode=0o700)
    write_key(tmp_path / "data" / "log.key", log_key)
    wvkey = CosignatureV1Signer("witness.rotate.example", wseed).verifier().vkey()
    cfg = tmp_path / "log.toml"
    cfg.write_text(f'[log]\norigin = "{ORIGIN}"\nallow_raw = true\nwitness_interval = 0.05\n'
                   f'witness_wait_timeout = 3\n\n[[witness]]\nurl = "{witness.url}"\nvkey = "{wvkey}"\n'
                   f'token_file = "{token_file}"\n')
    log = ServerProc(tmp_path / "data", args=["--config", str(cfg)]).start()

    def submit(c: httpx.Client, i: int) -> bool:
        r = c.post(log.url + "/v1/entries", json={"raw": base64.b64encode(b"rot%d" % i).decode()})
        assert r.status_code == 201, r.text
        signers = {s.name for s in parse_note(r.json()["checkpoint"].encode()).signatures}
        return "witness.rotate.example" in signers

    try:
        with httpx.Client(timeout=20) as c:
            assert submit(c, 0)
            new_token = add_token(wdir / "logs.tokens", "log-2027")
            revoke_token(wdir / "logs.tokens", "log-2026")
            time.sleep(1.5)  # the witness re-reads its tokens file within a second
            assert not submit(c, 1)  # the old token is refused now
            (tmp_path / "witness.token.new").write_text(new_token + "\n")
            os.chmod(tmp_path / "witness.token.new", 0o600)
            os.replace(tmp_path / "witness.token.new", token_file)
            assert submit(c, 2)
    finally:
        log.stop()
        witness.stop()
    assert "witness token file" in (log.log_path or Path()).read_text()


def test_restore_asks_an_https_witness_on_a_private_ca(tmp_path: Path, pki: PKI) -> None:
    """The stale-copy check goes through `witness_ca_file` like the cosigning does: a backup
    older than what an HTTPS witness (private CA) co-signed is refused. A restore whose
    witnesses cannot be asked at all is refused too, unless `--unchecked`."""
    ca, (cert, key) = pki
    wseed = b"\x0b" * 32
    wcfg, _ = _witness_config(tmp_path, "witness.stale.example", wseed,
                              f'tls_cert_file = "{cert}"\ntls_key_file = "{key}"\n')
    witness = WitnessProc(wcfg.parent / "state", args=["--config", str(wcfg)], verify=client_ssl(ca)).start()
    wvkey = CosignatureV1Signer("witness.stale.example", wseed).verifier().vkey()
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    write_key(data / "log.key", LOG_KEY)
    cfg = tmp_path / "log.toml"
    cfg.write_text(f'[log]\norigin = "{ORIGIN}"\nallow_raw = true\nwitness_interval = 0.05\n'
                   f'witness_ca_file = "{ca.cert_file}"\n\n'
                   f'[[witness]]\nurl = "{witness.url}"\nvkey = "{wvkey}"\n')

    def tlog(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "tlog.cli", *args], capture_output=True, text=True,
                              timeout=120, check=False)

    def restore(*extra: str) -> subprocess.CompletedProcess[str]:
        return tlog("restore", "--from", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "r"),
                    "--config", str(cfg), *extra)

    try:
        log = ServerProc(data, args=["--config", str(cfg)]).start()
        try:
            with httpx.Client(timeout=20) as c:
                for i in range(4):
                    r = c.post(log.url + "/v1/entries", json={"raw": base64.b64encode(b"s%d" % i).decode()})
                    assert r.json()["witnessed"] is True, r.text
                    if i == 1:
                        made = tlog("backup", "--data-dir", str(data), "--out", str(tmp_path / "bk"))
                        assert made.returncode == 0, made.stderr
        finally:
            log.stop()
        refused = restore()
        assert refused.returncode == 1 and "co-signed size 4" in refused.stderr, refused.stderr
        assert not (tmp_path / "r").exists()
    finally:
        witness.stop()
    # The witness is gone: nothing to check the copy against, so no restore without --unchecked.
    refused = restore()
    assert refused.returncode == 1 and "no witness gave a checkpoint" in refused.stderr, refused.stderr
    assert not (tmp_path / "r").exists()
    forced = restore("--unchecked")
    assert forced.returncode == 0 and "not asking the witnesses" in forced.stderr, forced.stderr


def test_the_monitor_serves_gossip_over_https(tmp_path: Path, pki: PKI) -> None:
    from client.monitor import _server_class

    ca, (cert, key) = pki
    ctx = ReloadingContext(ServerTLS(str(cert), str(key)))

    class Hello(BaseHTTPRequestHandler):
        timeout = 5

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: object) -> None:
            pass

    server = _server_class(ctx)(("127.0.0.1", 0), Hello)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        # A client that connects and never handshakes does not stop others being served.
        import socket
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            r = httpx.get(f"https://127.0.0.1:{port}/gossip/checkpoints", verify=client_ssl(ca), timeout=5)
            assert r.status_code == 200 and r.content == b"ok"
    finally:
        server.shutdown()
        server.server_close()


def test_half_a_tls_configuration_is_refused(tmp_path: Path, pki: PKI) -> None:
    from tlog.config import ConfigError, ServeConfig

    ca, (cert, key) = pki
    with pytest.raises(ConfigError, match="both"):
        ServeConfig(tls_cert_file=str(cert))
    with pytest.raises(ConfigError, match="tls_client_ca_file"):
        ServeConfig(tls_client_ca_file=str(ca.cert_file))
    with pytest.raises(TLSConfigError):
        ServerTLS(str(cert), str(ca.cert_file)).build()  # a key that is not a key
    with pytest.raises(TLSConfigError):
        ReloadingContext(ServerTLS(str(cert), str(tmp_path / "missing.key")))
    ctx = ReloadingContext(ServerTLS(str(cert), str(key)))
    assert isinstance(ctx, ssl.SSLContext) and ctx.current.minimum_version == ssl.TLSVersion.TLSv1_2
