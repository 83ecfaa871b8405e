"""The scaled-out log on real engines (Ceph RADOS Gateway, PostgreSQL 15): submissions and
receipts through front ends, the log read straight from the bucket by our client, by Go's
x/mod tlog and by `tlog-client audit --full`, caching headers, envelopes, search, and the
object store self-test."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import re
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
from client import cli as client_cli
from client.encoding import b64decode_std
from client.logclient import LogClient
from client.note import parse_vkey
from client.policy import TrustPolicy
from client.verify import verify_receipt_doc
from tests.attestkit import dsse_body, envelope, make_signer, sha256_hex, statement
from tests.distlog import ORIGIN, DistLog, wait_bucket_size
from tests.engines import S3_KEY, S3_SECRET, Ceph, Postgres, s3_admin
from tests.gobuild import build_go

HTTP = httpx.Client(timeout=30)


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    HTTP.close()


def submit_many(url: str, entries: list[bytes], concurrency: int = 32) -> list[httpx.Response]:
    """POST raw entries concurrently (the sequencer batches what arrives together)."""
    async def go() -> list[httpx.Response]:
        sem = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=60) as c:
            async def one(e: bytes) -> httpx.Response:
                async with sem:
                    return await c.post(url + "/v1/entries", json={"raw": base64.b64encode(e).decode()})
            return await asyncio.gather(*(one(e) for e in entries))
    return asyncio.run(go())


def entries(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(16, 64)) for _ in range(n)]


def bucket_get(d: DistLog, path: str) -> httpx.Response:
    """Anonymous GET from the bucket: what a CDN or a client sees."""
    return HTTP.get(f"{d.bucket_url()}/{path}")


def test_submit_verify_and_read_through_front_ends_and_the_bucket(dist: DistLog) -> None:
    srv = dist.start("a", "all")
    data = entries(300, 1)
    answers = submit_many(srv.url, data)
    assert [r.status_code for r in answers] == [201] * len(data), [r.text for r in answers][:3]
    indexes = [verify_receipt_doc(r.json(), [srv.vkey], e)[0] for r, e in zip(answers, data, strict=True)]
    assert sorted(indexes) == list(range(300))
    # Duplicates are answered with the first index, from the database's index.
    again = submit_many(srv.url, data[:5])
    assert [(r.status_code, r.json()["index"]) for r in again] == [(200, i) for i in indexes[:5]]

    # A second, front-end-only process answers reads and submissions for the same log.
    fe = dist.start("b", "frontend")
    assert fe.vkey == srv.vkey
    more = submit_many(fe.url, entries(20, 2))
    assert all(r.status_code == 201 for r in more)
    for r in more:
        verify_receipt_doc(r.json(), [srv.vkey])
    for i in (0, 255, 256, 319):
        assert HTTP.get(f"{fe.url}/v1/entries/{i}").status_code == 200

    # Everything a reader needs is in the bucket, with the caching rules of tlog-tiles.
    wait_bucket_size(dist, 320)
    cp = bucket_get(dist, "checkpoint")
    assert cp.status_code == 200 and cp.headers["cache-control"] == "no-cache"
    assert cp.content.startswith(f"{ORIGIN}\n320\n".encode())
    assert HTTP.get(srv.url + "/checkpoint").content == cp.content
    full, partial = bucket_get(dist, "tile/0/000"), bucket_get(dist, "tile/0/001.p/64")
    assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert partial.headers["cache-control"] == "no-cache"
    assert full.content == HTTP.get(srv.url + "/tile/0/000").content
    assert partial.content == HTTP.get(srv.url + "/tile/0/001.p/64").content
    bundle = bucket_get(dist, "tile/entries/000")
    assert bundle.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert bundle.content == HTTP.get(srv.url + "/tile/entries/000").content

    # Our verifying client, pointed at the bucket alone, checks proofs against the signed tree.
    policy = TrustPolicy(ORIGIN, (parse_vkey(srv.vkey),), allow_raw_log=True)
    with LogClient(dist.bucket_url(), policy) as client:
        vc = client.checkpoint()
        assert vc.size == 320
        for i in (0, 1, 255, 256, 300, 319):
            api = HTTP.get(srv.url + "/v1/proof/inclusion", params={"index": i, "size": 320}).json()
            assert client.inclusion_proof(i, 320, vc) == [b64decode_std(h) for h in api["hashes"]]
        assert client.log_info()["origin"] == ORIGIN


def test_attestations_envelopes_and_search(dist: DistLog) -> None:
    srv = dist.start("a", "all")
    s = make_signer("ecdsa-p256")
    subject = sha256_hex(b"dist artifact")
    env = envelope(statement([subject]), [s])
    body = orjson.dumps(dsse_body(env, [s]))
    r = HTTP.post(srv.url + "/v1/entries", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text
    doc = r.json()
    leaf = b64decode_std(doc["leaf"])
    index, _ = verify_receipt_doc(doc, [srv.vkey], leaf)
    info = attest.parse_leaf(leaf)
    assert info is not None
    digest = info.record["attestation"]
    # The envelope is content-addressed in the bucket and served by the front end alike.
    stored = bucket_get(dist, f"v1/attestations/{digest}")
    assert stored.status_code == 200 and sha256_hex(stored.content) == digest
    assert stored.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert HTTP.get(f"{srv.url}/v1/attestations/{digest}").content == stored.content
    hits = HTTP.get(srv.url + "/v1/search", params={"subject": f"sha256:{subject}"}).json()
    assert [h["index"] for h in hits["hits"]] == [index]
    signer_hits = HTTP.get(srv.url + "/v1/search", params={"signer": s.signer_id}).json()
    assert [h["index"] for h in signer_hits["hits"]] == [index]
    again = HTTP.post(srv.url + "/v1/entries", content=body, headers={"content-type": "application/json"})
    assert again.status_code == 200 and again.json()["index"] == index
    receipt = HTTP.get(f"{srv.url}/v1/entries/{index}/receipt")
    assert receipt.status_code == 200
    assert verify_receipt_doc(receipt.json(), [srv.vkey], leaf)[0] == index
    assert HTTP.get(f"{srv.url}/v1/entries/{index + 1}").status_code == 404
    # Newest first, with the minute each was appended in (recorded in PostgreSQL).
    more = []
    for n in range(3):
        r = HTTP.post(srv.url + "/v1/entries", json=dsse_body(envelope(statement([sha256_hex(b"%d" % n)]),
                                                                       [s]), [s]))
        assert r.status_code == 201, r.text
        more.append(r.json()["index"])
    newest = HTTP.get(srv.url + "/v1/search", params={"signer": s.signer_id, "order": "desc",
                                                      "limit": "2"}).json()
    assert [h["index"] for h in newest["hits"]] == more[::-1][:2] and newest["next_cursor"] == more[1]
    rest = HTTP.get(srv.url + "/v1/search", params={"signer": s.signer_id, "order": "desc",
                                                    "cursor": str(more[1])}).json()
    assert [h["index"] for h in rest["hits"]] == [more[0], index] and rest["next_cursor"] is None
    minute = int(time.time()) // 60 * 60
    assert all(minute - 120 <= h["logged_minute"] <= minute for h in newest["hits"] + rest["hits"])
    assert HTTP.get(f"{srv.url}/v1/entries/{more[-1]}/time").json()["logged_minute"] in (minute, minute - 60)
    activity = HTTP.get(srv.url + "/v1/log/activity", params={"minutes": "1440"}).json()
    assert sum(m["entries"] for m in activity["minutes"]) == activity["tree_size"]
    feed = HTTP.get(srv.url + "/v1/feed", params={"signer": s.signer_id})
    assert feed.status_code == 200 and feed.text.count("<entry>") == 4


def test_rekor_v2_entries_on_the_scaled_out_shape(dist: DistLog) -> None:
    """The Rekor v2 API through a front end: the entry, its envelope in the bucket (by leaf
    hash: the leaf does not name it), the bundle (no TSA configured: no timestamp), search by
    signer and digest."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from client.merkle import leaf_hash
    from tests import sigstorekit as kit

    srv = dist.start("a", "all")
    key = ec.generate_private_key(ec.SECP256R1())
    env = kit.dsse_envelope(key, kit.statement("3c" * 32))
    r = HTTP.post(srv.url + "/api/v2/log/entries", json=kit.dsse_request(key, env))
    assert r.status_code == 201, r.text
    index, leaf = int(r.json()["logIndex"]), base64.b64decode(r.json()["canonicalizedBody"])
    assert HTTP.post(srv.url + "/api/v2/log/entries", json=kit.dsse_request(key, env)).status_code == 409
    stored = bucket_get(dist, f"v1/envelopes/{leaf_hash(leaf).hex()}")
    assert stored.status_code == 200
    assert HTTP.get(f"{srv.url}/v1/entries/{index}/envelope").content == stored.content
    bundle = HTTP.get(f"{srv.url}/v1/entries/{index}/sigstore-bundle").json()
    assert bundle["dsseEnvelope"]["signatures"][0]["sig"] == env["signatures"][0]["sig"]
    assert bundle["verificationMaterial"]["tlogEntries"][0]["logIndex"] == str(index)
    signer = "sha256:" + hashlib.sha256(kit.spki(key)).hexdigest()
    hits = HTTP.get(srv.url + "/v1/search", params={"signer": signer}).json()["hits"]
    assert [h["index"] for h in hits] == [index]
    # The Statement's subject, from the envelope the sequencer read back from the bucket.
    hits = HTTP.get(srv.url + "/v1/search", params={"subject": "sha256:" + "3c" * 32}).json()["hits"]
    assert [h["index"] for h in hits] == [index]
    from tlog import cli

    assert cli.main(["fsck", "--config", str(dist.root / "a.toml")]) == 0


