"""A log with three real witness processes: cosigned checkpoints, k-of-n receipts, forks refused.

Everything is real: `tlog serve` with a `[[witness]]` config, three `witness serve` processes on
loopback, HTTP between them. Cosignature lines are checked by the client library and by a
second cosignature/v1 verifier written here from the C2SP text.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nacl.signing
import pytest

from client.errors import PolicyError
from client.keyfile import write_key
from client.note import CosignatureV1Signer, Ed25519Signer, sign_note
from client.policy import TrustPolicy
from client.verify import verify_receipt
from tests.conftest import ORIGIN, SEED
from tests.serverproc import ServerProc, WitnessProc
from tests.test_logclient import grow, random_entries
from tests.test_witness import write_config
from tlog.storage import LogStore

LOG = Ed25519Signer(ORIGIN, SEED)
NAMES = [f"witness.test/w{i}" for i in range(3)]
SEEDS = [bytes([0x50 + i]) * 32 for i in range(3)]


def witness_vkey(i: int) -> str:
    return CosignatureV1Signer(NAMES[i], SEEDS[i]).verifier().vkey()


def spec_cosignature_ok(note: bytes, name: str, public: bytes) -> bool:
    """cosignature/v1 from the C2SP text alone: key ID = SHA-256(name || 0x0A || 0x04 || key)[:4];
    signature = u64be(time) || Ed25519("cosignature/v1\\ntime <t>\\n" || checkpoint text)."""
    text, _, sigs = note.decode().rpartition("\n\n")
    text += "\n"
    kid = hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4]
    for line in sigs.splitlines():
        who, _, b64 = line.removeprefix("\u2014 ").partition(" ")
        raw = base64.b64decode(b64)
        if who != name or raw[:4] != kid or len(raw) != 76:
            continue
        ts = int.from_bytes(raw[4:12], "big")
        msg = f"cosignature/v1\ntime {ts}\n{text}".encode()
        try:
            nacl.signing.VerifyKey(public).verify(msg, raw[12:])
        except Exception:
            return False
        return True
    return False


@dataclass
class Stack:
    log: ServerProc
    witnesses: list[WitnessProc]

    def policy(self, k: int) -> TrustPolicy:
        from client.note import parse_vkey

        return TrustPolicy(ORIGIN, (LOG.verifier(),),
                           witnesses=tuple(parse_vkey(witness_vkey(i)) for i in range(3)),  # type: ignore[misc]
                           witness_quorum=k, allow_raw_log=True)


def start_witnesses(tmp: Path) -> list[WitnessProc]:
    out = []
    for i in range(3):
        d = tmp / f"w{i}"
        d.mkdir()
        write_key(d / "witness.key", Ed25519Signer(NAMES[i], SEEDS[i]))
        cfg = write_config(d, [(ORIGIN, LOG.verifier().vkey())], rate_per_log=100.0, burst=100)
        out.append(WitnessProc(d / "state", args=["--config", str(cfg)]).start())
    return out


def init_log(data: Path, entries: list[bytes] | None = None) -> None:
    store = LogStore(data, create=True, map_size=1 << 28)
    store.initialize(ORIGIN, lambda t: sign_note(t, [LOG]))
    if entries:
        grow(store, LOG, entries)
    store.close()
    write_key(data / "log.key", LOG)


def start_log(tmp: Path, data: Path, witnesses: list[WitnessProc], quorum: int = 2,
              wait_timeout: float = 10.0, wait: bool = True, startup_check: bool = True) -> ServerProc:
    cfg = tmp / f"{data.name}.toml"
    lines = ["[log]", f"witness_quorum = {quorum}", "witness_interval = 0.1",
             "witness_timeout = 2.0", f"witness_wait_timeout = {wait_timeout}",
             f"witness_wait = {'true' if wait else 'false'}",
             f"witness_startup_check = {'true' if startup_check else 'false'}"]
    for i, w in enumerate(witnesses):
        lines += ["", "[[witness]]", f'url = "{w.url}"', f'vkey = "{witness_vkey(i)}"']
    cfg.write_text("\n".join(lines) + "\n")
    return ServerProc(data, args=["--allow-raw", "--origin", ORIGIN, "--config", str(cfg)]).start()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    witnesses = start_witnesses(tmp_path)
    try:
        init_log(tmp_path / "log")
        log = start_log(tmp_path, tmp_path / "log", witnesses)
        yield Stack(log, witnesses)
        log.stop()
    finally:
        for w in witnesses:
            w.stop()


def submit(srv: ServerProc, data: bytes) -> dict[str, object]:
    r = httpx.post(srv.url + "/v1/entries", json={"raw": base64.b64encode(data).decode()}, timeout=60)
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_receipts_are_cosigned_and_verify_k_of_n(stack: Stack) -> None:
    receipts = [submit(stack.log, f"entry {i}".encode()) for i in range(5)]
    for doc in receipts:
        assert doc["witnessed"] is True
        note = doc["checkpoint"].encode()  # type: ignore[union-attr]
        valid = [spec_cosignature_ok(note, NAMES[i], CosignatureV1Signer(NAMES[i], SEEDS[i]).public)
                 for i in range(3)]
        assert sum(valid) >= 2, note
        verify_receipt(doc, stack.policy(2))
    cp = httpx.get(stack.log.url + "/checkpoint", timeout=10).content
    assert cp.count("\u2014 witness.test/".encode()) >= 2  # /checkpoint carries the cosignatures

    stack.witnesses[2].stop()  # one witness down: 2 of 3 still met, 3 of 3 not
    time.sleep(0.3)
    doc = submit(stack.log, b"after one witness stopped")
    assert doc["witnessed"] is True
    verify_receipt(doc, stack.policy(2))
    with pytest.raises(PolicyError, match="needs 3 of 3"):
        verify_receipt(doc, stack.policy(3))


@pytest.mark.go
def test_go_verifies_the_log_signature_on_cosigned_receipts(stack: Stack, tmp_path: Path,
                                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    """Go's sumdb/note opens cosigned checkpoints with the log key (ignoring the witness lines
    it cannot check: it knows only type 0x01) and sumdb/tlog checks the inclusion proof."""
    import subprocess

    import orjson

    from tests.gobuild import build_go

    binary = build_go("receiptcheck", tmp_path_factory)
    for i in range(3):
        doc = submit(stack.log, f"go {i}".encode())
        assert doc["witnessed"] is True
        path = tmp_path / f"r{i}.json"
        path.write_bytes(orjson.dumps(doc))
        proc = subprocess.run([str(binary), "-vkey", LOG.verifier().vkey(), str(path)],
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0 and proc.stdout.rstrip().endswith("PASS"), proc.stdout + proc.stderr


def test_a_forked_view_gets_no_cosignature(stack: Stack, tmp_path: Path) -> None:
    """A second data dir with the same key and origin, other entries: the witnesses that saw
    the first view refuse it, so its receipts are not witnessed (and say so)."""
    for i in range(3):
        assert submit(stack.log, f"real {i}".encode())["witnessed"] is True
    size = int(httpx.get(stack.log.url + "/checkpoint", timeout=10).text.split("\n")[1])
    fork_dir = tmp_path / "fork"
    init_log(fork_dir, random_entries(size, 77))
    with pytest.raises(RuntimeError, match="not this log's history"):  # the log's own guard
        start_log(tmp_path, fork_dir, stack.witnesses, wait_timeout=1.5)
    # With the guard off (an operator who insists), the witnesses still refuse it.
    fork = start_log(tmp_path, fork_dir, stack.witnesses, wait_timeout=1.5, startup_check=False)
    try:
        doc = submit(fork, b"forked entry")
        assert doc["witnessed"] is False
        assert "\u2014 witness.test/" not in doc["checkpoint"]  # type: ignore[operator]
        with pytest.raises(PolicyError):
            verify_receipt(doc, stack.policy(1))
        metrics = httpx.get(fork.url + "/metrics", timeout=10).text
        assert 'outcome="inconsistent"' in metrics
    finally:
        fork.stop()
    # The witnesses kept the first view.
    assert submit(stack.log, b"still fine")["witnessed"] is True


def test_run_command_starts_a_log_with_local_witnesses(tmp_path: Path) -> None:
    """What scripts/run.sh runs (tlog.devstack): a log and three witness processes; the
    policy it writes requires 2 of 3, and a submission gets a cosigned receipt under it."""
    import os
    import re
    import signal
    import subprocess
    import sys

    from client import cli

    out = (tmp_path / "devstack.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "tlog.devstack", "--data-dir", str(tmp_path / "d"),
                             "--listen", "127.0.0.1:0"], stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        log = tmp_path / "devstack.log"
        while not re.search(r'listening on (http://[^\s"]+)', log.read_text()):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        policy = tmp_path / "d" / "client-policy.toml"
        (tmp_path / "statement.json").write_bytes(
            (Path(__file__).resolve().parent.parent / "docs" / "examples" / "statement.json").read_bytes())
        key = tmp_path / "signer.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True,
                       timeout=30, capture_output=True)
        receipt = tmp_path / "receipt.json"
        assert cli.main(["submit", str(tmp_path / "statement.json"), "--key", str(key), "--policy",
                         str(policy), "--out", str(receipt), "--no-state"]) == 0
        import orjson

        doc = orjson.loads(receipt.read_bytes())
        assert doc["witnessed"] is True and doc["checkpoint"].count("\u2014 localhost/witness-") >= 2
        assert cli.main(["verify", str(receipt), "--envelope", str(tmp_path / "receipt.dsse.json"),
                         "--policy", str(policy), "--no-state"]) == 0
        # The devstack's TSA timestamps Sigstore bundles, which sigstore-js verifies with the
        # TrustedRoot the log wrote.
        ec_key = tmp_path / "signer-p256.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-out", str(ec_key)], check=True, timeout=30, capture_output=True)
        bundle = tmp_path / "statement.sigstore.json"
        assert cli.main(["submit", str(tmp_path / "statement.json"), "--key", str(ec_key), "--policy",
                         str(policy), "--sigstore-bundle", str(bundle), "--no-state"]) == 0
        from cryptography.hazmat.primitives import serialization

        from tests import sigstorejs

        sigstorejs.require()
        pem = serialization.load_pem_private_key(ec_key.read_bytes(), None).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        root = orjson.loads((tmp_path / "d" / "sigstore-trusted-root.json").read_bytes())
        ok, why = sigstorejs.verify(root, orjson.loads(bundle.read_bytes()), pem)
        assert ok, why
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        out.close()


class Trickler:
    """A fault-injection witness: accepts add-checkpoint, answers 200 and then one byte a
    second (never finishing in time), beside the real witnesses."""

    def __init__(self) -> None:
        import socket
        import threading

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: object) -> None:
        import socket

        assert isinstance(conn, socket.socket)
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 500\r\n\r\n")
                while not self.stopped.wait(1.0):
                    conn.sendall(b"x")
            except OSError:
                return

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


def test_a_trickling_witness_does_not_hold_up_the_quorum(tmp_path: Path) -> None:
    witnesses = start_witnesses(tmp_path)
    trickler = Trickler()
    try:
        witnesses[2].stop()
        witnesses[2].url = trickler.url  # the third witness is now a trickler
        init_log(tmp_path / "log")
        log = start_log(tmp_path, tmp_path / "log", witnesses, wait_timeout=8.0)
        try:
            t0 = time.monotonic()
            doc = submit(log, b"not held up")
            assert doc["witnessed"] is True and time.monotonic() - t0 < 4.0
            verify_receipt(doc, Stack(log, witnesses).policy(2))
        finally:
            log.stop()
    finally:
        trickler.stop()
        for w in witnesses:
            w.stop()


def test_without_waiting_receipts_come_at_once_and_cosigned_ones_later(tmp_path: Path) -> None:
    witnesses = start_witnesses(tmp_path)
    try:
        init_log(tmp_path / "log")
        cfg_extra = tmp_path / "nowait"
        cfg_extra.mkdir()
        log = start_log(cfg_extra, tmp_path / "log", witnesses, wait=False)
        try:
            doc = submit(log, b"durable first")
            assert doc["witnessed"] is False and "\u2014 witness.test/" not in doc["checkpoint"]  # type: ignore[operator]
            deadline = time.monotonic() + 10
            while True:
                later = httpx.get(f"{log.url}/v1/entries/{doc['index']}/receipt", timeout=10).json()
                if later.get("witnessed") or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert later["witnessed"] is True
            verify_receipt(later, Stack(log, witnesses).policy(2))
        finally:
            log.stop()
    finally:
        for w in witnesses:
            w.stop()
