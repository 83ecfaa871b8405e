"""Attestation entries end to end against real `tlog serve` processes (without --allow-raw).

Every receipt is verified offline (client.verify.verify_receipt_doc) and its leaf recomputed
independently from the submission (client.attest.check_dsse / check_hashedrekord). Refused
submissions must leave nothing behind: the checkpoint is unchanged and the envelope is not
retrievable. Search is checked against indexes computed from what was submitted, over pages,
and across `tlog reindex`. Receipts are also verified by Go's sumdb/note and sumdb/tlog
(tests/go/src/receiptcheck; skipped without Go unless REQUIRE_GO=1 or CI is set).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from client import attest
from client.errors import TlogError
from client.keyfile import read_key
from client.note import Ed25519Signer, sign_note
from client.verify import verify_receipt_doc
from tests.attestkit import (
    DIGEST_KEY_TYPES,
    INTOTO,
    KEY_TYPES,
    Signer,
    b64,
    dsse_body,
    envelope,
    hashedrekord,
    make_signer,
    pae,
    public_pem,
    self_signed_cert_pem,
    sha256_hex,
    statement,
)
from tests.conftest import ORIGIN
from tests.gobuild import build_go
from tests.serverproc import ServerProc
from tlog.index import SearchIndex
from tlog.storage import LogStore, search_key

HTTP = httpx.Client(timeout=60)


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    """Close the module's client (and its pooled sockets) when the module is done."""
    yield
    HTTP.close()
RECEIPT_FIELDS = {"origin", "index", "leaf", "leaf_hash", "inclusion_proof", "checkpoint"}


@pytest.fixture(scope="module")
def signers() -> dict[str, Signer]:
    return {name: make_signer(name) for name in KEY_TYPES}


@pytest.fixture(scope="module")
def log() -> Iterator[ServerProc]:
    """One attestation log (no --allow-raw) shared by the tests that need no fresh one."""
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProc(Path(tmp) / "data", args=["--origin", ORIGIN]).start()
        try:
            assert HTTP.get(srv.url + "/v1/log").json()["raw_entries_allowed"] is False
            yield srv
        finally:
            srv.stop()