@pytest.mark.go
def test_go_recomputes_the_root_from_bucket_tiles(dist: DistLog,
                                                  tmp_path_factory: pytest.TempPathFactory) -> None:
    binary = build_go("tlogcheck", tmp_path_factory)
    srv = dist.start("a", "all")
    size = 0
    for n, seed in ((1, 3), (254, 4), (300, 5)):  # across the first tile boundary, in batches
        assert all(r.status_code == 201 for r in submit_many(srv.url, entries(n, seed)))
        size += n
        wait_bucket_size(dist, size)
        args = [str(binary), "-tiles-only", "-origin", ORIGIN, "-vkey", srv.vkey, "-size", str(size),
                dist.bucket_url()]
        out = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
        text = out.stdout + out.stderr
        assert out.returncode == 0, text
        assert f"tlog.TreeHash({size}) over tiles = checkpoint root" in text
        assert "RecordHash of every entry = level-0 tile hash" in text


def test_tlog_client_audit_full_against_the_bucket(dist: DistLog, capsys: pytest.CaptureFixture[str]) -> None:
    srv = dist.start("a", "all")
    assert all(r.status_code == 201 for r in submit_many(srv.url, entries(600, 6)))
    wait_bucket_size(dist, 600)
    policy = srv.data_dir / "client-policy.toml"
    code = client_cli.main(["audit", "--full", "--quiet", "--no-state", "--policy", str(policy),
                            "--log", dist.bucket_url()])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert "600" in out.out.replace(",", "")
    # A tile altered in the bucket is caught by the audit (the same client, the same bucket).
    admin = s3_admin(dist.endpoint)
    tile = bucket_get(dist, "tile/0/001").content
    admin.put_object(Bucket=dist.bucket, Key="tile/0/001", Body=bytes([tile[0] ^ 1]) + tile[1:])
    code = client_cli.main(["audit", "--full", "--quiet", "--no-state", "--restart", "--policy", str(policy),
                            "--log", dist.bucket_url()])
    out = capsys.readouterr()
    assert code != 0, out.out


