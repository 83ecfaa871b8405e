"""The read endpoints the web explorer uses besides the rest of the API, against a real
`tlog serve`: entries per minute, entry times, newest-first search, Atom feeds, the client
policy as JSON, the pages themselves (with their security headers) and CORS on reads; plus
the per-minute record in LMDB under a controlled clock, and `tlog explorer export`."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import orjson
import pytest

from client.note import Ed25519Signer, sign_note
from client.policy import load_policy, policy_from_dict
from tests.attestkit import Signer, dsse_body, envelope, make_signer, statement
from tests.conftest import ORIGIN
from tests.serverproc import ServerProc
from tlog import activity, storage
from tlog.config import ConfigError, load_config
from tlog.explorer import FILES
from tlog.fsck import fsck
from tlog.storage import LogStore

ATOM = "{http://www.w3.org/2005/Atom}"
HTTP = httpx.Client(timeout=30)
SUBJECT = hashlib.sha256(b"the artifact").hexdigest()
# An XML-hostile predicate type (the feed must escape it), within the accepted URI form.
PREDICATE = "https://example.com/p?a=1&b=<2>"


@pytest.fixture(scope="module", autouse=True)
def _close_http() -> Iterator[None]:
    yield
    HTTP.close()


@pytest.fixture(scope="module")
def signer() -> Signer:
    return make_signer("ed25519")


@pytest.fixture(scope="module")
def log(signer: Signer) -> Iterator[tuple[ServerProc, list[int], float, float]]:
    """A log with 7 entries for SUBJECT (the 3rd and 6th also with PREDICATE) among others."""
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProc(Path(tmp) / "data", args=["--origin", ORIGIN]).start()
        try:
            t0 = time.time()
            mine = []
            for i in range(12):
                digests = [SUBJECT if i % 2 == 0 and i < 14 else hashlib.sha256(b"%d" % i).hexdigest()]
                body = dsse_body(envelope(statement(digests, PREDICATE if i in (4, 10) else
                                                    "https://slsa.dev/provenance/v1",
                                                    predicate={"n": i}), [signer]), [signer])
                r = HTTP.post(srv.url + "/v1/entries", json=body)
                assert r.status_code == 201, r.text
                if i % 2 == 0:
                    mine.append(r.json()["index"])
            yield srv, mine, t0, time.time()
        finally:
            srv.stop()


def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == code


def _search(url: str, **params: Any) -> dict[str, Any]:
    r = HTTP.get(url + "/v1/search", params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_search_newest_first_pages_back_through_every_hit(log: Any) -> None:
    srv, mine, t0, t1 = log
    asc = _search(srv.url, subject="sha256:" + SUBJECT)
    assert [h["index"] for h in asc["hits"]] == mine
    got, cursor = [], None
    while True:
        page = _search(srv.url, subject="sha256:" + SUBJECT, order="desc", limit=4,
                       **({"cursor": cursor} if cursor is not None else {}))
        got += page["hits"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [h["index"] for h in got] == mine[::-1]
    assert {h["leaf"] for h in got} == {h["leaf"] for h in asc["hits"]}
    for hit in got:  # every hit carries the minute it was appended in
        assert int(t0) // 60 * 60 <= hit["logged_minute"] <= t1 and hit["logged_minute"] % 60 == 0
    _error(HTTP.get(srv.url + "/v1/search", params={"subject": "sha256:" + SUBJECT, "order": "up"}),
           400, "bad_parameter")


def test_activity_counts_every_entry_in_its_minute(log: Any) -> None:
    srv, *_ = log
    doc = HTTP.get(srv.url + "/v1/log/activity", params={"minutes": "5"}).json()
    assert doc["tree_size"] == 12 and len(doc["minutes"]) == 5
    assert doc["minutes"][-1]["start"] == doc["now"] // 60 * 60
    assert [m["start"] for m in doc["minutes"]] == list(range(doc["minutes"][0]["start"],
                                                              doc["now"] // 60 * 60 + 1, 60))
    assert sum(m["entries"] for m in doc["minutes"]) == 12  # the log is younger than 5 minutes
    assert len(HTTP.get(srv.url + "/v1/log/activity").json()["minutes"]) == 60
    for bad in ("0", "1441", "01", "-1", "x"):
        _error(HTTP.get(srv.url + "/v1/log/activity", params={"minutes": bad}), 400, "bad_parameter")


def test_entry_time(log: Any) -> None:
    srv, _mine, t0, t1 = log
    doc = HTTP.get(srv.url + "/v1/entries/11/time").json()
    assert doc["index"] == 11 and int(t0) // 60 * 60 <= doc["logged_minute"] <= t1
    _error(HTTP.get(srv.url + "/v1/entries/12/time"), 404, "not_found")
    _error(HTTP.get(srv.url + "/v1/entries/012/time"), 400, "bad_parameter")


def test_atom_feed_lists_the_newest_entries_of_a_term(log: Any) -> None:
    srv, mine, _t0, _t1 = log
    r = HTTP.get(srv.url + "/v1/feed", params={"subject": "sha256:" + SUBJECT, "limit": "3"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/atom+xml")
    feed = ET.fromstring(r.content)
    assert feed.tag == ATOM + "feed"
    entries = feed.findall(ATOM + "entry")
    assert [e.findtext(ATOM + "id") for e in entries] == [f"{srv.url}/v1/entries/{i}" for i in mine[::-1][:3]]
    for e in entries:
        assert time.strptime(e.findtext(ATOM + "updated") or "", "%Y-%m-%dT%H:%M:%SZ")
        links = {link.get("rel"): link.get("href") for link in e.findall(ATOM + "link")}
        assert links["alternate"].startswith(srv.url + "/explorer/#/entry/")
        assert links["related"].endswith("/receipt")
        assert SUBJECT in (e.findtext(ATOM + "summary") or "")
    # A client's Host header does not choose the links (a cached feed would carry them).
    spoofed = ET.fromstring(HTTP.get(srv.url + "/v1/feed", params={"subject": "sha256:" + SUBJECT},
                                     headers={"host": "evil.example"}).content)
    ids = {e.findtext(ATOM + "id", "") for e in spoofed.findall(ATOM + "entry")}
    assert ids and {i.split("/v1/")[0] for i in ids} == {srv.url}
    # The hostile predicate type comes back intact (escaped on the wire, parsed back here).
    feed = ET.fromstring(HTTP.get(srv.url + "/v1/feed", params={"predicate_type": PREDICATE}).content)
    assert PREDICATE in (feed.findtext(ATOM + "title") or "")
    assert len(feed.findall(ATOM + "entry")) == 2
    _error(HTTP.get(srv.url + "/v1/feed"), 400, "missing_parameter")
    _error(HTTP.get(srv.url + "/v1/feed", params={"subject": "nope"}), 400, "bad_parameter")
    _error(HTTP.get(srv.url + "/v1/feed", params={"signer": "sha256:" + "0" * 64, "limit": "201"}),
           400, "bad_parameter")


def test_client_policy_as_json_is_the_policy_file(log: Any) -> None:
    srv, *_ = log
    doc = HTTP.get(srv.url + "/v1/log/policy").json()
    on_disk = load_policy(srv.data_dir / "client-policy.toml")
    assert doc == on_disk.to_dict() and policy_from_dict(doc) == on_disk


def test_pages_are_served_with_headers_that_keep_them_to_this_origin(log: Any) -> None:
    srv, *_ = log
    for path in ("/", "/explorer"):
        r = HTTP.get(srv.url + path, follow_redirects=False)
        assert r.status_code == 307 and r.headers["location"] == "explorer/"
    page = HTTP.get(srv.url + "/explorer/")
    assert page.status_code == 200 and b'src="app.js"' in page.content
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    for name in FILES:
        r = HTTP.get(f"{srv.url}/explorer/{name}")
        assert r.status_code == 200 and r.headers["content-security-policy"] == csp
    assert HTTP.get(srv.url + "/explorer/app.js").headers["content-type"].startswith("text/javascript")
    config = HTTP.get(srv.url + "/explorer/config.json").json()
    assert config == {"api": "../", "tiles": "../", "policy": None}
    for bad in ("/explorer/../data/data.mdb", "/explorer/%2e%2e/data/data.mdb", "/explorer/nope.js"):
        assert HTTP.get(srv.url + bad).status_code == 404


def test_reads_are_open_to_other_origins_writes_are_not(log: Any, signer: Signer) -> None:
    srv, *_ = log
    for path in ("/checkpoint", "/tile/0/000.p/12", "/v1/proof/inclusion?index=1", "/v1/log",
                 "/v1/search?subject=sha256:" + SUBJECT, "/v1/entries/99"):
        r = HTTP.get(srv.url + path, headers={"origin": "https://elsewhere.example"})
        assert r.headers["access-control-allow-origin"] == "*", path
        assert "access-control-allow-credentials" not in r.headers
    r = HTTP.post(srv.url + "/v1/entries", json={"raw": "AA=="}, headers={"origin": "https://x.example"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers


def test_each_minute_is_recorded_once_and_only_forward(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The first batch of a minute records where it starts; later batches of that minute and
    a clock that steps back record nothing, so minutes and indexes only grow together."""
    log = Ed25519Signer(ORIGIN, bytes(32))

    def sign(text: str) -> bytes:
        return sign_note(text, [log])

    clock = [6000.0]
    monkeypatch.setattr(storage.time, "time", lambda: clock[0])
    store = LogStore(tmp_path / "data", create=True, map_size=1 << 24)
    try:
        store.initialize(ORIGIN, sign)
        plan = [(6000, 3), (6010, 2), (6065, 1), (6030, 4), (6200, 2), (6201, 1)]  # (time, entries)
        n = 0
        for t, k in plan:
            clock[0] = t
            store.append([b"e%d" % (n + j) for j in range(k)], sign)
            n += k
        with store.read_txn() as txn:
            assert store.minutes_since(txn, 0) == [(0, 6000), (5, 6060), (10, 6180)]
            minutes = [store.logged_minute_in(txn, i) for i in range(n)]
        # Entries 6-9 came while the clock read 6030 after 6065: they count in the newest minute.
        assert minutes == [6000] * 5 + [6060] * 5 + [6180] * 3
        assert activity.per_minute([(0, 6000), (5, 6060), (10, 6180)], n, 6201, 4) == [
            {"start": 6000, "entries": 5}, {"start": 6060, "entries": 5},
            {"start": 6120, "entries": 0}, {"start": 6180, "entries": 3}]
        assert fsck(store, [log.verifier()]).ok
        # Reopened (a restart), the store still records nothing twice.
        store.close()
        store = LogStore(tmp_path / "data", map_size=1 << 24)
        clock[0] = 6230
        store.append([b"late"], sign)
        with store.read_txn() as txn:
            assert store.minutes_since(txn, 6100) == [(10, 6180)]
            assert store.logged_minute_in(txn, 13) == 6180
        assert fsck(store, [log.verifier()]).ok
        with store.env.begin(write=True) as txn:  # a minute that goes back: fsck says so
            txn.put(struct.pack(">Q", 12), struct.pack(">Q", 6120), db=store.minutes)
        report = fsck(store, [log.verifier()])
        assert report.problems == ["the minutes entries were appended in do not grow with their indexes"]
    finally:
        store.close()


