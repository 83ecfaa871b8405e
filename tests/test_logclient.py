"""LogClient against real servers: tile-computed proofs, retries, caching, full audit.

The 70,000-entry log is bulk-loaded at the storage level (far faster than over HTTP) and served by a
real `tlog serve`. Every inclusion proof the client computes from tiles is compared with the
proof the server's own code path builds (in process, from the same LMDB), and a sample of
indexes and size pairs (every tile edge, partial tiles included) with the HTTP proof API.
Faults are injected with an httpx transport wrapped around the real one.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from client import cli, merkle
from client.audit import full_audit, resume_path
from client.checkpoint import Checkpoint
from client.encoding import b64decode_std
from client.errors import (
    ConsistencyError,
    LogAPIError,
    MalformedError,
    NetworkError,
    PolicyError,
    TileError,
    VerificationError,
)
from client.keyfile import write_key
from client.logclient import LogClient
from client.note import Ed25519Signer, sign_note
from client.policy import TrustPolicy
from tests.conftest import ORIGIN, SEED
from tests.serverproc import ServerProc
from tlog.storage import LogStore

SIZE = 70_000
EDGES = [0, 1, 255, 256, 257, 511, 65279, 65280, 65535, 65536, 65537, 69631, 69632, 69888, 69999]
PAIRS = [(1, 2), (1, 256), (255, 257), (256, 65536), (65535, 65537), (257, 70000), (69999, 70000),
         (70000, 70000), (0, 70000), (1000, 65536), (65536, 69888)]


@dataclass
class Served:
    store: LogStore
    server: ServerProc
    signer: Ed25519Signer

    @property
    def policy(self) -> TrustPolicy:
        return TrustPolicy(ORIGIN, (self.signer.verifier(),), allow_raw_log=True)

    def client(self, **kw: object) -> LogClient:
        return LogClient(self.server.url, self.policy, **kw)  # type: ignore[arg-type]


def grow(store: LogStore, signer: Ed25519Signer, entries: list[bytes]) -> None:
    """Bulk-append in large transactions, signing one checkpoint per batch."""
    for lo in range(0, len(entries), 20000):
        store.append(entries[lo : lo + 20000], lambda t: sign_note(t, [signer]))


def serve_log(path: Path, entries: list[bytes], signer: Ed25519Signer | None = None) -> Served:
    """A log with `entries`, bulk-loaded, then served by a real `tlog serve`."""
    signer = signer or Ed25519Signer(ORIGIN, SEED)
    store = LogStore(path, create=True, map_size=1 << 30)
    store.initialize(ORIGIN, lambda t: sign_note(t, [signer]))
    grow(store, signer, entries)
    write_key(path / "log.key", signer)
    return Served(store, ServerProc(path, args=["--origin", ORIGIN]).start(), signer)


def random_entries(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(16, 48)) for _ in range(n)]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = serve_log(tmp_path_factory.mktemp("big") / "data", random_entries(SIZE, 1))
    try:
        yield s
    finally:
        s.server.stop()
        s.store.close()


class Faulty(httpx.BaseTransport):
    """Wraps the real transport; `fault(request)` may answer instead (fault injection)."""

    def __init__(self, fault: Callable[[httpx.Request], httpx.Response | None]) -> None:
        self.inner = httpx.HTTPTransport()
        self.fault = fault
        self.seen: list[str] = []

    def close(self) -> None:
        self.inner.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url.path)
        answer = self.fault(request)
        return answer if answer is not None else self.inner.handle_request(request)


# --- proofs from tiles ------------------------------------------------------------------------


def test_tile_proofs_equal_server_proofs_for_every_index(big: Served) -> None:
    with big.client() as client:
        vc = client.checkpoint()
        assert vc.size == SIZE
        with big.store.read_txn() as txn:
            server_side = merkle.RangeHashCache(big.store.node_reader(txn))
            for i in range(SIZE):
                assert client.inclusion_proof(i, SIZE, vc) == server_side.inclusion_proof(i, SIZE), i
        assert client.prefix_root(SIZE, vc) == vc.root
        fetched = client.fetches
        client.inclusion_proof(12345, SIZE, vc)
        assert client.fetches == fetched  # immutable tiles come from the cache


def test_tile_proofs_equal_the_http_proof_api(big: Served) -> None:
    rng = random.Random(7)
    sample = sorted({*EDGES, *(rng.randrange(SIZE) for _ in range(150))})
    with big.client() as client, httpx.Client(base_url=big.server.url, timeout=30) as http:
        vc = client.checkpoint()
        for size in (SIZE, 69999, 65537, 65536, 257):  # prefixes of the signed tree
            for i in [x for x in sample if x < size]:
                api = http.get("/v1/proof/inclusion", params={"index": i, "size": size}).json()
                assert [b64decode_std(h) for h in api["hashes"]] == client.inclusion_proof(i, size, vc)
        for old, new in PAIRS:
            api = http.get("/v1/proof/consistency", params={"old": old, "new": new}).json()
            assert [b64decode_std(h) for h in api["hashes"]] == client.consistency_proof(old, new, vc)
        for old, new in PAIRS:
            if old and new == SIZE:
                merkle.verify_consistency(old, new, client.prefix_root(old, vc), vc.root,
                                          client.consistency_proof(old, new, vc))
        receipt = client.prove_entry(65536, vc)
        assert receipt.leaf == big.store.entry(65536)


def test_partial_tile_falls_back_to_the_full_tile(big: Served) -> None:
    """C2SP: a partial tile may be deleted once its full tile exists; an older signed tree's
    right edge is read as a prefix of that (and still verified against its root)."""
    def gone(req: httpx.Request) -> httpx.Response | None:
        return httpx.Response(404) if ".p/" in req.url.path else None

    with big.store.read_txn() as txn:
        old = Checkpoint(ORIGIN, 1000, merkle.tree_root(1000, big.store.node_reader(txn)))
    transport = Faulty(gone)
    with big.client(transport=transport) as client:
        assert client.prefix_root(1000, old) == old.root
        proof = client.inclusion_proof(999, 1000, old)
    merkle.verify_inclusion(999, 1000, merkle.leaf_hash(big.store.entry(999)), proof, old.root)  # type: ignore[arg-type]
    assert "/tile/0/003.p/232" in transport.seen and "/tile/0/003" in transport.seen


def test_forged_tiles_are_refused_and_never_cached(big: Served) -> None:
    """A cache that serves a forged tile (or a forged pair, a tile and a parent that agree
    with it) once: the client refuses it, names it, keeps nothing of it, and proves
    correctly as soon as honest tiles come back."""
    honest = {}
    with httpx.Client(base_url=big.server.url, timeout=30) as http:
        for path in ("/tile/0/000", "/tile/1/000"):
            honest[path] = http.get(path).content
    fake0 = b"\1" * 8192
    hashes = [fake0[i : i + 32] for i in range(0, 8192, 32)]
    while len(hashes) > 1:
        hashes = [merkle.node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    fake1 = hashes[0] + honest["/tile/1/000"][32:]  # a parent that vouches for the forged tile
    forged = {"/tile/0/000": fake0, "/tile/1/000": fake1}
    mode = {"pair": False, "on": True}

    def poison(req: httpx.Request) -> httpx.Response | None:
        if mode["on"] and req.url.path in forged and (mode["pair"] or req.url.path == "/tile/0/000"):
            return httpx.Response(200, content=forged[req.url.path])
        return None

    for pair in (False, True):
        mode.update(pair=pair, on=True)
        with big.client(transport=Faulty(poison)) as client:
            vc = client.checkpoint()
            with pytest.raises(TileError) as info:
                client.prove_entry(3, vc)
            assert info.value.path == ("tile/1/000" if pair else "tile/0/000"), info.value
            mode["on"] = False  # the cache is honest again: nothing forged was kept
            receipt = client.prove_entry(3, vc)
        assert receipt.leaf == big.store.entry(3)


# --- faults -------------------------------------------------------------------------------------


def test_transient_failures_are_retried_with_backoff(big: Served) -> None:
    failures = {"n": 0}
    delays: list[float] = []

    def flaky(req: httpx.Request) -> httpx.Response | None:
        if failures["n"] < 2:
            failures["n"] += 1
            return httpx.Response(503, headers={"Retry-After": "1"})
        return None

    with big.client(transport=Faulty(flaky), sleep=delays.append) as client:
        assert client.checkpoint().size == SIZE
    # As long as Retry-After asks, never less, and jittered up to a quarter more.
    assert len(delays) == 2 and all(1.0 <= d <= 1.25 for d in delays) and delays[0] != delays[1]

    def down(req: httpx.Request) -> httpx.Response | None:
        raise httpx.ConnectError("refused", request=req)

    delays.clear()
    with big.client(transport=Faulty(down), sleep=delays.append, retries=3) as client, \
            pytest.raises(NetworkError):
        client.checkpoint()
    assert len(delays) == 3 and delays[0] < delays[2]  # exponential

    def broken(req: httpx.Request) -> httpx.Response | None:
        return httpx.Response(500, json={"error": {"code": "internal", "message": "boom"}})

    with big.client(transport=Faulty(broken), sleep=lambda _: None) as client, \
            pytest.raises(NetworkError) as info:
        client.checkpoint()
    assert isinstance(info.value, LogAPIError) and info.value.code == "internal"


def test_hostile_answers_are_refused(big: Served) -> None:
    def huge(req: httpx.Request) -> httpx.Response | None:
        return httpx.Response(200, content=b"x" * (2 << 20)) if req.url.path == "/checkpoint" else None

    with big.client(transport=Faulty(huge)) as client, pytest.raises(MalformedError, match="larger"):
        client.checkpoint()

    def short_tile(req: httpx.Request) -> httpx.Response | None:
        return httpx.Response(200, content=b"\0" * 31) if req.url.path.startswith("/tile/0/") else None

    with big.client(transport=Faulty(short_tile)) as client, pytest.raises(MalformedError, match="bytes"):
        client.inclusion_proof(5, SIZE, client.checkpoint())


def test_raw_logs_are_refused_unless_the_policy_allows(big: Served) -> None:
    strict = TrustPolicy(ORIGIN, (big.signer.verifier(),))
    with LogClient(big.server.url, strict) as client:
        client.check_log_kind()  # this server was started without --allow-raw

    def raw(req: httpx.Request) -> httpx.Response | None:
        if req.url.path == "/v1/log":
            return httpx.Response(200, json={"origin": ORIGIN, "raw_entries_allowed": True})
        return None

    with LogClient(big.server.url, strict, transport=Faulty(raw)) as client, pytest.raises(PolicyError):
        client.check_log_kind()


# --- full audit -----------------------------------------------------------------------------


def test_full_audit_recomputes_every_tile_and_resumes(big: Served, tmp_path: Path) -> None:
    resume = resume_path(tmp_path, ORIGIN)
    with big.client() as client:
        vc = client.checkpoint()

        def crash(done: int, total: int, rate: float) -> None:
            if done >= 40_000:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            full_audit(client, vc, resume=resume, progress=crash)
        assert resume.exists()
        report = full_audit(client, vc, resume=resume)
    assert 40_000 <= report.resumed_from < 40_000 + 256 and report.size == SIZE  # saved on interrupt
    assert report.replayed == SIZE - report.resumed_from and report.root == vc.root
    assert report.kinds == {"raw": report.replayed}


def test_full_audit_catches_a_doctored_bundle(big: Served) -> None:
    def doctored(req: httpx.Request) -> httpx.Response | None:
        if req.url.path == "/tile/entries/001":
            with httpx.Client(timeout=10) as http:
                body = bytearray(http.get(str(req.url)).content)
            body[5] ^= 1
            return httpx.Response(200, content=bytes(body))
        return None

    with big.client(transport=Faulty(doctored)) as client, pytest.raises(VerificationError, match="0/1"):
        full_audit(client, client.checkpoint())


def test_cli_audit_full_and_get(big: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.json"
    policy.write_bytes(orjson.dumps(dict(big.policy.to_dict(), url=big.server.url)))
    state = ["--state", str(tmp_path / "state")]
    assert cli.main(["audit", "--full", "--quiet", "--policy", str(policy), *state]) == 0
    out = capsys.readouterr().out
    assert f"replayed {SIZE} entries" in out and "entries/s" in out
    assert cli.main(["get", "65536", "--policy", str(policy), *state]) == 0
    assert '"index": 65536' in capsys.readouterr().out
    assert cli.main(["prove", "--consistency", "256", "65536", "--policy", str(policy), *state]) == 0
    assert cli.main(["get", str(SIZE), "--policy", str(policy), *state]) == 2
    assert cli.main(["get", "1", "--policy", str(policy), "--log", "http://127.0.0.1:9",
                     "--retries", "0", *state]) == 3


def test_consistency_error_carries_evidence(big: Served) -> None:
    exc = ConsistencyError("x", old_checkpoint=b"a\n", new_checkpoint=b"b\n", proof=(b"\1" * 32,))
    doc = exc.evidence()
    assert doc["old_checkpoint"] == "a\n" and doc["new_checkpoint"] == "b\n"
    assert doc["consistency_proof"] == ["AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]


def test_search_hits_are_proven_and_paging_is_bounded(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """`tlog-client search` proves every hit and checks it matches; a lying index fails."""
    from tests.attestkit import dsse_body, envelope, make_signer, sha256_hex, statement

    signer = make_signer("ed25519")
    srv = ServerProc(tmp_path / "data", args=["--origin", ORIGIN]).start()
    try:
        with httpx.Client(timeout=30) as http:
            for i in range(3):
                env = envelope(statement([sha256_hex(b"s%d" % i)]), [signer])
                assert http.post(srv.url + "/v1/entries", json=dsse_body(env, [signer])).status_code == 201
        from client.note import parse_vkey

        policy = TrustPolicy(ORIGIN, (parse_vkey(srv.vkey),), url=srv.url)
        pfile = tmp_path / "p.json"
        pfile.write_bytes(orjson.dumps(policy.to_dict()))
        state = ["--state", str(tmp_path / "state")]
        assert cli.main(["search", "--signer", signer.signer_id, "--policy", str(pfile), *state]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 3

        def lying(req: httpx.Request) -> httpx.Response | None:
            if req.url.path == "/v1/search":  # claims entry 0 matches another subject
                with httpx.Client(timeout=10) as h:
                    leaf = h.get(f"{srv.url}/v1/entries/0").content
                hit = {"index": 0, "leaf": base64.b64encode(leaf).decode()}
                return httpx.Response(200, json={"hits": [hit], "next_cursor": None})
            return None

        with LogClient(srv.url, policy, transport=Faulty(lying)) as client:
            vc = client.checkpoint()
            index, leaf = next(client.search("subject", "sha256:" + "0" * 64))
            with pytest.raises(VerificationError, match="not an entry matching"):
                client.prove_hit("subject", "sha256:" + "0" * 64, index, leaf, vc)
            with pytest.raises(VerificationError):  # a leaf that is not entry 0
                client.prove_hit("subject", "sha256:" + "0" * 64, 1, leaf, vc)

        def stuck(req: httpx.Request) -> httpx.Response | None:
            if req.url.path == "/v1/search":
                return httpx.Response(200, json={"hits": [], "next_cursor": 7})
            return None

        with LogClient(srv.url, policy, transport=Faulty(stuck)) as client, \
                pytest.raises(MalformedError, match="does not advance"):
            list(client.search("subject", "sha256:" + "0" * 64))
    finally:
        srv.stop()


def test_online_commands_refuse_a_raw_log(big: Served, tmp_path: Path) -> None:
    """A log that accepts raw entries is refused by every online command unless allowed."""
    def raw(req: httpx.Request) -> httpx.Response | None:
        if req.url.path == "/v1/log":
            return httpx.Response(200, json={"origin": ORIGIN, "raw_entries_allowed": True})
        return None

    strict = TrustPolicy(ORIGIN, (big.signer.verifier(),))
    with LogClient(big.server.url, strict, transport=Faulty(raw)) as client, pytest.raises(PolicyError):
        client.check_log_kind()
    pfile = tmp_path / "strict.json"
    pfile.write_bytes(orjson.dumps(dict(strict.to_dict(), url=big.server.url)))
    # The real server does not allow raw entries: strict policy passes there.
    assert cli.main(["get", "3", "--policy", str(pfile), "--state", str(tmp_path / "s")]) == 0