def _post(url: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return HTTP.post(url + "/v1/entries", content=content,
                     headers={"content-type": "application/json"})


def _checkpoint(url: str) -> bytes:
    return HTTP.get(url + "/checkpoint").content


def _size(url: str) -> int:
    return int(_checkpoint(url).split(b"\n")[1])


def _check_receipt(doc: dict[str, Any], vkey: str, leaf: bytes) -> int:
    """The receipt is complete, carries exactly `leaf`, and verifies offline."""
    assert set(doc) == RECEIPT_FIELDS, doc
    assert doc["origin"] == ORIGIN
    assert base64.b64decode(doc["leaf"]) == leaf
    assert base64.b64decode(doc["leaf_hash"]) == hashlib.sha256(b"\x00" + leaf).digest()
    index, size = verify_receipt_doc(doc, [vkey], leaf)
    assert index == doc["index"] and size == doc["inclusion_proof"]["tree_size"]
    assert doc["checkpoint"].split("\n")[1] == str(size)
    return index


def _url_safe(env: dict[str, Any]) -> dict[str, Any]:
    """The same envelope in URL-safe unpadded base64, fields reordered."""
    def url(s: str) -> str:
        return base64.urlsafe_b64encode(base64.b64decode(s)).decode().rstrip("=")
    return {"signatures": [{"sig": url(s["sig"]), "keyid": s["keyid"]} for s in env["signatures"]],
            "payloadType": env["payloadType"], "payload": url(env["payload"])}


# --- DSSE and hashedrekord round trips ------------------------------------------------------

@pytest.mark.parametrize("kind", KEY_TYPES)
def test_dsse_round_trip(log: ServerProc, signers: dict[str, Signer], kind: str) -> None:
    url, s = log.url, signers[kind]
    subject = sha256_hex(b"round trip " + kind.encode())
    env = envelope(statement([subject], predicate={"kind": kind}), [s])
    expected = attest.check_dsse(env, [s.pem])  # the leaf, recomputed from the envelope alone

    r = _post(url, dsse_body(env, [s]))
    assert r.status_code == 201, r.text
    doc = r.json()
    index = _check_receipt(doc, log.vkey, expected.leaf)
    info = attest.parse_leaf(expected.leaf)
    assert info is not None and info.record["signatures"][0]["signer"] == s.signer_id

    digest = sha256_hex(expected.canonical)
    assert info.record["attestation"] == digest
    got = HTTP.get(f"{url}/v1/attestations/{digest}")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/json"
    assert "immutable" in got.headers["cache-control"]
    assert sha256_hex(got.content) == digest and got.content == expected.canonical
    # The served envelope re-verifies to the same leaf: a verifier needs nothing else.
    assert attest.check_dsse(orjson.loads(got.content), [s.pem]) == expected
    assert HTTP.get(f"{url}/v1/entries/{index}").content == expected.leaf

    again = _post(url, dsse_body(env, [s]))
    assert again.status_code == 200 and again.json()["index"] == index
    _check_receipt(again.json(), log.vkey, expected.leaf)
    # Another encoding of the same envelope is the same attestation.
    other = _post(url, dsse_body(_url_safe(env), [s]))
    assert other.status_code == 200 and other.json()["index"] == index

    rec = HTTP.get(f"{url}/v1/entries/{index}/receipt")
    assert rec.status_code == 200
    assert _check_receipt(rec.json(), log.vkey, expected.leaf) == index
    hits = HTTP.get(url + "/v1/search", params={"subject": f"sha256:{subject}"}).json()
    minute = hits["hits"][0].pop("logged_minute")
    assert hits == {"hits": [{"index": index, "leaf": b64(expected.leaf)}], "next_cursor": None,
                    "indexed_size": index + 1}
    assert minute == HTTP.get(f"{url}/v1/entries/{index}/time").json()["logged_minute"]


@pytest.mark.parametrize("kind", DIGEST_KEY_TYPES)
def test_hashedrekord_round_trip(log: ServerProc, signers: dict[str, Signer], kind: str) -> None:
    url, s = log.url, signers[kind]
    digest = hashlib.sha256(b"hashedrekord artifact " + kind.encode()).digest()
    body = {"hashedrekord": hashedrekord(digest, s)}
    leaf = attest.check_hashedrekord(body["hashedrekord"])
    r = _post(url, body)
    assert r.status_code == 201, r.text
    index = _check_receipt(r.json(), log.vkey, leaf)
    again = _post(url, body)
    assert again.status_code == 200 and again.json()["index"] == index
    assert _check_receipt(HTTP.get(f"{url}/v1/entries/{index}/receipt").json(), log.vkey, leaf) == index
    hits = HTTP.get(url + "/v1/search", params={"subject": f"sha256:{digest.hex()}"}).json()["hits"]
    assert [h["index"] for h in hits] == [index]


def test_concurrent_identical_submissions(log: ServerProc, signers: dict[str, Signer]) -> None:
    s = signers["ecdsa-p256"]
    env = envelope(statement([sha256_hex(b"concurrent")]), [s])
    body = orjson.dumps(dsse_body(env, [s]))
    size = _size(log.url)

    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as c:
            return await asyncio.gather(*[
                c.post(log.url + "/v1/entries", content=body,
                       headers={"content-type": "application/json"}) for _ in range(20)])

    responses = asyncio.run(go())
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1 and codes.count(200) == 19, codes
    assert len({r.json()["index"] for r in responses}) == 1
    leaf = attest.check_dsse(env, [s.pem]).leaf
    for r in responses:
        _check_receipt(r.json(), log.vkey, leaf)
    assert _size(log.url) == size + 1


# --- hostile submissions: refused, and nothing stored ----------------------------------------

HOSTILE = {
    # name: (status, code)
    "signature-over-other-bytes": (400, "signature_invalid"),
    "signature-over-payload-not-pae": (400, "signature_invalid"),
    "key-that-did-not-sign": (400, "signature_invalid"),
    "truncated-envelope-json": (400, "malformed_json"),
    "envelope-without-signatures": (400, "malformed_envelope"),
    "envelope-bad-base64": (400, "malformed_envelope"),
    "envelope-too-many-signatures": (400, "malformed_envelope"),
    "statement-without-subjects": (400, "statement_mismatch"),
    "statement-not-json": (400, "statement_mismatch"),
    "statement-uppercase-digest": (400, "statement_mismatch"),
    "unsupported-key-rsa1024": (400, "unsupported_key"),
    "unsupported-key-p521": (400, "unsupported_key"),
    "certificate-as-key": (400, "unsupported_key"),
    "no-verifiers": (400, "malformed_entry"),
    "too-many-verifiers": (400, "malformed_entry"),
    "unknown-field": (400, "unknown_field"),
    "two-entry-kinds": (400, "unknown_entry_kind"),
    "hashedrekord-ed25519": (400, "unsupported_key"),
    "hashedrekord-other-digest": (400, "signature_invalid"),
    "hashedrekord-uppercase-digest": (400, "malformed_entry"),
    "raw-entry": (403, "raw_entries_disabled"),
}


def _hostile(name: str, signers: dict[str, Signer]) -> tuple[bytes, dict[str, Any] | None]:
    """The request body for a hostile case, and the envelope it carries (if any)."""
    ed, p256 = signers["ed25519"], signers["ecdsa-p256"]
    payload = statement([sha256_hex(b"hostile " + name.encode())])
    env = envelope(payload, [ed])
    body: Any = dsse_body(env, [ed])
    if name == "signature-over-other-bytes":
        env["payload"] = b64(statement([sha256_hex(b"something else")]))
    elif name == "signature-over-payload-not-pae":
        env["signatures"][0]["sig"] = b64(ed.private.sign(payload))
    elif name == "key-that-did-not-sign":
        body = dsse_body(env, [p256, signers["rsa2048-pkcs1"]])
    elif name == "truncated-envelope-json":
        full = orjson.dumps(body)
        return full[: len(full) * 2 // 3], env
    elif name == "envelope-without-signatures":
        del env["signatures"]
    elif name == "envelope-bad-base64":
        env["payload"] = env["payload"][:-2] + "!="
    elif name == "envelope-too-many-signatures":
        env["signatures"] = env["signatures"] * 17
    elif name in ("statement-without-subjects", "statement-not-json", "statement-uppercase-digest"):
        bad = {"statement-without-subjects": statement([]),
               "statement-not-json": b"{not json",
               "statement-uppercase-digest": statement([sha256_hex(b"u").upper()])}[name]
        env = envelope(bad, [ed])
        body = dsse_body(env, [ed])
    elif name == "unsupported-key-rsa1024":
        k = rsa.generate_private_key(65537, 1024)  # a valid signature, by a key too small
        sig = k.sign(pae(INTOTO, payload), padding.PKCS1v15(), hashes.SHA256())
        env = {**env, "signatures": [{"keyid": "", "sig": b64(sig)}]}
        body = {"dsse": env, "verifiers": [public_pem(k.public_key())]}
    elif name == "unsupported-key-p521":
        p521 = ec.generate_private_key(ec.SECP521R1()).public_key()
        body = {"dsse": env, "verifiers": [ed.pem, public_pem(p521)]}
    elif name == "certificate-as-key":
        body = {"dsse": env, "verifiers": [self_signed_cert_pem()]}
    elif name == "no-verifiers":
        body = {"dsse": env}
    elif name == "too-many-verifiers":
        body = {"dsse": env, "verifiers": [ed.pem] * 9}
    elif name == "unknown-field":
        body = {**body, "note": "hi"}
    elif name == "two-entry-kinds":
        body = {**body, "hashedrekord": hashedrekord(bytes(32), p256)}
    elif name.startswith("hashedrekord-"):
        digest = hashlib.sha256(b"hostile artifact").digest()
        rek = hashedrekord(digest, p256)
        if name == "hashedrekord-ed25519":
            rek = {**rek, "signature": b64(ed.private.sign(digest)), "verifier": ed.pem}
        elif name == "hashedrekord-other-digest":
            rek["digest"] = {"sha256": sha256_hex(b"other")}
        else:
            rek["digest"] = {"sha256": digest.hex().upper()}
        return orjson.dumps({"hashedrekord": rek}), None
    elif name == "raw-entry":
        return orjson.dumps({"raw": b64(b"\x01\x01{}")}), None
    return orjson.dumps(body), env


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_submissions_store_nothing(log: ServerProc, signers: dict[str, Signer],
                                           name: str) -> None:
    status, code = HOSTILE[name]
    body, env = _hostile(name, signers)
    before = _checkpoint(log.url)
    r = _post(log.url, body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"]
    assert r.headers["cache-control"] == "no-store"
    assert "Traceback" not in r.text
    assert _checkpoint(log.url) == before
    if env is not None:
        try:
            digest = attest.parse_envelope(env).digest()
        except attest.EntryError:
            return  # not an envelope at all: nothing could be stored under its digest
        assert HTTP.get(f"{log.url}/v1/attestations/{digest}").status_code == 404


def test_body_over_the_limit(log: ServerProc) -> None:
    before = _checkpoint(log.url)
    big = b'{"dsse": {"payload": "' + b"A" * (65 << 20) + b'"}}'  # 65 MiB
    r = HTTP.post(log.url + "/v1/entries", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    assert _checkpoint(log.url) == before
    assert HTTP.get(log.url + "/healthz").status_code == 200


@pytest.mark.parametrize(("query", "code"), [
    ({}, "missing_parameter"),
    ({"limit": "5"}, "missing_parameter"),
    ({"subject": "sha256:" + "a" * 64, "signer": "sha256:" + "a" * 64}, "missing_parameter"),
    ({"subject": "sha256:" + "A" * 64}, "bad_parameter"),
    ({"subject": "a" * 64}, "bad_parameter"),
    ({"subject": "sha256:"}, "bad_parameter"),
    ({"subject": "sha 256:" + "a" * 64}, "bad_parameter"),
    ({"subject": "x" * 33 + ":ab"}, "bad_parameter"),
    ({"signer": "sha256:" + "a" * 63}, "bad_parameter"),
    ({"signer": "sha512:" + "a" * 64}, "bad_parameter"),
    ({"predicate_type": ""}, "bad_parameter"),
    ({"predicate_type": "has space"}, "bad_parameter"),
    ({"predicate_type": "x" * 1025}, "bad_parameter"),
    ({"subject": "sha256:" + "a" * 64, "limit": "0"}, "bad_parameter"),
    ({"subject": "sha256:" + "a" * 64, "limit": "1001"}, "bad_parameter"),
    ({"subject": "sha256:" + "a" * 64, "limit": "-1"}, "bad_parameter"),
    ({"subject": "sha256:" + "a" * 64, "limit": "05"}, "bad_parameter"),
    ({"subject": "sha256:" + "a" * 64, "cursor": "x"}, "bad_parameter"),
    ({"subject": "sha256:" + "a" * 64, "cursor": "1.5"}, "bad_parameter"),
    ({"subject": "sha256:" + "a" * 64, "cursor": "99999999999999999999"}, "bad_parameter"),
])
def test_bad_search_parameters(log: ServerProc, query: dict[str, str], code: str) -> None:
    r = HTTP.get(log.url + "/v1/search", params=query)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code
    assert r.headers["cache-control"] == "no-store"


def test_search_without_hits_and_bad_reads(log: ServerProc) -> None:
    for query in ({"subject": "sha256:" + "0" * 64}, {"signer": "sha256:" + "0" * 64},
                  {"predicate_type": "https://example.com/none"},
                  {"subject": "gitCommit:abc", "limit": "1000", "cursor": "0"}):
        r = HTTP.get(log.url + "/v1/search", params=query)
        assert r.status_code == 200 and r.json() == {"hits": [], "next_cursor": None,
                                                     "indexed_size": _size(log.url)}
    for path, status, code in (("/v1/attestations/" + "0" * 64, 404, "not_found"),
                               ("/v1/attestations/" + "A" * 64, 400, "bad_parameter"),
                               ("/v1/attestations/abc", 400, "bad_parameter"),
                               ("/v1/entries/99999999/receipt", 404, "not_found"),
                               ("/v1/entries/01/receipt", 400, "bad_parameter")):
        r = HTTP.get(log.url + path)
        assert r.status_code == status and r.json()["error"]["code"] == code, (path, r.text)


# --- a large attestation, and the worker's peak memory ---------------------------------------

def _memory_kib(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])
    return out


def _reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, own processes); False if not possible."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def test_large_attestation_and_peak_memory(tmp_path: Path, signers: dict[str, Signer]) -> None:
    srv = ServerProc(tmp_path / "data", args=["--origin", ORIGIN], workers=1).start()
    try:
        assert srv.proc is not None
        pid = srv.proc.pid  # with one worker, `tlog serve` itself is the HTTP worker
        s = signers["ed25519"]
        # Warm up: lazy imports, thread pools and the spool path are in place before measuring.
        warm = envelope(os.urandom(2 << 20), [s], payload_type="application/octet-stream")
        assert _post(srv.url, dsse_body(warm, [s])).status_code == 201

        payload = os.urandom(20 << 20)
        env = envelope(payload, [s], payload_type="application/octet-stream")
        body = orjson.dumps(dsse_body(env, [s]))
        expected = attest.check_dsse(env, [s.pem])
        digest = sha256_hex(expected.canonical)
        del env

        reset = _reset_peak(pid)
        before = _memory_kib(pid)
        base = before["VmRSS"] if reset else before["VmHWM"]
        r = _post(srv.url, body)
        after = _memory_kib(pid)
        assert r.status_code == 201, r.text
        growth = (after["VmHWM"] - base) * 1024
        assert growth < 6 * len(body), (
            f"peak RSS of the worker grew by {growth / 2**20:.0f} MiB for a "
            f"{len(body) / 2**20:.0f} MiB body (before {before}, after {after}, reset {reset})")
        print(f"worker peak RSS growth {growth / 2**20:.0f} MiB = {growth / len(body):.1f}x the body")
        index = _check_receipt(r.json(), srv.vkey, expected.leaf)

        got = HTTP.get(f"{srv.url}/v1/attestations/{digest}")
        assert got.status_code == 200 and sha256_hex(got.content) == digest
        served = orjson.loads(got.content)
        assert base64.b64decode(served["payload"]) == payload
        assert attest.check_dsse(served, [s.pem]) == expected
        assert _check_receipt(HTTP.get(f"{srv.url}/v1/entries/{index}/receipt").json(),
                              srv.vkey, expected.leaf) == index
        assert _post(srv.url, body).status_code == 200
    finally:
        srv.stop()


# --- search over 10,000 entries, pagination, reindex ----------------------------------------

PREDICATES = ["https://slsa.dev/provenance/v1", "https://in-toto.io/attestation/vulns/v0.1",
              "https://spdx.dev/Document", "https://example.com/test-result/v1?a=b&c=%2F+d"]
SEARCH_SIGNERS = ["ed25519", "ed25519", "ecdsa-p256", "rsa2048-pkcs1"]  # the cheap ones to sign
N_HTTP, N_BULK, N_AFTER = 1000, 9000, 20


class Workload:
    """Random but reproducible submissions, and the search terms each one must be found under
    (computed from what was submitted, not with client.attest.search_keys)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.signers = [make_signer(n) for n in SEARCH_SIGNERS]
        self.subjects = [sha256_hex(b"subject %d" % i) for i in range(300)]
        self.n = 0

    def next(self) -> tuple[str, Any, list[tuple[str, str]]]:
        """(kind, submission, terms): kind "dsse" -> (envelope, verifier pems), or
        "hashedrekord" -> its document."""
        rng, self.n = self.rng, self.n + 1
        roll = rng.random()
        if roll < 0.2:
            s = rng.choice([x for x in self.signers if x.sign_digest is not None])
            digest = rng.choice(self.subjects)
            if s.name == "rsa2048-pkcs1":  # deterministic signatures: keep every leaf distinct
                digest = sha256_hex(b"rsa artifact %d" % self.n)
            doc = hashedrekord(bytes.fromhex(digest), s)
            return "hashedrekord", doc, [("subject", f"sha256:{digest}"), ("signer", s.signer_id)]
        signing = rng.sample(self.signers, rng.choice([1, 1, 1, 2]))
        terms = [("signer", s.signer_id) for s in signing]
        if roll < 0.25:  # an opaque payload: found by signer only
            env = envelope(b"opaque %d" % self.n, signing, payload_type="application/octet-stream")
        else:
            subjects = rng.sample(self.subjects, rng.randint(1, 3))
            ptype = rng.choice(PREDICATES)
            env = envelope(statement(subjects, predicate_type=ptype, predicate={"n": self.n}),
                           signing, payload_type=rng.choice([INTOTO, INTOTO,
                                                             "application/vnd.in-toto.x+json"]))
            terms += [("predicate_type", ptype)] + [("subject", f"sha256:{d}") for d in subjects]
        # Verifiers: the signers' keys, and sometimes a key that signed nothing.
        pems = [s.pem for s in signing] + ([self.signers[0].pem] if rng.random() < 0.1 else [])
        return "dsse", (env, list(dict.fromkeys(pems))), terms


def _body(kind: str, sub: Any) -> bytes:
    if kind == "dsse":
        return orjson.dumps({"dsse": sub[0], "verifiers": sub[1]})
    return orjson.dumps({"hashedrekord": sub})


def _leaf(kind: str, sub: Any) -> bytes:
    return attest.check_dsse(*sub).leaf if kind == "dsse" else attest.check_hashedrekord(sub)


async def _submit_all(url: str, bodies: list[bytes], concurrency: int = 32) -> list[dict[str, Any]]:
    """POST every body, `concurrency` at a time; the receipts in order. (aiohttp, a test
    dependency: httpx.AsyncClient spends ~5 ms of client CPU per request here, 10x more.)"""
    import aiohttp

    out: list[dict[str, Any]] = [{} for _ in bodies]
    todo = list(enumerate(bodies))[::-1]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        async def worker() -> None:
            while todo:
                n, body = todo.pop()
                async with session.post(url + "/v1/entries", data=body,
                                        headers={"content-type": "application/json"}) as r:
                    text = await r.read()
                    assert r.status in (200, 201), text
                    out[n] = orjson.loads(text)
        await asyncio.gather(*[worker() for _ in range(concurrency)])
    return out


def _search_all(url: str, field: str, term: str, limit: int | None,
                leaves: dict[int, bytes]) -> list[int]:
    """Every hit for (field, term), following next_cursor; checks each page's shape, and that
    each hit carries exactly the leaf appended at its index."""
    out: list[int] = []
    cursor: int | None = None
    while True:
        params: dict[str, Any] = {field: term}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        r = HTTP.get(url + "/v1/search", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        indexes = [h["index"] for h in page["hits"]]
        assert len(indexes) <= (limit or 100)
        assert indexes == sorted(indexes) and (not out or not indexes or indexes[0] > out[-1])
        for h in page["hits"]:
            assert base64.b64decode(h["leaf"]) == leaves[h["index"]]
        out += indexes
        if page["next_cursor"] is None:
            return out
        assert page["next_cursor"] == indexes[-1] and len(indexes) == (limit or 100)
        cursor = page["next_cursor"]


def _search_db(data: Path) -> list[tuple[bytes, bytes]]:
    index = SearchIndex(data)
    try:
        with index.env.begin() as txn:
            return [(bytes(k), bytes(v)) for k, v in txn.cursor(db=index.search)]
    finally:
        index.close()


def _wait_indexed(data: Path, size: int, timeout: float = 30.0) -> None:
    """The indexer follows the log just after each commit: wait until it covers `size`."""
    index = SearchIndex(data)
    try:
        deadline = time.monotonic() + timeout
        while index.watermark() < size:
            assert time.monotonic() < deadline, f"the index covers {index.watermark()} of {size}"
            time.sleep(0.05)
    finally:
        index.close()


def test_search_10k_entries_pagination_and_reindex(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = ServerProc(data, args=["--origin", ORIGIN]).start()
    work = Workload(seed=20240917)
    expected: dict[tuple[str, str], set[int]] = defaultdict(set)
    leaves: dict[int, bytes] = {}

    def record(index: int, leaf: bytes, terms: list[tuple[str, str]]) -> None:
        assert leaves.setdefault(index, leaf) == leaf
        for t in terms:
            expected[t].add(index)

    try:
        # 1. Over HTTP, 32 at a time.
        batch = [work.next() for _ in range(N_HTTP)]
        receipts = asyncio.run(_submit_all(srv.url, [_body(k, s) for k, s, _ in batch]))
        for (_kind, _sub, terms), doc in zip(batch, receipts, strict=True):
            record(doc["index"], base64.b64decode(doc["leaf"]), terms)
        for (kind, sub, _), doc in list(zip(batch, receipts, strict=True))[:50]:
            assert base64.b64decode(doc["leaf"]) == _leaf(kind, sub)
            verify_receipt_doc(doc, [srv.vkey])
        srv.stop()

        # 2. With the server stopped, the storage-level path: the same checks, then append.
        batch = [work.next() for _ in range(N_BULK)]
        bulk = [_leaf(kind, sub) for kind, sub, _ in batch]
        store = LogStore(data)
        signer: Ed25519Signer = read_key(data / "log.key")
        try:
            result = store.append(bulk, lambda text: sign_note(text, [signer]))
        finally:
            store.close()
        for (_k, _s, terms), leaf, index in zip(batch, bulk, result.indexes, strict=True):
            record(index, leaf, terms)

        # 3. The server again, and a few more over HTTP after the bulk load.
        srv.start()
        batch = [work.next() for _ in range(N_AFTER)]
        receipts = asyncio.run(_submit_all(srv.url, [_body(k, s) for k, s, _ in batch]))
        for (_k, _s, terms), doc in zip(batch, receipts, strict=True):
            record(doc["index"], base64.b64decode(doc["leaf"]), terms)
            verify_receipt_doc(doc, [srv.vkey])
        total = _size(srv.url)
        assert total == len(leaves) == N_HTTP + N_BULK + N_AFTER  # all distinct
        assert max(leaves) == total - 1

        # Every search key in the database is one we expect, and every expected one is there.
        _wait_indexed(data, total)
        want_keys = sorted(search_key(f, t, i) for (f, t), idx in expected.items() for i in idx)
        db = _search_db(data)
        assert [k for k, _ in db] == want_keys and all(v == b"" for _, v in db)

        by_size = sorted(expected, key=lambda t: (len(expected[t]), t))
        subjects = [t for t in by_size if t[0] == "subject"]
        queries = [*subjects[:2], *subjects[-2:], subjects[len(subjects) // 2],
                   *[t for t in by_size if t[0] != "subject"]]
        results: dict[tuple[str, str], list[int]] = {}
        for n, (field, term) in enumerate(queries):
            # Small pages for the rare terms, the default and large pages for the common ones.
            limits = [1, 7, None, 1000, 33] if len(expected[field, term]) < 200 else [None, 1000, 333]
            limit = limits[n % len(limits)]
            results[field, term] = _search_all(srv.url, field, term, limit, leaves)
            assert results[field, term] == sorted(expected[field, term]), (field, term)
        assert len(results) == len(queries) >= 13
        # The common subjects are found in both DSSE statements and hashedrekords.
        kinds = {leaves[i][1] for i in results[subjects[-1]]}
        assert kinds == {attest.KIND_DSSE, attest.KIND_HASHEDREKORD}
        srv.stop()

        # 4. `tlog reindex` rebuilds the same index byte for byte, even from a damaged one.
        index = SearchIndex(data)
        try:
            with index.env.begin(write=True) as txn:
                cur = txn.cursor(db=index.search)
                for k, _ in db[::97]:
                    assert cur.set_key(k) and cur.delete()
                txn.put(search_key("subject", "sha256:" + "f" * 64, 3), b"", db=index.search)
        finally:
            index.close()
        assert _search_db(data) != db
        proc = subprocess.run([sys.executable, "-m", "tlog.cli", "reindex", "--data-dir", str(data)],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        assert f"reindex: ok: {total} entries, {len(db)} search keys" in proc.stdout
        assert _search_db(data) == db

        srv.start()
        for (field, term), want in results.items():
            assert _search_all(srv.url, field, term, 1000, leaves) == want
    finally:
        srv.stop()


# --- Go cross-check of receipts ---------------------------------------------------------------

@pytest.fixture(scope="module")
def receiptcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_go("receiptcheck", tmp_path_factory)


def _go_check(binary: Path, vkey: str, doc: dict[str, Any], path: Path) -> tuple[int, str]:
    path.write_bytes(orjson.dumps(doc))
    proc = subprocess.run([str(binary), "-vkey", vkey, str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _flip_b64(value: str, byte: int = 0) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[byte] ^= 1
    return b64(bytes(raw))


@pytest.mark.go
def test_go_verifies_receipts(receiptcheck: Path, log: ServerProc, signers: dict[str, Signer],
                              tmp_path: Path) -> None:
    receipts: list[dict[str, Any]] = []
    for kind in KEY_TYPES:
        s = signers[kind]
        env = envelope(statement([sha256_hex(b"go " + kind.encode())]), [s])
        r = _post(log.url, dsse_body(env, [s]))
        assert r.status_code == 201, r.text
        receipts.append(r.json())
        if s.sign_digest is not None:
            rek = hashedrekord(hashlib.sha256(b"go " + kind.encode()).digest(), s)
            r = _post(log.url, {"hashedrekord": rek})
            assert r.status_code == 201, r.text
            receipts.append(r.json())
    # Receipts fetched later are against a larger tree.
    receipts += [HTTP.get(f"{log.url}/v1/entries/{d['index']}/receipt").json() for d in receipts[:3]]
    for n, doc in enumerate(receipts):
        code, out = _go_check(receiptcheck, log.vkey, doc, tmp_path / f"r{n}.json")
        assert code == 0, out
        assert out.rstrip().endswith("PASS") and "tlog.CheckRecord: entry" in out, out
        kind = base64.b64decode(doc["leaf"])[1]
        assert f"leaf v1 kind {kind} with a JSON record" in out

    doc = receipts[-1]
    assert doc["inclusion_proof"]["hashes"], "the tampering cases need a non-empty proof"
    leaf = base64.b64decode(doc["leaf"])
    other_leaf = leaf[:-2] + b" }"
    lines = doc["checkpoint"].split("\n")
    proof = doc["inclusion_proof"]
    tampered = {
        "leaf": {**doc, "leaf": b64(other_leaf)},
        "leaf-and-leaf-hash": {**doc, "leaf": b64(other_leaf),
                               "leaf_hash": b64(hashlib.sha256(b"\x00" + other_leaf).digest())},
        "index": {**doc, "index": doc["index"] ^ 1},
        "proof-hash": {**doc, "inclusion_proof": {**proof, "hashes": [
            _flip_b64(proof["hashes"][0]), *proof["hashes"][1:]]}},
        "proof-truncated": {**doc, "inclusion_proof": {**proof, "hashes": proof["hashes"][:-1]}},
        "tree-size": {**doc, "inclusion_proof": {**proof, "tree_size": proof["tree_size"] + 1}},
        "checkpoint-root": {**doc, "checkpoint": "\n".join(
            [lines[0], lines[1], _flip_b64(lines[2]), *lines[3:]])},
        "checkpoint-signature": {**doc, "checkpoint": "\n".join(
            [*lines[:4], lines[4][: -len(lines[4].split()[-1])] + _flip_b64(lines[4].split()[-1], 10),
             *lines[5:]])},
        "origin": {**doc, "origin": "other.example/log"},
        "not-json": "{",
    }
    for name, bad in tampered.items():
        path = tmp_path / f"tampered-{name}.json"
        if isinstance(bad, str):
            path.write_text(bad)
            proc = subprocess.run([str(receiptcheck), "-vkey", log.vkey, str(path)],
                                  capture_output=True, text=True, timeout=60, check=False)
            code, out = proc.returncode, proc.stdout + proc.stderr
        else:
            with pytest.raises((TlogError, KeyError, ValueError)):
                verify_receipt_doc(bad, [log.vkey])  # the Python verifier agrees
            code, out = _go_check(receiptcheck, log.vkey, bad, path)
        assert code == 1 and "FAIL" in out, (name, out)
    # A key the log does not sign with (same name): note.Open refuses the checkpoint.
    other = Ed25519Signer(ORIGIN, bytes(32)).verifier().vkey()
    code, out = _go_check(receiptcheck, other, doc, tmp_path / "other-key.json")
    assert code == 1 and "note.Open" in out, out