def test_entries_from_before_minutes_were_kept_have_no_time(tmp_path: Path) -> None:
    log = Ed25519Signer(ORIGIN, bytes(32))

    def sign(text: str) -> bytes:
        return sign_note(text, [log])

    store = LogStore(tmp_path / "data", create=True, map_size=1 << 24)
    try:
        store.initialize(ORIGIN, sign)
        store.append([b"old 0", b"old 1"], sign)
        with store.env.begin(write=True) as txn:  # as an older version wrote them: no minutes
            txn.drop(store.minutes, delete=False)
        store.close()
        store = LogStore(tmp_path / "data", map_size=1 << 24)  # the upgraded version
        store.append([b"new"], sign)
        with store.read_txn() as txn:
            assert [store.logged_minute_in(txn, i) for i in range(2)] == [None, None]
            assert store.logged_minute_in(txn, 2) == int(time.time()) // 60 * 60
            assert store.minutes_since(txn, 0) == [(2, int(time.time()) // 60 * 60)]
    finally:
        store.close()


def test_export_pins_the_policy(log: Any, tmp_path: Path) -> None:
    srv, *_ = log
    out = tmp_path / "site"
    cmd = [sys.executable, "-m", "tlog.cli", "explorer", "export", str(out),
           "--policy", str(srv.data_dir / "client-policy.toml"), "--api", "https://log.example/"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([*FILES, "config.json"])
    config = orjson.loads((out / "config.json").read_bytes())
    assert config == {"api": "https://log.example/", "tiles": "https://log.example/",
                      "policy": load_policy(srv.data_dir / "client-policy.toml").to_dict()}
    for name in FILES:
        assert (out / name).read_bytes() == HTTP.get(f"{srv.url}/explorer/{name}").content
    bad = subprocess.run([*cmd[:-1], "log.example"], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "not an http(s) URL" in bad.stderr
    (tmp_path / "broken.toml").write_text("origin = 1\n")
    bad = subprocess.run([*cmd[:6], str(tmp_path / "broken.toml"), *cmd[7:]], capture_output=True,
                         text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "policy" in bad.stderr


@pytest.mark.parametrize("allow", ["", "https://explorer.example.com"])
def test_cross_origin_reads_can_be_narrowed_or_turned_off(tmp_path: Path, allow: str) -> None:
    config = tmp_path / "log.toml"
    config.write_text(f'[log]\norigin = "{ORIGIN}"\ncors_allow_origin = "{allow}"\n')
    srv = ServerProc(tmp_path / "data", args=["--config", str(config)]).start()
    try:
        r = HTTP.get(srv.url + "/checkpoint", headers={"origin": "https://elsewhere.example"})
        assert r.status_code == 200
        assert r.headers.get("access-control-allow-origin") == (allow or None)
    finally:
        srv.stop()


@pytest.mark.parametrize("bad", ["https://x.example/path", "x.example", "*, https://y.example", "null"])
def test_a_malformed_cors_origin_is_refused_at_start(bad: str) -> None:
    with pytest.raises(ConfigError, match="cors_allow_origin"):
        load_config(None, {}, env={"TLOG_CORS_ALLOW_ORIGIN": bad})
