"""The HTTP API against a real `tlog serve` process: round trips, caching rules, hostile input."""

from __future__ import annotations

import asyncio
import base64
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from client import merkle
from client.checkpoint import open_checkpoint
from client.encoding import b64decode_std
from client.note import parse_vkey
from client.tiles import fold_perfect, parse_bundle, split_hashes
from client.verify import verify_receipt_doc
from tests.conftest import ORIGIN
from tests.serverproc import ServerProc

HTTP = httpx.Client(timeout=10)  # one client: creating one per request costs ~40 ms


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    """Close the module's client (and its pooled sockets) when the module is done."""
    yield
    HTTP.close()


def _raw(data: bytes) -> dict[str, str]:
    return {"raw": base64.b64encode(data).decode()}


def _submit(url: str, data: bytes) -> httpx.Response:
    return HTTP.post(url + "/v1/entries", json=_raw(data))


def _size(url: str) -> int:
    return int(HTTP.get(url + "/checkpoint").text.split("\n")[1])


def test_round_trip_receipt_and_reads(server: ServerProc) -> None:
    url = server.url
    info = HTTP.get(url + "/v1/log").json()
    assert info["origin"] == ORIGIN and info["raw_entries_allowed"] is True
    vkeys = info["verifier_keys"]
    assert vkeys == [server.vkey]

    r = _submit(url, b"hello")
    assert r.status_code == 201
    doc = r.json()
    assert verify_receipt_doc(doc, vkeys, b"hello") == (0, 1)
    again = _submit(url, b"hello")
    assert again.status_code == 200 and again.json()["index"] == 0
    for i in range(300):
        assert _submit(url, b"e%d" % i).status_code == 201
    doc = _submit(url, b"e5").json()
    assert doc["index"] == 6 and verify_receipt_doc(doc, vkeys, b"e5")[0] == 6

    cp_resp = HTTP.get(url + "/checkpoint")
    assert cp_resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert cp_resp.headers["cache-control"] == "no-cache"
    cp, _ = open_checkpoint(cp_resp.content, ORIGIN, [parse_vkey(vkeys[0])])
    assert cp.size == 301

    full = HTTP.get(url + "/tile/0/000")
    assert full.status_code == 200 and len(full.content) == 8192
    assert full.headers["content-type"] == "application/octet-stream"
    assert "immutable" in full.headers["cache-control"]
    part = HTTP.get(url + "/tile/0/001.p/45")
    assert part.status_code == 200 and len(part.content) == 45 * 32
    assert "immutable" not in part.headers["cache-control"]
    assert HTTP.get(url + "/tile/0/001.p/44").content == part.content[: 44 * 32]
    assert HTTP.get(url + "/tile/0/001.p/46").status_code == 404
    assert HTTP.get(url + "/tile/0/002.p/1").status_code == 404
    level1 = HTTP.get(url + "/tile/1/000.p/1").content
    assert level1 == fold_perfect(split_hashes(full.content))
    bundle = parse_bundle(HTTP.get(url + "/tile/entries/001.p/45").content)
    assert bundle[0] == b"e255" and len(bundle) == 45
    hashes = part.content
    assert all(merkle.leaf_hash(e) == hashes[i * 32 : (i + 1) * 32] for i, e in enumerate(bundle))
    assert HTTP.get(url + "/v1/entries/0").content == b"hello"

    inc = HTTP.get(url + "/v1/proof/inclusion", params={"index": 7, "size": 300}).json()
    cp_old = HTTP.get(url + "/v1/proof/consistency", params={"old": 300, "new": 301}).json()
    assert inc["tree_size"] == 300 and cp_old["old_size"] == 300
    by_hash = HTTP.get(url + "/v1/proof/inclusion",
                        params={"leaf_hash": doc["leaf_hash"], "size": 301}).json()
    assert by_hash["index"] == 6
    proof = [b64decode_std(h) for h in by_hash["hashes"]]
    merkle.verify_inclusion(6, 301, b64decode_std(doc["leaf_hash"]), proof, cp.root)
    assert HTTP.get(url + "/healthz").json()["tree_size"] == 301
    metrics = HTTP.get(url + "/metrics").text
    for name in ("tlog_entries_appended_total", "tlog_batch_size_bucket", "tlog_integrate_seconds",
                 "tlog_http_responses_total", "tlog_tree_size"):
        assert name in metrics


