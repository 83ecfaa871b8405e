"""Backups taken under load restore to a consistent log; stale copies are refused.

Real processes: `tlog serve` under a concurrent write load while `tlog backup` runs, `tlog
fsck` on the restored copy; and a log with three real witnesses whose co-signed checkpoint
is newer than a backup, so that restoring or serving that backup would fork the log.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.conftest import ORIGIN
from tests.serverproc import ServerProc
from tests.test_witnessing import init_log, start_log, start_witnesses


def tlog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlog.cli", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_backup_under_write_load_restores_to_a_consistent_log(tmp_path: Path) -> None:
    srv = ServerProc(tmp_path / "data", args=["--allow-raw", "--origin", ORIGIN]).start()
    stop = threading.Event()
    acked: list[int] = []

    def load(w: int) -> None:
        with httpx.Client(timeout=30) as c:
            i = 0
            while not stop.is_set():
                r = c.post(srv.url + "/v1/entries",
                           json={"raw": base64.b64encode(b"w%d-%d" % (w, i)).decode()})
                assert r.status_code == 201
                acked.append(r.json()["index"])
                i += 1

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    try:
        for t in threads:
            t.start()
        while len(acked) < 200:
            threading.Event().wait(0.05)
        out = tlog("backup", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "bk"))
        assert out.returncode == 0, out.stderr
        while len(acked) < 400:
            threading.Event().wait(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        srv.stop()
    assert (tmp_path / "bk").stat().st_mode & 0o077 == 0
    assert (tmp_path / "bk" / "log.key").stat().st_mode & 0o777 == 0o600
    restored = tlog("restore", "--from", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "restored"))
    assert restored.returncode == 0, restored.stderr
    fsck = tlog("fsck", "--data-dir", str(tmp_path / "restored"))
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    srv = ServerProc(tmp_path / "restored", args=["--allow-raw"]).start()
    try:
        size = int(httpx.get(srv.url + "/checkpoint", timeout=10).text.split("\n")[1])
        assert 200 <= size < len(acked)  # the snapshot, taken mid-load
    finally:
        srv.stop()


def test_a_backup_older_than_the_witnesses_view_is_refused(tmp_path: Path) -> None:
    witnesses = start_witnesses(tmp_path)
    data = tmp_path / "log"
    try:
        init_log(data)
        log = start_log(tmp_path, data, witnesses)
        try:
            for i in range(3):
                r = httpx.post(log.url + "/v1/entries", json={"raw": base64.b64encode(b"a%d" % i).decode()},
                               timeout=30)
                assert r.json()["witnessed"] is True
            assert tlog("backup", "--data-dir", str(data), "--out", str(tmp_path / "bk")).returncode == 0
            for i in range(3):
                r = httpx.post(log.url + "/v1/entries", json={"raw": base64.b64encode(b"b%d" % i).decode()},
                               timeout=30)
                assert r.json()["witnessed"] is True  # the witnesses saw size 6
        finally:
            log.stop()
        cfg = tmp_path / f"{data.name}.toml"  # written by start_log: the [[witness]] tables
        refused = tlog("restore", "--from", str(tmp_path / "bk"), "--data-dir", str(tmp_path / "r"),
                       "--config", str(cfg))
        assert refused.returncode == 1 and "co-signed size 6" in refused.stderr, refused.stderr
        assert not (tmp_path / "r").exists()
        # Copied into place by hand, it is refused by `tlog serve` too.
        shutil.copytree(tmp_path / "bk", tmp_path / "r")
        serve = subprocess.run([sys.executable, "-m", "tlog.cli", "serve", "--data-dir", str(tmp_path / "r"),
                                "--listen", "127.0.0.1:0", "--allow-raw", "--config", str(cfg)],
                               capture_output=True, text=True, timeout=60, check=False)
        assert serve.returncode == 2 and "refusing to serve" in serve.stderr, serve.stderr
        # A backup of the current data dir is fine.
        assert tlog("backup", "--data-dir", str(data), "--out", str(tmp_path / "bk2")).returncode == 0
        ok = tlog("restore", "--from", str(tmp_path / "bk2"), "--data-dir", str(tmp_path / "r2"),
                  "--config", str(cfg))
        assert ok.returncode == 0, ok.stderr
        assert "6 entries" in ok.stdout
        assert sorted(p.name for p in tmp_path.iterdir() if ".restore-" in p.name) == []
    finally:
        for w in witnesses:
            w.stop()


def _restore(source: Path, target: Path) -> subprocess.CompletedProcess[str]:
    return tlog("restore", "--from", str(source), "--data-dir", str(target))


def _nothing_written(parent: Path, target: Path) -> None:
    assert not target.exists()
    assert [p.name for p in parent.iterdir() if ".restore-" in p.name] == []


def test_restore_refuses_anything_but_a_whole_backup_up_front(tmp_path: Path) -> None:
    """A live data dir, an interrupted backup, a damaged one, one with a file added, a broken
    manifest: each refused with a clear message, before anything is written."""
    data = tmp_path / "data"
    srv = ServerProc(data, args=["--allow-raw", "--origin", ORIGIN]).start()
    try:
        for i in range(5):
            r = httpx.post(srv.url + "/v1/entries", json={"raw": base64.b64encode(b"e%d" % i).decode()},
                           timeout=30)
            assert r.status_code == 201
        assert tlog("backup", "--data-dir", str(data), "--out", str(tmp_path / "bk")).returncode == 0
        # The live data dir itself (served right now): refused, not copied half-way.
        live = _restore(data, tmp_path / "t")
        assert live.returncode == 2 and "live data dir" in live.stderr and "tlog backup" in live.stderr
        assert "nothing was written" in live.stderr and "Traceback" not in live.stderr
        _nothing_written(tmp_path, tmp_path / "t")
    finally:
        srv.stop()
    manifest = (tmp_path / "bk" / "tlog-backup.json").read_text()
    assert '"size": 5' in manifest and ORIGIN in manifest

    def variant(name: str, change: object) -> Path:
        copy = tmp_path / name
        shutil.copytree(tmp_path / "bk", copy)
        change(copy)  # type: ignore[operator]
        return copy

    def flip(copy: Path) -> None:
        raw = bytearray((copy / "data.mdb").read_bytes())
        raw[len(raw) // 2] ^= 1
        (copy / "data.mdb").write_bytes(bytes(raw))

    cases = {
        "interrupted": (lambda c: (c / "tlog-backup.json").unlink(), "no tlog-backup.json"),
        "damaged": (flip, "damaged"),
        "added": (lambda c: (c / "notes.txt").write_text("x"), "notes.txt"),
        "bad-manifest": (lambda c: (c / "tlog-backup.json").write_text("{}"), "not a tlog backup manifest"),
        "missing-key": (lambda c: (c / "log.key").unlink(), "incomplete"),
    }
    for name, (change, message) in cases.items():
        refused = _restore(variant(name, change), tmp_path / f"t-{name}")
        assert refused.returncode == 2 and message in refused.stderr, (name, refused.stderr)
        assert "Traceback" not in refused.stderr
        _nothing_written(tmp_path, tmp_path / f"t-{name}")
    # The backup itself restores, and the copy is the log that was backed up.
    ok = _restore(tmp_path / "bk", tmp_path / "t")
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["data.mdb", "log.key"]
    assert (tmp_path / "t").stat().st_mode & 0o777 == 0o700
    assert tlog("fsck", "--data-dir", str(tmp_path / "t")).returncode == 0