# --- the object store self-test -----------------------------------------------------------


class CarelessS3:
    """An S3 endpoint that stores objects but ignores If-None-Match and If-Match, as some S3
    servers do (fault injection: the real Ceph beside it enforces them)."""

    def __init__(self) -> None:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route

        self.objects: dict[str, bytes] = {}
        self.conditional_puts = 0

        async def handle(request: Request) -> Response:
            key = request.url.path
            if request.method == "PUT":
                if "if-none-match" in request.headers or "if-match" in request.headers:
                    self.conditional_puts += 1
                self.objects[key] = await request.body()
                return Response(headers={"ETag": f'"{hashlib.md5(self.objects[key]).hexdigest()}"'})
            if request.method == "POST" and "delete" in request.query_params:  # DeleteObjects
                keys = re.findall(rb"<Key>([^<]*)</Key>", await request.body())
                for k in keys:
                    self.objects.pop(f"{key}/{k.decode()}", None)
                done = "".join(f"<Deleted><Key>{k.decode()}</Key></Deleted>" for k in keys)
                return Response(f'<?xml version="1.0" encoding="UTF-8"?><DeleteResult>{done}</DeleteResult>',
                                media_type="application/xml")
            if key in self.objects:
                data = self.objects[key]
                return Response(data, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})
            return Response(b"<Error><Code>NoSuchKey</Code></Error>", status_code=404)

        app = Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "PUT", "POST", "HEAD"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            threading.Event().wait(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_self_test_refuses_a_store_that_ignores_conditional_writes(ceph: Ceph) -> None:
    from tlog.dist.bucket import ConditionalWritesIgnored, ObjectStore, S3Settings

    careless = CarelessS3()
    try:
        store = ObjectStore(S3Settings(f"http://127.0.0.1:{careless.port}", "b", access_key_id="k",
                                       secret_access_key="s"))
        with pytest.raises(ConditionalWritesIgnored, match="If-None-Match"):
            asyncio.run(store.self_test())
        assert careless.conditional_puts >= 2
        assert careless.objects == {}  # the probe is cleaned up
    finally:
        careless.close()
    # The real Ceph passes it, and the store learns which If-Match form it takes.
    real = ObjectStore(S3Settings(ceph.endpoint, ceph.new_bucket(), access_key_id=S3_KEY,
                                  secret_access_key=S3_SECRET))
    asyncio.run(real.self_test())
    assert real.etag_quoted is not None


def test_serve_refuses_to_start_on_a_careless_store(tmp_path: Path, postgres: Postgres) -> None:
    careless = CarelessS3()
    try:
        d = DistLog(tmp_path, f"http://127.0.0.1:{careless.port}", "b", postgres.new_database())
        cfg = d.config("a", "all")
        out = subprocess.run([sys.executable, "-m", "tlog.cli", "serve", "--config", str(cfg),
                              "--data-dir", str(tmp_path / "a"), "--listen", "127.0.0.1:0"],
                             capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode != 0
        assert "conditional writes are ignored" in out.stderr
        assert not any(k.endswith("/checkpoint") for k in careless.objects)
    finally:
        careless.close()


def test_witnesses_cosign_a_scaled_out_log(dist: DistLog) -> None:
    from client.keyfile import write_key
    from client.note import CosignatureV1Signer, Ed25519Signer
    from client.verify import verify_receipt
    from tests.conftest import SEED
    from tests.serverproc import WitnessProc
    from tests.test_witness import write_config

    log_key = Ed25519Signer(ORIGIN, SEED)
    write_key(dist.root / "log.key", log_key)
    names = [f"witness.test/d{i}" for i in range(3)]
    seeds = [bytes([0x60 + i]) * 32 for i in range(3)]
    witnesses = []
    try:
        for i in range(3):
            wd = dist.root / f"w{i}"
            wd.mkdir()
            write_key(wd / "witness.key", Ed25519Signer(names[i], seeds[i]))
            cfg = write_config(wd, [(ORIGIN, log_key.verifier().vkey())], rate_per_log=100.0, burst=100)
            witnesses.append(WitnessProc(wd / "state", args=["--config", str(cfg)]).start())
        wvkeys = [CosignatureV1Signer(names[i], seeds[i]).verifier().vkey() for i in range(3)]
        with_witnesses = {"witnesses": [[w.url, v] for w, v in zip(witnesses, wvkeys, strict=True)],
                          "witness_quorum": 2, "witness_interval": 0.1, "witness_timeout": 2.0}
        # The log ran with witnesses, then a while without: its bucket holds a log-signed
        # checkpoint newer than the newest cosigned one, and a sequencer configured with
        # witnesses again must still lead.
        for seed, (name, extra) in enumerate((("a0", with_witnesses), ("a1", {})), 20):
            before = dist.start(name, "all", **extra)
            assert all(r.status_code == 201 for r in submit_many(before.url, entries(3, seed)))
            before.stop()
        srv = dist.start("a", "all", **with_witnesses)
        policy = TrustPolicy(ORIGIN, (log_key.verifier(),), witnesses=tuple(parse_vkey(v) for v in wvkeys),
                             witness_quorum=2, allow_raw_log=True)
        for r in submit_many(srv.url, entries(5, 9), concurrency=5):
            assert r.status_code == 201, r.text
            assert r.json()["witnessed"] is True
            verify_receipt(r.json(), policy)
        # The bucket's checkpoint is the cosigned one: a reader of the bucket alone checks
        # the witnesses' cosignatures too.
        wait_bucket_size(dist, 11)
        with LogClient(dist.bucket_url(), policy) as client:
            assert client.checkpoint().size == 11
        assert bucket_get(dist, "checkpoint").content.count("\u2014 witness.test/".encode()) >= 2
    finally:
        for w in witnesses:
            w.stop()


def test_a_tpm_anchored_scaled_out_log(dist: DistLog, tmp_path: Path) -> None:
    """The sequencer signs in the TPM as well; front ends, which hold no key, publish the TPM
    key and its attestation, and a client that requires TPM anchoring accepts the log read
    through a front end and straight from the bucket."""
    from client.keyfile import write_key
    from client.note import Ed25519Signer
    from client.verify import verify_receipt
    from tests.conftest import SEED
    from tests.swtpm import Swtpm, require_tpm_tools
    from tests.test_tpm import _init

    require_tpm_tools()
    tpm = Swtpm(tmp_path / "tpm").start()
    try:
        write_key(dist.root / "log.key", Ed25519Signer(ORIGIN, SEED))
        seq = dist.root / "s"
        seq.mkdir()
        (seq / "log.key").write_bytes((dist.root / "log.key").read_bytes())
        (seq / "log.key").chmod(0o600)
        ak_name = _init(seq, tpm.tcti)
        s = dist.start("s", "all", tpm=tpm.tcti)
        # Front ends learn the keys the leader recorded when it took over.
        deadline = time.monotonic() + 30
        while bucket_get(dist, "v1/log/key-attestation").status_code != 200:
            assert time.monotonic() < deadline, "the leader did not publish the key attestation"
            time.sleep(0.1)
        fe = dist.start("fe", "frontend")
        info = HTTP.get(fe.url + "/v1/log").json()
        assert len(info["verifier_keys"]) == 2 and info["verifier_keys"][0] == s.vkey
        keys = tuple(parse_vkey(k) for k in info["verifier_keys"])
        policy = TrustPolicy(ORIGIN, keys, "all", allow_raw_log=True, tpm_aks=(ak_name,))
        r = HTTP.post(fe.url + "/v1/entries", json={"raw": base64.b64encode(b"anchored").decode()})
        assert r.status_code == 201, r.text
        attestation = HTTP.get(fe.url + "/v1/log/key-attestation").json()
        verify_receipt(r.json(), policy, key_attestation=attestation)
        assert bucket_get(dist, "v1/log/key-attestation").json() == attestation
        wait_bucket_size(dist, 1)
        for url in (fe.url, dist.bucket_url()):
            with LogClient(url, policy) as client:
                assert client.checkpoint().size == 1
    finally:
        tpm.stop()


@pytest.mark.parametrize("where", ["front end", "bucket"])
def test_a_monitor_follows_a_scaled_out_log(dist: DistLog, tmp_path: Path, where: str) -> None:
    from client.keyfile import write_key
    from client.note import Ed25519Signer
    from tests.conftest import SEED
    from tests.test_monitor import MonitorProc

    log_key = Ed25519Signer(ORIGIN, SEED)
    write_key(dist.root / "log.key", log_key)
    srv = dist.start("a", "all", allow_raw=False)  # a monitor trusts no log that takes raw entries
    watched, other = make_signer("ed25519"), make_signer("ecdsa-p256")
    hits = []
    for i in range(6):
        s = watched if i % 2 == 0 else other
        env = envelope(statement([sha256_hex(b"monitored %d" % i)]), [s])
        r = HTTP.post(srv.url + "/v1/entries", content=orjson.dumps(dsse_body(env, [s])),
                      headers={"content-type": "application/json"})
        assert r.status_code == 201, r.text
        if s is watched:
            hits.append(r.json()["index"])
    url = srv.url if where == "front end" else dist.bucket_url()
    mon = MonitorProc(tmp_path / "m", TrustPolicy(ORIGIN, (log_key.verifier(),)), url,
                      watch={"signers": [watched.signer_id]})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(mon.reports()) < len(hits):
            time.sleep(0.1)
    finally:
        mon.stop()
    assert sorted(r["index"] for r in mon.reports()) == hits
