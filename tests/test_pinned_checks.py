"""Pinned checks: one test per verification, storage or witness check that a refactor could
delete while every other test still passed.

Each test asserts the specific refusal (exception type and a message naming the problem), and
is built so that nothing else catches the damage if that one check is gone: the inputs get
past every other check (the same attributes, a self-consistent tree, a correctly signed
cosignature), so the test fails exactly when its check is removed or weakened.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgpack
import nacl.signing
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from client import cli, merkle
from client.attest import check_dsse
from client.audit import full_audit
from client.checkpoint import Checkpoint
from client.encoding import b64encode
from client.errors import ConsistencyError, MalformedError, PolicyError, SignatureError
from client.keyfile import write_key
from client.logclient import LogClient
from client.metrics import Registry
from client.note import (
    CosignatureV1Signer,
    ECDSASigner,
    Ed25519Signer,
    cosignature_message,
    parse_note,
    sign_note,
)
from client.policy import TrustPolicy, load_policy, policy_from_dict, policy_toml
from client.tiles import parse_tile_path
from client.verify import CLOCK_SKEW_SECONDS, verify_checkpoint
from tests.attestkit import envelope, make_signer, statement
from tests.conftest import ORIGIN, SEED
from tests.swtpm import Swtpm, require_tpm_tools
from tests.test_logclient import grow, random_entries
from tlog.fsck import fsck
from tlog.storage import LogStore, StorageError, tile_key
from tlog.witnessing import WitnessCollector, WitnessState
from witness.protocol import parse_request
from witness.store import WitnessStore

LOG = Ed25519Signer(ORIGIN, SEED)
NOW = 1_700_000_000  # a fixed "now" for the clock-dependent checks
ROOT = hashlib.sha256(b"pinned root").digest()
WITNESS_NAMES = tuple(f"witness.pinned/w{i}" for i in range(3))


def _sign(text: str) -> bytes:
    return sign_note(text, [LOG])


class BrokenClockCosigner(CosignatureV1Signer):
    """A witness whose clock may be anywhere in 0..2^64-1: the real signer refuses to stamp
    outside 0..2^63-1, so the verifiers' bounds are exercised with this one."""

    def sign(self, msg: bytes) -> bytes:
        ts = int(self.clock())
        return ts.to_bytes(8, "big") + self._key.sign(cosignature_message(msg, ts))


def cosigner(i: int, clock: Callable[[], float]) -> CosignatureV1Signer:
    """Witness i's cosigner (fixed key), stamping with `clock`."""
    return BrokenClockCosigner(WITNESS_NAMES[i], bytes([0x60 + i]) * 32, clock=clock)


def at(ts: int) -> Callable[[], float]:
    """A clock stuck at `ts`, kept an int so that it is exact beyond 2^53 (the signer stamps
    `int(clock())`)."""
    return lambda: ts


def checkpoint_note(size: int = 5, root: bytes = ROOT) -> bytes:
    return _sign(Checkpoint(ORIGIN, size, root).text())


def cosign(note: bytes, signers: list[CosignatureV1Signer]) -> bytes:
    """`note` with a cosignature line by each signer appended."""
    parsed = parse_note(note)
    return sign_note(parsed.text, list(signers), existing=parsed.signatures)


def witness_policy(quorum: int) -> TrustPolicy:
    return TrustPolicy(ORIGIN, (LOG.verifier(),),
                       witnesses=tuple(cosigner(i, time.time).verifier() for i in range(3)),
                       witness_quorum=quorum)


def new_store(path: Path, entries: list[bytes] | None = None) -> LogStore:
    store = LogStore(path, create=True, map_size=1 << 28)
    store.initialize(ORIGIN, _sign)
    if entries:
        grow(store, LOG, entries)
    return store


# --- 1. TPM anchoring (client/tpmattest.py) ---------------------------------------------------

AK_HANDLE = 0x81000011  # `tlog tpm init`'s default


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[Swtpm]:
    require_tpm_tools()
    tpm = Swtpm(tmp_path / "tpm").start()
    yield tpm
    tpm.stop()


