"""The witness server against real `witness serve` processes (C2SP tlog-witness).

Checkpoints come from real logs built with the storage-level loader; consistency proofs from
the log's own proof code. Every refusal is checked to leave the stored state unchanged (the
monitoring endpoint serves the same note before and after).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from client import merkle
from client.encoding import b64encode
from client.keyfile import write_key
from client.note import CosignatureV1Signer, Ed25519Signer, parse_vkey, sign_note, verify_note
from tests.conftest import ORIGIN, SEED
from tests.serverproc import WitnessProc
from tests.test_logclient import grow, random_entries
from tlog.storage import LogStore

LOG = Ed25519Signer(ORIGIN, SEED)
WITNESS_SEED = b"\x42" * 32
WITNESS_NAME = "witness.test/w1"


class Log:
    """A log grown in process; checkpoints and proofs at any size it went through."""

    def __init__(self, path: Path, signer: Ed25519Signer = LOG) -> None:
        self.signer = signer
        self.store = LogStore(path, create=True, map_size=1 << 28)
        self.store.initialize(ORIGIN, lambda t: sign_note(t, [signer]))
        self.notes: dict[int, bytes] = {0: self.store.checkpoint()}

    def grow(self, entries: list[bytes]) -> bytes:
        grow(self.store, self.signer, entries)
        note = self.store.checkpoint()
        self.notes[self.store.head().size] = note
        return note

    def proof(self, old: int, new: int) -> list[bytes]:
        with self.store.read_txn() as txn:
            return merkle.consistency_proof(old, new, self.store.node_reader(txn))


def body(old: int, proof: list[bytes], note: bytes) -> bytes:
    return f"old {old}\n".encode() + b"".join(b64encode(h).encode() + b"\n" for h in proof) + b"\n" + note


def write_config(path: Path, logs: list[tuple[str, str]], **witness: object) -> Path:
    key = path / "witness.key"
    if not key.exists():
        write_key(key, Ed25519Signer(WITNESS_NAME, WITNESS_SEED))
    lines = ["[witness]", 'key_file = "witness.key"']
    lines += [f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in witness.items()]
    for origin, vkey in logs:
        lines += ["", "[[log]]", f'origin = "{origin}"', f'keys = ["{vkey}"]']
    cfg = path / "witness.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg


@pytest.fixture
def witness(tmp_path: Path) -> Iterator[WitnessProc]:
    cfg = write_config(tmp_path, [(ORIGIN, LOG.verifier().vkey())], rate_per_log=1000.0, burst=1000)
    w = WitnessProc(tmp_path / "wstate", args=["--config", str(cfg)]).start()
    yield w
    w.stop()


def cosigner_vkey() -> str:
    return CosignatureV1Signer(WITNESS_NAME, WITNESS_SEED).verifier().vkey()


def latest(w: WitnessProc) -> httpx.Response:
    return httpx.get(f"{w.url}/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint", timeout=10)


def add(w: WitnessProc, data: bytes) -> httpx.Response:
    return httpx.post(w.url + "/add-checkpoint", content=data, timeout=30)


def test_cosigns_a_growing_log_and_refuses_everything_else(witness: WitnessProc, tmp_path: Path) -> None:
    log = Log(tmp_path / "log")
    assert latest(witness).status_code == 404
    n10 = log.grow(random_entries(10, 1))
    r = add(witness, body(0, [], n10))
    assert r.status_code == 200, r.text
    # The answer is a cosignature/v1 line that verifies on the checkpoint (timestamped).
    cosigned = n10 + r.content
    opened = verify_note(cosigned, [parse_vkey(cosigner_vkey()), LOG.verifier()])
    assert len(opened.verified) == 2 and r.content.startswith("\u2014 witness.test/w1 ".encode())
    assert latest(witness).content == cosigned

    n300 = log.grow(random_entries(290, 2))
    assert add(witness, body(10, log.proof(10, 300), n300)).status_code == 200
    state = latest(witness).content

    def refused(data: bytes, status: int) -> httpx.Response:
        resp = add(witness, data)
        assert resp.status_code == status, (status, resp.status_code, resp.text)
        assert latest(witness).content == state  # unchanged
        return resp

    # Stale old size: 409 with the size we know, as text/x.tlog.size.
    n400 = log.grow(random_entries(100, 3))
    resp = refused(body(10, log.proof(10, 400), n400), 409)
    assert resp.headers["content-type"] == "text/x.tlog.size" and resp.text == "300\n"
    # Smaller checkpoint than the one cosigned: 409 too (old size is not ours).
    refused(body(0, [], n10), 409)
    # Bad proof, missing proof: 422.
    bad = log.proof(300, 400)
    bad[0] = bytes(32)
    refused(body(300, bad, n400), 422)
    refused(body(300, [], n400), 422)
    # Old size above the checkpoint's: 400.
    refused(body(300, [], n10), 400)
    # Unknown key: 403. Unknown origin: 404.
    stranger = Ed25519Signer(ORIGIN, b"\x01" * 32)
    text = n400.decode().split("\n\n")[0] + "\n"
    refused(body(300, log.proof(300, 400), sign_note(text, [stranger])), 403)
    other = Ed25519Signer("other.example/log", SEED)
    refused(body(0, [], sign_note("other.example/log\n1\n" + b64encode(bytes(32)) + "\n", [other])), 404)
    # The same size with another root (a fork): 422.
    fork = Log(tmp_path / "fork")
    fork_note = fork.grow(random_entries(300, 99))
    refused(body(300, [], fork_note), 422)
    # Malformed bodies: 400.
    for junk in [b"", b"old 1\n", b"old 01\n\n" + n400, b"old 300\nnot base64\n\n" + n400,
                 b"old 300\n\n" + n400[:-1], b"new 300\n\n" + n400, b"old 300\n\n\xff\xfe"]:
        refused(junk, 400)
    assert add(witness, b"x" * 20000).status_code == 413
    # And a correct request still works afterwards; equal size, equal root re-cosigns.
    assert add(witness, body(300, log.proof(300, 400), n400)).status_code == 200
    assert add(witness, body(400, [], n400)).status_code == 200
    log.store.close()
    fork.store.close()


def test_fifty_concurrent_requests_advance_the_state_once(witness: WitnessProc, tmp_path: Path) -> None:
    log = Log(tmp_path / "log")
    n5 = log.grow(random_entries(5, 1))
    assert add(witness, body(0, [], n5)).status_code == 200
    notes = [log.grow(random_entries(1 + i % 3, 10 + i)) for i in range(50)]
    sizes = sorted(log.notes)[2:]
    reqs = [body(5, log.proof(5, size), log.notes[size]) for size in sizes]
    assert len(reqs) == 50 and notes

    async def fire() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            answers = await asyncio.gather(*(client.post(witness.url + "/add-checkpoint", content=b)
                                             for b in reqs))
        return [a.status_code for a in answers]

    statuses = asyncio.run(fire())
    assert statuses.count(200) == 1 and statuses.count(409) == 49, statuses
    winner = sizes[statuses.index(200)]
    stored = latest(witness).content
    assert stored.startswith(f"{ORIGIN}\n{winner}\n".encode())
    log.store.close()


def test_rate_limit_and_config_errors(tmp_path: Path) -> None:
    """A log's budget is spent only by requests its key signed; refusals are limited per
    client address, so nobody without the key can starve a log of cosignatures."""
    cfg = write_config(tmp_path, [(ORIGIN, LOG.verifier().vkey())], rate_per_log=0.001, burst=2)
    w = WitnessProc(tmp_path / "wstate", args=["--config", str(cfg)]).start()
    try:
        log = Log(tmp_path / "log")
        n1 = log.grow(random_entries(1, 1))
        stranger = Ed25519Signer(ORIGIN, b"\x01" * 32)
        forged = sign_note(n1.decode().split("\n\n")[0] + "\n", [stranger])
        assert [add(w, body(0, [], forged)).status_code for _ in range(5)] == [403] * 5
        n2 = log.grow(random_entries(1, 2))
        n3 = log.grow(random_entries(1, 3))
        codes = [add(w, body(0, [], n1)).status_code, add(w, body(1, log.proof(1, 2), n2)).status_code,
                 add(w, body(2, log.proof(2, 3), n3)).status_code]
        assert codes == [200, 200, 429], codes
        log.store.close()
        metrics = httpx.get(w.url + "/metrics", timeout=10).text
        assert f'witness_add_checkpoint_total{{origin="{ORIGIN}",code="429"}} 1' in metrics
        # Junk from one address: after the refusal burst, 429 before any work is done.
        # (Until the budget runs out: it refills at 50/s, so how many get through depends on
        # this machine's speed, but not whether the 429 comes.)
        junk: list[int] = []
        with httpx.Client(timeout=10) as c:
            while 429 not in junk[-5:] and len(junk) < 5000:
                junk.append(c.post(w.url + "/add-checkpoint", content=b"junk").status_code)
        assert junk.count(400) >= 200 and junk[-1] == 429 and set(junk) == {400, 429}, junk[-10:]
    finally:
        w.stop()
    bad = tmp_path / "bad.toml"
    bad.write_text('[witness]\nkey_file = "witness.key"\ncolour = "red"\n')
    with pytest.raises(RuntimeError, match="unknown key 'colour'"):
        WitnessProc(tmp_path / "w2", args=["--config", str(bad)]).start(timeout=10)


def test_add_log_command(tmp_path: Path) -> None:
    from witness.cli import main
    from witness.config import load_config

    cfg = write_config(tmp_path, [])
    assert main(["add-log", "--config", str(cfg), "--origin", ORIGIN, "--vkey", LOG.verifier().vkey()]) == 0
    assert main(["add-log", "--config", str(cfg), "--origin", ORIGIN, "--vkey", LOG.verifier().vkey()]) == 2
    assert main(["add-log", "--config", str(cfg), "--origin", "x.example/l", "--vkey", "junk"]) == 2
    assert list(load_config(cfg).logs) == [ORIGIN]


def test_stored_notes_hold_only_verified_lines_and_spec_edge_cases(witness: WitnessProc,
                                                                   tmp_path: Path) -> None:
    log = Log(tmp_path / "log")
    n4 = log.grow(random_entries(4, 1))
    assert add(witness, body(0, [], n4)).status_code == 200
    # A replay carrying a fake line under the witness's own name and key ID, and a bad line by
    # the log's key ID: the first is dropped from what is stored, the second is a 403.
    ours = CosignatureV1Signer(WITNESS_NAME, WITNESS_SEED)
    fake = f"\u2014 {WITNESS_NAME} " + b64encode(ours.key_id.to_bytes(4, "big") + bytes(72))
    assert add(witness, body(4, [], n4 + (fake + "\n").encode())).status_code == 200
    stored = latest(witness).content
    opened = verify_note(stored, [parse_vkey(cosigner_vkey()), LOG.verifier()])
    assert len(opened.verified) == 2 and not opened.unverified
    text, _, sigs = n4.decode().partition("\n\n")
    name, b64 = sigs.rstrip("\n").removeprefix("\u2014 ").split(" ")
    raw = bytearray(base64.b64decode(b64))
    raw[10] ^= 1
    bad_sig = f"{text}\n\n\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n".encode()
    assert add(witness, body(4, [], bad_sig)).status_code == 403
    # Equal sizes with a (non-empty) proof, a 64th proof line: 422 and 400.
    assert add(witness, body(4, [bytes(32)], n4)).status_code == 422
    n10 = log.grow(random_entries(6, 2))
    assert add(witness, body(4, [bytes(32)] * 64, n10)).status_code == 400
    # Extension lines are cosigned as part of the text.
    ext = sign_note(n10.decode().split("\n\n")[0] + "\n" + "ext line\n", [LOG])
    r = add(witness, body(4, log.proof(4, 10), ext))
    assert r.status_code == 200
    verify_note(ext + r.content, [parse_vkey(cosigner_vkey())])
    log.store.close()


def test_empty_root_checked_after_size_checks_and_configured_start(tmp_path: Path) -> None:
    empty_bad = sign_note(f"{ORIGIN}\n0\n{b64encode(bytes(32))}\n", [LOG])
    cfg = write_config(tmp_path, [(ORIGIN, LOG.verifier().vkey())])
    w = WitnessProc(tmp_path / "wstate", args=["--config", str(cfg)]).start()
    try:
        assert add(w, body(1, [], empty_bad)).status_code == 400  # old > size comes first
        assert add(w, body(0, [], empty_bad)).status_code == 422
    finally:
        w.stop()
    # A configured start the stored state does not extend: the witness refuses to start.
    log = Log(tmp_path / "log")
    note = log.grow(random_entries(5, 1))
    w = WitnessProc(tmp_path / "wstate", args=["--config", str(cfg)]).start()
    assert add(w, body(0, [], note)).status_code == 200
    w.stop()
    text = cfg.read_text() + f'start_size = 7\nstart_root = "{b64encode(bytes(32))}"\n'
    cfg.write_text(text)
    with pytest.raises(RuntimeError, match="configured start"):
        WitnessProc(tmp_path / "wstate", args=["--config", str(cfg)]).start(timeout=15)
    log.store.close()


def test_witness_environment_overrides_and_print_config(tmp_path: Path) -> None:
    import subprocess
    import sys

    from witness.config import WitnessConfigError, load_config

    cfg = write_config(tmp_path, [(ORIGIN, LOG.verifier().vkey())])
    c = load_config(cfg, {"listen": "127.0.0.1:9"}, {"WITNESS_LISTEN": "127.0.0.1:8", "WITNESS_BURST": "7"})
    assert (c.listen, c.burst) == ("127.0.0.1:9", 7)  # flags win over the environment
    for bad in ({"WITNESS_COLOUR": "red"}, {"WITNESS_BURST": "x"}):
        with pytest.raises(WitnessConfigError, match=next(iter(bad))):
            load_config(cfg, {}, bad)
    c = load_config(cfg, {}, {"WITNESS_HEADER_TIMEOUT": "2.5", "WITNESS_MAX_CONNECTIONS_PER_CLIENT": "16"})
    assert (c.header_timeout, c.max_connections_per_client) == (2.5, 16)
    for bad in ({"WITNESS_HEADER_TIMEOUT": "0"}, {"WITNESS_MAX_CONNECTIONS_PER_CLIENT": "-1"}):
        with pytest.raises(WitnessConfigError, match=next(iter(bad)).removeprefix("WITNESS_").lower()):
            load_config(cfg, {}, bad)
    import os

    out = subprocess.run([sys.executable, "-m", "witness.cli", "serve", "--config", str(cfg),
                          "--print-config"], capture_output=True, text=True, timeout=60, check=False,
                         env=dict(os.environ, WITNESS_RATE_PER_LOG="3.5"))
    assert out.returncode == 0 and "rate_per_log = 3.5" in out.stdout, out.stderr


def test_witness_keys_file_names_the_log(tmp_path: Path) -> None:
    """[[log]] keys_file: the log's keys from a file (one per line); the origin is their name."""
    from witness.config import WitnessConfigError, load_config

    (tmp_path / "log.vkey").write_text(f"# published by the log\n{LOG.verifier().vkey()}\n")
    write_key(tmp_path / "witness.key", Ed25519Signer(WITNESS_NAME, WITNESS_SEED))
    cfg = tmp_path / "witness.toml"
    cfg.write_text('[witness]\nlog_format = "json"\n\n[[log]]\nkeys_file = "log.vkey"\n')
    c = load_config(cfg, {}, {})
    assert list(c.logs) == [ORIGIN] and c.log_format == "json"
    assert load_config(cfg, {}, {"WITNESS_ACCESS_LOG": "true"}).access_log is True
    for body, msg in [('keys_file = "none.vkey"', "cannot read"),
                      (f'keys_file = "log.vkey"\nkeys = ["{LOG.verifier().vkey()}"]', "do not go together"),
                      ('keys_file = "log.vkey"\norigin = "other.example/log"', "must be a log key named")]:
        cfg.write_text(f"[[log]]\n{body}\n")
        with pytest.raises(WitnessConfigError, match=msg):
            load_config(cfg, {}, {})
    cfg.write_text('[witness]\nlog_format = "xml"\n')
    with pytest.raises(WitnessConfigError, match="log_format"):
        load_config(cfg, {}, {})
