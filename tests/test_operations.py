"""Operator procedures from docs/operations.md, on real `tlog serve` processes: rotating the
log key without breaking clients, and freezing a log in favour of a new shard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from client.errors import VerificationError
from client.keyfile import read_key
from client.note import parse_note, parse_vkey
from client.policy import TrustPolicy
from client.verify import verify_receipt
from tests.serverproc import ServerProc
from tlog.storage import LogFrozenError, LogStore


def _tlog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlog.cli", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def _submit(url: str, text: str) -> dict:
    import base64

    r = httpx.post(url + "/v1/entries", json={"raw": base64.b64encode(text.encode()).decode()}, timeout=30)
    assert r.status_code in (200, 201), r.text
    return r.json()


def _key_ids(url: str) -> set[int]:
    note = httpx.get(url + "/checkpoint", timeout=10).content
    return {s.key_id for s in parse_note(note).signatures}


def _policy(origin: str, *vkeys: str) -> TrustPolicy:
    return TrustPolicy(origin, tuple(parse_vkey(v) for v in vkeys), allow_raw_log=True)


def test_rotating_the_log_key(tmp_path: Path) -> None:
    """Old key A; B rotated in (both sign, clients of either key verify); B becomes the key
    (clients still pinned to A now fail, as they must); a key of another origin is refused."""
    data = tmp_path / "data"
    cfg = tmp_path / "log.toml"
    srv = ServerProc(data, args=["--allow-raw"]).start()
    old = srv.vkey
    origin = parse_vkey(old).name
    first = _submit(srv.url, "before rotation")
    srv.stop()

    new_key = tmp_path / "new.key"
    made = _tlog("keygen", "--origin", origin, "--out", str(new_key))
    assert made.returncode == 0, made.stderr
    new = made.stdout.strip().splitlines()[-1]
    cfg.write_text(f'[log]\nrotation_key_file = "{new_key}"\n')
    srv = ServerProc(data, args=["--allow-raw", "--config", str(cfg)]).start()
    try:
        info = httpx.get(srv.url + "/v1/log", timeout=10).json()
        assert info["verifier_keys"] == [old, new]
        # Before any new entry: the current checkpoint was signed again, by both keys.
        assert _key_ids(srv.url) == {parse_vkey(old).key_id, parse_vkey(new).key_id}
        during = _submit(srv.url, "during rotation")
        names = [(s.name, s.key_id) for s in parse_note(during["checkpoint"].encode()).signatures]
        assert len(names) == 2 and {n for n, _ in names} == {origin}
        for keys in ([old], [new], [old, new]):
            verify_receipt(during, _policy(origin, *keys))
        verify_receipt(first, _policy(origin, old))  # old receipts keep verifying with A
    finally:
        srv.stop()

    # The switch: B is the log key; A is retired.
    (data / "log.key").unlink()
    (data / "log.key").write_bytes(new_key.read_bytes())
    (data / "log.key").chmod(0o600)
    srv = ServerProc(data, args=["--allow-raw"]).start()
    try:
        assert srv.vkey == new
        assert _key_ids(srv.url) == {parse_vkey(new).key_id}  # idle: re-signed by the new key alone
        after = _submit(srv.url, "after rotation")
        assert after["index"] == during["index"] + 1  # the same log, one tree
        verify_receipt(after, _policy(origin, new))
        with pytest.raises(VerificationError):
            verify_receipt(after, _policy(origin, old))
    finally:
        srv.stop()

    stranger = tmp_path / "stranger.key"
    assert _tlog("keygen", "--origin", "other.example/log", "--out", str(stranger)).returncode == 0
    cfg.write_text(f'[log]\nrotation_key_file = "{stranger}"\n')
    bad = _tlog("serve", "--data-dir", str(data), "--listen", "127.0.0.1:0", "--config", str(cfg))
    assert bad.returncode == 2 and "rotation_key_file" in bad.stderr
    assert read_key(data / "log.key").verifier().vkey() == new


def test_freezing_a_log_for_a_new_shard(tmp_path: Path) -> None:
    """A frozen log refuses entries with log_frozen (naming its successor) and keeps serving
    everything a verifier needs: checkpoint, tiles, entries, proofs, receipts."""
    data = tmp_path / "data"
    srv = ServerProc(data, args=["--allow-raw"]).start()
    receipts = [_submit(srv.url, f"entry {i}") for i in range(3)]
    srv.stop()
    cfg = tmp_path / "log.toml"
    cfg.write_text('[log]\nfrozen = true\nsuccessor = "https://log.example.com/2027"\n')
    srv = ServerProc(data, args=["--allow-raw", "--config", str(cfg)]).start()
    try:
        with httpx.Client(timeout=10) as c:
            r = c.post(srv.url + "/v1/entries", json={"raw": "aGVsbG8="})
            assert r.status_code == 403 and r.json()["error"]["code"] == "log_frozen"
            assert "https://log.example.com/2027" in r.json()["error"]["message"]
            info = c.get(srv.url + "/v1/log").json()
            assert info["frozen"] is True and info["successor"] == "https://log.example.com/2027"
            assert info["tree_size"] == 3
            assert c.get(srv.url + "/checkpoint").status_code == 200
            assert c.get(srv.url + "/tile/0/000.p/3").status_code == 200
            assert c.get(srv.url + "/v1/entries/2/receipt").status_code == 200
            assert c.get(srv.url + "/v1/proof/consistency?old=1&new=3").status_code == 200
            assert c.get(srv.url + "/healthz").status_code == 200
        policy = _policy(parse_vkey(srv.vkey).name, srv.vkey)
        for rec in receipts:
            verify_receipt(rec, policy)
    finally:
        srv.stop()
    cfg.write_text('[log]\nfrozen = true\nsuccessor = "ftp://elsewhere"\n')
    bad = _tlog("serve", "--data-dir", str(data), "--config", str(cfg), "--print-config")
    assert bad.returncode == 2 and "successor" in bad.stderr
    # Freezing is for good: the data dir records it; a configuration without it cannot reopen
    # the log, and the store itself refuses appends (not only the HTTP workers).
    reopen = _tlog("serve", "--data-dir", str(data), "--listen", "127.0.0.1:0", "--allow-raw")
    assert reopen.returncode == 2 and "frozen log" in reopen.stderr
    store = LogStore(data)
    try:
        assert store.frozen()
        with pytest.raises(LogFrozenError):
            store.append([b"sneaked in"], lambda text: b"")
        assert store.head().size == 3
    finally:
        store.close()