def _attestation_doc(raw: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in raw.items()}


def _with_point(public_area: bytes, key: ec.EllipticCurvePublicKey) -> bytes:
    """The TPMT_PUBLIC `public_area` (attributes, scheme, everything) with another P-256 point:
    what a software key dressed up as the TPM key looks like."""
    nums = key.public_numbers()
    tail = b"".join(len(c).to_bytes(2, "big") + c
                    for c in (nums.x.to_bytes(32, "big"), nums.y.to_bytes(32, "big")))
    size = (32).to_bytes(2, "big")
    assert public_area[-68:-66] == size and public_area[-34:-32] == size  # x and y close the area
    return public_area[: -len(tail)] + tail


def test_tpm_anchoring_checks_the_certified_name_and_the_origin(swtpm: Swtpm) -> None:
    """A genuine TPM2_Certify shown beside a software key's public area (same attributes, the
    policy's ECDSA key) is refused because the certified name is not that key's name; a
    certification made for another origin is refused because of the qualifying data. Both
    documents pass every other check, so each refusal is that one check's."""
    from client.tpmattest import check_anchoring, parse_public, qualifying_data, verify_key_attestation
    from tlog.tpm import open_signer

    tpm_signer = open_signer(ORIGIN, swtpm.tcti, create=True)
    try:
        raw = tpm_signer.key.certify_with_ak(AK_HANDLE, qualifying_data(ORIGIN))
        elsewhere = tpm_signer.key.certify_with_ak(AK_HANDLE, qualifying_data("other.example/log"))
    finally:
        tpm_signer.key.close()
    ak_name = parse_public(raw["ak_public"]).name.hex()
    genuine = _attestation_doc(raw)
    policy = TrustPolicy(ORIGIN, (LOG.verifier(), tpm_signer.verifier()), "all", tpm_aks=(ak_name,))
    assert check_anchoring(genuine, policy).key.spki_der == tpm_signer.spki_der  # the control

    soft = ec.generate_private_key(ec.SECP256R1())
    soft_public = _with_point(raw["key_public"], soft.public_key())
    parsed = parse_public(soft_public)
    assert parsed.attributes == parse_public(raw["key_public"]).attributes  # fixedTPM etc. claimed
    soft_signer = ECDSASigner(ORIGIN, soft)
    assert parsed.spki_der == soft_signer.spki_der
    soft_policy = TrustPolicy(ORIGIN, (LOG.verifier(), soft_signer.verifier()), "all", tpm_aks=(ak_name,))
    with pytest.raises(PolicyError, match="the certification is of another key than the one presented"):
        check_anchoring(dict(genuine, key_public=base64.b64encode(soft_public).decode()), soft_policy)

    other = _attestation_doc(elsewhere)
    with pytest.raises(PolicyError, match="the certification was not made for this log"):
        check_anchoring(other, policy)
    # The same document is a valid attestation for the origin it was made for.
    assert verify_key_attestation(other, "other.example/log", (ak_name,)).key.spki_der == \
        tpm_signer.spki_der


# --- 2. `tlog-client audit --full` compares the replayed root (client/audit.py) ---------------


