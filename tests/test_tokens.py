"""Submitter tokens on a real `tlog serve`: without a valid token a submission is 401 and
nothing is logged; with one it lands, under its name in metrics and the access log; a token
revoked in the file stops working within a second, without a restart; reads stay public; a
broken file lets no one submit; tlog-client sends the token from a file or $TLOG_TOKEN."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from client.errors import MalformedError
from client.tokens import TokenFile, add_token, parse_tokens, read_tokens, revoke_token, token_hash
from tests.conftest import ORIGIN
from tests.serverproc import ServerProc


def tlog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlog.cli", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def _raw(i: int) -> dict[str, str]:
    return {"raw": base64.b64encode(b"private %d" % i).decode()}


def test_the_file_holds_hashes_and_is_parsed_strictly(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    token = add_token(path, "ci")
    assert token.startswith("tlog_") and token not in path.read_text()
    assert read_tokens(path) == {token_hash(token): "ci"}
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(MalformedError, match="already has a token"):
        add_token(path, "ci")
    with pytest.raises(MalformedError, match="name"):
        add_token(path, "no spaces")
    for bad in ("ci sha256:" + "0" * 63, "ci  sha256:" + "0" * 64, "ci sha256:" + "A" * 64,
                f"a sha256:{'0' * 64}\nb sha256:{'0' * 64}", f"a sha256:{'0' * 64}\na sha256:{'1' * 64}",
                f"a sha256:{'0' * 64}\r"):
        with pytest.raises(MalformedError):
            parse_tokens(bad)
    tokens = TokenFile(path)
    assert tokens.submitter(f"Bearer {token}") == "ci"
    assert tokens.submitter(f"bearer {token}") == "ci"  # the scheme is case-insensitive
    for header in (None, "", token, f"Basic {token}", f"Bearer {token}x", "Bearer ", "Bearer " + "a" * 300):
        assert tokens.submitter(header) is None
    revoke_token(path, "ci")
    assert tokens.submitter(f"Bearer {token}", now=time.monotonic() + 2) is None


def test_a_private_log_takes_entries_only_from_its_submitters(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    added = tlog("token", "add", "ci-release", "--file", str(tokens))
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    other = add_token(tokens, "nightly")
    config = tmp_path / "log.toml"
    config.write_text(f'[log]\norigin = "{ORIGIN}"\nallow_raw = true\naccess_log = true\n'
                      f'log_format = "json"\nsubmit_tokens_file = "{tokens}"\n')
    srv = ServerProc(tmp_path / "data", args=["--config", str(config)]).start()
    try:
        with httpx.Client(timeout=30) as http:
            def post(i: int, tok: str | None) -> httpx.Response:
                headers = {"authorization": f"Bearer {tok}"} if tok else {}
                return http.post(srv.url + "/v1/entries", json=_raw(i), headers=headers)

            for tok in (None, "tlog_wrong", token + "x"):
                r = post(0, tok)
                assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
                assert r.headers["www-authenticate"] == 'Bearer realm="tlog"'
            r = http.post(srv.url + "/api/v2/log/entries", json={})
            assert r.status_code == 401  # the Rekor v2 write API too
            assert http.get(srv.url + "/checkpoint").text.split("\n")[1] == "0"  # nothing logged
            assert post(1, token).status_code == 201 and post(2, other).status_code == 201
            # Reads need no token.
            for path in ("/checkpoint", "/v1/log", "/v1/entries/0", "/v1/proof/inclusion?index=1",
                         "/healthz"):
                assert http.get(srv.url + path).status_code == 200, path
            metrics = http.get(srv.url + "/metrics").text
            assert 'tlog_submissions_by_submitter_total{submitter="ci-release"' in metrics
            assert 'tlog_submissions_by_submitter_total{submitter="nightly"' in metrics
            # Revoked in the file: refused within a second, no restart.
            assert tlog("token", "revoke", "nightly", "--file", str(tokens)).returncode == 0
            deadline = time.monotonic() + 5
            while post(3, other).status_code != 401:
                assert time.monotonic() < deadline, "a revoked token still works"
                time.sleep(0.1)
            assert post(4, token).status_code == 201
            # A broken file lets no one submit (fail closed) until it is mended.
            good = tokens.read_text()
            tokens.write_text(good + "garbage\n")
            time.sleep(1.2)
            assert post(5, token).status_code == 401
            tokens.write_text(good)
            time.sleep(1.2)
            assert post(6, token).status_code == 201
        log_text = srv.log_path.read_text()  # type: ignore[union-attr]
        assert '"submitter":"ci-release"' in log_text.replace(" ", "")
        assert token not in log_text and other not in log_text  # tokens never logged
    finally:
        srv.stop()
    # tlog-client sends it from a file or $TLOG_TOKEN.
    srv = ServerProc(tmp_path / "data", args=["--config", str(config)]).start()
    try:
        statement = tmp_path / "s.json"
        statement.write_text('{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "a", '
                             '"digest": {"sha256": "' + "ab" * 32 + '"}}], "predicateType": '
                             '"https://example.com/p", "predicate": {}}')
        key = tmp_path / "k.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True,
                       timeout=30)
        (tmp_path / "tok").write_text(token + "\n")

        def submit(*extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
            cmd = [sys.executable, "-m", "client.cli", "submit", str(statement), "--key", str(key),
                   "--log", srv.url, "--out", str(tmp_path / "r.json"), "--retries", "0", *extra]
            return subprocess.run(cmd,
                                  capture_output=True, text=True, timeout=60, check=False,
                                  env={**os.environ, **(env or {})})

        refused = submit()
        assert refused.returncode != 0 and "unauthorized" in refused.stderr
        assert submit("--token-file", str(tmp_path / "tok")).returncode == 0
        assert submit(env={"TLOG_TOKEN": token}).returncode == 0  # the same entry: 200
    finally:
        srv.stop()