def test_leaf_hash_with_plus_and_slash_must_be_percent_encoded(server: ServerProc) -> None:
    url = server.url
    # Find an entry whose leaf hash has both '+' and '/' in base64.
    i = 0
    while True:
        data = b"plus-slash-%d" % i
        b64 = base64.b64encode(merkle.leaf_hash(data)).decode()
        if "+" in b64 and "/" in b64:
            break
        i += 1
    assert _submit(url, data).status_code == 201
    ok = HTTP.get(url + "/v1/proof/inclusion", params={"leaf_hash": b64})  # percent-encodes '+'
    assert ok.status_code == 200
    raw = HTTP.get(url + "/v1/proof/inclusion?leaf_hash=" + b64)  # '+' arrives as a space
    assert raw.status_code == 400 and raw.json()["error"]["code"] == "bad_base64"


def test_concurrent_duplicates_share_one_index(server: ServerProc) -> None:
    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as c:
            return await asyncio.gather(*[
                c.post(server.url + "/v1/entries", json=_raw(b"same")) for _ in range(20)])

    responses = asyncio.run(go())
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1 and codes.count(200) == 19
    assert {r.json()["index"] for r in responses} == {0}
    assert _size(server.url) == 1


def _raw_http(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b'"}}' in b"".join(chunks):
                break
    return b"".join(chunks)


HOSTILE_POSTS = [
    (b"{", 400, "malformed_json"),
    (b"[1,2]", 400, "malformed_json"),
    (b'"raw"', 400, "malformed_json"),
    (b"\xff\xfe", 400, "malformed_json"),
    (b'{"raw": "aGVsbG8=", "extra": 1}', 400, "unknown_field"),
    (b'{"rav": "aGVsbG8="}', 400, "unknown_entry_kind"),
    (b'{"raw": 5}', 400, "bad_base64"),
    (b'{"raw": null}', 400, "bad_base64"),
    (b'{"raw": "aGVsbG8"}', 400, "bad_base64"),
    (b'{"raw": "aGVsbG9="}', 400, "bad_base64"),
    (b'{"raw": "aGVs\\nbG8="}', 400, "bad_base64"),
    (b'{"raw": "aGVs_G8="}', 400, "bad_base64"),
    (b'{"raw": "' + base64.b64encode(b"x" * 65536) + b'"}', 413, "entry_too_large"),
]


@pytest.fixture(scope="module")
def shared() -> Iterator[ServerProc]:
    """One server for the read-only and refused-input cases (holding entries r0, r1, r2)."""
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProc(Path(tmp) / "data", args=["--allow-raw", "--origin", ORIGIN]).start()
        try:
            for i in range(3):
                assert _submit(srv.url, b"r%d" % i).status_code == 201
            yield srv
        finally:
            srv.stop()


@pytest.mark.parametrize(("body", "status", "code"), HOSTILE_POSTS)
def test_hostile_posts(shared: ServerProc, body: bytes, status: int, code: str) -> None:
    before = HTTP.get(shared.url + "/checkpoint").content
    r = HTTP.post(shared.url + "/v1/entries", content=body,
                   headers={"content-type": "application/json"})
    assert r.status_code == status
    assert r.json()["error"]["code"] == code
    assert "Traceback" not in r.text
    assert HTTP.get(shared.url + "/checkpoint").content == before


def test_oversized_bodies(shared: ServerProc) -> None:
    url = shared.url
    limit = (64 << 20) + (256 << 10)  # the default max_body_bytes
    big = b'{"raw": "' + b"A" * (65 << 20) + b'"}'  # a 65 MiB body
    r = HTTP.post(url + "/v1/entries", content=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    # A raw entry within the body limit but over the 65,535-byte entry limit.
    r = HTTP.post(url + "/v1/entries", content=b'{"raw": "' + b"A" * (300 << 10) + b'"}')
    assert r.status_code == 413 and r.json()["error"]["code"] == "entry_too_large"

    def stream():  # no Content-Length: chunked; refused on the running count
        sent = 0
        while sent <= limit:
            yield b"A" * (1 << 20)
            sent += 1 << 20

    r = HTTP.post(url + "/v1/entries", content=stream())
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    # A lying Content-Length larger than the limit is refused before reading the body.
    reply = _raw_http(url, b"POST /v1/entries HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n"
                           b"Content-Type: application/json\r\n\r\n{}")
    assert reply.startswith(b"HTTP/1.1 413")
    assert HTTP.get(url + "/healthz").status_code == 200
    assert _size(url) == 3


@pytest.mark.parametrize(("path", "status", "code"), [
    ("/tile/0/0000", 400, "bad_tile_path"),
    ("/tile/0/x000/000", 400, "bad_tile_path"),
    ("/tile/00/000", 400, "bad_tile_path"),
    ("/tile/0/000.p/0", 400, "bad_tile_path"),
    ("/tile/0/000.p/256", 400, "bad_tile_path"),
    ("/tile/0/000.p/007", 400, "bad_tile_path"),
    ("/tile/64/000", 400, "bad_tile_path"),
    ("/tile/0/-01", 400, "bad_tile_path"),
    ("/tile/0/x999/x999/x999/x999/x999/x999/999", 400, "bad_tile_path"),
    ("/tile/entries/x001/000", 404, "not_found"),
    ("/tile/0/005", 404, "not_found"),
    ("/tile/3/000.p/1", 404, "not_found"),
    ("/v1/proof/inclusion?index=3&size=3", 400, "index_out_of_range"),
    ("/v1/proof/inclusion?index=0&size=99", 400, "size_out_of_range"),
    ("/v1/proof/inclusion?index=-1&size=3", 400, "bad_parameter"),
    ("/v1/proof/inclusion?index=%2B1&size=3", 400, "bad_parameter"),
    ("/v1/proof/inclusion?index=01&size=3", 400, "bad_parameter"),
    ("/v1/proof/inclusion?index=1&size=3&leaf_hash=AAAA", 400, "missing_parameter"),
    ("/v1/proof/inclusion?size=3", 400, "missing_parameter"),
    ("/v1/proof/inclusion?leaf_hash=" + "A" * 43 + "%3D", 404, "not_found"),
    ("/v1/proof/inclusion?leaf_hash=AAAA", 400, "bad_base64"),
    ("/v1/proof/consistency?old=3&new=2", 400, "size_out_of_range"),
    ("/v1/proof/consistency?old=-1&new=2", 400, "bad_parameter"),
    ("/v1/proof/consistency?new=2", 400, "missing_parameter"),
    ("/v1/proof/consistency?old=1&new=99999999999999999999", 400, "bad_parameter"),
    ("/v1/entries/3", 404, "not_found"),
    ("/v1/entries/1e3", 400, "bad_parameter"),
    ("/nothing/here", 404, "not_found"),
])
def test_hostile_reads(shared: ServerProc, path: str, status: int, code: str) -> None:
    r = HTTP.get(shared.url + path)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert r.headers["cache-control"] == "no-store"


def test_wrong_method_is_json(shared: ServerProc) -> None:
    r = HTTP.delete(shared.url + "/checkpoint")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_raw_entries_disabled_by_default(tmp_path: Path) -> None:
    srv = ServerProc(tmp_path / "data", args=["--origin", ORIGIN]).start()
    try:
        r = _submit(srv.url, b"x")
        assert r.status_code == 403 and r.json()["error"]["code"] == "raw_entries_disabled"
        assert HTTP.get(srv.url + "/v1/log").json()["raw_entries_allowed"] is False
        assert _size(srv.url) == 0
    finally:
        srv.stop()