class TileServer:
    """A small real HTTP server: the C2SP read API (/checkpoint, /tile/...) of one LogStore,
    with /checkpoint answered by whatever note the test sets."""

    def __init__(self, store: LogStore, checkpoint: bytes) -> None:
        self.store, self.checkpoint = store, checkpoint
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, ctype = outer.answer(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path: str) -> tuple[bytes | None, str]:
        if path == "/checkpoint":
            return self.checkpoint, "text/plain; charset=utf-8"
        if path == "/v1/log":
            return json.dumps({"origin": ORIGIN, "raw_entries_allowed": True}).encode(), "application/json"
        if path.startswith("/tile/"):
            ref = parse_tile_path(path[1:])
            if ref.level is None:
                return self.store.bundle(ref.index, ref.width), "application/octet-stream"
            return self.store.tile(ref.level, ref.index, ref.width), "application/octet-stream"
        return None, "text/plain"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_full_audit_compares_the_replayed_root_with_the_signed_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Tree B's entries and tiles (which agree with each other: every tile check passes) served
    under a checkpoint the log key signed for tree A of the same size: only the final
    comparison of the replayed root with the checkpoint's can tell, and it must."""
    size = 300  # a full bundle, a partial one, and a level-1 partial tile
    tree_a = new_store(tmp_path / "a", random_entries(size, 1))
    tree_b = new_store(tmp_path / "b", random_entries(size, 2))
    root_a, root_b = tree_a.head().root, tree_b.head().root
    assert root_a != root_b
    server = TileServer(tree_b, tree_b.checkpoint())
    policy = TrustPolicy(ORIGIN, (LOG.verifier(),), allow_raw_log=True, url=server.url)
    try:
        with LogClient(server.url, policy) as client:  # the control: B's own checkpoint passes
            assert full_audit(client, client.checkpoint()).root == root_b
        server.checkpoint = tree_a.checkpoint()
        with LogClient(server.url, policy) as client:
            vc = client.checkpoint()
            assert (vc.size, vc.root) == (size, root_a)  # validly signed
            with pytest.raises(ConsistencyError, match=re.escape(
                    f"replaying {size} entries gives root {b64encode(root_b)}, the checkpoint says "
                    f"{b64encode(root_a)}")):
                full_audit(client, vc)
        policy_file = tmp_path / "policy.toml"
        policy_file.write_text(policy_toml(policy))
        capsys.readouterr()
        code = cli.main(["audit", "--full", "--policy", str(policy_file), "--no-state", "--quiet"])
        out = capsys.readouterr()
        assert code == cli.EXIT_FAILED, out
        assert f"LOG INCONSISTENT: replaying {size} entries gives root {b64encode(root_b)}" in out.err
        assert json.loads(out.out)["evidence"]["new_checkpoint"] == tree_a.checkpoint().decode()
    finally:
        server.close()
        tree_a.close()
        tree_b.close()


# --- 3. Durability: LMDB opened with sync and metasync ----------------------------------------


def _assert_durable(flags: dict[str, bool], what: str) -> None:
    assert flags["sync"], f"{what}: LMDB opened without sync (MDB_NOSYNC): commits not fsynced"
    assert flags["metasync"], f"{what}: LMDB opened without metasync (MDB_NOMETASYNC)"
    assert not flags["map_async"], f"{what}: LMDB opened with MDB_MAPASYNC"


def test_lmdb_environments_fsync_every_commit(tmp_path: Path) -> None:
    """The log's and the witness's LMDB environments are opened with sync and metasync, so a
    commit is on disk before anyone is answered. A kill -9 keeps the page cache and so cannot
    show a missing fsync: the flags are read from the environment itself."""
    store = LogStore(tmp_path / "log", create=True, map_size=1 << 24)
    store.initialize(ORIGIN, _sign)
    _assert_durable(store.env.flags(), "LogStore(create=True)")
    store.close()
    for kwargs in ({}, {"readonly": False}):  # how `tlog serve` and `tlog fsck` open it
        again = LogStore(tmp_path / "log", map_size=1 << 24, **kwargs)  # type: ignore[arg-type]
        try:
            _assert_durable(again.env.flags(), f"LogStore({kwargs})")
        finally:
            again.close()
    witness = WitnessStore(tmp_path / "witness", map_size=1 << 24)
    try:
        _assert_durable(witness.env.flags(), "WitnessStore")
    finally:
        witness.close()


# --- 4. A policy listing witnesses with witness_quorum = 0 (client/policy.py) ------------------

QUORUM_ZERO = "policy: witnesses are listed but witness_quorum is 0"


def test_a_policy_with_witnesses_and_quorum_zero_is_refused(tmp_path: Path) -> None:
    """Witnesses listed with a quorum of 0 would silently turn witness checking off: refused
    from a TOML file, a JSON file, a dict and the constructor, with a message saying why."""
    vkeys = [cosigner(i, time.time).verifier().vkey() for i in range(3)]
    doc = {"origin": ORIGIN, "log_keys": [LOG.verifier().vkey()], "witnesses": vkeys, "witness_quorum": 0}
    toml = tmp_path / "policy.toml"
    toml.write_text(f'origin = "{ORIGIN}"\nlog_keys = ["{LOG.verifier().vkey()}"]\n'
                    f"witnesses = {json.dumps(vkeys)}\nwitness_quorum = 0\n")
    js = tmp_path / "policy.json"
    js.write_text(json.dumps(doc))
    for path in (toml, js):
        with pytest.raises(MalformedError, match=QUORUM_ZERO):
            load_policy(path)
    with pytest.raises(MalformedError, match=QUORUM_ZERO):
        policy_from_dict(doc)
    with pytest.raises(MalformedError, match=QUORUM_ZERO):
        TrustPolicy(ORIGIN, (LOG.verifier(),), witnesses=witness_policy(1).witnesses, witness_quorum=0)
    js.write_text(json.dumps(doc | {"witness_quorum": 1}))  # the control: a quorum of 1 loads
    assert load_policy(js).witness_quorum == 1
    with pytest.raises(MalformedError, match="say how many must cosign"):  # no silent default
        policy_from_dict({k: v for k, v in doc.items() if k != "witness_quorum"})


# --- 5. Future-dated cosignatures never count (client/verify.py) -------------------------------


def _quorum_error(counted: int, future: int, quorum: int) -> str:
    return (rf"checkpoint has {counted} trusted witness cosignature\(s\) \({future} more dated in the "
            rf"future\), the policy needs {quorum} of 3")


def test_future_dated_cosignatures_never_count_toward_the_quorum() -> None:
    """A cosignature dated beyond the clock skew does not count: not alone, not beside valid
    ones (quorum 2: one valid + one ahead is refused, two ahead are refused)."""
    note = checkpoint_note()
    w0, w1 = cosigner(0, at(NOW - 10)), cosigner(1, at(NOW - 20))
    ahead1, ahead2 = cosigner(1, at(NOW + 3600)), cosigner(2, at(NOW + 3600))
    two = witness_policy(2)
    assert verify_checkpoint(cosign(note, [w0, w1]), two, now=NOW).witnesses == WITNESS_NAMES[:2]
    with pytest.raises(PolicyError, match=_quorum_error(1, 1, 2)):
        verify_checkpoint(cosign(note, [w0, ahead2]), two, now=NOW)
    with pytest.raises(PolicyError, match=_quorum_error(0, 2, 2)):
        verify_checkpoint(cosign(note, [ahead1, ahead2]), two, now=NOW)
    with pytest.raises(PolicyError, match=_quorum_error(0, 1, 1)):
        verify_checkpoint(cosign(note, [ahead2]), witness_policy(1), now=NOW)
    # The skew boundary: exactly CLOCK_SKEW_SECONDS ahead counts, one second more does not.
    edge = cosigner(2, at(NOW + CLOCK_SKEW_SECONDS))
    assert verify_checkpoint(cosign(note, [w0, edge]), two, now=NOW).witnesses == (
        WITNESS_NAMES[0], WITNESS_NAMES[2])
    with pytest.raises(PolicyError, match=_quorum_error(1, 1, 2)):
        verify_checkpoint(cosign(note, [w0, cosigner(2, at(NOW + CLOCK_SKEW_SECONDS + 1))]), two, now=NOW)


# --- 6. The published cosigned checkpoint never moves backward ---------------------------------


class FakeWitness:
    """A real HTTP server speaking C2SP add-checkpoint that cosigns whatever it is sent (with
    a cosignature/v1 key and a settable clock); it can hold the answer for a size until
    released, or refuse a size with 503."""

    def __init__(self, i: int, clock: Callable[[], float] = time.time) -> None:
        self.cosigner = cosigner(i, clock)
        self.vkey = self.cosigner.verifier().vkey()
        self.hold: dict[int, threading.Event] = {}
        self.refuse: set[int] = set()
        self.received: dict[int, threading.Event] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                text = parse_note(parse_request(body).note).text
                size = int(text.split("\n")[1])
                outer.received.setdefault(size, threading.Event()).set()
                gate = outer.hold.get(size)
                if gate is not None:
                    gate.wait(30)
                if size in outer.refuse:
                    answer, status = b"not now\n", 503
                else:
                    signed = sign_note(text, [outer.cosigner])
                    answer, status = parse_note(signed).signatures[-1].line().encode(), 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        for gate in self.hold.values():
            gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _collector(store: LogStore, witnesses: list[FakeWitness], quorum: int,
               published: list[tuple[int, bytes]]) -> WitnessCollector:
    return WitnessCollector(store, [(w.url, w.vkey) for w in witnesses], quorum, timeout=5.0,
                            interval=0.0, registry=Registry(worker_label=False),
                            on_publish=lambda size, note: published.append((size, note)))


def test_publish_cosigned_only_moves_forward(tmp_path: Path) -> None:
    """`LogStore.publish_cosigned` refuses a smaller size than the one recorded (and says so
    by returning False), takes the same size again (fresher cosignatures), and refuses a
    size beyond the tree."""
    store = new_store(tmp_path / "log", random_entries(10, 3))
    note10 = store.checkpoint()
    grow(store, LOG, random_entries(10, 4))
    note20 = store.checkpoint()
    try:
        assert store.publish_cosigned(20, note20) is True
        assert store.publish_cosigned(10, note10) is False
        assert store.cosigned() == (20, note20)
        refreshed = cosign(note20, [cosigner(0, time.time)])
        assert store.publish_cosigned(20, refreshed) is True
        assert store.cosigned() == (20, refreshed)
        with pytest.raises(StorageError, match="cosigned size 21 is beyond the tree"):
            store.publish_cosigned(21, note20)
    finally:
        store.close()


def test_a_late_witness_round_never_replaces_a_newer_cosigned_checkpoint(tmp_path: Path) -> None:
    """The real WitnessCollector, real HTTP: a round for size 10 whose only cosignature comes
    back after the round for size 20 was published must not replace it, and the log must not
    be told of it (on_publish moves what workers serve).

    The collector's thread runs one round at a time, so the late round is made by running two
    rounds at once: the interleaving the compare inside the store's write transaction is there
    for (and that any change to the loop, or a second publisher, could bring)."""
    store = new_store(tmp_path / "log", random_entries(10, 3))
    note10 = store.checkpoint()
    grow(store, LOG, random_entries(10, 4))
    note20 = store.checkpoint()
    slow, other = FakeWitness(0), FakeWitness(1)
    slow.hold[10] = threading.Event()
    other.refuse.add(10)
    published: list[tuple[int, bytes]] = []
    collector = _collector(store, [slow, other], 1, published)
    collector.start()
    late = threading.Thread(target=collector._round, args=(10, note10))
    try:
        late.start()
        assert slow.received.setdefault(10, threading.Event()).wait(10)
        collector._round(20, note20)
        assert store.cosigned() is not None and store.cosigned()[0] == 20  # type: ignore[index]
        newest = store.cosigned()
        slow.hold[10].set()  # the size-10 cosignature arrives now, valid but late
        late.join(15)
        assert not late.is_alive()
        assert collector.m_requests.value(WITNESS_NAMES[0], "cosigned") == 2  # it did verify
        assert store.cosigned() == newest
        assert {size for size, _ in published} == {20}
        assert collector._published_size == 20
    finally:
        collector.stop()
        slow.close()
        other.close()
        store.close()


# --- 7. LogClient.attestation checks the bytes against the address ----------------------------


def test_attestation_bytes_must_hash_to_the_address_asked_for() -> None:
    """An envelope fetched by its content address is refused unless its SHA-256 is that
    address: another stored envelope, or the right one with one byte changed."""
    right, wrong = b'{"payload":"cmlnaHQ=","payloadType":"t","signatures":[]}', b'{"other":1}'
    digest, other_digest = hashlib.sha256(right).hexdigest(), hashlib.sha256(wrong).hexdigest()
    flipped = bytearray(right)
    flipped[3] ^= 1
    flipped_digest = "ab" * 32
    answers = {digest: right, other_digest: right, flipped_digest: bytes(flipped)}

    def handler(request: httpx.Request) -> httpx.Response:
        asked = request.url.path.removeprefix("/v1/attestations/")
        return httpx.Response(200, content=answers[asked])

    with LogClient("http://log.invalid", transport=httpx.MockTransport(handler)) as client:
        assert client.attestation(digest) == right  # the control
        for asked in (other_digest, flipped_digest):
            with pytest.raises(MalformedError, match=f"attestation {asked} does not hash to its address"):
                client.attestation(asked)


# --- 8. fsck names the damage (tlog/fsck.py, `tlog fsck`) --------------------------------------


def _dsse_store(path: Path) -> tuple[LogStore, list[str]]:
    """A log of raw entries and DSSE attestations (envelopes in the `attest` database);
    returns the store and the envelopes' digests by entry (\"\" for raw entries)."""
    store = new_store(path)
    signer = make_signer("ed25519")
    digests: list[str] = []
    for i in range(6):
        if i % 2:
            sub = check_dsse(envelope(statement([hashlib.sha256(b"a%d" % i).hexdigest()]), [signer]),
                             [signer.pem])
            store.append([sub.leaf], _sign, blobs=[sub.canonical])
            digests.append(hashlib.sha256(sub.canonical).hexdigest())
        else:
            store.append([b"raw entry %d" % i], _sign)
            digests.append("")
    return store, digests


def _fsck_cli(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tlog.cli", "fsck", "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_fsck_finds_a_flipped_byte_in_a_stored_envelope(tmp_path: Path) -> None:
    """One byte of one stored envelope flipped: fsck (library and `tlog fsck`) names the entry
    and its envelope, and nothing else."""
    data = tmp_path / "data"
    store, digests = _dsse_store(data)
    write_key(data / "log.key", LOG)
    try:
        assert fsck(store, [LOG.verifier()]).ok
        # An envelope kept content-addressed, as logs before `envelopes` kept them, is found.
        with store.env.begin(write=True) as txn:
            first = bytes(txn.pop(struct.pack(">Q", 1), db=store.envelopes))
            txn.put(bytes.fromhex(digests[1]), first, db=store.attest)
        assert fsck(store, [LOG.verifier()]).ok
        key = struct.pack(">Q", 3)
        with store.env.begin(write=True) as txn:
            blob = bytearray(txn.get(key, db=store.envelopes))
            blob[len(blob) // 2] ^= 1
            txn.put(key, bytes(blob), db=store.envelopes)
        problem = f"entry 3: its envelope {digests[3]} is missing or does not match its digest"
        assert fsck(store, [LOG.verifier()]).problems == [problem]
    finally:
        store.close()
    out = _fsck_cli(data)
    assert out.returncode == 1 and f"fsck: {problem}\n" in out.stdout, out.stdout + out.stderr
    assert "1 problem(s)" in out.stdout


def test_fsck_finds_a_signed_tree_head_that_is_not_the_entries_tree(tmp_path: Path) -> None:
    """A tree head and checkpoint (validly signed, agreeing with each other) whose root is not
    the one the entries give: only the comparison with the rebuilt root finds it. And a
    checkpoint whose root differs from the tree head's: the checkpoint comparison finds it."""
    data = tmp_path / "data"
    store = new_store(data, random_entries(600, 5))
    write_key(data / "log.key", LOG)
    try:
        assert fsck(store, [LOG.verifier()]).ok
        with store.env.begin(write=True) as txn:
            txn.put(b"state", msgpack.packb([600, ROOT]), db=store.meta)
            txn.put(b"checkpoint", checkpoint_note(600, ROOT), db=store.meta)
        rebuilt = "root derived from entries differs from the stored tree head"
        assert fsck(store, [LOG.verifier()]).problems == [rebuilt]
    finally:
        store.close()
    out = _fsck_cli(data)
    assert out.returncode == 1 and f"fsck: {rebuilt}\n" in out.stdout, out.stdout + out.stderr

    store = new_store(tmp_path / "other", random_entries(600, 5))
    try:
        with store.env.begin(write=True) as txn:
            txn.put(b"checkpoint", checkpoint_note(600, ROOT), db=store.meta)
        assert fsck(store, [LOG.verifier()]).problems == [
            "checkpoint says size 600, tree head says 600 (or their roots differ)"]
    finally:
        store.close()


# The damages of tests/test_storage.py::test_fsck_finds_damage, each with the problem(s) it
# must be reported as (that test only asserts that there is some problem).
FSCK_DAMAGES: dict[str, list[str]] = {
    "tile": ["tile 0/1 differs from the one derived from entries"],
    "interior": ["interior of tile 0/0 is wrong"],
    "bundle": ["leaf index has no entry for index 511", "tile 0/1 differs from the one derived from entries",
               "root derived from entries differs from the stored tree head"],
    "leafidx": ["leaf index has no entry for index 10", "leaf index has 599 entries, expected 600"],
    "checkpoint": ["checkpoint does not verify: note has no signature by a trusted key"],
    "state": ["checkpoint says size 600, tree head says 599 (or their roots differ)",
              "root derived from entries differs from the stored tree head",
              "leaf index has 600 entries, expected 599"],
    "extra_tile": ["5 hash tiles stored, 4 expected"],
    "edge_entry": ["leaf index has no entry for index 590",
                   "tile 0/2 differs from the one derived from entries",
                   "root derived from entries differs from the stored tree head"],
    "extra_edge": ["89 entries of the partial bundle stored, 88 expected"],
}


@pytest.mark.parametrize("damage", sorted(FSCK_DAMAGES))
def test_fsck_names_each_kind_of_damage(tmp_path: Path, damage: str) -> None:
    """Each damage is reported as the problem it is, not just as "a problem"."""
    entries = random_entries(600, 1)
    store = new_store(tmp_path / "db")
    u64 = struct.Struct(">Q")
    try:
        store.append(entries, _sign)
        assert fsck(store, [LOG.verifier()]).ok
        with store.env.begin(write=True) as txn:
            if damage in ("tile", "interior", "bundle"):
                db, key, pos = {"tile": (store.tiles, tile_key(0, 1), 40),
                                "interior": (store.interior, tile_key(0, 0), 0),
                                "bundle": (store.bundles, u64.pack(1), -1)}[damage]
                raw = bytearray(txn.get(key, db=db))
                raw[pos] ^= 1
                txn.put(key, bytes(raw), db=db)
            elif damage == "leafidx":
                txn.delete(merkle.leaf_hash(entries[10]), db=store.leafidx)
            elif damage == "checkpoint":
                other = Ed25519Signer(ORIGIN, bytes(32))
                txn.put(b"checkpoint", sign_note(f"{ORIGIN}\n600\n{'A' * 43}=\n", [other]), db=store.meta)
            elif damage == "state":
                txn.put(b"state", msgpack.packb([599, bytes(32)]), db=store.meta)
            elif damage == "extra_tile":
                txn.put(tile_key(0, 9), bytes(32), db=store.tiles)
            elif damage == "edge_entry":  # entries 512..599 make up the partial bundle
                txn.put(u64.pack(590), b"tampered", db=store.edge)
            elif damage == "extra_edge":
                txn.put(u64.pack(700), b"beyond the tree", db=store.edge)
        problems = fsck(store, [LOG.verifier()]).problems
    finally:
        store.close()
    missing = [p for p in FSCK_DAMAGES[damage] if p not in problems]
    assert not missing, problems


# --- 9. Cosignature timestamps at the 2^63 boundary --------------------------------------------
# C2SP tlog-cosignature: the timestamp is a u64be of POSIX seconds that MUST be <= 2^63 - 1, so a
# line carrying 2^63 or more is not a valid cosignature even when its Ed25519 signature (over
# "time <decimal>") verifies; verifiers may refuse future timestamps (ours do not count them).

MAX_TS = (1 << 63) - 1
BEYOND = [1 << 63, (1 << 64) - 1]


def _stamped(ts: int) -> tuple[CosignatureV1Signer, bytes, bytes]:
    """(cosigner, checkpoint text, its cosignature bytes at `ts`), Ed25519 checked directly, so
    any refusal below is the timestamp bound's and not a bad signature's."""
    w = cosigner(1, at(ts))
    text = Checkpoint(ORIGIN, 5, ROOT).text().encode()
    sig = w.sign(text)
    assert int.from_bytes(sig[:8], "big") == ts
    nacl.signing.VerifyKey(w.public).verify(cosignature_message(text, ts), sig[8:])
    return w, text, sig


@pytest.mark.parametrize("ts", [*BEYOND, -1])
def test_the_cosigner_refuses_to_stamp_outside_the_spec(ts: int) -> None:
    """client/note.py: a witness whose clock is past 2^63 - 1 signs nothing (every verifier
    would refuse it) rather than emitting a bad cosignature or crashing on the encoding."""
    w = CosignatureV1Signer(WITNESS_NAMES[0], bytes(32), clock=at(ts))
    with pytest.raises(ValueError, match=r"must be in 0\.\.2\^63-1"):
        w.sign(b"text\n")
    assert CosignatureV1Signer(WITNESS_NAMES[0], bytes(32), clock=at(MAX_TS)).sign(b"text\n")


@pytest.mark.parametrize("ts", [MAX_TS, *BEYOND])
def test_the_cosignature_verifier_refuses_timestamps_from_2_63(ts: int) -> None:
    """client/note.py: 2^63 - 1 is a valid timestamp; 2^63 and 2^64 - 1 are not."""
    w, text, sig = _stamped(ts)
    assert w.verifier().verify(text, sig) is (ts == MAX_TS)


def test_verify_checkpoint_at_the_2_63_boundary() -> None:
    """client/verify.py: a cosignature at 2^63 - 1 verifies but is far in the future, so it
    does not count; one at 2^63 or 2^64 - 1 is an invalid signature by a listed witness."""
    note = checkpoint_note()
    w0 = cosigner(0, at(NOW - 10))
    one = witness_policy(1)
    max_line = cosign(note, [cosigner(1, at(MAX_TS))])
    with pytest.raises(PolicyError, match=_quorum_error(0, 1, 1)):
        verify_checkpoint(max_line, one, now=NOW)
    vc = verify_checkpoint(cosign(max_line, [w0]), one, now=NOW)
    assert vc.witnesses == (WITNESS_NAMES[0],) and vc.cosigned_at == NOW - 10
    invalid = re.escape(f"invalid signature by {WITNESS_NAMES[1]}+{cosigner(1, time.time).key_id:08x}")
    for ts in BEYOND:
        with pytest.raises(SignatureError, match=invalid):
            verify_checkpoint(cosign(note, [w0, cosigner(1, at(ts))]), one, now=NOW)


@pytest.mark.parametrize("ts", [MAX_TS, *BEYOND])
def test_the_log_refuses_witness_answers_at_the_2_63_boundary(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, ts: int) -> None:
    """tlog/witnessing.py, over real HTTP: a witness answering add-checkpoint with a
    cosignature at 2^63 - 1 (valid, far in the future) or at 2^63 / 2^64 - 1 (invalid) gets no
    credit; a present-day one does (the control)."""
    store = new_store(tmp_path / "log", random_entries(5, 6))
    note = store.checkpoint()
    fake = FakeWitness(1, at(ts))
    collector = _collector(store, [fake], 1, [])
    collector.start()
    w: WitnessState = collector.witnesses[0]
    try:
        caplog.set_level(logging.WARNING, logger="tlog.witnessing")
        assert collector._push(w, 5, note) is None
        expected = "dated" if ts == MAX_TS else "invalid signature by"
        assert any("answered without a valid cosignature" in r.getMessage() and expected in r.getMessage()
                   for r in caplog.records), [r.getMessage() for r in caplog.records]
        assert collector.m_requests.value(WITNESS_NAMES[1], "bad_cosignature") == 1
        assert not w.up and w.known_size is None
        fake.cosigner.clock = time.time
        sig = collector._push(w, 5, note)
        assert sig is not None and abs(int.from_bytes(sig.sig[:8], "big") - time.time()) < 60
    finally:
        collector.stop()
        fake.close()
        store.close()
